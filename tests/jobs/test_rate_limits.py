"""Rate limits of tasks: at most N starts in any window, shared by every process on the file;
a job over the limit waits (delayed), never fails and uses no attempt for it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs.options import TaskSpec
from wiz_jupyter.jobs.rates import Entry, Rate, opens, room

RATE_WORKER = str(Path(__file__).with_name("_rate_worker.py"))
SLACK = 1e-3  # started_at and the window are the same clock; this is float rounding only


def most_in_any_window(starts: list[float], per: float) -> int:
    """The most starts inside any window of ``per`` seconds (half-open, as the limiter counts)."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - per + SLACK:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def started(ws: wiz.Workspace, task: str) -> list[float]:
    return [r[0] for r in ws.store.read("SELECT started_at FROM jobs WHERE task = ?", (task,))]


async def test_30_jobs_with_rate_10_per_second_start_at_most_10_in_any_second(db_path):
    ws = wiz.Workspace(db_path, concurrency=16, poll_interval=0.05)

    @ws.task(rate=(10, 1.0))
    async def fetch(i: int) -> int:
        return i

    jobs = ws.jobs.add_bulk([("fetch", {"i": i}, {"attempts": 1}) for i in range(30)])
    await ws.run_until_idle(timeout=15)

    assert ws.jobs.counts()["completed"] == 30
    assert [j.result for j in jobs] == list(range(30))
    starts = started(ws, "fetch")
    assert most_in_any_window(starts, 1.0) == 10
    assert max(starts) - min(starts) >= 2.0 - SLACK  # 30 starts need three windows
    # held back jobs waited as delayed, and their attempt was given back: one run each
    made = ws.store.read("SELECT attempts_made, COUNT(*) FROM jobs GROUP BY attempts_made")
    assert [tuple(r) for r in made] == [(1, 30)]
    held = [
        e for j in jobs for e in ws.jobs.events_of(j.id)
        if e["event"] == "job.delayed" and e["data"].get("reason") == "rate"
    ]  # fmt: skip
    assert held, "jobs over the limit should have been delayed"
    assert all(e["data"]["rate"] == "10 per 1 s" for e in held)
    ws.close()


async def test_a_delayed_job_runs_when_the_window_opens_and_other_tasks_do_not_wait(ws):
    @ws.task(rate=(2, 0.6))
    async def limited(i: int) -> None:
        return None

    @ws.task
    async def free(i: int) -> None:
        return None

    ws.jobs.add_bulk([("limited", {"i": i}) for i in range(5)])
    others = ws.jobs.add_bulk([("free", {"i": i}) for i in range(20)])
    await ws.start()
    await asyncio.wait_for(asyncio.gather(*(j.wait() for j in others)), 5)
    assert ws.jobs.counts()["completed"] < 25  # the free jobs did not wait for the window
    await ws.run_until_idle(timeout=10)
    starts = started(ws, "limited")
    assert most_in_any_window(starts, 0.6) == 2
    assert max(starts) - min(starts) >= 1.2 - SLACK
    assert max(started(ws, "free")) < max(starts)  # not held behind the limited ones


async def test_a_job_over_the_limit_is_delayed_to_when_the_window_has_room(ws):
    @ws.task(rate=(1, 30.0))
    async def once(i: int) -> None:
        return None

    first, second = ws.jobs.add_bulk([("once", {"i": 1}), ("once", {"i": 2})])
    await ws.start()
    await first.wait(timeout=5)
    await asyncio.sleep(0.2)
    assert second.status == "delayed"
    assert second.attempts_made == 0 and second.error is None
    t0 = ws.store.read("SELECT started_at FROM jobs WHERE id = ?", (first.id,))[0][0]
    run_at = ws.store.read("SELECT run_at FROM jobs WHERE id = ?", (second.id,))[0][0]
    assert run_at == pytest.approx(t0 + 30.0, abs=0.01)


async def test_two_processes_on_one_file_respect_one_limit(tmp_path):
    db = str(tmp_path / "shared.db")
    limit, per, n = 5, 0.5, 30
    wiz.Workspace(db).close()  # the schema, before both open it
    worker = subprocess.Popen([sys.executable, RATE_WORKER, db, str(limit), str(per)])
    try:
        ws = wiz.Workspace(db, concurrency=16, poll_interval=0.02)

        @ws.task(rate=(limit, per))
        async def tick(i: int) -> int:
            return os.getpid()

        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while not any(p.name.endswith(".ready") for p in tmp_path.iterdir()):
            assert loop.time() < end, "the worker did not start"
            await asyncio.sleep(0.05)
        ws.jobs.add_bulk([("tick", {"i": i}) for i in range(n)])
        await ws.run_until_idle(timeout=30)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
    assert ws.jobs.counts()["completed"] == n
    by_process = Counter(j.result for j in ws.jobs.list())
    assert set(by_process) == {os.getpid(), worker.pid}, by_process  # both started jobs
    starts = started(ws, "tick")
    assert most_in_any_window(starts, per) == limit  # one limit for both, not one each
    assert max(starts) - min(starts) >= (n / limit - 1) * per - SLACK
    made = ws.store.read("SELECT attempts_made, COUNT(*) FROM jobs GROUP BY attempts_made")
    assert [tuple(r) for r in made] == [(1, n)]
    ws.close()


@pytest.mark.parametrize(
    "rate",
    [(0, 1), (-1, 1), (10, 0), (10, -1.0), ("10", 1), (10, "1"), 10, (True, 1), (10,),
     (10, float("inf")), (10, float("nan")), (2.5, 1)],
)  # fmt: skip
def test_a_bad_rate_is_one_line(ws, rate):
    with pytest.raises(wiz.InvalidRate) as e:

        @ws.task(rate=rate)
        def t() -> None: ...

    assert "\n" not in str(e.value) and "rate must be (count >= 1, seconds > 0)" in str(e.value)
    with pytest.raises(wiz.InvalidRate):
        ws.jobs.register(TaskSpec(name="t", fn=print, rate=rate))
    assert "t" not in ws.jobs.tasks
    assert isinstance(e.value, wiz.InvalidJob) and isinstance(e.value, ValueError)


def test_a_task_registered_again_without_a_rate_has_none(ws):
    ws.jobs.register(TaskSpec(name="t", fn=print, rate=[3, 1]))
    assert ws.jobs.tasks["t"].rate == (3, 1.0)
    ws.jobs.register(TaskSpec(name="t", fn=print))
    assert ws.jobs.tasks["t"].rate is None


def test_the_window_reopens_as_its_oldest_takes_leave_it():
    r = Rate(10, 1.0)
    entries = [Entry(100.5, 6, 0), Entry(100.0, 4, 0)]  # in any order
    assert room(entries, r, 100.9) == 0
    assert opens(entries, r, 100.9) == pytest.approx(101.0)  # the first 4 leave
    assert opens(entries, r, 100.9, need=5) == pytest.approx(101.5)  # all 10 must leave
    assert room(entries, r, 101.2) == 4
    tokens = Rate(100, 1.0)
    used = [Entry(10.0, 1, 60), Entry(10.2, 1, 30)]
    assert opens(used, tokens, 10.5, need=10, tokens=True) == 10.5  # fits now
    assert opens(used, tokens, 10.5, need=20, tokens=True) == pytest.approx(11.0)
    assert opens(used, tokens, 10.5, need=500, tokens=True) == pytest.approx(11.2)  # empty
