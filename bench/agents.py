"""Agent runtime benchmark.

- overhead per step: an agent answers through ``--steps`` tool-call turns with a
  scripted model; the runtime's own time per step is the job's wall time minus
  the time spent inside the model calls (litellm + the scripted provider), over
  the number of model turns. Target: <= 2 ms.
- 200 concurrent agent jobs against the loopback OpenAI-compatible server
  answering in 200 ms, with the agent's concurrency at ``--concurrency``: wall
  time against the ideal (ceil(jobs / concurrency) x 200 ms). Target: close to 1x.

Usage: ``python bench/agents.py [--jobs 200] [--concurrency 50]``.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep bench/ off the path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import wiz_jupyter as wiz  # noqa: E402
from wiz_jupyter.agents import ScriptedModel, ToolCall  # noqa: E402
from wiz_jupyter.testing import OpenAIServer  # noqa: E402


def timed_llm(ws: wiz.Workspace) -> list[float]:
    spent: list[float] = []
    inner = ws.llm.chat

    async def chat(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    ws.llm.chat = chat  # type: ignore[method-assign]
    return spent


async def overhead(tmp: Path, steps: int, reps: int) -> float:
    ws = wiz.Workspace(tmp / "overhead.db")
    spent = timed_llm(ws)

    def noop(i: int) -> int:
        """Do nothing."""
        return i

    await ws.start()
    per_step = []
    for r in range(reps + 1):
        model = ScriptedModel([*(ToolCall("noop", {"i": i}) for i in range(steps)), "done"])
        agent = ws.agent(f"a{r}", model=model, tools=[wiz.tool(noop)], max_steps=steps + 1)
        spent.clear()
        t0 = time.perf_counter()
        job = agent.submit("ask", "go")
        await job.wait()
        wall = time.perf_counter() - t0
        if r:  # the first run warms litellm up
            per_step.append((wall - sum(spent)) / len(spent) * 1000)
    await ws.stop()
    ws.close()
    return statistics.median(per_step)


async def concurrent(tmp: Path, jobs: int, concurrency: int, delay: float) -> tuple[float, float]:
    os.environ.setdefault("OPENAI_API_KEY", "sk-loopback")
    with OpenAIServer(delay=delay) as server:
        ws = wiz.Workspace(tmp / "concurrent.db", concurrency=concurrency)
        ws.llm.set_concurrency("openai/gpt-bench", concurrency)
        agent = ws.agent("bench", model="openai/gpt-bench", settings={"api_base": server.url},
                         concurrency=concurrency)  # fmt: skip
        await ws.start()
        await agent.ask("warm up")
        t0 = time.perf_counter()
        batch = [agent.submit("ask", f"question {i}") for i in range(jobs)]
        for job in batch:
            await job.wait()
        wall = time.perf_counter() - t0
        await ws.stop()
        ws.close()
    return wall, math.ceil(jobs / concurrency) * delay


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wiz-bench-"))
    per_step = await overhead(tmp, args.steps, args.reps)
    print(f"agent runtime overhead per step: {per_step:.2f} ms over the scripted model's own time "
          f"(median of {args.reps}, {args.steps} tool turns each; target <= 2 ms)")  # fmt: skip
    wall, ideal = await concurrent(tmp, args.jobs, args.concurrency, args.delay)
    print(f"{args.jobs} concurrent agent jobs, concurrency {args.concurrency}, server answering in "
          f"{args.delay * 1000:.0f} ms: wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.2f}x")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
