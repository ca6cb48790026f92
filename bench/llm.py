"""LLM layer benchmark: import costs, per-call overhead over litellm, many concurrent streams.

- import:      ``import wiz_jupyter`` in a fresh interpreter and in a fresh IPython
               (target <= 0.3 s), medians of a few fresh processes;
- load_ext:    ``%load_ext wiz_jupyter`` in a fresh IPython, if the package has
               ``load_ipython_extension``; jupyter_ai_magics' in the same run, as a
               ratio, when it is installed;
- overhead:    the layer's time per call over a raw ``litellm.acompletion`` to the same
               loopback server (target <= 1 ms): medians of interleaved calls;
- streams:     500 concurrent streamed calls through one LLM object, the server
               answering each after 200 ms; wall time against the ideal for the
               concurrency limit, ``ceil(500 / limit) * 0.2 s`` (target <= 1.5x).

The loopback server is ``wiz_jupyter.testing.OpenAIServer``, the tests' own.
The server runs in a process of its own, so the client's loop has the CPU to itself.
Usage: ``python bench/llm.py [--calls 400] [--streams 500] [--concurrency 8]``.
"""

# ruff: noqa: E402  (the imports below come after taking bench/ off sys.path)
from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep this folder off the path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import asyncio
import importlib.util
import json
import math
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

PY = sys.executable
MODEL = "openai/gpt-4o-mini"  # a priced model: litellm's usual path, cost included
IPYTHON = [PY, "-m", "IPython", "--no-banner", "--HistoryManager.enabled=False", "--quick"]


def fresh(cmd: list[str], code: str, runs: int) -> float | None:
    """Median over ``runs`` fresh processes of the seconds ``code`` prints."""
    times = []
    for _ in range(runs):
        out = subprocess.run([*cmd, code], capture_output=True, text=True, timeout=300)
        lines = [line for line in out.stdout.split() if line.replace(".", "", 1).isdigit()]
        if out.returncode != 0 or not lines:
            print(f"  (failed: {out.stderr.strip().splitlines()[-1:] or out.stdout[-200:]})")
            return None
        times.append(float(lines[-1]))
    return statistics.median(times)


def timed(statement: str) -> str:
    return f"import time; t0 = time.perf_counter(); {statement}; print(time.perf_counter() - t0)"


def bench_imports(runs: int) -> None:
    plain = fresh([PY, "-c"], timed("import wiz_jupyter"), runs)
    in_ipython = fresh([*IPYTHON, "-c"], timed("import wiz_jupyter"), runs)
    print(f"import wiz_jupyter, fresh python:   {plain:.3f} s   (target <= 0.3 s)")
    print(f"import wiz_jupyter, fresh IPython:  {in_ipython:.3f} s   (target <= 0.3 s)")
    probe = subprocess.run(
        [PY, "-c", "import wiz_jupyter; print(hasattr(wiz_jupyter, 'load_ipython_extension'))"],
        capture_output=True,
        text=True,
    )
    ours = None
    if probe.stdout.strip() == "True":
        ours = fresh(
            [*IPYTHON, "-c"], timed("get_ipython().run_line_magic('load_ext', 'wiz_jupyter')"), runs
        )
        print(f"%load_ext wiz_jupyter, fresh IPython: {ours:.3f} s")
    else:
        print("%load_ext wiz_jupyter: the extension is not built yet (no load_ipython_extension)")
    if importlib.util.find_spec("jupyter_ai_magics") is None:
        print("%load_ext jupyter_ai_magics: not installed, no ratio")
    else:
        theirs = fresh(
            [*IPYTHON, "-c"],
            timed("get_ipython().run_line_magic('load_ext', 'jupyter_ai_magics')"),
            runs,
        )
        ratio = f", ours {ours / theirs:.2f}x of theirs" if ours and theirs else ""
        print(f"%load_ext jupyter_ai_magics, fresh IPython: {theirs:.3f} s{ratio}")


