"""Counts by status kept as jobs change (table job_counts), checked against the rows
themselves after every kind of change: adds of every first status, claims, retries,
failures, cancels, put-backs by rate limits and groups, removals by retention, other
processes, and a file migrated with jobs already in it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs.models import STATUSES


def truth(ws: wiz.Workspace) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for status, n in ws.store.read("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
        out[status] = n
    return out


def check(ws: wiz.Workspace) -> dict[str, int]:
    counts = ws.jobs.counts()
    assert counts == truth(ws)
    return counts


async def test_counts_follow_every_kind_of_change(ws):
    calls = {"flaky": 0}

    @ws.task
    async def ok(i: int = 0) -> int:
        return i

    @ws.task(attempts=2, backoff=0.01)
    async def flaky() -> None:
        calls["flaky"] += 1
        raise RuntimeError("no")

    @ws.task
    async def hopeless() -> None:
        raise wiz.Unrecoverable("bad input")

    a = ws.jobs.add("ok", {"i": 1})
    ws.jobs.add_bulk([("ok", {"i": i}) for i in range(20)])
    later = ws.jobs.add("ok", run_at=time.time() + 3600)
    blocked = ws.jobs.add("ok", depends_on=[a.id])
    ws.jobs.add("flaky")
    ws.jobs.add("hopeless")
    doomed = ws.jobs.add("ok", {"i": 99})
    assert check(ws)["delayed"] == 1 and check(ws)["blocked"] == 1
    ws.jobs.cancel(doomed.id)
    ws.jobs.cancel(later.id)
    assert check(ws)["cancelled"] == 2
    await ws.run_until_idle(timeout=20)
    counts = check(ws)
    assert blocked.refresh().status == "completed" and calls["flaky"] == 2
    assert counts["completed"] == 22 and counts["failed"] == 2 and counts["cancelled"] == 2
    ws.jobs.retry(ws.jobs.list(status="failed")[0].id)  # back to waiting, then run again
    check(ws)
    await ws.run_until_idle(timeout=20)
    check(ws)
    ws.jobs.set_retention(completed=True)
    ws.gc()
    counts = check(ws)
    assert counts["completed"] == 0 and sum(counts.values()) == 4


async def test_put_backs_by_groups_and_rates_are_counted(ws):
    @ws.task(group_concurrency=1)
    async def per_user() -> None:
        return None

    @ws.task(rate=(2, 60.0))
    async def rated() -> None:
        return None

    ws.jobs.add_bulk([("per_user", {}, {"group": "alice"}) for _ in range(5)])
    ws.jobs.add_bulk([("rated", {}) for _ in range(5)])
    ws.jobs.claim("me", 10, 30.0, {"per_user": None, "rated": None})
    counts = check(ws)
    # one of alice's (group_concurrency 1) and two rated ones start; the rest wait or
    # are delayed to the rate's next window, none counted twice
    assert counts["active"] == 3 and counts["delayed"] == 3 and counts["waiting"] == 4


async def test_agent_jobs_are_counted(ws):
    helper = ws.agent("helper", model="wiz/offline")
    job = helper.assign("say hello")
    await job.wait(timeout=30)
    assert check(ws)["completed"] == 1


def test_another_process_keeps_the_same_counts(db_path):
    ws = wiz.Workspace(db_path)
    ws.jobs.add_bulk([("other.noop", {}) for _ in range(30)])
    script = textwrap.dedent(
        f"""
        import asyncio, wiz_jupyter as wiz
        ws = wiz.Workspace({str(db_path)!r})

        @ws.task(name="other.noop")
        async def noop() -> None:
            return None

        for _ in range(10):
            ws.jobs.add("other.noop")
        asyncio.run(ws.run_until_idle(timeout=30))
        ws.close()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    counts = check(ws)
    assert counts["completed"] == 40 and counts["waiting"] == 0
    ws.close()


