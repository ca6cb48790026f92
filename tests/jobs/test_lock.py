"""Issue 19, items 3 and 4: another process holding the database's write lock, or a full
disk, never freezes the kernel's loop and never loses a job's outcome.

A second process takes ``BEGIN EXCLUSIVE`` and holds it while jobs finish here; the loop's
longest stall is measured by a ticker task, and every completion and failure must be in
the database once the lock is gone, with its real result or error (not "stalled").
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.errors import WorkspaceBusy, WorkspaceFull
from wiz_jupyter.jobs.store import Store
from wiz_jupyter.testing.lock import hold_write_lock


class StallMeter:
    """The longest gap between the wake-ups of a task that sleeps 5 ms at a time."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.005)
            last = now

    def __enter__(self) -> StallMeter:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.timeout(120)
async def test_a_held_write_lock_neither_freezes_the_loop_nor_loses_outcomes(db_path):
    ws = wiz.Workspace(db_path, lease=6.0, poll_interval=0.05)
    gate = asyncio.Event()

    @ws.task
    async def ok(n: int) -> int:
        await gate.wait()
        return n * 10

    @ws.task
    async def bad(n: int) -> None:
        await gate.wait()
        raise ValueError(f"bad {n}")

    @ws.task(timeout=0.5)
    async def slow() -> None:
        await asyncio.sleep(30)

    jobs = [ws.jobs.add("ok", {"n": i}) for i in range(5)] + [
        ws.jobs.add("bad", {"n": i}) for i in range(3)
    ]
    await ws.start()
    while ws.jobs.counts().get("active", 0) < len(jobs):
        await asyncio.sleep(0.01)
    holder = hold_write_lock(db_path, 4.0)
    try:
        with StallMeter() as meter:
            late = None
            gate.set()  # every job finishes while the file is locked
            await asyncio.sleep(0.3)
            # a synchronous call from a cell waits a bounded time, then one line
            t0 = time.monotonic()
            ws.store.busy_timeout = 0.3
            with pytest.raises(WorkspaceBusy, match="is locked by another process"):
                late = ws.jobs.add("slow")
            waited = time.monotonic() - t0
            ws.store.busy_timeout = 10.0
            await asyncio.sleep(1.0)
            stall_during = meter.worst
            assert all(ws.jobs.get(j.id).status == "active" for j in jobs)  # nothing written yet
        assert late is None and 0.25 <= waited < 2.0, waited
        assert stall_during < 1.0, f"the loop stalled {stall_during:.3f} s"  # it was 8-10 s
        await asyncio.to_thread(holder.wait, 30)
        results = await asyncio.gather(*(j.wait(timeout=20) for j in jobs), return_exceptions=True)
    finally:
        holder.kill()
        await ws.stop(grace=1)
        ws.close()
    assert results[:5] == [0, 10, 20, 30, 40]
    for j, r in zip(jobs[5:], results[5:]):
        assert isinstance(r, wiz.JobFailed) and f"ValueError: bad {j.data['n']}" in r.error
    check = Store(db_path)
    rows = check.read("SELECT status, fail_reason FROM jobs ORDER BY id")
    check.close()
    assert [tuple(r) for r in rows] == [("completed", None)] * 5 + [("failed", "error")] * 3


@pytest.mark.timeout(60)
async def test_a_full_disk_keeps_outcomes_until_they_can_be_written(db_path, monkeypatch):
    """A full disk (injected: SQLite answers SQLITE_FULL to completions and failures for a
    while) keeps every outcome in memory, renews the leases, and writes them later."""
    ws = wiz.Workspace(db_path, lease=2.0, poll_interval=0.05)

    @ws.task
    async def ok(n: int) -> int:
        return n

    @ws.task
    async def bad() -> None:
        raise RuntimeError("broken")

    full = True
    q = ws.jobs
    real_complete, real_fail = q.complete_many, q.fail

    def complete_many(*args, **kwargs):
        if full:
            raise WorkspaceFull("no space left for the test (0.0 MiB free); nothing was written")
        return real_complete(*args, **kwargs)

    def fail(*args, **kwargs):
        if full:
            raise sqlite3.OperationalError("database or disk is full")
        return real_fail(*args, **kwargs)

    monkeypatch.setattr(q, "complete_many", complete_many)
    monkeypatch.setattr(q, "fail", fail)
    jobs = [ws.jobs.add("ok", {"n": i}) for i in range(3)] + [ws.jobs.add("bad")]
    await ws.start()
    try:
        await asyncio.sleep(3.0)  # longer than the lease: renewal keeps them ours
        assert [ws.jobs.get(j.id).status for j in jobs] == ["active"] * 4
        full = False
        results = await asyncio.gather(*(j.wait(timeout=10) for j in jobs), return_exceptions=True)
    finally:
        await ws.stop(grace=1)
        ws.close()
    assert results[:3] == [0, 1, 2]
    assert isinstance(results[3], wiz.JobFailed) and "RuntimeError: broken" in results[3].error


def test_a_synchronous_write_on_a_full_disk_is_one_line(db_path, monkeypatch):
    store = Store(db_path)
    real = store.conn

    class Full:
        @property
        def in_transaction(self):
            return real.in_transaction

        def execute(self, sql, *args):
            if sql.startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(store, "conn", Full())
    with pytest.raises(WorkspaceFull) as err:
        with store.write() as c:
            c.execute("INSERT INTO jobs (task, status, created_at) VALUES ('t', 'waiting', 0)")
    assert str(db_path) in str(err.value) and "MiB free" in str(err.value)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert store.read("SELECT COUNT(*) FROM jobs")[0][0] == 0  # rolled back: nothing half-written
    store.close()
