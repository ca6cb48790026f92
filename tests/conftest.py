"""Shared fixtures: a fresh workspace on a real SQLite file per test."""

from __future__ import annotations

import pytest

import wiz_jupyter as wiz


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "wiz.db"


@pytest.fixture
async def ws(db_path):
    """A workspace on a fresh file, with short leases so recovery tests are quick."""
    w = wiz.Workspace(db_path, concurrency=8, lease=2.0, poll_interval=0.05)
    yield w
    await w.stop(grace=1)
    w.close()
