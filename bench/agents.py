"""Agent runtime benchmark: the runtime's own cost per step, and agents against their peers.

- overhead per step: an agent answers through ``--steps`` tool-call turns with a
  scripted model; the runtime's own time per step is the job's wall time minus
  the time spent inside the model calls (the LLM layer + the scripted provider),
  over the number of model turns, before litellm is imported and after (as in a
  notebook, where ``%load_ext`` imports it in the background). Target: <= 0.5 ms.
- peers: the same ``--jobs`` answers at ``--concurrency`` against one
  OpenAI-compatible loopback server (``python -m wiz_jupyter.testing``, in a
  process of its own) answering in ``--delay`` seconds, through

  * wiz_jupyter: ``ask`` jobs of an agent on the workspace's queue (each records
    its activity, its ``llm_calls`` row with tokens, cost and latency);
  * wiz_jupyter's LLM layer alone: ``ws.llm.chat`` (no queue, no agent);
  * pydantic-ai: ``Agent.run`` with its OpenAI model pointed at the same server;
  * the bare ``openai`` SDK: ``AsyncOpenAI().chat.completions.create``.

  Each path runs ``--reps`` times, interleaved with the others so drift hits all
  alike; the medians of wall time, its ratio to the ideal
  (``ceil(jobs / concurrency) x delay``) and this process's CPU time per answer
  (which the other tenants of a shared machine disturb less than wall time) are
  printed. Targets: wiz_jupyter faster than pydantic-ai, within 15% of the bare
  SDK, <= 1.5x the ideal.

Usage: ``python bench/agents.py [--jobs 200] [--concurrency 50] [--reps 3]``;
``--profile FILE`` writes a cProfile of one more wiz_jupyter run there (and prints
its top functions); ``--only wiz,sdk`` runs only those paths.
"""

# ruff: noqa: E402  (the imports below come after taking bench/ off sys.path)
from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep bench/ off the path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import asyncio
import cProfile
import importlib.util
import math
import pstats
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import wiz_jupyter as wiz
from wiz_jupyter.agents import ScriptedModel, ToolCall, _litellm

MODEL = "gpt-4o-mini"  # a priced model: the LLM layer's usual path, cost included
KEY = "sk-bench-loopback"


def timed_llm(ws: wiz.Workspace) -> list[tuple[float, float]]:
    """Wrap ``ws.llm.chat``: the (wall, process CPU) seconds of each call go in the list."""
    spent: list[tuple[float, float]] = []
    inner = ws.llm.chat

    async def chat(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return await inner(*args, **kwargs)
        finally:
            spent.append((time.perf_counter() - t0, time.process_time() - c0))

    ws.llm.chat = chat  # type: ignore[method-assign]
    return spent


async def overhead(db: Path, steps: int, reps: int) -> tuple[float, float]:
    """The runtime's own (wall, CPU) milliseconds per step: a job's, less its model calls'."""
    ws = wiz.Workspace(db)
    spent = timed_llm(ws)

    def noop(i: int) -> int:
        """Do nothing."""
        return i

    await ws.start()
    per_step, cpu_step = [], []
    for r in range(reps + 1):
        model = ScriptedModel([*(ToolCall("noop", {"i": i}) for i in range(steps)), "done"])
        agent = ws.agent(f"a{r}", model=model, tools=[wiz.tool(noop)], max_steps=steps + 1)
        spent.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        job = agent.submit("ask", "go")
        await job.wait()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if r:  # the first run warms the LLM layer up
            per_step.append((wall - sum(w for w, _ in spent)) / len(spent) * 1000)
            cpu_step.append((cpu - sum(c for _, c in spent)) / len(spent) * 1000)
    await ws.stop()
    ws.close()
    return statistics.median(per_step), statistics.median(cpu_step)


class Server:
    """The tests' loopback server, in a process of its own so the client has the CPU."""

    def __init__(self, delay: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wiz_jupyter.testing", "--delay", str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the server's cue to stop
        self.proc.wait(timeout=10)


Run = Callable[[int], Awaitable[None]]  # one rep: answer ``jobs`` questions, check them


async def wiz_jobs(tmp: Path, url: str, jobs: int, concurrency: int) -> tuple[Run, Callable]:
    ws = wiz.Workspace(tmp / "peers.db", concurrency=concurrency)
    model = f"openai/{MODEL}"
    ws.llm.set_concurrency(model, concurrency)
    agent = ws.agent("bench", model=model, settings={"api_base": url, "api_key": KEY},
                     concurrency=concurrency)  # fmt: skip
    await ws.start()
    await agent.ask("warm up")

    async def run(rep: int) -> None:
        batch = [agent.submit("ask", f"question {rep} {i}") for i in range(jobs)]
        for i, job in enumerate(batch):
            answer = await job.wait()
            assert answer == f"echo: question {rep} {i}", answer
        usage = ws.llm.usage(batch[-1].id)
        assert usage.calls == 1 and usage.tokens_out > 0 and usage.cost > 0, usage

    async def close() -> None:
        await ws.stop()
        ws.close()

    return run, close


async def wiz_llm(tmp: Path, url: str, jobs: int, concurrency: int) -> tuple[Run, Callable]:
    from wiz_jupyter.agents import LLM
    from wiz_jupyter.jobs.store import Store

    llm = LLM(Store(tmp / "llm.db"), concurrency=concurrency)
    params = {"model": f"openai/{MODEL}", "api_base": url, "api_key": KEY}
    await llm.complete("warm up", **params)

    async def run(rep: int) -> None:
        replies = await asyncio.gather(
            *[llm.chat(f"question {rep} {i}", **params) for i in range(jobs)]
        )
        assert replies[7].text == f"echo: question {rep} 7" and replies[7].cost > 0, replies[7]

    async def close() -> None:
        llm.db.store.close()

    return run, close


async def pydantic_ai(tmp: Path, url: str, jobs: int, concurrency: int) -> tuple[Run, Callable]:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=url, api_key=KEY))
    agent = Agent(model)
    limit = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> str:
        async with limit:
            return (await agent.run(prompt)).output

    await one("warm up")

    async def run(rep: int) -> None:
        answers = await asyncio.gather(*[one(f"question {rep} {i}") for i in range(jobs)])
        assert answers[7] == f"echo: question {rep} 7", answers[7]

    async def close() -> None:
        pass

    return run, close


