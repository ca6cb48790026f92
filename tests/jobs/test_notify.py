"""Jobs that ask to be announced when they end: the ``notify`` column, the cursor, the switch."""

from __future__ import annotations

import sqlite_utils

import wiz_jupyter as wiz
from wiz_jupyter.jobs.store import JOBS_MIGRATIONS, Store


async def test_notifications_announce_the_ends_of_notify_jobs_after_the_cursor(ws):
    @ws.task
    async def ok(n: int) -> int:
        return n

    @ws.task
    async def boom() -> None:
        raise ValueError("no luck")

    start, notes = ws.jobs.notifications()
    assert notes == []  # a front end that opens starts from now
    quiet = ws.jobs.add("ok", {"n": 1})
    loud = ws.jobs.add("ok", {"n": 2}, notify=True)
    bad = ws.jobs.add("boom", notify=True)
    bulk = ws.jobs.add_bulk([("ok", {"n": 3}, {"notify": True})])[0]
    assert (quiet.notify, loud.notify, bad.notify, bulk.notify) == (False, True, True, True)
    assert ws.jobs.get(loud.id).notify is True
    await ws.run_until_idle()
    cursor, notes = ws.jobs.notifications(start)
    by_job = {n["job_id"]: n for n in notes}
    assert set(by_job) == {loud.id, bad.id, bulk.id}
    assert by_job[loud.id]["status"] == "completed" and by_job[loud.id]["error"] is None
    assert by_job[bad.id]["status"] == "failed" and "no luck" in by_job[bad.id]["error"]
    assert by_job[bad.id]["task"] == "boom"
    assert ws.jobs.notifications(cursor) == (cursor, [])  # nothing twice
    # a page at a time: the cursor stops at the last note given
    first_cursor, first = ws.jobs.notifications(start, limit=1)
    assert [n["job_id"] for n in first] == [notes[0]["job_id"]]
    assert first_cursor == first[0]["cursor"] < cursor
    rest = ws.jobs.notifications(first_cursor)[1]
    assert [n["job_id"] for n in rest] == [n["job_id"] for n in notes[1:]]


async def test_the_switch_silences_every_notification(ws):
    @ws.task
    async def ok() -> None:
        return None

    assert ws.jobs.notifications_on is True
    cursor, _ = ws.jobs.notifications()
    ws.jobs.set_notifications(False)
    assert ws.jobs.notifications_on is False
    ws.jobs.add("ok", notify=True)
    await ws.run_until_idle()
    cursor, notes = ws.jobs.notifications(cursor)
    assert notes == [] and cursor > 0  # skipped, not kept for later
    ws.jobs.set_notifications(True)
    ws.jobs.add("ok", notify=True)
    await ws.run_until_idle()
    assert len(ws.jobs.notifications(cursor)[1]) == 1


def test_a_version_2_database_gains_the_column_and_keeps_its_jobs(db_path):
    # a database written before notifications existed: jobs migrations 1 and 2 only
    db = sqlite_utils.Database(db_path)
    for _, _, apply in JOBS_MIGRATIONS[:2]:
        apply(db)
    db.execute(
        "CREATE TABLE wiz_migrations (component TEXT NOT NULL, version INTEGER NOT NULL, "
        "name TEXT NOT NULL, applied_at REAL NOT NULL, PRIMARY KEY (component, version))"
    )
    for version, name, _ in JOBS_MIGRATIONS[:2]:
        db.execute("INSERT INTO wiz_migrations VALUES ('jobs', ?, ?, 0)", (version, name))
    db.execute("INSERT INTO jobs (id, task, status, created_at) VALUES (1, 'old', 'waiting', 0)")
    db.conn.commit()
    db.close()
    Store(db_path).close()
    w = wiz.Workspace(db_path)
    assert w.jobs.get(1).notify is False and w.jobs.get(1).task == "old"
    assert w.jobs.add("new", notify=True).notify is True
    w.close()


def test_a_schedules_jobs_can_ask_to_be_announced(ws):
    s = ws.schedules.add("report", every=3600, notify=True, name="hourly report")
    assert s.template["options"]["notify"] is True
    assert ws.schedules.fire(s).notify is True
    plain = ws.schedules.add("report", every=3600, name="quiet report")
    assert ws.schedules.fire(plain).notify is False
