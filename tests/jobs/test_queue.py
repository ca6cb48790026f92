"""Adding jobs and acting on them: options, statuses, errors. Real SQLite files."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time

import pytest

import wiz_jupyter as wiz
from tests.conftest import reach


async def test_add_runs_the_handler_with_data_as_keyword_arguments(ws):
    @ws.task
    async def greet(name: str, punct: str = "!") -> str:
        return f"hello {name}{punct}"

    job = ws.jobs.add("greet", {"name": "ada"})
    assert job.status == "waiting"
    await ws.run_until_idle()
    assert job.status == "completed"
    assert job.result == "hello ada!"
    assert job.attempts_made == 1
    assert job.started_at <= job.finished_at


async def test_higher_priority_runs_sooner_then_oldest_first(db_path):
    ws = wiz.Workspace(db_path, concurrency=1)
    order = []

    @ws.task
    async def t(n: int) -> None:
        order.append(n)

    for n, p in [(1, 0), (2, 5), (3, 0), (4, 5), (5, -1)]:
        ws.jobs.add("t", {"n": n}, priority=p)
    await ws.run_until_idle()
    assert order == [2, 4, 1, 3, 5]


async def test_delay_makes_a_job_delayed_until_its_time(ws):
    ran_at = {}

    @ws.task
    async def later() -> None:
        ran_at["t"] = time.time()

    t0 = time.time()
    job = ws.jobs.add("later", delay=0.3)
    assert job.status == "delayed"
    assert job.run_at == pytest.approx(t0 + 0.3, abs=0.05)
    await ws.run_until_idle(timeout=5)
    assert job.status == "completed"
    assert ran_at["t"] >= job.run_at


async def test_run_at_accepts_a_datetime(ws):
    @ws.task
    async def t() -> int:
        return 1

    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=0.2)
    job = ws.jobs.add("t", run_at=when)
    assert job.status == "delayed"
    assert job.run_at == pytest.approx(when.timestamp())
    await ws.run_until_idle(timeout=5)
    assert job.result == 1


async def test_a_failing_handler_is_retried_with_exponential_backoff_until_attempts_run_out(ws):
    calls = []

    @ws.task
    async def flaky() -> None:
        calls.append(time.time())
        raise ValueError(f"boom {len(calls)}")

    job = ws.jobs.add("flaky", attempts=4, backoff=("exponential", 0.1, {"jitter": 0}))
    await ws.run_until_idle(timeout=10)
    assert job.status == "failed"
    assert job.attempts_made == 4
    assert job.error == "ValueError: boom 4"
    assert job.fail_reason == "error"
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    for gap, expected in zip(gaps, [0.1, 0.2, 0.4]):
        assert expected <= gap < expected + 0.35  # late only by scheduling noise
    history = [e for e in job.events() if e["event"] == "job.delayed"]
    assert [e["data"]["retry_in"] for e in history] == [0.1, 0.2, 0.4]
    assert "Traceback" in job.events()[-1]["data"]["traceback"]
    with pytest.raises(wiz.JobFailed, match="boom 4"):
        await job.wait()


async def test_jitter_shortens_the_backoff_by_up_to_its_share(ws):
    @ws.task
    async def fails() -> None:
        raise RuntimeError("no")

    jobs = [ws.jobs.add("fails", attempts=2, backoff=("fixed", 0.2)) for _ in range(12)]
    await ws.run_until_idle(timeout=10)
    waits = [
        next(e["data"]["retry_in"] for e in j.events() if e["event"] == "job.delayed") for j in jobs
    ]
    assert all(0.1 <= w <= 0.2 for w in waits)
    assert len(set(waits)) > 1  # jitter spreads them


async def test_a_success_after_a_retry_completes(ws):
    calls = []

    @ws.task(attempts=3, backoff=("fixed", 0.01))
    def sometimes() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("flaky network")
        return "ok"

    job = ws.jobs.add("sometimes")  # attempts and backoff from the task's defaults
    assert job.attempts == 3
    await ws.run_until_idle(timeout=5)
    assert (job.status, job.result, job.attempts_made) == ("completed", "ok", 2)
    assert (
        job.error == "ConnectionError: flaky network"
    )  # the last failed attempt's error stays readable


async def test_timeout_fails_an_attempt_that_runs_too_long(ws):
    @ws.task
    async def slow() -> None:
        await asyncio.sleep(10)

    job = ws.jobs.add("slow", timeout=0.1, attempts=2)
    await ws.run_until_idle(timeout=5)
    assert job.status == "failed"
    assert job.fail_reason == "timeout"
    assert job.error == "timed out after 0.1 s"
    assert job.attempts_made == 2


async def test_a_handlers_own_timeout_error_is_an_ordinary_error(ws):
    @ws.task
    async def raises() -> None:
        raise asyncio.TimeoutError("upstream said so")

    job = ws.jobs.add("raises", timeout=5)
    await ws.run_until_idle(timeout=5)
    assert job.fail_reason == "error"


async def test_a_dependency_chain_runs_in_order(ws):
    order = []

    @ws.task
    async def step(n: int) -> int:
        order.append(n)
        return n

    a = ws.jobs.add("step", {"n": 1})
    b = ws.jobs.add("step", {"n": 2}, depends_on=[a])
    c = ws.jobs.add("step", {"n": 3}, depends_on=b)
    d = ws.jobs.add("step", {"n": 4}, depends_on=[a, c], priority=100)
    assert [j.status for j in (a, b, c, d)] == ["waiting", "blocked", "blocked", "blocked"]
    await ws.run_until_idle(timeout=5)
    assert order == [1, 2, 3, 4]
    assert [e["event"] for e in d.events()][:2] == ["job.added", "job.waiting"]


async def test_a_failed_dependency_fails_dependents_or_is_ignored(ws):
    @ws.task
    async def bad() -> None:
        raise RuntimeError("nope")

    @ws.task
    async def good() -> str:
        return "ran"

    root = ws.jobs.add("bad")
    strict = ws.jobs.add("good", depends_on=[root])
    downstream = ws.jobs.add("good", depends_on=[strict])
    lenient = ws.jobs.add("good", depends_on=[root], on_dep_failure="ignore")
    await ws.run_until_idle(timeout=5)
    assert (strict.status, strict.fail_reason, strict.error) == (
        "failed",
        "dependency",
        f"dependency {root.id} failed",
    )
    assert downstream.status == "failed"
    assert (lenient.status, lenient.result) == ("completed", "ran")
    late = ws.jobs.add("good", depends_on=[root])  # added after the failure: fails at once
    assert late.status == "failed"


async def test_retrying_a_failed_dependency_revives_its_dependents(ws):
    fail = {"on": True}

    @ws.task
    async def root() -> None:
        if fail["on"]:
            raise RuntimeError("first time")

    @ws.task
    async def after() -> str:
        return "done"

    r = ws.jobs.add("root")
    a = ws.jobs.add("after", depends_on=[r])
    b = ws.jobs.add("after", depends_on=[a])
    await ws.run_until_idle(timeout=5)
    assert [r.status, a.status, b.status] == ["failed"] * 3
    fail["on"] = False
    assert ws.jobs.retry(r).status == "waiting"
    assert (a.status, b.status) == ("blocked", "blocked")
    await ws.run_until_idle(timeout=5)
    assert [r.status, a.status, b.status] == ["completed"] * 3
    assert r.attempts_made == 1


async def test_a_parent_waits_for_its_children_and_reads_their_results(ws):
    @ws.task
    async def part(n: int) -> int:
        return n * n

    @ws.task
    async def total(job) -> int:
        return sum(job.children_results().values())

    parent = ws.jobs.add("total")
    kids = [ws.jobs.add("part", {"n": n}, parent=parent) for n in (1, 2, 3)]
    assert parent.status == "blocked"
    assert {k.id for k in parent.children()} == {k.id for k in kids}
    await ws.run_until_idle(timeout=5)
    assert parent.result == 14


async def test_a_running_parent_completes_after_the_children_it_adds(ws):
    release = asyncio.Event()

    @ws.task
    async def child(n: int) -> int:
        await release.wait()
        return n

    @ws.task
    async def fan_out(job) -> str:
        for n in range(3):
            job.add_child("child", {"n": n})
        return "spawned"

    parent = ws.jobs.add("fan_out")
    await ws.start()
    await reach(ws, parent, "blocked")
    assert parent.result == "spawned"
    release.set()
    assert await parent.wait(timeout=5) == "spawned"
    assert sorted(parent.children_results().values()) == [0, 1, 2]


async def test_a_failing_child_fails_its_parent_unless_told_not_to(ws):
    @ws.task
    async def kid(ok: bool) -> None:
        if not ok:
            raise RuntimeError("kid failed")

    @ws.task
    async def boss() -> str:
        return "boss ran"

    strict = ws.jobs.add("boss")
    ws.jobs.add("kid", {"ok": False}, parent=strict)
    lenient = ws.jobs.add("boss")
    ws.jobs.add("kid", {"ok": False}, parent=lenient, fail_parent=False)
    await ws.run_until_idle(timeout=5)
    assert strict.status == "failed" and strict.fail_reason == "dependency"
    assert lenient.result == "boss ran"


async def test_children_cannot_be_added_to_a_finished_parent(ws):
    p = ws.jobs.add("x")
    ws.jobs.cancel(p)
    with pytest.raises(wiz.InvalidJob, match="already cancelled"):
        ws.jobs.add("x", parent=p)


async def test_a_dedup_key_returns_the_existing_job(ws):
    a = ws.jobs.add("report", {"day": 1}, key="report-2026-11-24")
    b = ws.jobs.add("report", {"day": 2}, key="report-2026-11-24")
    assert a == b and b.data == {"day": 1}
    bulk = ws.jobs.add_bulk(
        [
            ("report", {}, {"key": "k2"}),
            ("report", {}, {"key": "k2"}),
            ("report", {}, {"key": "report-2026-11-24"}),
        ]
    )
    assert bulk[0] == bulk[1] and bulk[2] == a
    assert ws.jobs.counts()["waiting"] == 2


async def test_add_bulk_in_one_transaction_with_dependencies_between_items(ws):
    order = []

    @ws.task
    async def s(n: int) -> None:
        order.append(n)

    first = ws.jobs.add_bulk([("s", {"n": 0})])[0]
    jobs = ws.jobs.add_bulk(
        [
            {"task": "s", "data": {"n": 1}, "depends_on": [first.id]},
            ("s", {"n": 2}, {"depends_on": [first.id + 1], "priority": 9}),
            ("s", {"n": 3}),
        ]
    )
    assert [j.status for j in jobs] == ["blocked", "blocked", "waiting"]
    await ws.run_until_idle(timeout=5)
    assert order.index(0) < order.index(1) < order.index(2)
    assert ws.jobs.add_bulk([]) == []


async def test_add_bulk_with_a_parent_and_its_children_blocks_the_parent(ws):
    """Issue 19: the parent's row did not exist yet when it was blocked, so it stayed
    waiting and could run before its children."""
    order = []

    @ws.task
    async def s(n: int) -> None:
        order.append(n)

    base = ws.jobs.add("s", {"n": -1}).id
    await ws.run_until_idle(timeout=5)
    parent, *children = ws.jobs.add_bulk(
        [("s", {"n": 0}, {"priority": 9})] + [("s", {"n": i}, {"parent": base + 1}) for i in (1, 2)]
    )
    assert parent.id == base + 1 and [c.parent_id for c in children] == [parent.id] * 2
    assert parent.status == "blocked" and ws.jobs.get(parent.id).status == "blocked"
    assert [e["event"] for e in parent.events()][:2] == ["job.added", "job.blocked"]
    await ws.run_until_idle(timeout=5)
    assert order == [-1, 1, 2, 0] or order == [-1, 2, 1, 0]


async def test_cancel_stops_waiting_blocked_and_running_jobs(ws):
    started = asyncio.Event()

    @ws.task
    async def long() -> None:
        started.set()
        await asyncio.sleep(30)

    running = ws.jobs.add("long")
    waiting = ws.jobs.add("other")
    blocked = ws.jobs.add("other", depends_on=[running])
    await ws.start()
    await asyncio.wait_for(started.wait(), 5)
    assert running.status == "active"
    assert ws.jobs.cancel(running) is True
    assert ws.jobs.cancel(waiting.id) is True
    assert ws.jobs.cancel(waiting.id) is False  # already finished
    await ws.run_until_idle(timeout=5)
    assert (running.status, waiting.status) == ("cancelled", "cancelled")
    assert (blocked.status, blocked.fail_reason) == ("failed", "dependency")
    assert ws.runtime.active_ids == []
    with pytest.raises(wiz.JobFailed, match="cancelled"):
        await running.wait()


async def test_cancelling_a_parent_cancels_its_unfinished_children(ws):
    p = ws.jobs.add("p")
    kids = [ws.jobs.add("k", parent=p) for _ in range(2)]
    ws.jobs.cancel(p)
    assert [k.status for k in kids] == ["cancelled", "cancelled"]


async def test_a_sync_handler_sees_cancellation(ws):
    import threading

    seen = threading.Event()

    @ws.task
    def loop_forever(job) -> None:
        while True:
            seen.set()
            job.check_cancelled()
            time.sleep(0.01)

    job = ws.jobs.add("loop_forever")
    await ws.start()
    await asyncio.to_thread(seen.wait, 5)
    job.cancel()
    await ws.run_until_idle(timeout=5)
    assert job.status == "cancelled"


async def test_retry_runs_a_failed_job_again_with_fresh_attempts(ws):
    state = {"fail": True}

    @ws.task
    async def t() -> str:
        if state["fail"]:
            raise RuntimeError("x")
        return "second time lucky"

    job = ws.jobs.add("t", attempts=2)
    await ws.run_until_idle(timeout=5)
    assert (job.status, job.attempts_made) == ("failed", 2)
    state["fail"] = False
    job.retry()
    assert (job.status, job.attempts_made, job.error) == ("waiting", 0, None)
    await ws.run_until_idle(timeout=5)
    assert job.result == "second time lucky"
    with pytest.raises(wiz.InvalidJob, match="only failed or cancelled"):
        job.retry()


async def test_set_priority_reorders_waiting_jobs(db_path):
    ws = wiz.Workspace(db_path, concurrency=1)
    order = []

    @ws.task
    async def t(n: int) -> None:
        order.append(n)

    jobs = [ws.jobs.add("t", {"n": n}) for n in range(3)]
    assert ws.jobs.set_priority(jobs[2], 10).priority == 10
    await ws.run_until_idle()
    assert order == [2, 0, 1]
    with pytest.raises(wiz.InvalidJob, match="no longer matters"):
        jobs[0].set_priority(3)


async def test_pause_stops_new_starts_until_resume(ws):
    @ws.task
    async def t() -> int:
        return 1

    ws.jobs.pause()
    assert ws.jobs.paused
    job = ws.jobs.add("t")
    await ws.run_until_idle(timeout=5)  # a paused queue counts as idle
    assert job.status == "waiting"
    ws.jobs.resume()
    await ws.run_until_idle(timeout=5)
    assert job.status == "completed"


async def test_pause_is_shared_by_every_process_on_the_database(ws, db_path):
    other = wiz.Workspace(db_path)
    other.jobs.pause()
    assert ws.jobs.paused
    other.jobs.resume()
    assert not ws.jobs.paused
    other.close()


async def test_progress_and_log_lines_from_a_sync_handler_thread(ws):
    import threading

    threads = []

    @ws.task
    def crunch(n: int) -> int:
        job = wiz.current_job()
        threads.append(threading.current_thread().name)
        for i in range(n):
            job.progress(100 * (i + 1) // n)
        job.log("almost there")
        job.progress({"done": n, "of": n})
        return n

    got = []
    ws.events.on("job.progress", lambda e: got.append(e.data["progress"]))
    job = ws.jobs.add("crunch", {"n": 4})
    await ws.run_until_idle(timeout=5)
    assert threads[0].startswith("wiz-job")
    assert got == [25, 50, 75, 100, {"done": 4, "of": 4}]
    assert job.progress == {"done": 4, "of": 4}
    assert job.logs() == ["almost there"]


async def test_counts_get_and_list_with_filters(ws):
    ws.jobs.add("a")
    ws.jobs.add("a", delay=60)
    b = ws.jobs.add("b", agent="analyst")
    ws.jobs.cancel(b)
    counts = ws.jobs.counts()
    assert counts == {
        "waiting": 1,
        "delayed": 1,
        "blocked": 0,
        "active": 0,
        "awaiting_input": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }
    assert [j.task for j in ws.jobs.list(task="a")] == ["a", "a"]
    assert ws.jobs.list(agent="analyst") == [b]
    assert [j.status for j in ws.jobs.list(status=["delayed", "cancelled"])] == [
        "delayed",
        "cancelled",
    ]
    assert ws.jobs.list(newest_first=True, limit=1) == [b]
    assert len(ws.jobs.list(limit=2, offset=1)) == 2
    assert ws.jobs.get(b.id).status == "cancelled"
    with pytest.raises(wiz.JobNotFound, match="no job 999"):
        ws.jobs.get(999)
    with pytest.raises(wiz.InvalidJob, match="unknown status"):
        ws.jobs.list(status="done")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": ""}, "non-empty name"),
        ({"data": [1, 2]}, "must be a dict"),
        ({"data": {"f": object()}}, "JSON-serialisable"),
        ({"priority": 1.5}, "priority must be an integer"),
        ({"attempts": 0}, "attempts must be an integer >= 1"),
        ({"backoff": ("linear", 1)}, "'fixed' or 'exponential'"),
        ({"backoff": "soon"}, "backoff must be"),
        ({"timeout": -1}, "timeout must be a positive"),
        ({"delay": -5}, "delay must be"),
        ({"run_at": "tomorrow"}, "run_at must be"),
        ({"depends_on": [12345]}, "dependency 12345 does not exist"),
        ({"depends_on": ["x"]}, "depends_on must be a job"),
        ({"parent": 777}, "parent 777 does not exist"),
        ({"on_dep_failure": "panic"}, "on_dep_failure"),
    ],
)
async def test_bad_arguments_give_a_clear_error_and_add_nothing(ws, kwargs, message):
    kwargs = {"task": "t", **kwargs}
    with pytest.raises(wiz.InvalidJob, match=message):
        ws.jobs.add(kwargs.pop("task"), **kwargs)
    assert sum(ws.jobs.counts().values()) == 0


async def test_a_result_that_is_not_json_fails_clearly_without_retry(ws):
    @ws.task
    async def weird() -> object:
        return object()

    job = ws.jobs.add("weird", attempts=3)
    await ws.run_until_idle(timeout=5)
    assert job.status == "failed" and job.attempts_made == 1
    assert "not JSON-serialisable" in job.error


async def test_common_notebook_values_are_stored_as_json(ws):
    import dataclasses

    @dataclasses.dataclass
    class Point:
        x: int

    @ws.task
    async def values() -> dict:
        return {"when": dt.date(2026, 11, 24), "tags": {"a"}, "p": Point(1)}

    job = ws.jobs.add("values")
    await ws.run_until_idle(timeout=5)
    assert job.result == {"when": "2026-11-24", "tags": ["a"], "p": {"x": 1}}


async def test_wait_times_out_without_touching_the_job(ws):
    job = ws.jobs.add("nobody-handles-this")
    with pytest.raises(TimeoutError, match="still waiting"):
        await job.wait(timeout=0.1)
    assert job.status == "waiting"


async def test_run_at_takes_what_at_takes_and_refuses_the_rest(ws):
    """Issue 19: run_at=True was stored as 1.0, and ISO strings (which at= takes) failed."""
    later = ws.jobs.add("t", run_at="2099-01-01T00:00:00+00:00")
    assert later.status == "delayed" and later.run_at == 4070908800.0
    for bad in [True, False, "tomorrow", float("nan"), float("inf"), [1]]:
        with pytest.raises(wiz.InvalidJob, match="run_at must be"):
            ws.jobs.add("t", run_at=bad)
