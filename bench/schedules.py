"""Scheduler benchmark: idle CPU with 1,000 active schedules, and interval lateness.

- idle CPU: 1,000 schedules (cron and interval, none due during the window) on a
  started workspace (runtime + scheduler, as in a notebook); CPU time of this
  process over ``--idle-seconds`` of wall time, as a share of one core.
  Target: under 1 %.
- lateness: ``--timers`` interval schedules firing every ``--interval`` seconds
  for ``--seconds``; lateness = when the firing committed minus when it was due,
  p50 / p99 / max. Target: p99 <= 10 ms.

Usage: ``python bench/schedules.py [--idle-seconds 10] [--seconds 10]``.
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
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import wiz_jupyter as wiz  # noqa: E402


async def idle_cpu(tmp: Path, n: int, seconds: float) -> float:
    ws = wiz.Workspace(tmp / "idle.db")

    @ws.task
    async def report(i: int) -> None:
        pass

    for i in range(n):
        if i % 2:
            ws.schedules.add("report", {"i": i}, cron=f"{i % 60} {i % 24} * * *", name=f"c{i}")
        else:
            ws.schedules.add("report", {"i": i}, every=3600 + i, name=f"e{i}")
    await ws.start()
    await asyncio.sleep(1.0)  # settle: first pass, timers set
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    assert len(ws.scheduler._active) == n
    await ws.stop()
    ws.close()
    return cpu * 100


async def lateness(tmp: Path, timers: int, interval: float, seconds: float) -> list[float]:
    ws = wiz.Workspace(tmp / "late.db")
    late: list[float] = []

    @ws.task
    async def beat() -> None:
        pass

    def on_fired(event: wiz.Event) -> None:
        key = ws.jobs.get(event.job_id).key  # schedule:<id>:time:<due>
        due = float(key.rsplit(":", 1)[1])
        late.append((event.at - due) * 1000)

    ws.events.on("schedule.fired", on_fired)
    start = time.time() + 0.5
    for i in range(timers):
        ws.schedules.add("beat", every=interval, start=start + i * interval / timers, name=f"t{i}")
    await ws.start()
    await asyncio.sleep(seconds + 0.5)
    await ws.stop()
    ws.close()
    return sorted(late)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--timers", type=int, default=10)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wiz-bench-"))
    cpu = await idle_cpu(tmp, args.schedules, args.idle_seconds)
    print(f"idle CPU with {args.schedules} active schedules: {cpu:.2f} % of a core "
          f"over {args.idle_seconds:g} s (target < 1 %)")  # fmt: skip
    late = await lateness(tmp, args.timers, args.interval, args.seconds)
    pct = lambda q: late[min(len(late) - 1, int(q * len(late)))]  # noqa: E731
    print(f"interval lateness over {len(late)} firings ({args.timers} schedules every "
          f"{args.interval:g} s): p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, "
          f"max {late[-1]:.2f} ms (target p99 <= 10 ms)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