class Server:
    """The tests' loopback server, in a process of its own so the client has the CPU."""

    def __init__(self, delay: float = 0.0):
        self.proc = subprocess.Popen(
            [PY, "-m", "wiz_jupyter.testing", "--delay", str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def _call(self, method: str, path: str) -> dict:
        root = self.url.rsplit("/v1", 1)[0]
        req = urllib.request.Request(
            root + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self) -> dict:
        return self._call("GET", "/_wiz/stats")

    def reset(self) -> None:
        self._call("POST", "/_wiz/reset")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the server's cue to stop
        self.proc.wait(timeout=10)


async def bench_overhead(tmp: Path, calls: int) -> None:
    from wiz_jupyter.agents import LLM
    from wiz_jupyter.agents import _litellm as lazy
    from wiz_jupyter.jobs.store import Store

    llm = LLM(Store(tmp / "overhead.db"))
    llm.direct = False  # the layer over litellm: what it adds to litellm's own call
    direct = LLM(llm.db.store)  # OpenAI-compatible endpoints' usual path (agents/llm_openai.py)
    litellm = lazy.load()
    server = Server()
    messages = [{"role": "user", "content": "hello"}]
    params = {"model": MODEL, "api_base": server.url, "timeout": 30}

    async def raw() -> None:
        await litellm.acompletion(messages=messages, num_retries=0, max_retries=0, **params)

    async def ours() -> None:
        await llm.complete(messages, **params)

    async def fast() -> None:
        await direct.complete(messages, **params)

    try:
        for _ in range(30):  # warm every path: clients, caches, the price map look-up
            await raw()
            await ours()
            await fast()
        t_raw, t_ours, t_fast = [], [], []
        for _ in range(calls):  # interleaved, so drift hits all alike
            t0 = time.perf_counter()
            await raw()
            t1 = time.perf_counter()
            await ours()
            t2 = time.perf_counter()
            await fast()
            t3 = time.perf_counter()
            t_raw.append(t1 - t0)
            t_ours.append(t2 - t1)
            t_fast.append(t3 - t2)
    finally:
        server.stop()
        llm.db.store.close()
    r, o, f = (statistics.median(t) for t in (t_raw, t_ours, t_fast))
    print(
        f"per call, median of {calls}: litellm.acompletion {r * 1e3:.2f} ms, through LLM over "
        f"litellm {o * 1e3:.2f} ms: overhead {(o - r) * 1e3:.2f} ms   (target <= 1 ms); "
        f"through LLM's direct OpenAI path {f * 1e3:.2f} ms"
    )


async def bench_streams(tmp: Path, n: int, concurrency: int, delay: float) -> None:
    from wiz_jupyter.agents import LLM
    from wiz_jupyter.agents import _litellm as lazy
    from wiz_jupyter.jobs.store import Store

    llm = LLM(Store(tmp / "streams.db"), concurrency=concurrency)
    llm.direct = False  # beside "litellm alone": the layer over litellm
    litellm = lazy.load()
    server = Server(delay)
    limit = asyncio.Semaphore(concurrency)

    async def ours(i: int) -> str:
        s = llm.stream(f"stream number {i} of the bench", model=MODEL, api_base=server.url)
        return "".join([piece async for piece in s])

    async def raw(i: int) -> str:  # litellm alone under the same limit, for comparison
        async with limit:
            chunks = await litellm.acompletion(
                model=MODEL,
                api_base=server.url,
                messages=[{"role": "user", "content": f"stream number {i} of the bench"}],
                stream=True,
                stream_options={"include_usage": True},
                num_retries=0,
                max_retries=0,
            )
            return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])

    ideal = math.ceil(n / concurrency) * delay
    try:
        for name, one in (("through LLM", ours), ("litellm alone", raw)):
            await one(-1)  # warm up
            server.reset()
            t0 = time.perf_counter()
            texts = await asyncio.gather(*[one(i) for i in range(n)])
            wall = time.perf_counter() - t0
            assert texts[7] == "echo: stream number 7 of the bench", texts[7]
            stats = server.stats()
            assert stats["requests"] == n, stats
            print(
                f"{n} concurrent streams, {name}, limit {concurrency}, server {delay * 1e3:.0f} ms: "
                f"wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.2f}   "
                f"(target <= 1.5); at most {stats['max_in_flight']} in flight"
            )
    finally:
        server.stop()
        llm.db.store.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=400, help="calls per side for the overhead")
    ap.add_argument("--streams", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8, help="per-model limit (LLM's default)")
    ap.add_argument("--delay", type=float, default=0.2, help="the server's answer time, seconds")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per import figure")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wiz-bench-llm-"))
    try:
        print(f"wiz_jupyter LLM bench (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
        os.environ.setdefault("OPENAI_API_KEY", "sk-bench-loopback")  # litellm wants one
        bench_imports(args.runs)
        await bench_overhead(tmp, args.calls)
        await bench_streams(tmp, args.streams, args.concurrency, args.delay)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
