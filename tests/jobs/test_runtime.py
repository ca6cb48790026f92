"""The runtime on the running loop: wake-ups, concurrency, events, leases, stopping."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import wiz_jupyter as wiz
from tests.conftest import reach


async def test_an_added_job_wakes_the_runtime_without_polling(db_path):
    ws = wiz.Workspace(db_path, poll_interval=30)  # only a wake-up can start it in time
    done = asyncio.Event()

    @ws.task
    async def t() -> None:
        done.set()

    await ws.start()
    await asyncio.sleep(0.05)
    ws.jobs.add("t")
    await asyncio.wait_for(done.wait(), 5)
    delayed = ws.jobs.add("t", delay=0.2)  # the timer for the next delayed job wakes it too
    await asyncio.wait_for(delayed.wait(), 5)
    await ws.stop()


async def test_a_job_added_from_a_handler_thread_wakes_the_runtime(db_path):
    ws = wiz.Workspace(db_path, poll_interval=30)

    @ws.task
    def spawn() -> None:
        ws.jobs.add("leaf")

    @ws.task
    async def leaf() -> str:
        return "leaf"

    ws.jobs.add("spawn")
    await ws.run_until_idle(timeout=5)
    assert [j.status for j in ws.jobs.list()] == ["completed", "completed"]


async def test_global_concurrency_bounds_running_jobs(db_path):
    ws = wiz.Workspace(db_path, concurrency=3)
    running, peak = 0, 0

    @ws.task
    async def t() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    ws.jobs.add_bulk([("t", {})] * 20)
    await ws.run_until_idle(timeout=10)
    assert peak == 3


async def test_per_task_concurrency_leaves_room_for_other_tasks(db_path):
    ws = wiz.Workspace(db_path, concurrency=6)
    running = {"gpu": 0, "cpu": 0}
    peak = {"gpu": 0, "cpu": 0}

    async def body(kind):
        running[kind] += 1
        peak[kind] = max(peak[kind], running[kind])
        await asyncio.sleep(0.02)
        running[kind] -= 1

    @ws.task(concurrency=1)
    async def gpu() -> None:
        await body("gpu")

    @ws.task
    async def cpu() -> None:
        await body("cpu")

    ws.jobs.add_bulk([("gpu", {}, {"priority": 5})] * 5 + [("cpu", {})] * 10)
    await ws.run_until_idle(timeout=10)
    assert peak["gpu"] == 1
    assert peak["cpu"] == 5


async def test_claims_never_read_the_backlog_of_a_task_this_process_does_not_run(db_path):
    ws = wiz.Workspace(db_path, concurrency=4)
    order = []

    @ws.task
    async def mine(i: int) -> None:
        order.append(i)

    # a backlog for a worker elsewhere, at a higher priority and added first
    ws.jobs.add_bulk([("elsewhere", {}, {"priority": 9}) for _ in range(3000)])
    ws.jobs.add_bulk([("mine", {"i": i}, {"priority": i % 3}) for i in range(12)])
    seen: list[str] = []
    ws.store.conn.set_trace_callback(seen.append)
    await ws.run_until_idle(timeout=20)
    ws.store.conn.set_trace_callback(None)
    assert sorted(order) == list(range(12)) and order[:4] == [2, 5, 8, 11]  # priority first
    asked = [  # the claims and the idle checks
        q for q in seen if "SET status = 'active'" in q or "status IN ('waiting', 'delayed')" in q
    ]
    assert asked, seen
    for query in asked:  # every claim and idle check seeks its own tasks' jobs
        plan = " | ".join(r[-1] for r in ws.store.read(f"EXPLAIN QUERY PLAN {query}"))
        assert "SCAN jobs" not in plan and "jobs_queue (status=? AND task=?)" in plan, (query, plan)
    ws.close()


async def test_sync_handlers_run_in_threads_and_the_loop_stays_free(ws):
    ticks = 0

    @ws.task
    def blocking() -> str:
        time.sleep(0.3)
        return threading.current_thread().name

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    job = ws.jobs.add("blocking")
    await ws.run_until_idle(timeout=5)
    t.cancel()
    assert job.result.startswith("wiz-job")
    assert ticks >= 10  # the loop kept running while the handler slept


async def test_events_reach_sync_and_async_subscribers_and_the_audit_table(ws):
    seen_sync, seen_async = [], []

    def on_any(event: wiz.Event) -> None:
        seen_sync.append((event.name, event.job_id))

    async def on_done(event: wiz.Event) -> None:
        await asyncio.sleep(0)
        seen_async.append(event.job_id)

    unsubscribe = ws.events.on("job.*", on_any)
    ws.events.on("job.completed", on_done)
    ws.events.on("job.completed", lambda e: 1 / 0)  # a broken callback harms nobody

    @ws.task
    async def t() -> None:
        pass

    job = ws.jobs.add("t")
    await ws.run_until_idle(timeout=5)
    await asyncio.sleep(0.01)
    names = [n for n, j in seen_sync if j == job.id]
    assert names == ["job.added", "job.active", "job.completed"]
    assert seen_async == [job.id]
    assert [e["event"] for e in job.events()] == names
    unsubscribe()
    ws.jobs.add("t")
    await ws.run_until_idle(timeout=5)
    assert len(seen_sync) == 3


async def test_the_job_parameter_and_current_job(ws):
    seen = {}

    @ws.task
    async def t(x: int, job: wiz.JobContext) -> None:
        seen["same"] = wiz.current_job() is job
        seen["attempt"] = (job.attempt, job.attempts, job.data)

    ws.jobs.add("t", {"x": 1}, attempts=2)
    await ws.run_until_idle(timeout=5)
    assert seen == {"same": True, "attempt": (1, 2, {"x": 1})}
    assert wiz.current_job() is None


async def test_stop_lets_running_jobs_finish_within_grace(ws):
    @ws.task
    async def short() -> str:
        await asyncio.sleep(0.1)
        return "finished"

    job = ws.jobs.add("short")
    await ws.start()
    await reach(ws, job, "active")
    await ws.stop(grace=5)
    assert job.status == "completed"


async def test_stop_releases_jobs_that_outlive_the_grace(ws):
    @ws.task
    async def endless() -> None:
        await asyncio.sleep(60)

    job = ws.jobs.add("endless", attempts=1)
    await ws.start()
    await reach(ws, job, "active")
    await ws.stop(grace=0.1)
    assert job.status == "waiting"
    assert job.attempts_made == 0  # a released attempt does not count
    assert job.events()[-1]["data"]["reason"] == "released"


async def test_a_renewed_lease_keeps_a_long_job_from_being_taken_over(db_path):
    owner = wiz.Workspace(db_path, lease=0.4)
    rival = wiz.Workspace(db_path, lease=0.4, poll_interval=0.05)
    runs = []

    @owner.task
    async def long() -> str:
        runs.append("owner")
        await asyncio.sleep(1.5)  # well past the lease
        return "owner"

    @rival.task(name="long")
    async def rival_long() -> str:
        runs.append("rival")
        return "rival"

    job = owner.jobs.add("long")
    await owner.start()
    await reach(owner, job, "active")
    await rival.start()
    assert await job.wait(timeout=10) == "owner"
    assert runs == ["owner"]
    await rival.stop()
    await owner.stop()


async def test_a_dead_workers_jobs_are_recovered_by_another(db_path):
    # The same store, but a runtime that stops renewing (as a killed process would).
    dead = wiz.Workspace(db_path, lease=0.3)
    alive = wiz.Workspace(db_path, lease=0.3, poll_interval=0.05)
    retried = dead.jobs.add("work", attempts=2)
    exhausted = dead.jobs.add("work", attempts=1)
    claimed = dead.jobs.claim(dead.runtime.owner, 5, 0.3, {"work": None})
    assert len(claimed) == 2

    @alive.task
    async def work() -> str:
        return "recovered"

    await alive.start()
    assert await retried.wait(timeout=5) == "recovered"
    with pytest.raises(wiz.JobFailed, match="stalled"):
        await exhausted.wait(timeout=5)
    assert exhausted.fail_reason == "stalled"
    assert retried.attempts_made == 2
    await alive.stop()


async def test_cancel_from_another_process_stops_the_running_job(db_path):
    ws = wiz.Workspace(db_path, lease=0.3)
    started = asyncio.Event()
    stopped = asyncio.Event()

    @ws.task
    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            stopped.set()

    job = ws.jobs.add("long")
    await ws.start()
    await asyncio.wait_for(started.wait(), 5)
    other = wiz.Workspace(db_path)
    other.jobs.cancel(job.id)  # only the database tells the owner; its lease renewal notices
    await asyncio.wait_for(stopped.wait(), 5)
    assert job.status == "cancelled"
    await ws.stop()


async def test_run_until_idle_gives_up_after_its_timeout(ws):
    @ws.task
    async def slow() -> None:
        await asyncio.sleep(5)

    ws.jobs.add("slow")
    with pytest.raises(TimeoutError, match="still busy"):
        await ws.run_until_idle(timeout=0.2)


async def test_task_registration_checks_its_options(ws):
    with pytest.raises(TypeError, match="unknown task option"):
        ws.task(lambda: None, retries=3)
    with pytest.raises(wiz.InvalidJob):
        ws.task(lambda: None, name="x", backoff=("bogus", 1))
    with pytest.raises(ValueError, match="executor"):
        ws.task(lambda: None, name="y", executor="gpu")


async def test_the_default_workspace_is_one_per_process(tmp_path, monkeypatch):
    import sys

    mod = sys.modules["wiz_jupyter.workspace"]  # the package's `workspace` is the function
    monkeypatch.setenv("WIZ_HOME", str(tmp_path))
    monkeypatch.setattr(mod, "_default", None)
    assert wiz.workspace() is wiz.workspace()
    assert wiz.workspace().path == str(tmp_path / "wiz.db")
    wiz.workspace().close()


async def test_a_task_registered_while_running_starts_its_waiting_jobs(db_path):
    ws = wiz.Workspace(db_path, poll_interval=0.05)

    @ws.task
    async def early() -> None:
        pass

    await ws.start()
    try:
        job = ws.jobs.add("late")
        await asyncio.sleep(0.3)  # the runtime looked: nothing it can run, the file unchanged since

        @ws.task
        async def late() -> str:
            return "ran"

        assert await job.wait(timeout=5) == "ran"
    finally:
        await ws.stop()
