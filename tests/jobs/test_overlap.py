"""Overlap policies (skip, buffer_one, allow) and backfill of time schedules (issue 21, item 7)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs import store as store_module
from wiz_jupyter.jobs.models import loads
from wiz_jupyter.server.backend import schedule_view

UTC = dt.timezone.utc
WORKER = str(Path(__file__).with_name("_overlap_worker.py"))


@pytest.fixture
def clock():
    return wiz.ManualClock("2026-11-24T09:00:00+00:00")


@pytest.fixture
async def cws(db_path, clock):
    """A workspace whose schedules follow the manual clock; `tick` jobs do nothing."""
    w = wiz.Workspace(db_path, clock=clock, poll_interval=0.05)

    @w.task
    def tick(n: int = 0) -> int:
        return n

    yield w
    await w.stop(grace=1)
    w.close()


def step(ws, clock, seconds):
    """Move the clock on and let the scheduler make one pass."""
    clock.advance(seconds)
    ws.scheduler.tick()


def events(ws, name):
    return [
        (r[0], loads(r[1]))
        for r in ws.store.read(
            "SELECT job_id, payload FROM job_events WHERE event = ? ORDER BY id", (name,)
        )
    ]


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


# -- the policies ----------------------------------------------------------------------------------


async def test_a_new_schedule_skips_by_default_and_records_each_skip(cws, clock):
    s = cws.schedules.add("tick", {"n": 1}, every=60)
    assert s.overlap == "skip" and s.skip_count == 0 and s.last_skipped is None
    seen = []
    off = cws.events.on("schedule.skipped", seen.append)
    step(cws, clock, 60)
    [first] = s.runs()
    assert first.status == "waiting"  # nobody works it yet: it is still going
    step(cws, clock, 60)
    step(cws, clock, 60)
    off()
    fresh = cws.schedules.get(s.id)
    assert [j.id for j in fresh.runs()] == [first.id]
    assert fresh.skip_count == 2 and fresh.last_skipped is not None
    assert fresh.next_run == s.created_at + 240  # skipping moves the trigger on
    # the board's history: each skip is an event on the run that held it back
    assert [(e.job_id, e.data["schedule"], e.data["overlap"]) for e in seen] == [
        (first.id, s.name, "skip")
    ] * 2
    assert [p["reason"] for _, p in events(cws, "schedule.skipped")] == ["every", "every"]
    assert "overlap skip (skipped 2)" in repr(fresh)
    await cws.run_until_idle(timeout=10)  # the run ends: the next occasion starts one
    step(cws, clock, 60)
    assert len(fresh.runs()) == 2 and cws.schedules.get(s.id).skip_count == 2


async def test_a_slow_run_is_never_overlapped_by_the_next_occasion(db_path):
    ws = wiz.Workspace(db_path, poll_interval=0.02)

    @ws.task
    async def slow() -> None:
        await asyncio.sleep(0.35)

    s = ws.schedules.add("slow", every=0.1)
    await ws.start()
    try:
        await asyncio.sleep(1.6)
    finally:
        await ws.stop(grace=5)
    runs = [ws.jobs.get(j.id) for j in s.runs()]
    assert len(runs) >= 2, runs
    for before, after in itertools.pairwise(runs):
        assert after.created_at >= before.finished_at  # made only once the last one ended
    fresh = ws.schedules.get(s.id)
    assert fresh.skip_count >= 2 and fresh.last_skipped > runs[0].created_at
    ws.close()


async def test_buffer_one_starts_exactly_one_kept_occasion_when_the_run_ends(cws, clock):
    s = cws.schedules.add("tick", every=60, overlap="buffer_one")
    step(cws, clock, 60)
    [first] = s.runs()
    step(cws, clock, 60)  # kept
    step(cws, clock, 60)  # one is kept already: dropped
    fresh = cws.schedules.get(s.id)
    assert fresh.pending is not None and fresh.skip_count == 1
    assert [j for j, _ in events(cws, "schedule.buffered")] == [first.id]
    assert len(s.runs()) == 1
    await cws.run_until_idle(timeout=10)
    cws.scheduler.tick()  # sees the run end: starts the kept occasion
    runs = s.runs()
    assert len(runs) == 2 and runs[1].status == "waiting"
    reasons = cws.store.read(
        "SELECT reason FROM schedule_runs WHERE schedule_id = ? ORDER BY job_id", (s.id,)
    )
    assert [r[0] for r in reasons] == ["every", "buffered"]
    assert cws.schedules.get(s.id).pending is None
    cws.scheduler.tick()
    await cws.run_until_idle(timeout=10)
    cws.scheduler.tick()
    assert len(s.runs()) == 2  # exactly one kept occasion ran after


async def test_allow_starts_every_occasion_as_before(cws, clock):
    s = cws.schedules.add("tick", every=60, overlap="allow")
    for _ in range(3):
        step(cws, clock, 60)
    assert [j.status for j in s.runs()] == ["waiting"] * 3
    assert cws.schedules.get(s.id).skip_count == 0


def test_adding_again_keeps_the_policy_unless_one_is_given(cws):
    s = cws.schedules.add("tick", every=60, overlap="buffer_one")
    assert cws.schedules.add("tick", every=60).overlap == "buffer_one"  # a cell re-run
    assert cws.schedules.add("tick", every=60, overlap="allow").overlap == "allow"
    assert cws.schedules.get(s.id).overlap == "allow"


async def test_skip_holds_for_every_trigger_kind_and_a_manual_fire_is_not_held(cws):
    s = cws.schedules.add("tick", webhook="deploy")
    [job] = cws.schedules.fire_webhook("deploy", {"n": 1})
    assert cws.schedules.fire_webhook("deploy", {"n": 2}) == []  # the first is still waiting
    assert cws.schedules.get(s.id).skip_count == 1
    manual = cws.schedules.fire(s)  # asked for by a person: runs
    assert [j.id for j in s.runs()] == [job.id, manual.id]


def test_schedules_made_before_the_policies_keep_allow(db_path, clock, monkeypatch):
    # a database as the release before this one left it (jobs schema v4), with a schedule
    monkeypatch.setattr(store_module, "JOBS_MIGRATIONS", store_module.JOBS_MIGRATIONS[:4])
    old = store_module.Store(db_path)
    with old.write() as c:
        c.execute(
            "INSERT INTO schedules (name, trigger, template, status, next_run, run_count, "
            "fail_count, created_at) VALUES ('legacy', ?, ?, 'active', ?, 0, 0, ?)",
            (
                '{"kind": "every", "seconds": 60.0, "start": null}',
                '{"task": "tick", "data": {}, "options": {}}',
                clock.now() + 60,
                clock.now(),
            ),
        )
    old.close()
    monkeypatch.undo()
    ws = wiz.Workspace(db_path, clock=clock)  # migrates to v5
    legacy = ws.schedules.get("legacy")
    assert legacy.overlap == "allow" and legacy.skip_count == 0
    step(ws, clock, 60)
    step(ws, clock, 60)
    assert [j.status for j in legacy.runs()] == ["waiting", "waiting"]  # unchanged behaviour
    assert ws.schedules.add("tick", every=30).overlap == "skip"  # a new one skips
    ws.close()


# -- backfill --------------------------------------------------------------------------------------


async def test_backfill_makes_each_occasion_of_the_range_once_with_its_time(cws, clock):
    s = cws.schedules.add("tick", {"n": 5}, every=3600, start="2026-11-24T10:00:00+00:00")
    jobs = cws.schedules.backfill(s, "2026-11-24T05:00:00+00:00", "2026-11-24T09:00:00+00:00")
    assert [j.data for j in jobs] == [
        {"n": 5, "scheduled_for": f"2026-11-24T0{h}:00:00+00:00"} for h in (5, 6, 7, 8)
    ]  # [start, end): 09:00 is not in it
    again = cws.schedules.backfill(s, "2026-11-24T04:00:00+00:00", "2026-11-24T09:00:00+00:00")
    assert [j.data["scheduled_for"] for j in again] == ["2026-11-24T04:00:00+00:00"]
    assert cws.schedules.backfill(s, "2026-11-24T04:00:00+00:00", "2026-11-24T09:00:00") == []
    assert len(s.runs()) == 5 and cws.schedules.get(s.id).run_count == 5
    reasons = {r[0] for r in cws.store.read("SELECT reason FROM schedule_runs")}
    assert reasons == {"backfill"}
    await cws.run_until_idle(timeout=10)  # a handler that does not take scheduled_for runs
    assert [j.result for j in s.runs()] == [5] * 5


async def test_a_handler_that_takes_scheduled_for_gets_it(cws):
    @cws.task
    def stamp(scheduled_for: str, job=None) -> list:
        return [scheduled_for, job.trigger]

    s = cws.schedules.add("stamp", cron="0 3 * * *", tz="UTC")
    [job] = cws.schedules.backfill(s, "2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00")
    await cws.run_until_idle(timeout=10)
    when = "2026-11-01T03:00:00+00:00"
    assert cws.jobs.get(job.id).result == [when, {"scheduled_for": when}]


async def test_backfill_leaves_occasions_that_ran_live_and_fills_skipped_ones(cws, clock):
    s = cws.schedules.add("tick", every=60, start="2026-11-24T09:01:00+00:00")
    for _ in range(3):  # 09:01 runs, 09:02 and 09:03 are skipped (it is still waiting)
        step(cws, clock, 60)
    assert len(s.runs()) == 1 and cws.schedules.get(s.id).skip_count == 2
    jobs = cws.schedules.backfill(s, "2026-11-24T09:00:00+00:00", "2026-11-24T09:04:00+00:00")
    assert [j.data["scheduled_for"] for j in jobs] == [
        "2026-11-24T09:00:00+00:00", "2026-11-24T09:02:00+00:00", "2026-11-24T09:03:00+00:00",
    ]  # fmt: skip
    assert len(s.runs()) == 4


def test_backfill_of_cron_in_its_time_zone_and_of_at(cws):
    paris = "Europe/Paris"
    s = cws.schedules.add("tick", cron="30 6 * * 1-5", tz=paris)  # weekdays 06:30 Paris
    jobs = cws.schedules.backfill(
        s, dt.datetime(2026, 11, 20, tzinfo=UTC), dt.datetime(2026, 11, 24, tzinfo=UTC)
    )  # Fri 20 to Mon 23 November: Friday and Monday
    assert [j.data["scheduled_for"] for j in jobs] == [
        "2026-11-20T05:30:00+00:00", "2026-11-23T05:30:00+00:00",
    ]  # fmt: skip
    once = cws.schedules.add("tick", at="2026-11-01T12:00:00+00:00")
    assert (
        cws.schedules.backfill(
            once, at("2026-11-02T00:00:00+00:00"), at("2026-11-03T00:00:00+00:00")
        )
        == []
    )
    [job] = cws.schedules.backfill(once, "2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00")
    assert job.data == {"scheduled_for": "2026-11-01T12:00:00+00:00"}


def test_bad_input_gets_one_line_each(cws):
    s = cws.schedules.add("tick", every=60)
    hook = cws.schedules.add("tick", webhook="deploy")
    cases = [
        (lambda: cws.schedules.add("tick", every=5, overlap="queue"), "unknown overlap 'queue'"),
        (lambda: cws.schedules.backfill(s, "2026-11-02", "2026-11-01"), "is not before its end"),
        (lambda: cws.schedules.backfill(s, "2026-11-02", "2026-11-02"), "is not before its end"),
        (lambda: cws.schedules.backfill(s, "yesterday", "2026-11-01"), "backfill start must be"),
        (lambda: cws.schedules.backfill(hook, "2026-11-01", "2026-11-02"), "not by the clock"),
        (
            lambda: cws.schedules.backfill(s, "2026-01-01", "2026-11-01", limit=100),
            "makes more than 100 runs",
        ),
    ]
    for call, message in cases:
        with pytest.raises(wiz.InvalidSchedule, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    with pytest.raises(wiz.ScheduleNotFound, match="no schedule 'nope'"):
        cws.schedules.backfill("nope", "2026-11-01", "2026-11-02")
    assert s.runs() == []  # nothing half made


# -- across processes, the CLI and the server's view ----------------------------------------------


async def test_two_processes_on_one_file_never_start_a_second_run_of_a_skip_schedule(tmp_path):
    db = str(tmp_path / "shared.db")
    ws = wiz.Workspace(db)
    outs = [str(tmp_path / f"out{k}.txt") for k in range(2)]
    procs = [subprocess.Popen([sys.executable, WORKER, db, out]) for out in outs]
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not all(os.path.exists(o + ".ready") for o in outs):
            assert asyncio.get_running_loop().time() < deadline, "workers did not start"
            await asyncio.sleep(0.05)
        s = ws.schedules.add("slow", every=0.1)  # both schedulers fire it, both work it
        await asyncio.sleep(3.0)
        ws.schedules.pause(s)
        for o in outs:
            Path(o + ".stop").touch()
        for p in procs:
            assert p.wait(timeout=60) == 0
    finally:
        for p in procs:
            p.kill()
    runs = [ws.jobs.get(j.id) for j in s.runs()]
    assert len(runs) >= 3 and all(j.status == "completed" for j in runs), runs
    spans = sorted((j.started_at, j.finished_at) for j in runs)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # one run at a time, whichever process fired or worked it
    assert ws.schedules.get(s.id).skip_count > 0
    lines = [line.split()[0] for o in outs for line in Path(o).read_text().splitlines()]
    assert lines.count("start") == len(runs)
    ws.close()


def wiz_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wiz_jupyter", *args], capture_output=True, text=True, timeout=60
    )


def test_the_cli_backfills_and_lists_overlap_and_skips(db_path, clock):
    ws = wiz.Workspace(db_path, clock=clock)
    ws.schedules.add("tick", every=3600, start="2026-11-24T10:00:00+00:00", name="hourly")
    ws.schedules.add("tick", webhook="deploy", name="hook", overlap="allow")
    step(ws, clock, 3600)
    step(ws, clock, 3600)  # skipped: the 10:00 run is still waiting
    db = str(db_path)
    out = wiz_cli(
        "backfill", "hourly", "2026-11-24T07:00+00:00", "2026-11-24T09:00+00:00", "--db", db
    )
    assert out.returncode == 0, out.stderr
    assert "2 runs of 'hourly' added" in out.stdout
    assert "2026-11-24T07:00:00+00:00" in out.stdout and "2026-11-24T08:00:00+00:00" in out.stdout
    again = wiz_cli(
        "backfill", "hourly", "2026-11-24T07:00+00:00", "2026-11-24T09:00+00:00", "--db", db
    )
    assert "0 runs of 'hourly' added" in again.stdout
    listed = wiz_cli("schedules", "--db", db).stdout.splitlines()
    assert "overlap skip  skipped 1 (last " in listed[0] and "runs 3" in listed[0]
    assert "overlap allow  skipped 0" in listed[1]
    for args, message in [
        (
            ("backfill", "nope", "2026-11-01", "2026-11-02"),
            "wiz: no schedule 'nope' in this workspace",
        ),
        (("backfill", "hook", "2026-11-01", "2026-11-02"), "not by the clock"),
        (("backfill", "hourly", "2026-11-02", "2026-11-01"), "is not before its end"),
    ]:
        bad = wiz_cli(*args, "--db", db)
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.splitlines()) == 1
    ws.close()


def test_the_server_lists_overlap_skips_and_a_kept_occasion(cws, clock):
    s = cws.schedules.add("tick", every=60, overlap="buffer_one")
    for _ in range(3):
        step(cws, clock, 60)
    view = schedule_view(cws.schedules.get(s.id))
    assert view["overlap"] == "buffer_one" and view["skip_count"] == 1
    assert view["last_skipped"] is not None and view["buffered"] is True
