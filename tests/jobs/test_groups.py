"""Groups: ``ws.jobs.add(..., group=...)`` and ``@ws.task(group_concurrency=n)``: claims
rotate between groups, and no group has more than n active jobs, in any process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.cli import main as wiz_main
from wiz_jupyter.errors import InvalidJob
from wiz_jupyter.jobs import groups

WORKER = str(Path(__file__).with_name("_group_worker.py"))


class Overlap:
    """Records how many jobs of each group run at once, from inside the handlers."""

    def __init__(self) -> None:
        self.now: dict[str, int] = defaultdict(int)
        self.most: dict[str, int] = defaultdict(int)
        self.most_at_once = 0  # of all groups together

    def enter(self, group: str) -> None:
        self.now[group] += 1
        self.most[group] = max(self.most[group], self.now[group])
        self.most_at_once = max(self.most_at_once, sum(self.now.values()))

    def leave(self, group: str) -> None:
        self.now[group] -= 1


async def test_a_small_group_added_after_a_large_one_finishes_long_before_it(db_path):
    ws = wiz.Workspace(db_path, concurrency=2, poll_interval=0.05)
    done: list[tuple[str, int]] = []

    @ws.task(group_concurrency=2)
    async def work(g: str, i: int) -> None:
        done.append((g, i))

    ws.jobs.add_bulk([("work", {"g": "a", "i": i}, {"group": "a"}) for i in range(1000)])
    for i in range(10):  # one by one, after the large group
        ws.jobs.add("work", {"g": "b", "i": i}, group="b")
    await ws.run_until_idle(timeout=60)
    ws.close()
    assert len(done) == 1010
    a_order = [k for k, (g, _) in enumerate(done) if g == "a"]
    b_order = [k for k, (g, _) in enumerate(done) if g == "b"]
    assert b_order[-1] < a_order[49], (b_order, a_order[:50])  # b done before a's 50th
    # each group's own jobs keep their order
    assert [i for g, i in done if g == "a"] == list(range(1000))
    assert [i for g, i in done if g == "b"] == list(range(10))


async def test_group_concurrency_1_never_runs_two_jobs_of_one_group_at_once(ws):
    seen = Overlap()

    @ws.task(group_concurrency=1)
    async def fetch(g: str) -> None:
        seen.enter(g)
        await asyncio.sleep(0.005)
        seen.leave(g)

    ws.jobs.add_bulk(
        [("fetch", {"g": g}, {"group": g}) for _ in range(15) for g in ("alice", "bob", "carol")]
    )
    await ws.run_until_idle(timeout=30)
    assert ws.jobs.counts()["completed"] == 45
    assert dict(seen.most) == {"alice": 1, "bob": 1, "carol": 1}
    assert seen.most_at_once == 3  # the groups did run side by side (concurrency 8)


async def test_group_concurrency_n_allows_n_at_once_per_group(ws):
    seen = Overlap()

    @ws.task(group_concurrency=3)
    async def fetch(g: str) -> None:
        seen.enter(g)
        await asyncio.sleep(0.01)
        seen.leave(g)

    ws.jobs.add_bulk([("fetch", {"g": "a"}, {"group": "a"}) for _ in range(20)])
    await ws.run_until_idle(timeout=30)
    assert seen.most["a"] == 3  # not 8 (the workspace's concurrency), not 1


async def test_groups_of_different_tasks_are_independent(ws):
    seen = Overlap()

    @ws.task(group_concurrency=1)
    async def fetch(i: int) -> None:
        seen.enter("fetch/alice")
        await asyncio.sleep(0.01)
        seen.leave("fetch/alice")

    @ws.task(group_concurrency=1)
    async def parse(i: int) -> None:
        seen.enter("parse/alice")
        await asyncio.sleep(0.01)
        seen.leave("parse/alice")

    ws.jobs.add_bulk(
        [(task, {"i": i}, {"group": "alice"}) for i in range(10) for task in ("fetch", "parse")]
    )
    await ws.run_until_idle(timeout=30)
    assert dict(seen.most) == {"fetch/alice": 1, "parse/alice": 1}
    assert seen.most_at_once == 2  # alice's fetch and alice's parse ran together


async def test_jobs_without_a_group_keep_their_order(db_path):
    ws = wiz.Workspace(db_path, concurrency=1, poll_interval=0.05)
    order: list[int] = []

    @ws.task
    async def plain(i: int) -> None:
        order.append(i)

    @ws.task(group_concurrency=1)
    async def grouped(i: int) -> None:
        pass

    priorities = [0, 5, 0, 9, 5, 0, 1, 9, 0, 2]
    for i, p in enumerate(priorities):
        ws.jobs.add("plain", {"i": i}, priority=p)
    # grouped jobs of another task waiting meanwhile change nothing for these
    ws.jobs.add_bulk([("grouped", {"i": i}, {"group": "g", "priority": -1}) for i in range(50)])
    await ws.run_until_idle(timeout=30)
    ws.close()
    assert order == sorted(range(10), key=lambda i: (-priorities[i], i))


async def test_priority_still_comes_first_then_groups_take_turns(db_path):
    ws = wiz.Workspace(db_path, concurrency=1, poll_interval=0.05)
    order: list[str] = []

    @ws.task
    async def work(name: str) -> None:
        order.append(name)

    ws.jobs.add_bulk([("work", {"name": f"a{i}"}, {"group": "a"}) for i in range(4)])
    ws.jobs.add_bulk([("work", {"name": f"b{i}"}, {"group": "b"}) for i in range(2)])
    ws.jobs.add("work", {"name": "urgent"}, group="a", priority=10)
    await ws.run_until_idle(timeout=30)
    ws.close()
    assert order == ["urgent", "a0", "b0", "a1", "b1", "a2", "a3"]


async def test_a_group_that_comes_later_starts_at_the_current_round(db_path):
    """A group's long history does not put it behind a newcomer: ranks start where the
    claims are, not at 1."""
    ws = wiz.Workspace(db_path, concurrency=1, poll_interval=0.05)
    order: list[str] = []

    @ws.task
    async def work(name: str) -> None:
        order.append(name)

    ws.jobs.add_bulk([("work", {"name": "old"}, {"group": "a"}) for _ in range(300)])
    await ws.run_until_idle(timeout=30)
    order.clear()
    ws.jobs.add_bulk([("work", {"name": f"a{i}"}, {"group": "a"}) for i in range(3)])
    ws.jobs.add_bulk([("work", {"name": f"c{i}"}, {"group": "c"}) for i in range(3)])
    await ws.run_until_idle(timeout=30)
    ws.close()
    assert order == ["a0", "c0", "a1", "c1", "a2", "c2"]


async def test_jobs_without_a_group_take_turns_with_the_groups_of_their_task(db_path):
    ws = wiz.Workspace(db_path, concurrency=1, poll_interval=0.05)
    order: list[str] = []

    @ws.task(group_concurrency=1)
    async def work(name: str) -> None:
        order.append(name)

    ws.jobs.add_bulk([("work", {"name": f"a{i}"}, {"group": "a"}) for i in range(5)])
    ws.jobs.add_bulk([("work", {"name": f"n{i}"}) for i in range(2)])
    await ws.run_until_idle(timeout=30)
    ws.close()
    assert order == ["n0", "a0", "n1", "a1", "a2", "a3", "a4"]


async def test_two_processes_on_one_file_respect_group_concurrency_1(tmp_path):
    db = str(tmp_path / "shared.db")
    out = str(tmp_path / "worker.log")
    n_groups, per_group = 8, 12  # more groups than one process runs at once: both work
    n = n_groups * per_group
    wiz.Workspace(db).close()  # the schema, before both open it
    proc = subprocess.Popen([sys.executable, WORKER, db, out, str(n)])
    lines: list[str] = []
    ws = wiz.Workspace(db, concurrency=4, lease=5.0, poll_interval=0.02)

    @ws.task(group_concurrency=1)
    async def grouped(i: int, g: str) -> int:
        lines.append(f"{g} {i} {time.time():.6f} start")
        await asyncio.sleep(0.01)
        lines.append(f"{g} {i} {time.time():.6f} end")
        return os.getpid()

    try:
        for _ in range(600):
            if os.path.exists(out + ".ready"):
                break
            await asyncio.sleep(0.05)
        await ws.start()
        ws.jobs.add_bulk(
            [
                ("grouped", {"i": i, "g": f"g{k}"}, {"group": f"g{k}"})
                for i in range(per_group)
                for k in range(n_groups)
            ]
        )
        for _ in range(1200):
            if ws.jobs.counts()["completed"] == n:
                break
            await asyncio.sleep(0.05)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        await ws.stop(grace=1)
    assert ws.jobs.counts()["completed"] == n
    pids = {j.result for j in ws.jobs.list()}
    ws.close()
    assert pids == {os.getpid(), proc.pid}  # both processes worked
    runs: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for line in [*lines, *Path(out).read_text().splitlines()]:
        g, _, at, what = line.split()
        runs[g].append((float(at), what))
    for g, marks in runs.items():
        marks.sort()
        # with at most one active job per group, starts and ends alternate in time
        assert [w for _, w in marks] == ["start", "end"] * per_group, g


def test_jobs_keep_their_group_and_lists_filter_by_it(tmp_path, capsys):
    db = tmp_path / "w.db"
    ws = wiz.Workspace(db)
    a = ws.jobs.add("fetch", {"u": 1}, group="alice")
    b = ws.jobs.add("fetch", {"u": 2})
    [c] = ws.jobs.add_bulk([{"task": "fetch", "data": {"u": 3}, "group": "bob"}])
    assert (a.group, b.group, c.group) == ("alice", None, "bob")
    assert ws.jobs.get(a.id).as_dict()["group"] == "alice"
    assert [j.id for j in ws.jobs.list(group="alice")] == [a.id]
    assert "fetch [alice]" in repr(ws.jobs.list())
    assert "fetch [alice]" in ws.jobs.list()._repr_html_()
    ws.close()
    assert wiz_main(["jobs", "--db", str(db), "--group", "bob"]) == 0
    out = capsys.readouterr().out
    assert "fetch [bob]" in out and "alice" not in out


def test_a_schedule_passes_its_group_to_the_jobs_it_creates(db_path):
    clock = wiz.ManualClock("2026-11-24T09:00:00+00:00")
    ws = wiz.Workspace(db_path, clock=clock)
    s = ws.schedules.add("report", {"n": 1}, every=60, group="team-a")
    clock.advance(61)
    ws.scheduler.tick()
    [job] = s.runs()
    assert job.group == "team-a"
    with pytest.raises(InvalidJob, match="group must be a non-empty string"):
        ws.schedules.add("report", {}, every=60, group="", name="bad")
    ws.close()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_group_concurrency_must_be_a_positive_integer(ws, bad):
    with pytest.raises(InvalidJob) as e:

        @ws.task(group_concurrency=bad)
        def f() -> None: ...

    assert str(e.value) == (
        f"group_concurrency must be an integer >= 1 (active jobs per group), not {bad!r}"
    )
    assert "\n" not in str(e.value) and "f" not in ws.jobs.tasks


@pytest.mark.parametrize("bad", ["", 5, ["a"]])
def test_a_group_must_be_a_non_empty_string(ws, bad):
    with pytest.raises(InvalidJob, match="group must be a non-empty string"):
        ws.jobs.add("fetch", {}, group=bad)
    with pytest.raises(InvalidJob, match="group must be a non-empty string"):
        ws.jobs.add_bulk([("fetch", {}, {"group": "ok"}), ("fetch", {}, {"group": bad})])
    assert ws.jobs.counts()["waiting"] == 0  # nothing of the batch was added


def test_claims_with_groups_use_the_groups_index(ws):
    """The claim's queries seek through ``jobs_groups`` (the plan, not a timing)."""
    ws.jobs.add_bulk([("t", {}, {"group": f"g{i % 50}"}) for i in range(2000)])
    c = ws.store.conn

    def plan(sql, params):
        return " | ".join(r[3] for r in c.execute("EXPLAIN QUERY PLAN " + sql, params))

    assert "USING INDEX jobs_groups" in plan(groups._PROBE.format("?"), ["t"])
    heads = plan(groups._HEADS, {"task": "t"})
    assert "SCAN jobs" not in heads and heads.count("USING INDEX jobs_groups") == 3
    assert "USING INDEX jobs_groups (task=? AND group=?)" in plan(groups._NEXT, ("t", "g1", 1))
    assert plan(groups._RANKED, ("t", 100)) == "SEARCH jobs USING INDEX jobs_rank (task=?)"
    assert groups.waiting(c, ["t"]) and not groups.waiting(c, ["other"])


@pytest.mark.parametrize("per_group", [3, 150])  # all read in one scan / past its budget
def test_a_claim_takes_each_groups_next_jobs_up_to_its_cap(ws, per_group):
    ws.jobs.add_bulk(
        [("t", {}, {"group": g}) for _ in range(per_group) for g in ("a", "b", "c", "d")]
    )
    ws.jobs.claim("elsewhere", 1, 60, {"t": None})  # a's first job is active in another process
    first = {g: [j.id for j in ws.jobs.list("waiting", group=g)] for g in "abcd"}
    with ws.store.write() as c:
        ids = groups.pick(c, {"t": None}, 8, {"t": 2})
    b, c, d = first["b"], first["c"], first["d"]
    # turns by rank; a had one running, so one more of a, and two of each other group
    assert ids == [b[0], c[0], d[0], first["a"][0], b[1], c[1], d[1]]
    with ws.store.write() as c:  # the task's own free slots bound it too
        assert len(groups.pick(c, {"t": 3}, 8, {"t": 2})) == 3
