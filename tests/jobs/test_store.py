"""The workspace database: WAL, migrations, and files that are not ours."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs.store import APPLICATION_ID, JOBS_MIGRATIONS, Store, default_path


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_database_is_wal_with_recorded_migrations(db_path):
    store = Store(db_path)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10  # one try (LOCK_POLL)
    assert store.busy_timeout == 10.0  # what a synchronous write waits in all, between tries
    assert store.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    rows = store.read("SELECT component, version FROM wiz_migrations")
    assert [tuple(r) for r in rows] == [("jobs", v) for v, _, _ in JOBS_MIGRATIONS]
    assert len(JOBS_MIGRATIONS) >= 4
    assert {"jobs", "job_deps", "job_events", "schedules", "settings"} <= set(
        store.db.table_names()
    )
    store.close()


def test_reopening_keeps_jobs_and_applies_nothing_twice(db_path):
    ws = wiz.Workspace(db_path)
    job = ws.jobs.add("t", {"x": 1})
    ws.close()
    again = wiz.Workspace(db_path)
    assert again.jobs.get(job.id).data == {"x": 1}
    assert len(again.store.read("SELECT * FROM wiz_migrations")) == len(JOBS_MIGRATIONS)
    again.close()


def test_migrations_of_another_layer_are_numbered_separately(db_path):
    store = Store(db_path)
    calls = []
    migrations = [(1, "notes", lambda db: calls.append(db["notes"].create({"id": int}, pk="id")))]
    store.migrate("agents", migrations)
    store.migrate("agents", migrations)
    assert len(calls) == 1
    assert "notes" in store.db.table_names()


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(db_path):
    db_path.write_bytes(b"my precious notes, not a database\n" * 100)
    before = digest(db_path)
    with pytest.raises(wiz.StoreError, match="not a SQLite database"):
        wiz.Workspace(db_path)
    assert digest(db_path) == before


def test_another_applications_database_is_refused_and_left_alone(db_path):
    other = sqlite3.connect(db_path)
    other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    other.execute("INSERT INTO invoices VALUES (1, 9.5)")
    other.commit()
    other.close()
    before = digest(db_path)
    with pytest.raises(wiz.StoreError, match="another application"):
        wiz.Workspace(db_path)
    assert digest(db_path) == before


def test_a_corrupt_database_gives_a_clear_error_and_is_left_alone(db_path):
    ws = wiz.Workspace(db_path)
    ws.jobs.add_bulk([("t", {"i": i, "pad": "x" * 200}) for i in range(2000)])
    ws.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.close()
    raw = bytearray(db_path.read_bytes())
    for offset in range(4096 * 3, len(raw), 4096):  # scribble over every page after the first two
        raw[offset + 8 : offset + 64] = b"\xff" * 56
    db_path.write_bytes(bytes(raw))
    before = digest(db_path)
    with pytest.raises(wiz.StoreError, match="corrupt"):
        wiz.Workspace(db_path)
    assert digest(db_path) == before


def test_a_database_from_a_newer_version_is_refused(db_path):
    store = Store(db_path)
    store.conn.execute("INSERT INTO wiz_migrations VALUES ('jobs', 99, 'future', 0)")
    store.close()
    with pytest.raises(wiz.StoreError, match="newer wiz_jupyter"):
        Store(db_path)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(wiz.StoreError, match="folder"):
        wiz.Workspace(tmp_path)


def test_default_path_follows_wiz_home_else_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WIZ_HOME", str(tmp_path / "home"))
    assert default_path() == str(tmp_path / "home" / "wiz.db")
    monkeypatch.delenv("WIZ_HOME")
    monkeypatch.chdir(tmp_path)
    assert default_path() == str(tmp_path / ".wiz" / "wiz.db")
    ws = wiz.Workspace()
    assert (tmp_path / ".wiz" / "wiz.db").exists()
    ws.close()


def test_memory_workspace_works():
    ws = wiz.Workspace(":memory:")
    assert ws.jobs.add("t").status == "waiting"
    ws.close()


def test_a_checkpoint_truncates_a_log_grown_past_its_limit(db_path, monkeypatch):
    import wiz_jupyter.jobs.store as store_module

    ws = wiz.Workspace(db_path)
    ws.store.checkpoint_in_background(True)  # as the runtime does: only its thread checkpoints
    ws.jobs.add_bulk([("t", {"i": i, "pad": "x" * 500}) for i in range(2000)])
    wal = f"{db_path}-wal"
    grown = os.path.getsize(wal)
    conn = ws.store.connect()
    try:
        ws.store.checkpoint(conn)  # below the limit: passive, the log keeps its size
        assert os.path.getsize(wal) == grown > 0
        monkeypatch.setattr(store_module, "WAL_TRUNCATE_FRAMES", 10)
        ws.store.checkpoint(conn)
        assert os.path.getsize(wal) == 0
    finally:
        conn.close()
    assert ws.jobs.counts()["waiting"] == 2000  # nothing lost
    ws.close()
