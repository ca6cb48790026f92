"""A server started where no workspace exists yet, with non-default settings:
``c.WizServer.allow_unsigned_webhooks = True``, ``c.WizServer.max_webhook_body = 64``, and
``c.ServerApp.allow_unauthenticated_access = False`` (webhooks must still arrive)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

import wiz_jupyter as wiz

from .jupyter import start_jupyter


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fresh")
    server = start_jupyter(  # no WIZ_HOME: the database is <root_dir>/.wiz/wiz.db
        tmp,
        args=(
            "--WizServer.allow_unsigned_webhooks=True",
            "--WizServer.max_webhook_body=64",
            "--ServerApp.allow_unauthenticated_access=False",
        ),
    )
    yield server
    server.stop()


def test_before_the_database_exists_and_when_it_appears(jupyter, api):
    summary = api.get("wiz/api/counts").json()
    assert summary["db"] == str(jupyter.root / ".wiz" / "wiz.db")
    assert summary["exists"] is False and set(summary["counts"].values()) == {0}
    assert api.get("wiz/api/agents").json() == {"agents": []}
    assert api.get("wiz/api/jobs").json() == {"jobs": [], "limit": 50, "offset": 0, "more": False}
    assert api.get("wiz/api/schedules").json() == {"schedules": []}
    assert api.get("wiz/api/jobs/1").status_code == 404
    assert api.post("wiz/api/jobs/1/cancel").status_code == 404
    assert api.post("wiz/api/schedules/1/pause").status_code == 404
    with jupyter.client(token=False) as outsider:
        assert outsider.post("wiz/hooks/x", content=b"{}").status_code == 404
    # looking creates nothing: a JupyterLab opened anywhere leaves no .wiz/ behind
    assert not (jupyter.root / ".wiz").exists()

    created: list[wiz.Workspace] = []

    def notebook_starts() -> None:
        w = wiz.Workspace(jupyter.root / ".wiz" / "wiz.db")
        w.jobs.add("first", {})
        created.append(w)

    timer = threading.Timer(0.3, notebook_starts)
    timer.start()
    t = time.monotonic()
    token, seen = summary["token"], []
    while not seen or seen[-1]["counts"]["waiting"] == 0:  # as the sidebar does
        r = api.get("wiz/api/changes", params={"since": token, "timeout": 20}).json()
        assert r["changed"] is True
        token = r["token"]
        seen.append(r)
    timer.join()
    # the file appearing (its schema) and the job may come as one change or several
    assert time.monotonic() - t < 3
    assert seen[-1]["exists"] is True and seen[-1]["counts"]["waiting"] == 1
    created[0].close()


def test_agents_and_activity_when_the_agents_layer_has_its_tables(jupyter, api):
    ws = jupyter.workspace()
    job = ws.jobs.add("research", {"q": "why"}, agent="analyst")
    with sqlite3.connect(ws.path) as db:  # the columns DESIGN.md gives these tables
        db.execute(
            "CREATE TABLE IF NOT EXISTS agents (name TEXT PRIMARY KEY, role TEXT, goal TEXT, "
            "model TEXT, tools TEXT, settings TEXT, status TEXT)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS activity (job_id INTEGER PRIMARY KEY, agent TEXT, "
            "phase TEXT, plan TEXT, criteria TEXT, tool_calls TEXT, validation TEXT, steps INTEGER)"
        )
        db.execute(
            "INSERT INTO agents VALUES ('analyst', 'data analyst', 'answer questions', "
            "'wiz/offline', ?, ?, 'busy')",
            (json.dumps(["read_file"]), json.dumps({"temperature": 0, "api_key": "sk-secret"})),
        )
        db.execute(
            "INSERT INTO activity VALUES (?, 'analyst', 'act', ?, ?, ?, NULL, 2)",
            (
                job.id,
                json.dumps({"goal": "answer why", "steps": ["read", "summarise"]}),
                json.dumps(["cites a file"]),
                json.dumps([{"name": "read_file", "args": {"path": "a.txt"}, "result": "hi"}]),
            ),
        )
    raw = api.get("wiz/api/agents")
    assert "sk-secret" not in raw.text
    (agent,) = raw.json()["agents"]
    assert agent["name"] == "analyst" and agent["role"] == "data analyst"
    assert agent["tools"] == ["read_file"] and agent["settings"] == {"temperature": 0}
    assert agent["jobs"] == {"waiting": 1}

    detail = api.get(f"wiz/api/jobs/{job.id}").json()
    activity = detail["activity"]
    assert activity["plan"]["steps"] == ["read", "summarise"]
    assert activity["criteria"] == ["cites a file"]
    assert activity["tool_calls"][0]["name"] == "read_file"
    ws.close()


def test_unsigned_hooks_when_the_server_allows_them(jupyter):
    ws = jupyter.workspace()
    open_hook = ws.schedules.add("notify", webhook="doorbell")
    ws.schedules.add("deploy", webhook="guarded", secret="k")
    with jupyter.client(token=False) as outsider:
        r = outsider.post("wiz/hooks/doorbell", content=b'{"ring": 1}')
        assert r.status_code == 202, r.text
        assert ws.jobs.get(r.json()["jobs"][0]).data == {"payload": {"ring": 1}}
        assert [j.id for j in ws.schedules.runs(open_hook)] == r.json()["jobs"]
        # a schedule with a secret still needs its signature
        assert outsider.post("wiz/hooks/guarded", content=b"{}").status_code == 403
        # the configured limit
        assert (
            outsider.post("wiz/hooks/doorbell", content=b'"' + b"x" * 63 + b'"').status_code == 413
        )
    ws.close()