async def test_a_file_with_jobs_gets_its_counts_when_migrated(db_path):
    ws = wiz.Workspace(db_path)

    @ws.task
    async def t() -> None:
        return None

    ws.jobs.add_bulk([("t", {}) for _ in range(7)])
    await ws.run_until_idle(timeout=20)
    ws.jobs.set_retention(completed=2)
    ws.gc()  # five removed, the newest two kept: ids 1-5 gone
    ws.jobs.add_bulk([("t", {}) for _ in range(7)])
    ws.jobs.add("t", run_at=time.time() + 60)
    ws.close()
    # as a file written before job_counts existed: no table, no triggers, migration 11 due
    import sqlite3

    with sqlite3.connect(db_path) as c:
        c.execute("DROP TRIGGER job_counts_removed")
        c.execute("DROP TABLE job_counts")
        c.execute("DELETE FROM wiz_migrations WHERE component = 'jobs' AND version >= 11")
    again = wiz.Workspace(db_path)
    expect = {**dict.fromkeys(STATUSES, 0), "waiting": 7, "delayed": 1, "completed": 2}
    assert check(again) == expect
    again.close()


@pytest.mark.parametrize("walk_from", [2000, 3])
async def test_pages_of_several_statuses_match_a_plain_filter(ws, walk_from, monkeypatch):
    from wiz_jupyter.jobs import queue as queue_module

    monkeypatch.setattr(queue_module, "_WALK_FROM", walk_from)

    @ws.task
    async def ok() -> None:
        return None

    @ws.task(attempts=1)
    async def bad() -> None:
        raise RuntimeError("no")

    ws.jobs.add_bulk([("ok" if i % 3 else "bad", {}) for i in range(40)])
    await ws.run_until_idle(timeout=20)
    ws.jobs.add_bulk([("ok" if i % 2 else "other", {}) for i in range(25)])
    everything = ws.jobs.list()
    for wanted in (["waiting", "failed"], ["completed", "failed", "waiting"], ["active", "failed"]):
        for newest in (True, False):
            for task in (None, "ok"):
                expect = [
                    j.id
                    for j in (everything[::-1] if newest else everything)
                    if j.status in wanted and (task is None or j.task == task)
                ]
                for limit, offset in ((5, 0), (7, 3), (100, 0), (4, 30)):
                    got = ws.jobs.list(
                        wanted, task=task, newest_first=newest, limit=limit, offset=offset
                    )
                    assert [j.id for j in got] == expect[offset : offset + limit]


def test_a_page_of_a_large_status_walks_the_ids_instead_of_sorting_them(ws, monkeypatch):
    from wiz_jupyter.jobs import queue as queue_module

    monkeypatch.setattr(queue_module, "_WALK_FROM", 10)
    ws.jobs.add_bulk([("t", {}) for _ in range(30)])
    ws.jobs.add_bulk([("t", {}, {"run_at": time.time() + 60}) for _ in range(3)])
    seen: list[str] = []
    ws.store.conn.set_trace_callback(seen.append)
    page = ws.jobs.list(["waiting", "delayed"], newest_first=True, limit=5)
    ws.store.conn.set_trace_callback(None)
    assert [j.id for j in page] == [33, 32, 31, 30, 29]
    query = next(q for q in seen if "UNION ALL" in q and "job_counts" not in q)
    plan = " ".join(r[-1] for r in ws.store.read(f"EXPLAIN QUERY PLAN {query}"))
    # 30 waiting (over the threshold): the ids, newest first, no sort; 3 delayed: sorted
    assert query.count("NOT INDEXED") == 1 and "SCAN jobs" in plan, plan


def test_a_text_filter_finds_task_agent_group_or_id_and_stops_at_a_page(ws):
    ws.jobs.add_bulk([("fetch.page", {}, {"group": "Alice"}) for _ in range(30)])
    ws.jobs.add("parse", agent=None)
    ws.jobs.add_bulk([("other", {}) for _ in range(5)])
    page = ws.jobs.list(text="FETCH", newest_first=True, limit=10)
    assert [j.task for j in page] == ["fetch.page"] * 10 and page[0].id == 30
    assert len(ws.jobs.list(text="alice")) == 30  # the group, any case
    assert [j.id for j in ws.jobs.list(text="31")] == [31]  # the id
    assert ws.jobs.list(text="nothing like it") == []


