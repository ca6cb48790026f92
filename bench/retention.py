"""Retention benchmark: does the file stay bounded, and does throughput hold?

N no-op jobs (default 200,000) are added in batches of 1,000 (``add_bulk``) and worked
at concurrency 8 by a running runtime, twice on fresh files in the same run:

- ``keep all``: no policy, the file grows with every job (the reference);
- ``keep 1000``: ``@ws.task(remove_on_complete=1000)``, removed by the runtime's
  own collection every second.

Every 10% of the jobs it prints the file's size (database + WAL) and the jobs held,
then each run's jobs/s and the ratio of the two. Target: the ``keep 1000`` file stops
growing (its last size within a few MB of its size at 20%), and its rate is at least
90% of the reference's.

Usage: ``python bench/retention.py [--n 200000]``.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep this folder off the path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402 - after the path fix above
import asyncio  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import wiz_jupyter as wiz  # noqa: E402

BATCH = 1000
IN_FLIGHT = 2  # batches added ahead of the runtime: the queue never runs dry


def waiting(ws: wiz.Workspace) -> int:
    # by the status index: its cost does not grow with the finished jobs held, so both
    # runs pay the same for it
    return ws.store.read("SELECT COUNT(*) FROM jobs WHERE status = 'waiting'")[0][0]


def on_disk(ws: wiz.Workspace) -> tuple[float, float, int]:
    """The database's and the WAL's MB, and the jobs held."""
    held = ws.store.read("SELECT COUNT(*) FROM jobs")[0][0]
    wal = os.path.getsize(f"{ws.path}-wal") if os.path.exists(f"{ws.path}-wal") else 0
    return (ws.store.size() - wal) / 1e6, wal / 1e6, held


async def run(
    tmp: Path, n: int, keep: int | None
) -> tuple[float, list[tuple[int, float, float, int]]]:
    ws = wiz.Workspace(tmp / f"wiz-{keep}.db", concurrency=8)

    @ws.task(remove_on_complete=keep)
    async def noop(i: int = 0) -> None:
        return None

    await ws.start()
    sizes: list[tuple[int, float, float, int]] = []
    step, added = n // 10, 0
    t0 = time.perf_counter()
    while added < n:
        if waiting(ws) >= IN_FLIGHT * BATCH:  # let the runtime catch up before adding more
            await asyncio.sleep(0.01)
            continue
        ws.jobs.add_bulk([("noop", {"i": added + k}) for k in range(BATCH)])
        added += BATCH
        await asyncio.sleep(0)  # the runtime works on this loop: let it
        if added % step == 0:
            sizes.append((added, *on_disk(ws)))
    await ws.run_until_idle(timeout=3600)
    rate = n / (time.perf_counter() - t0)
    await ws.stop()
    ws.close()
    return rate, sizes


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        results = {}
        for label, keep in (("keep all", None), ("keep 1000", 1000)):
            rate, sizes = await run(Path(d), args.n, keep)
            results[label] = rate
            print(f"{label}: {rate:,.0f} jobs/s")
            for added, mb, wal, held in sizes:
                print(f"  after {added:>8,} jobs: database {mb:7.1f} MB (+ WAL {wal:5.1f} MB), "
                      f"{held:>7,} jobs held")  # fmt: skip
        ratio = results["keep 1000"] / results["keep all"]
        print(f"keep 1000 / keep all throughput: {ratio:.2f} (target >= 0.90)")


if __name__ == "__main__":
    asyncio.run(main())
