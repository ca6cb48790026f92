"""Built-in triggers as objects: each is what a shorthand keyword of
``ws.schedules.add`` stands for, and converts to and from the stored JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs.triggers import BaseTrigger, describe


@pytest.fixture
def clock():
    return wiz.ManualClock("2026-11-24T09:00:00+00:00")


@pytest.fixture
async def cws(db_path, clock):
    w = wiz.Workspace(db_path, clock=clock)
    yield w
    w.close()


def objects(folder):
    """One of each built-in trigger, with non-default options where it has them."""
    return [
        wiz.At("2026-12-01T10:00:00+00:00", grace=5),
        wiz.Every(dt.timedelta(minutes=2), start="2026-11-25T00:00:00+00:00", misfire="skip"),
        wiz.Cron("0 9 * * 1-5", tz="Europe/Paris"),
        wiz.After(7, on=["failed", "timeout"]),
        wiz.Watch(folder, ["*.csv", "*.json"], debounce=2),
        wiz.Webhook("github", secret="s3cret"),
        wiz.Kernel("exit"),
        wiz.Idle("analyst", 90),
    ]


def test_each_trigger_object_round_trips_through_its_stored_json(tmp_path):
    for trigger in objects(tmp_path):
        stored = json.loads(json.dumps(trigger.to_spec()))
        back = BaseTrigger.from_spec(stored)
        assert type(back) is type(trigger) and back == trigger
        assert back.describe() == trigger.describe()
        assert back.to_spec() == trigger.to_spec() == stored
        assert list(stored) == list(trigger.to_spec())  # the key order of the stored JSON too


def test_stored_custom_triggers_describe_without_being_made():
    described = {
        "on boot": {"name": "boot", "params": {"source": "auto", "added_in": "b1"}},
        "system idle 5 min": {"name": "system_idle", "params": {"minutes": 5.0}},
        "on shutdown": {"name": "shutdown", "params": {"grace": 10.0}},
        "network available (h:80)": {
            "name": "network_available",
            "params": {"host": "h", "port": 80},
        },
        "custom DiskFull": {"name": "DiskFull", "params": {"path": "/"}},  # not registered here
    }
    for description, spec in described.items():
        assert describe({"kind": "custom", **spec}) == description


def test_system_triggers_round_trip_through_their_stored_json():
    for trigger in [
        wiz.Shutdown(grace=3),
        wiz.SystemIdle(minutes=5),
        wiz.NetworkAvailable("h", 80),
    ]:
        back = wiz.Trigger.from_spec(json.loads(json.dumps(trigger.to_spec())))
        assert type(back) is type(trigger) and back.params() == trigger.params()
        assert back.describe() == trigger.describe()


def test_rows_stored_by_earlier_versions_read_and_describe_as_before(tmp_path):
    stored = {
        "every 90 s": {"kind": "every", "seconds": 90.0, "start": None, "misfire": "catch_up",
                       "grace": 60.0},
        "cron '0 9 * * *' (Europe/Paris)": {"kind": "cron", "expr": "0 9 * * *",
                                            "tz": "Europe/Paris", "misfire": "skip", "grace": 5.0},
        "after schedule 3 completed/failed": {"kind": "after", "schedule": 3,
                                              "on": ["completed", "failed"]},
        "watch /gone *.csv": {"kind": "watch", "path": "/gone", "patterns": ["*.csv"],
                              "debounce": 0.5},
        "webhook gh (signed)": {"kind": "webhook", "name": "gh", "secret": "x"},
        "kernel start": {"kind": "kernel", "on": "start"},
        "analyst idle 30 s": {"kind": "idle", "agent": "analyst", "seconds": 30.0},
        "every 0.01 s": {"kind": "every", "seconds": 0.01, "start": None, "misfire": "catch_up",
                         "grace": 60.0},  # below today's floor: still read, not refused
    }  # fmt: skip
    for description, spec in stored.items():
        trigger = BaseTrigger.from_spec(spec)
        assert trigger.describe() == description
        assert json.dumps(trigger.to_spec()) == json.dumps(spec)  # the same text, key order too


@pytest.mark.parametrize(
    ("obj", "shorthand"),
    [
        (lambda d: wiz.Cron("0 9 * * *", tz="Europe/Paris"), lambda d: {"cron": "0 9 * * *", "tz": "Europe/Paris"}),
        (lambda d: wiz.Every(300, start="2026-11-25T00:00:00Z"), lambda d: {"every": 300, "start": "2026-11-25T00:00:00Z"}),
        (lambda d: wiz.At("2026-12-01T10:00:00+00:00"), lambda d: {"at": "2026-12-01T10:00:00+00:00"}),
        (lambda d: wiz.Watch(d, "*.csv", debounce=1), lambda d: {"watch": str(d), "patterns": "*.csv", "debounce": 1}),
        (lambda d: wiz.Webhook("gh", secret="s"), lambda d: {"webhook": "gh", "secret": "s"}),
        (lambda d: wiz.Kernel("start"), lambda d: {"kernel": "start"}),
        (lambda d: wiz.Idle("analyst", 60), lambda d: {"idle": ("analyst", 60)}),
    ],
)  # fmt: skip
def test_a_trigger_object_stores_the_same_row_as_its_shorthand(cws, tmp_path, obj, shorthand):
    a = cws.schedules.add("task", trigger=obj(tmp_path))
    b = cws.schedules.add("task", **shorthand(tmp_path))
    assert a.id == b.id  # the same default name: an update, not a second schedule
    assert (a.name, a.trigger, a.next_run) == (b.name, b.trigger, b.next_run)
    assert json.dumps(a.trigger) == json.dumps(b.trigger)
    assert len(cws.schedules.list()) == 1


def test_after_objects_name_jobs_and_schedules_like_the_shorthand(cws):
    job = cws.jobs.add("x")
    first = cws.schedules.add("first", every=60)
    for target in [job, job.id, first, first.name]:
        a = cws.schedules.add("task", trigger=wiz.After(target, on="failed"), name="a")
        b = cws.schedules.add("task", after=target, on="failed", name="b")
        assert a.trigger == b.trigger
    assert cws.schedules.get("a").trigger == {
        "kind": "after",
        "schedule": first.id,
        "on": ["failed"],
    }
    with pytest.raises(wiz.ScheduleNotFound):
        cws.schedules.add("task", trigger=wiz.After("no such schedule"))
    with pytest.raises(wiz.JobNotFound):
        cws.schedules.add("task", trigger=wiz.After(12345))


def test_misfire_and_grace_of_add_apply_to_a_time_trigger_object(cws):
    s = cws.schedules.add("task", trigger=wiz.Every(60), misfire="skip", grace=5)
    assert (s.trigger["misfire"], s.trigger["grace"]) == ("skip", 5.0)
    own = wiz.Every(60, misfire="skip", grace=7)
    s = cws.schedules.add("task", trigger=own)
    assert (s.trigger["misfire"], s.trigger["grace"]) == ("skip", 7.0)
    assert own.grace == 7.0  # add copied it, the caller's object is unchanged
    s = cws.schedules.add("task", trigger=own, grace=0)
    assert s.trigger["grace"] == 0.0 and own.grace == 7.0


def test_a_trigger_object_and_a_shorthand_together_are_refused(cws):
    with pytest.raises(wiz.InvalidSchedule) as e:
        cws.schedules.add("task", trigger=wiz.Cron("0 9 * * *"), every=60)
    assert str(e.value) == (
        "give exactly one trigger: at=, every=, cron=, after=, watch=, webhook=, kernel=, "
        "idle= or trigger= (got every, trigger)"
    )
    with pytest.raises(wiz.InvalidSchedule, match=r"exactly one trigger.*\(got cron, trigger\)$"):
        cws.schedules.add("task", {}, wiz.Every(60), cron="0 9 * * *")
    assert cws.schedules.list() == []


@pytest.mark.parametrize(
    ("make", "shorthand"),
    [
        (lambda: wiz.Cron("61 * * * *"), {"cron": "61 * * * *"}),
        (lambda: wiz.Cron("0 9 * * *", tz="Mars/Olympus"), {"cron": "0 9 * * *", "tz": "Mars/Olympus"}),
        (lambda: wiz.Cron("0 9 * * *", misfire="later"), {"cron": "0 9 * * *", "misfire": "later"}),
        (lambda: wiz.Every(0.01), {"every": 0.01}),
        (lambda: wiz.Every(-1), {"every": -1}),
        (lambda: wiz.Every(5, start="soon"), {"every": 5, "start": "soon"}),
        (lambda: wiz.At("tomorrow"), {"at": "tomorrow"}),
        (lambda: wiz.After(1.5), {"after": 1.5}),
        (lambda: wiz.After(1, on="eventually"), {"after": 1, "on": "eventually"}),
        (lambda: wiz.Watch("/no/such/folder"), {"watch": "/no/such/folder"}),
        (lambda: wiz.Webhook("a/b"), {"webhook": "a/b"}),
        (lambda: wiz.Kernel("boot"), {"kernel": "boot"}),
        (lambda: wiz.Idle("analyst", 0), {"idle": ("analyst", 0)}),
    ],
)  # fmt: skip
def test_bad_arguments_give_the_shorthands_one_line_error(cws, make, shorthand):
    if "after" in shorthand and isinstance(shorthand["after"], int):
        cws.jobs.add("x")  # job 1 exists: only `on` is wrong
    with pytest.raises(wiz.InvalidSchedule) as made:
        make()
    with pytest.raises(wiz.InvalidSchedule) as added:
        cws.schedules.add("task", **shorthand)
    assert str(made.value) == str(added.value)
    assert "\n" not in str(made.value)
