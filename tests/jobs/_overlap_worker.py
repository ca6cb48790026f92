"""A separate OS process that fires a shared database's schedules and works their jobs,
for the overlap test in test_overlap.py.

python _overlap_worker.py DB OUT   run `slow` jobs (0.4 s each) until the file OUT.stop exists
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import wiz_jupyter as wiz


async def main(db: str, out: str) -> None:
    ws = wiz.Workspace(db, concurrency=4, lease=5.0, poll_interval=0.02)
    log = open(out, "a", buffering=1)

    @ws.task
    async def slow() -> int:
        log.write(f"start {time.time()!r}\n")
        await asyncio.sleep(0.4)
        log.write(f"end {time.time()!r}\n")
        return os.getpid()

    await ws.start()
    open(out + ".ready", "w").close()
    while not os.path.exists(out + ".stop"):
        await asyncio.sleep(0.02)
    await ws.stop(grace=5)
    ws.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
