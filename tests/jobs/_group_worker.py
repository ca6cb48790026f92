"""A second OS process for tests/jobs/test_groups.py: works ``grouped`` jobs
(``group_concurrency=1``) on a shared database, logging each run's start and end.

python _group_worker.py DB OUT N   work until N jobs are completed in the database
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import wiz_jupyter as wiz


async def main(db: str, out: str, n: int) -> None:
    ws = wiz.Workspace(db, concurrency=4, lease=5.0, poll_interval=0.02)
    log = open(out, "a", buffering=1)

    @ws.task(group_concurrency=1)
    async def grouped(i: int, g: str) -> int:
        log.write(f"{g} {i} {time.time():.6f} start\n")
        await asyncio.sleep(0.01)
        log.write(f"{g} {i} {time.time():.6f} end\n")
        return os.getpid()

    await ws.start()
    open(out + ".ready", "w").close()
    while ws.jobs.counts()["completed"] < n:
        await asyncio.sleep(0.05)
    await ws.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
