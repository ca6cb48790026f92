"""Schedules and triggers, with a clock moved by hand where time matters."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from zoneinfo import ZoneInfo

import pytest

import wiz_jupyter as wiz


@pytest.fixture
def clock():
    return wiz.ManualClock("2026-11-24T09:00:00+00:00")


@pytest.fixture
async def cws(db_path, clock):
    """A workspace whose schedules follow the manual clock."""
    w = wiz.Workspace(db_path, clock=clock, poll_interval=0.05)
    yield w
    await w.stop(grace=1)
    w.close()


def fired_jobs(ws, name):
    return ws.schedules.get(name).runs()


async def fired(ws, count=1, timeout=5.0):
    """Wait on the event bus for ``count`` schedule firings; return their job ids."""
    ids, done = [], asyncio.Event()

    def on(event):
        ids.append(event.job_id)
        if len(ids) >= count:
            done.set()

    off = ws.events.on("schedule.fired", on)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        off()
    return ids


# -- adding, validation, control ------------------------------------------------------------------


def test_a_malformed_cron_is_refused_with_a_short_message(cws):
    with pytest.raises(wiz.InvalidSchedule, match=r"malformed cron expression '61 \* \* \* \*'"):
        cws.schedules.add("t", cron="61 * * * *")
    with pytest.raises(wiz.InvalidSchedule, match="unknown time zone"):
        cws.schedules.add("t", cron="0 9 * * *", tz="Mars/Olympus")
    with pytest.raises(wiz.InvalidSchedule, match="exactly one trigger"):
        cws.schedules.add("t", cron="0 9 * * *", every=5)
    with pytest.raises(wiz.InvalidSchedule, match="exactly one trigger"):
        cws.schedules.add("t")
    with pytest.raises(wiz.InvalidJob, match="attempts"):
        cws.schedules.add("t", every=5, attempts=0)
    with pytest.raises(wiz.InvalidSchedule, match="existing folder"):
        cws.schedules.add("t", watch="/no/such/folder")
    assert cws.schedules.list() == []


def test_adding_again_under_the_same_name_updates_instead_of_duplicating(cws):
    a = cws.schedules.add("report", {"v": 1}, cron="0 9 * * *")
    b = cws.schedules.add("report", {"v": 2}, cron="0 9 * * *")
    assert a.id == b.id and a.name == "report cron '0 9 * * *'"
    assert b.template["data"] == {"v": 2}
    assert len(cws.schedules.list()) == 1


def test_pause_resume_remove_and_fire_now(cws, clock):
    s = cws.schedules.add("t", every=60, name="minutely")
    assert cws.schedules.pause("minutely").status == "paused"
    clock.advance(600)
    cws.scheduler.tick()
    assert s.runs() == []
    job = cws.schedules.fire("minutely", {"extra": 1})  # fire now works while paused
    assert job.data == {"extra": 1} and job.status == "waiting"
    resumed = cws.schedules.resume(s)
    assert resumed.status == "active" and resumed.next_run > clock.now()  # no catch-up on resume
    cws.schedules.remove(s.id)
    with pytest.raises(wiz.ScheduleNotFound, match="no schedule"):
        cws.schedules.get(s.id)
    assert job.status == "waiting"  # its jobs stay


# -- time triggers ------------------------------------------------------------------------------


def test_every_fires_on_its_interval_and_keeps_its_phase(cws, clock):
    s = cws.schedules.add("tick", {"n": 1}, every=60, overlap="allow")
    assert s.next_run == clock.now() + 60
    assert cws.scheduler.tick() == clock.now() + 60
    clock.advance(59.9)
    cws.scheduler.tick()
    assert s.runs() == []
    clock.advance(0.2)
    cws.scheduler.tick()
    clock.advance(45)
    cws.scheduler.tick()
    clock.advance(15)
    cws.scheduler.tick()
    runs = s.runs()
    assert len(runs) == 2 and runs[0].data == {"n": 1}
    fresh = cws.schedules.get(s.id)
    assert fresh.run_count == 2
    assert fresh.next_run == s.created_at + 180  # start + k * interval, no drift


def test_at_fires_once_then_expires(cws, clock):
    when = dt.datetime.fromtimestamp(clock.now() + 30, dt.timezone.utc)
    s = cws.schedules.add("once", at=when)
    clock.advance(31)
    cws.scheduler.tick()
    clock.advance(3600)
    cws.scheduler.tick()
    assert len(s.runs()) == 1
    assert cws.schedules.get(s.id).status == "expired"


def test_cron_in_a_time_zone_across_both_daylight_saving_changes(db_path):
    berlin = ZoneInfo("Europe/Berlin")
    clock = wiz.ManualClock(dt.datetime(2026, 10, 24, 12, 0, tzinfo=berlin))
    ws = wiz.Workspace(db_path, clock=clock)
    s = ws.schedules.add("nightly", cron="30 2 * * *", tz="Europe/Berlin", overlap="allow")
    fires = []
    for _ in range(72):  # three days, hour by hour
        clock.advance(3600)
        before = len(s.runs())
        ws.scheduler.tick()
        if len(s.runs()) > before:
            fires.append(dt.datetime.fromtimestamp(clock.now(), berlin).strftime("%m-%d %H:%M %Z"))
    # 25 Oct: clocks go back at 03:00 CEST to 02:00 CET; 02:30 happens twice, the job runs once
    # (seen at the first hourly tick after 02:30 CEST, which reads 02:00 CET)
    assert fires == ["10-25 02:00 CET", "10-26 03:00 CET", "10-27 03:00 CET"]
    spring = wiz.ManualClock(dt.datetime(2027, 3, 27, 12, 0, tzinfo=berlin))
    ws2 = wiz.Workspace(db_path.with_name("spring.db"), clock=spring)
    s2 = ws2.schedules.add("nightly", cron="30 2 * * *", tz="Europe/Berlin")
    nxt = dt.datetime.fromtimestamp(s2.next_run, berlin)
    assert (nxt.day, nxt.hour, nxt.minute) == (28, 3, 0)  # 02:30 does not exist that night
    ws.close()
    ws2.close()


CLOCK_CHANGES = {
    # zone: (a moment before clocks go back, one before they go forward), 2026
    "Europe/Paris": ("2026-10-24T21:00:00+00:00", "2026-03-28T21:00:00+00:00"),
    "America/New_York": ("2026-11-01T03:00:00+00:00", "2026-03-08T04:00:00+00:00"),
    "Australia/Lord_Howe": ("2026-04-04T12:00:00+00:00", "2026-10-03T12:00:00+00:00"),
}


def fire_times(db_path, zone: str, start: str, cron: str, hours: int) -> list[float]:
    """Run a cron schedule under a ManualClock in 5-minute ticks (every fire time here
    falls on one); the real times it fired."""
    clock = wiz.ManualClock(dt.datetime.fromisoformat(start))
    ws = wiz.Workspace(db_path.with_name(f"{abs(hash((zone, start, cron)))}.db"), clock=clock)
    s = ws.schedules.add("job", cron=cron, tz=zone, overlap="allow")
    fired_at = []
    for _ in range(hours * 12):
        clock.advance(300)
        before = len(s.runs())
        ws.scheduler.tick()
        fired_at += [clock.now()] * (len(s.runs()) - before)
    ws.close()
    return fired_at


@pytest.mark.parametrize("zone", sorted(CLOCK_CHANGES))
def test_cron_across_clock_changes_follows_cron8(db_path, zone):
    """Issue 19: `0 * * * *` fired 5 times in the 6 real hours around a fall-back. As
    cron(8) says: wildcard-hour jobs run as the new time says (every real hour, the
    repeated one included); a fixed-time job runs once; a time skipped by the spring
    change fires when the clock resumes."""
    back, forward = CLOCK_CHANGES[zone]
    tz = ZoneInfo(zone)
    hourly = fire_times(db_path, zone, back, "0 * * * *", 8)
    walls = [dt.datetime.fromtimestamp(t, tz) for t in hourly]
    assert all(w.minute == 0 for w in walls), walls
    gaps = {round(b - a) for a, b in itertools.pairwise(hourly)}
    if zone == "Australia/Lord_Howe":  # a half-hour shift: 60 minutes, or 90 across it
        assert gaps <= {3600, 5400} and len(hourly) >= 7, walls
    else:  # every real hour: 8 hours, 8 fires, the repeated wall hour twice
        assert gaps == {3600} and len(hourly) == 8, walls
        assert len({w.strftime("%H:%M") for w in walls}) == 7
    # a fixed time inside the repeated interval: once
    repeated = {"Europe/Paris": "30 2 * * *", "America/New_York": "30 1 * * *",
                "Australia/Lord_Howe": "45 1 * * *"}[zone]  # fmt: skip
    once = fire_times(db_path, zone, back, repeated, 8)
    assert len(once) == 1, [dt.datetime.fromtimestamp(t, tz) for t in once]
    # spring forward: a wall time that does not exist fires when the clock resumes
    skipped = {"Europe/Paris": "30 2 * * *", "America/New_York": "30 2 * * *",
               "Australia/Lord_Howe": "15 2 * * *"}[zone]  # fmt: skip
    resumed = fire_times(db_path, zone, forward, skipped, 12)
    assert len(resumed) == 1
    wall = dt.datetime.fromtimestamp(resumed[0], tz)
    assert (wall.hour, wall.minute) in ((3, 0), (2, 30)), wall  # the first minute after the jump
    # and a wildcard job skips the minutes that do not exist, never firing twice in one
    every_quarter = fire_times(db_path, zone, forward, "*/15 * * * *", 12)
    assert len(set(every_quarter)) == len(every_quarter)
    assert all(dt.datetime.fromtimestamp(t, tz).minute % 15 == 0 for t in every_quarter)


def test_a_misfire_after_downtime_catches_up_once_or_is_skipped(db_path, clock):
    ws = wiz.Workspace(db_path, clock=clock)
    catch = ws.schedules.add("report", every=60, name="catch")
    skip = ws.schedules.add("report", every=60, name="skip", misfire="skip")
    ws.close()
    clock.advance(3 * 3600)  # nobody ran a scheduler for three hours
    again = wiz.Workspace(db_path, clock=clock)
    again.scheduler.tick()
    assert len(again.schedules.runs("catch")) == 1
    assert again.schedules.runs("catch")[0].events()[-1]["data"]["reason"] == "misfire"
    assert again.schedules.runs("skip") == []
    for name in ("catch", "skip"):
        assert again.schedules.get(name).next_run > clock.now()
    clock.advance(60)
    again.scheduler.tick()
    assert len(again.schedules.runs("skip")) == 1  # back on its interval
    assert (catch.id, skip.id) == (1, 2)
    again.close()


def test_two_schedulers_on_one_database_fire_once(db_path, clock):
    a = wiz.Workspace(db_path, clock=clock)
    b = wiz.Workspace(db_path, clock=clock)
    s = a.schedules.add("t", every=10, overlap="allow")
    for _ in range(5):
        clock.advance(10)
        a.scheduler.tick()
        b.scheduler.tick()
    assert len(s.runs()) == 5
    a.close()
    b.close()


async def test_interval_timers_fire_on_the_loop_without_polling(db_path):
    ws = wiz.Workspace(db_path)
    ws.scheduler.poll_interval = 30  # only the timer can wake it in time
    seen = []

    @ws.task
    async def beat() -> None:
        seen.append(1)

    ws.schedules.add("beat", every=0.05)
    await ws.start()
    await fired(ws, count=4)
    await ws.stop()
    assert ws.schedules.get("beat every 0.05 s").run_count >= 4


# -- event triggers ---------------------------------------------------------------------------


async def test_after_chains_on_completed_failed_and_timeout(cws):
    @cws.task
    async def ok() -> int:
        return 7

    @cws.task
    async def bad() -> None:
        raise RuntimeError("broken")

    @cws.task
    async def slow() -> None:
        await asyncio.sleep(5)

    got = []

    @cws.task
    async def follow(upstream: dict, tag: str) -> None:
        got.append((tag, upstream["status"], upstream["result"]))

    a, b, c = cws.jobs.add("ok"), cws.jobs.add("bad"), cws.jobs.add("slow", timeout=0.05)
    cws.schedules.add("follow", {"tag": "on-ok"}, after=a)
    cws.schedules.add("follow", {"tag": "never"}, after=a, on="failed")
    cws.schedules.add("follow", {"tag": "on-bad"}, after=b, on="failed")
    cws.schedules.add("follow", {"tag": "on-timeout"}, after=c, on="timeout")
    cws.schedules.add("follow", {"tag": "not-timeout"}, after=b, on="timeout")
    await cws.start()
    await fired(cws, count=3)
    await cws.run_until_idle(timeout=5)
    assert sorted(got) == [
        ("on-bad", "failed", None),
        ("on-ok", "completed", 7),
        ("on-timeout", "failed", None),
    ]
    statuses = {s.template["data"]["tag"]: s.status for s in cws.schedules.list()}
    assert statuses == dict.fromkeys(
        ["on-ok", "never", "on-bad", "on-timeout", "not-timeout"], "expired"
    )


async def test_after_runs_handlers_that_do_not_take_upstream(cws):
    """Issue 19: `def cleanup(): ...` failed every run with "unexpected keyword argument
    'upstream'"; what the trigger brings is on job.trigger for every handler."""
    seen = []

    @cws.task
    async def ok() -> int:
        return 7

    @cws.task
    def plain() -> str:
        return "ran"

    @cws.task
    def curious(job) -> None:
        seen.append(job.trigger["upstream"]["result"])

    @cws.task
    def typo(n: int) -> None:  # a job data key it does not take still fails the job
        pass

    a = cws.jobs.add("ok")
    cws.schedules.add("plain", after=a)
    cws.schedules.add("curious", after=a)
    cws.schedules.add("typo", {"n": 1, "m": 2}, after=a)
    await cws.start()
    await fired(cws, count=3)
    await cws.run_until_idle(timeout=5)
    outcomes = {j.task: (j.status, j.result) for j in cws.jobs.list() if j.task != "ok"}
    assert outcomes["plain"] == ("completed", "ran")
    assert outcomes["curious"][0] == "completed" and seen == [7]
    assert outcomes["typo"][0] == "failed"


