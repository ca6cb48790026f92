"""A kernel's announcement file (wiz_jupyter.announce), written in this process as if it
were a kernel: the server side is in tests/server/test_workspaces.py."""

from __future__ import annotations

import json

import pytest

import wiz_jupyter as wiz
from wiz_jupyter import announce


@pytest.fixture
def as_kernel(tmp_path, monkeypatch):
    """This process passes for a kernel whose runtime folder is ``tmp_path/runtime``."""
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setattr(announce, "_connection_file", str(runtime / "kernel-abc-123.json"))
    monkeypatch.setattr(announce, "_paths", [])
    monkeypatch.setattr(announce, "_default", None)
    return runtime / "wiz-workspaces" / "kernel-abc-123.json"


def test_outside_a_kernel_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    wiz.Workspace(tmp_path / "wiz.db").close()
    assert not (tmp_path / "runtime").exists()


def test_workspaces_are_announced_and_withdrawn(tmp_path, as_kernel):
    first = wiz.Workspace(tmp_path / "a" / "wiz.db")
    entry = json.loads(as_kernel.read_text())
    assert entry["kernel_id"] == "abc-123" and entry["workspaces"] == [first.path]
    assert entry["current"] == first.path  # the only one

    second = wiz.Workspace(tmp_path / "b.db")
    assert json.loads(as_kernel.read_text())["current"] == second.path  # the latest...
    announce.announce(first.path, current=True)  # ...until one is the kernel's default
    entry = json.loads(as_kernel.read_text())
    assert entry["workspaces"] == [first.path, second.path] and entry["current"] == first.path
    assert [p.name for p in as_kernel.parent.iterdir()] == [as_kernel.name]  # no temp files

    first.close()
    assert json.loads(as_kernel.read_text())["current"] == second.path
    second.close()
    assert not as_kernel.exists()


def test_memory_workspaces_are_not_announced(as_kernel):
    wiz.Workspace(":memory:").close()
    assert not as_kernel.exists()


def test_withdraw_all(tmp_path, as_kernel):
    wiz.Workspace(tmp_path / "wiz.db")
    assert as_kernel.exists()
    announce.withdraw()
    assert not as_kernel.exists()


def test_the_server_reads_only_well_formed_entries(tmp_path):
    folder = tmp_path / "wiz-workspaces"
    folder.mkdir()
    (folder / "kernel-1.json").write_text(json.dumps({
        "version": 1, "connection_file": "/r/kernel-1.json", "pid": 7,
        "workspaces": ["/p/wiz.db", "relative.db", 3], "current": "/elsewhere.db",
    }))  # fmt: skip
    (folder / "kernel-2.json").write_text("{half")
    (folder / "kernel-3.json").write_text(json.dumps({"version": 99}))
    (entry,) = announce.read_announcements(folder)
    assert entry.workspaces == ("/p/wiz.db",) and entry.current is None and entry.pid == 7
    assert announce.read_announcements(tmp_path / "missing") == []