def test_counts_stay_true_through_random_sequences_of_changes(tmp_path):
    """Any order of adds (plain, delayed, with dependencies, keyed twice, in bulk),
    claims, completions, failures with and without retries, cancels, retries, parents
    with children, expired leases and removals: counts() equals the rows."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    op = st.tuples(
        st.sampled_from(
            ["add", "bulk", "delayed", "dep", "key", "child", "claim", "complete", "fail",
             "cancel", "retry", "expire", "gc"]
        ),
        st.integers(0, 30),
    )  # fmt: skip

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(op, min_size=1, max_size=25))
    def run(ops):
        ws = wiz.Workspace(tmp_path / f"r{time.perf_counter_ns()}.db", lease=30.0)
        q = ws.jobs
        held: list[int] = []
        for name, k in ops:
            ids = [j.id for j in q.list()] or [0]
            pick = ids[k % len(ids)]
            if name == "add":
                q.add("t", attempts=1 + k % 2)
            elif name == "bulk":
                q.add_bulk([("t", {"i": i}) for i in range(k % 5 + 1)])
            elif name == "delayed":
                q.add("t", run_at=time.time() + 60)
            elif name == "dep" and pick:
                q.add("t", depends_on=[pick], on_dep_failure="fail" if k % 2 else "ignore")
            elif name == "key":
                q.add("t", key=f"k{k % 3}")
            elif name == "child" and pick and q.get(pick).status in ("waiting", "active"):
                q.add("t", parent=pick)
            elif name == "claim":
                held += [r["id"] for r in q.claim("me", k % 4 + 1, 30.0, {"t": None})]
            elif name == "complete" and held:
                q.complete_many("me", [(held.pop(0), "t", "null")])
            elif name == "fail" and held:
                q.fail("me", held.pop(0), "boom", retryable=bool(k % 2))
            elif name == "cancel" and pick:
                q.cancel(pick)
            elif name == "retry" and pick and q.get(pick).status in ("failed", "cancelled"):
                q.retry(pick)
            elif name == "expire":
                ws.store.conn.execute("UPDATE jobs SET lease_expires = 0 WHERE status = 'active'")
                q.recover_stalled("someone else")
                held.clear()
            elif name == "gc":
                q.set_retention(completed=k % 3, failed=True)
                q.gc()
            check(ws)
        ws.close()

    run()


async def test_a_file_counted_by_triggers_loses_them_and_counts_once(db_path):
    ws = wiz.Workspace(db_path)
    ws.close()
    import sqlite3

    with sqlite3.connect(db_path) as c:  # as migration 11 left a file before migration 12
        c.execute(
            "CREATE TRIGGER job_counts_completed AFTER UPDATE OF status ON jobs "
            "WHEN new.status = 'completed' AND old.status IN ('waiting', 'active') BEGIN "
            "UPDATE job_counts SET n = n + 1 WHERE status = 'completed'; END"
        )
        c.execute("DELETE FROM wiz_migrations WHERE component = 'jobs' AND version = 12")
    again = wiz.Workspace(db_path)

    @again.task
    async def t() -> None:
        return None

    triggers = again.store.read("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    assert [r[0] for r in triggers] == ["job_counts_removed"]
    again.jobs.add_bulk([("t", {}) for _ in range(5)])
    await again.run_until_idle(timeout=20)
    assert check(again)["completed"] == 5  # counted by the queue, not twice
    again.close()


def test_promoting_due_jobs_reads_only_the_due_ones_not_every_delayed_job(ws):
    # a day of jobs planned a second apart, and two due now
    later = time.time() + 3600
    ws.jobs.add_bulk([("t", {}, {"run_at": later + i}) for i in range(2000)])
    due = ws.jobs.add_bulk([("t", {}, {"run_at": time.time() - 1}) for _ in range(2)])
    seen: list[str] = []
    ws.store.conn.set_trace_callback(seen.append)
    nxt = ws.jobs.promote_due()
    ws.store.conn.set_trace_callback(None)
    assert nxt == pytest.approx(later) and [j.status for j in due] == ["waiting"] * 2
    assert ws.jobs.counts()["delayed"] == 2000 and ws.jobs.counts()["waiting"] == 2
    for query in [q for q in seen if "'delayed'" in q]:
        plan = " ".join(r[-1] for r in ws.store.read(f"EXPLAIN QUERY PLAN {query}"))
        assert "jobs_due" in plan and "jobs_queue" not in plan, (query, plan)
