"""A separate OS process working a shared database, for the multi-process tests.

python _worker.py drain DB OUT N   work `record` jobs until N are completed in the database
python _worker.py hang DB OUT      claim `slow` jobs and hang in them (the test kills us)
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

import wiz_jupyter as wiz


async def drain(db: str, out: str, n: int) -> None:
    ws = wiz.Workspace(db, concurrency=4, lease=5.0, poll_interval=0.02)
    log = open(out, "a", buffering=1)

    @ws.task
    async def record(i: int) -> int:
        log.write(f"{i}\n")
        await asyncio.sleep(random.random() / 1000)
        return os.getpid()

    await ws.start()
    open(out + ".ready", "w").close()
    while ws.jobs.counts()["completed"] < n:
        await asyncio.sleep(0.05)
    await ws.stop()


async def hang(db: str, out: str) -> None:
    ws = wiz.Workspace(db, concurrency=3, lease=1.0)
    log = open(out, "a", buffering=1)

    @ws.task
    async def slow(i: int) -> None:
        log.write(f"started {i}\n")
        await asyncio.sleep(600)

    await ws.start()
    await asyncio.sleep(600)


if __name__ == "__main__":
    mode, db, out = sys.argv[1:4]
    if mode == "drain":
        asyncio.run(drain(db, out, int(sys.argv[4])))
    else:
        asyncio.run(hang(db, out))
