"""A second OS process working rate-limited jobs on a shared database.

python _rate_worker.py DB LIMIT PER   work `tick` jobs (rate LIMIT per PER seconds) until
                                      none is left waiting, delayed or running

Two at a time, 0.3 s each: alone it could not fill a window of the limit the test uses
(5 per 0.5 s), so the test's own process always starts some of the jobs. (With 16 slots
each, whichever process promoted a window's delayed jobs claimed them all: on a loaded
machine this one won every window and the test saw one process only.)
"""

from __future__ import annotations

import asyncio
import os
import sys

import wiz_jupyter as wiz


async def main(db: str, limit: int, per: float) -> None:
    ws = wiz.Workspace(db, concurrency=2, lease=5.0, poll_interval=0.02)

    @ws.task(rate=(limit, per))
    async def tick(i: int) -> int:
        await asyncio.sleep(0.3)
        return os.getpid()

    await ws.start()
    open(db + f".{os.getpid()}.ready", "w").close()
    # wait for the test's jobs, then until every one is done
    while ws.jobs.counts()["completed"] == 0:
        await asyncio.sleep(0.02)
    while any(ws.jobs.counts()[s] for s in ("waiting", "delayed", "active")):
        await asyncio.sleep(0.02)
    await ws.stop()
    ws.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