async def bare_sdk(tmp: Path, url: str, jobs: int, concurrency: int) -> tuple[Run, Callable]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key=KEY)
    limit = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> str:
        async with limit:
            r = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": prompt}]
            )
            return r.choices[0].message.content or ""

    await one("warm up")

    async def run(rep: int) -> None:
        answers = await asyncio.gather(*[one(f"question {rep} {i}") for i in range(jobs)])
        assert answers[7] == f"echo: question {rep} 7", answers[7]

    async def close() -> None:
        await client.close()

    return run, close


PATHS = {
    "wiz": ("wiz_jupyter (ask jobs)", wiz_jobs),
    "llm": ("wiz_jupyter ws.llm.chat", wiz_llm),
    "pydantic": ("pydantic-ai Agent.run", pydantic_ai),
    "sdk": ("bare openai SDK", bare_sdk),
}


async def peers(tmp: Path, args: argparse.Namespace) -> None:
    only = [p for p in args.only.split(",") if p]
    if "pydantic" in only and importlib.util.find_spec("pydantic_ai") is None:
        print("pydantic-ai is not installed (pip install -e '.[dev]'): left out")
        only.remove("pydantic")
    server = Server(args.delay)
    ideal = math.ceil(args.jobs / args.concurrency) * args.delay
    runs, closes = {}, []
    walls: dict[str, list[float]] = {p: [] for p in only}
    cpus: dict[str, list[float]] = {p: [] for p in only}
    try:
        for p in only:
            runs[p], close = await PATHS[p][1](tmp, server.url, args.jobs, args.concurrency)
            closes.append(close)
        for rep in range(args.reps):
            for p in only:  # interleaved: drift and the neighbours' load hit every path alike
                c0, t0 = time.process_time(), time.perf_counter()
                await runs[p](rep)
                walls[p].append(time.perf_counter() - t0)
                cpus[p].append(time.process_time() - c0)
        if args.profile and "wiz" in runs:
            prof = cProfile.Profile()
            prof.enable()
            await runs["wiz"](args.reps)
            prof.disable()
            prof.dump_stats(args.profile)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    finally:
        for close in closes:
            await close()
        server.stop()
    print(f"{args.jobs} answers at concurrency {args.concurrency}, server answering in "
          f"{args.delay * 1e3:.0f} ms in its own process; ideal {ideal:.2f} s; medians of {args.reps}")  # fmt: skip
    med = {p: (statistics.median(walls[p]), statistics.median(cpus[p])) for p in only}
    for p in only:
        wall, cpu = med[p]
        print(f"  {PATHS[p][0]:<26} wall {wall:5.2f} s  {wall / ideal:4.2f}x ideal  "
              f"CPU {cpu / args.jobs * 1e3:5.2f} ms per answer")  # fmt: skip
    if "wiz" in med and "sdk" in med:
        ratio = med["wiz"][0] / med["sdk"][0]
        print(f"  wiz_jupyter / bare SDK: {ratio:.2f}x wall (target <= 1.15), "
              f"{med['wiz'][1] / med['sdk'][1]:.2f}x CPU")  # fmt: skip
    if "wiz" in med and "pydantic" in med:
        ratio = med["wiz"][0] / med["pydantic"][0]
        print(f"  wiz_jupyter / pydantic-ai: {ratio:.2f}x wall (target < 1), "
              f"{med['wiz'][1] / med['pydantic'][1]:.2f}x CPU")  # fmt: skip
    if "wiz" in med:
        print(f"  target: wiz_jupyter <= 1.5x ideal; now {med['wiz'][0] / ideal:.2f}x")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--only", default=",".join(PATHS), help="paths to run: " + ",".join(PATHS))
    ap.add_argument("--no-overhead", action="store_true", help="skip the per-step figure")
    ap.add_argument("--profile", help="write a cProfile of one more wiz_jupyter run here")
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", KEY)
    tmp = Path(tempfile.mkdtemp(prefix="wiz-bench-"))
    try:
        print(f"wiz_jupyter agents bench (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f})")  # fmt: skip
        if not args.no_overhead:
            reps = max(args.reps, 15)
            print(f"agent runtime overhead per step over the scripted model's own time "
                  f"({args.steps} tool turns a job, median of {reps}; target <= 0.5 ms):")  # fmt: skip
            for when in (
                "before litellm is imported",
                "litellm imported (a notebook after %load_ext)",
            ):
                if when.startswith("litellm"):
                    _litellm.load()
                per_step, cpu = await overhead(tmp / f"{when[:6]}.db", args.steps, reps)
                print(f"  {when:<48} {per_step:.2f} ms wall, {cpu:.2f} ms CPU")
        await peers(tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
