"""Several OS processes on one database: exactly once per attempt, and crash recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import wiz_jupyter as wiz

WORKER = str(Path(__file__).with_name("_worker.py"))


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKER, *args])


async def until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Another process's progress can only be seen by looking at shared files."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_two_processes_drain_2000_jobs_each_run_exactly_once(tmp_path):
    db = str(tmp_path / "shared.db")
    n = 2000
    outs = [str(tmp_path / f"out{k}.txt") for k in range(2)]
    wiz.Workspace(db).close()  # create the schema before both open it
    procs = [spawn("drain", db, out, str(n)) for out in outs]
    try:
        await until(lambda: all(os.path.exists(o + ".ready") for o in outs), what="workers")
        ws = wiz.Workspace(db)
        half = n // 2
        ws.jobs.add_bulk([("record", {"i": i}) for i in range(half)])
        for i in range(half, n):  # one by one too, while both are working
            ws.jobs.add("record", {"i": i})
        for p in procs:
            assert p.wait(timeout=120) == 0
    finally:
        for p in procs:
            p.kill()
    runs = [int(x) for o in outs for x in Path(o).read_text().split()]
    per_process = [len(Path(o).read_text().split()) for o in outs]
    assert sorted(runs) == list(range(n))  # every job once, none twice
    assert all(k > 0 for k in per_process), per_process  # both did work
    assert ws.jobs.counts()["completed"] == n
    attempts = ws.store.read("SELECT attempts_made, COUNT(*) FROM jobs GROUP BY attempts_made")
    assert [tuple(r) for r in attempts] == [(1, n)]
    pids = Counter(j.result for j in ws.jobs.list())
    assert set(pids) == {p.pid for p in procs}
    ws.close()


async def test_a_process_killed_mid_job_loses_nothing(tmp_path):
    db = str(tmp_path / "shared.db")
    out = str(tmp_path / "started.txt")
    ws = wiz.Workspace(db, lease=1.0, poll_interval=0.05)
    once = ws.jobs.add("slow", {"i": 0}, attempts=1, priority=10)
    twice = [ws.jobs.add("slow", {"i": i}, attempts=2, priority=5) for i in (1, 2)]
    never_started = [ws.jobs.add("slow", {"i": i}, attempts=1) for i in (3, 4)]
    victim = spawn("hang", db, out)
    try:
        await until(
            lambda: os.path.exists(out) and len(Path(out).read_text().split("\n")) > 3,
            what="3 jobs started",
        )
        assert ws.jobs.counts()["active"] == 3
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
    finally:
        victim.kill()

    @ws.task
    async def slow(i: int) -> str:
        return f"done {i}"

    await ws.start()
    for job in [*twice, *never_started]:
        assert await job.wait(timeout=20) == f"done {job.data['i']}"
    with pytest.raises(wiz.JobFailed, match="stalled"):
        await once.wait(timeout=20)
    assert once.status == "failed" and once.fail_reason == "stalled"
    assert [j.attempts_made for j in twice] == [2, 2]
    assert [j.attempts_made for j in never_started] == [1, 1]
    assert any(e["data"].get("reason") == "stalled" for e in twice[0].events())
    assert ws.jobs.counts()["active"] == 0
    await ws.stop()
    ws.close()