def test_an_interval_below_the_floor_is_refused(ws):
    """Issue 19: every=1e-9 made 6,145 jobs in 3 s."""
    for tiny in [1e-9, 0.01, 0.049]:
        with pytest.raises(
            wiz.InvalidSchedule, match=r"shorter than the shortest interval, 0\.05 s"
        ):
            ws.schedules.add("beat", every=tiny)
    for bad in [0, -1, float("nan"), float("inf"), True]:
        with pytest.raises(wiz.InvalidSchedule, match="positive number of seconds"):
            ws.schedules.add("beat", every=bad)
    assert ws.schedules.list() == []


async def test_after_a_job_that_already_finished_fires_at_once(cws):
    job = cws.jobs.add("x")
    cws.jobs.cancel(job)
    s = cws.schedules.add("cleanup", after=job, on="finished")
    await cws.start()
    assert len(s.runs()) == 1


async def test_after_a_schedule_follows_every_run_and_counts_outcomes(cws, clock):
    @cws.task
    async def fetch(n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return n

    @cws.task
    async def store(upstream: dict) -> int:
        return upstream["result"] * 10

    up = cws.schedules.add("fetch", {"n": 4}, every=60, name="fetch")
    down = cws.schedules.add("store", after="fetch", name="store")
    await cws.start()
    clock.advance(60)
    await fired(cws, count=2)  # fetch, then store after it
    await cws.run_until_idle(timeout=5)
    assert [j.result for j in down.runs()] == [40]
    cws.schedules.add("fetch", {"n": -1}, every=60, name="fetch")  # now it fails
    clock.advance(60)
    await fired(cws)
    await cws.run_until_idle(timeout=5)
    await asyncio.sleep(0.1)  # the outcome is recorded on the scheduler's next pass
    cws.scheduler.tick()
    fresh = cws.schedules.get(up.id)
    assert (fresh.run_count, fresh.fail_count) == (2, 1)
    assert fresh.last_result["status"] == "failed" and "negative" in fresh.last_result["error"]
    assert len(down.runs()) == 1  # on="completed" only


async def test_watch_fires_on_files_that_match_in_a_real_folder(cws, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    s = cws.schedules.add("ingest", watch=inbox, patterns=["*.csv"], debounce=0.05)
    await cws.start()
    await asyncio.sleep(0.3)  # the watcher thread takes a moment to attach
    (inbox / "notes.txt").write_text("ignored")
    (inbox / "data.csv").write_text("a,b\n1,2\n")
    [job_id] = await fired(cws)
    job = cws.jobs.get(job_id)
    assert job.data["changes"] == [{"change": "added", "path": "data.csv"}]
    assert [j.id for j in s.runs()] == [job_id]


async def test_webhook_payload_reaches_the_job_and_signatures_are_checked(cws):
    signed = cws.schedules.add("deploy", webhook="github", secret="s3cret", name="signed")
    body = json.dumps({"ref": "main"})
    jobs = cws.schedules.fire_webhook(
        "github",
        {"ref": "main"},
        body=body,
        signature=wiz.sign_webhook("s3cret", body),
        delivery="d1",
    )
    assert [j.data for j in jobs] == [{"payload": {"ref": "main"}}]
    again = cws.schedules.fire_webhook(
        "github",
        {"ref": "main"},
        body=body,
        signature=wiz.sign_webhook("s3cret", body),
        delivery="d1",
    )
    assert again == []  # the same delivery fires once
    with pytest.raises(wiz.WebhookRejected, match="bad or missing signature"):
        cws.schedules.fire_webhook("github", {"ref": "main"}, body=body, signature="sha256=00")
    with pytest.raises(wiz.WebhookRejected):
        cws.schedules.fire_webhook("github", {"ref": "evil"}, body=body.replace("main", "evil"),
                                   signature=wiz.sign_webhook("s3cret", body))  # fmt: skip
    with pytest.raises(wiz.ScheduleNotFound):
        cws.schedules.fire_webhook("gitlab", {})
    assert len(signed.runs()) == 1
    assert "s3cret" not in repr(signed) and "s3cret" not in signed._repr_html_()
    assert wiz.verify_webhook("k", b"x", wiz.sign_webhook("k", "x"))


async def test_agent_idle_fires_once_per_idle_period(db_path):
    clock = wiz.ManualClock()
    ws = wiz.Workspace(db_path, clock=clock)

    @ws.task
    async def work() -> None:
        pass

    s = ws.schedules.add("consolidate", idle=("analyst", 300))
    ws.jobs.add("work", agent="analyst")
    ws.scheduler.tick()
    clock.advance(1000)
    ws.scheduler.tick()
    assert s.runs() == []  # busy: a job is waiting
    await ws.run_until_idle()
    clock.advance(299)
    ws.scheduler.tick()
    assert s.runs() == []
    clock.advance(2)
    ws.scheduler.tick()
    clock.advance(600)
    ws.scheduler.tick()
    assert len(s.runs()) == 1
    ws.close()


async def test_a_custom_trigger_is_set_up_evaluated_and_torn_down(cws, clock):
    calls = []

    @cws.schedules.trigger
    class Threshold(wiz.Trigger):
        check_every = 10

        def __init__(self, limit: int):
            self.limit = limit

        def setup(self):
            calls.append("setup")

        def evaluate(self, now):
            calls.append("evaluate")
            level = len([c for c in calls if c == "evaluate"])
            return {"level": level} if level >= self.limit else False

        def teardown(self):
            calls.append("teardown")

    s = cws.schedules.add("alert", trigger=Threshold(limit=3))
    assert s.trigger == {"kind": "custom", "name": "Threshold", "params": {"limit": 3}}
    for _ in range(4):
        cws.scheduler.tick()
        clock.advance(10)
    assert calls[:4] == ["setup", "evaluate", "evaluate", "evaluate"]
    assert s.runs()[0].data == {"level": 3}
    await cws.start()
    cws.schedules.pause(s)
    cws.scheduler.tick()
    assert calls[-1] == "teardown"
