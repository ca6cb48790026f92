"""A separate process for the approval tests.

python _approvals_worker.py park DB MARKS        add an agent job, work it until it awaits
                                                 approval, print "awaiting ID", then sleep
                                                 (the test SIGKILLs it)
python _approvals_worker.py approve DB MARKS ID AT   at time AT approve job ID, print "approved"
                                                 or the one-line error, then work until the
                                                 job has finished and print "done STATUS"
"""

from __future__ import annotations

import asyncio
import sys
import time

import wiz_jupyter as wiz
from wiz_jupyter.errors import WizError

PROMPT = "use record with n=1"


def recorder(ws: wiz.Workspace, marks: str) -> wiz.Agent:
    """The agent both processes define: one tool that asks before it runs."""

    @wiz.tool(approve=True)
    def record(n: int) -> str:
        """Record that the tool ran.

        Args:
            n: the number to record
        """
        with open(marks, "a") as f:
            f.write(f"{n}\n")
        return f"recorded {n}"

    return ws.agent("recorder", tools=[record])


async def park(db: str, marks: str) -> None:
    ws = wiz.Workspace(db, lease=1.0, poll_interval=0.05)
    job = recorder(ws, marks).submit("ask", PROMPT)
    await ws.start()
    while job.status != "awaiting_input":
        await asyncio.sleep(0.02)
    print(f"awaiting {job.id}", flush=True)
    await asyncio.sleep(600)


async def approve(db: str, marks: str, job_id: int, at: float) -> None:
    ws = wiz.Workspace(db, lease=1.0, poll_interval=0.05)
    recorder(ws, marks)
    await asyncio.sleep(max(0.0, at - time.time()))
    try:
        ws.jobs.approve(job_id)
        print("approved", flush=True)
    except WizError as e:
        print(f"error {e}", flush=True)
    await ws.start()
    job = ws.jobs.get(job_id)
    try:
        await job.wait(timeout=30)
    finally:
        print(f"done {job.status}", flush=True)
        await ws.stop()


if __name__ == "__main__":
    if sys.argv[1] == "park":
        asyncio.run(park(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(approve(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
