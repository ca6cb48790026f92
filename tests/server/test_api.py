"""The REST API under /wiz/api/: reads, filters, paging, actions, long-poll, auth."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

GETS = ["counts", "changes", "agents", "jobs", "jobs/1", "schedules", "schedules/1"]
POSTS = ["jobs/1/cancel", "jobs/1/retry", "jobs/1/priority", "schedules/1/pause",
         "schedules/1/resume", "jobs/1/approve", "jobs/1/deny", "jobs/1/answer"]  # fmt: skip


def ids(page: dict) -> list[int]:
    return [j["id"] for j in page["jobs"]]


def test_counts_and_job_list(api, ws):
    a = ws.jobs.add("ingest", {"n": 1})
    b = ws.jobs.add("ingest", {"n": 2}, priority=3)
    c = ws.jobs.add("report", {}, agent="analyst")
    ws.jobs.cancel(b)

    counts = api.get("wiz/api/counts").json()
    assert counts["db"] == str(ws.path) and counts["exists"] is True
    assert counts["counts"]["waiting"] >= 2 and counts["counts"]["cancelled"] >= 1
    assert counts["paused"] is False and counts["token"]

    page = api.get("wiz/api/jobs").json()
    assert ids(page)[:3] == [c.id, b.id, a.id]  # newest first
    row = page["jobs"][0]
    assert row["task"] == "report" and row["agent"] == "analyst" and row["status"] == "waiting"
    assert "data" not in row and "lease_owner" not in row  # the detail has the rest

    assert ids(api.get("wiz/api/jobs", params={"task": "ingest"}).json()) == [b.id, a.id]
    assert ids(api.get("wiz/api/jobs", params={"agent": "analyst"}).json()) == [c.id]
    assert ids(
        api.get("wiz/api/jobs", params={"status": "cancelled", "task": "ingest"}).json()
    ) == [b.id]
    both = api.get("wiz/api/jobs", params={"status": "waiting,cancelled", "task": "ingest"}).json()
    assert ids(both) == [b.id, a.id]

    first = api.get("wiz/api/jobs", params={"task": "ingest", "limit": 1}).json()
    assert ids(first) == [b.id] and first["more"] is True and first["limit"] == 1
    second = api.get("wiz/api/jobs", params={"task": "ingest", "limit": 1, "offset": 1}).json()
    assert ids(second) == [a.id] and second["more"] is False


@pytest.mark.parametrize(
    "params",
    [{"status": "finished"}, {"limit": "0"}, {"limit": "many"}, {"limit": "501"}, {"offset": "-1"}],
)
def test_bad_list_arguments_are_400(api, params):
    r = api.get("wiz/api/jobs", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["message"]


def test_job_detail_has_events(api, ws):
    job = ws.jobs.add("ingest", {"path": "data.csv"}, priority=2)
    ws.jobs.set_priority(job, 4)
    ws.jobs.log(job.id, "reading data.csv")
    d = api.get(f"wiz/api/jobs/{job.id}").json()
    assert d["job"]["id"] == job.id and d["job"]["data"] == {"path": "data.csv"}
    assert d["job"]["priority"] == 4 and "lease_owner" not in d["job"]
    assert [e["event"] for e in d["events"]] == ["job.added", "job.priority", "job.log"]
    assert d["events"][2]["data"] == {"line": "reading data.csv"}
    assert d["activity"] is None  # no agents layer tables in this database
    assert d["notebook"] is None  # not a notebook job

    r = api.get("wiz/api/jobs/999999")
    assert r.status_code == 404 and "999999" in r.json()["message"]


def test_non_finite_results_stay_valid_json(api, ws):
    job = ws.jobs.add("measure", {})
    with ws.store.write() as c:  # what a handler returning float("nan") leaves in the row
        c.execute(
            "UPDATE jobs SET status = 'completed', result = ? WHERE id = ?",
            ('{"mean": NaN, "max": Infinity}', job.id),
        )
    r = api.get(f"wiz/api/jobs/{job.id}")
    assert r.json()["job"]["result"] == {"mean": "nan", "max": "inf"}


def test_cancel_retry_and_priority(api, ws):
    job = ws.jobs.add("ingest", {})

    r = api.post(f"wiz/api/jobs/{job.id}/priority", json={"priority": 7})
    assert r.status_code == 200 and r.json()["job"]["priority"] == 7
    assert ws.jobs.get(job.id).priority == 7
    for bad in ({"priority": "high"}, {"priority": 1.5}, {"priority": True}, {}):
        assert api.post(f"wiz/api/jobs/{job.id}/priority", json=bad).status_code == 400
    assert api.post(f"wiz/api/jobs/{job.id}/priority", content=b"{not json").status_code == 400

    r = api.post(f"wiz/api/jobs/{job.id}/retry")
    assert r.status_code == 409 and "only failed or cancelled" in r.json()["message"]

    r = api.post(f"wiz/api/jobs/{job.id}/cancel")
    assert r.status_code == 200
    assert r.json()["cancelled"] is True and r.json()["job"]["status"] == "cancelled"
    assert ws.jobs.get(job.id).status == "cancelled"
    assert api.post(f"wiz/api/jobs/{job.id}/cancel").json()["cancelled"] is False
    assert api.post(f"wiz/api/jobs/{job.id}/priority", json={"priority": 1}).status_code == 409

    r = api.post(f"wiz/api/jobs/{job.id}/retry")
    assert r.status_code == 200 and r.json()["job"]["status"] == "waiting"
    assert ws.jobs.get(job.id).status == "waiting"

    for action in ("cancel", "retry", "priority"):
        r = api.post(f"wiz/api/jobs/999999/{action}", json={"priority": 1})
        assert r.status_code == 404, action


def test_schedules_never_show_a_secret(api, ws):
    hook = ws.schedules.add("deploy", webhook="deploy-hook", secret="s3cret-value")
    every = ws.schedules.add("refresh", {"full": True}, every=300)

    raw = api.get("wiz/api/schedules")
    assert "s3cret-value" not in raw.text
    by_id = {s["id"]: s for s in raw.json()["schedules"]}
    assert by_id[hook.id]["kind"] == "webhook" and by_id[hook.id]["trigger"]["signed"] is True
    assert "secret" not in by_id[hook.id]["trigger"]
    assert by_id[every.id]["template"] == {"task": "refresh", "data": {"full": True}, "options": {}}
    assert by_id[every.id]["status"] == "active" and by_id[every.id]["next_run"]

    one = api.get(f"wiz/api/schedules/{hook.id}")
    assert "s3cret-value" not in one.text
    assert one.json()["name"] == hook.name and one.json()["runs"] == []
    fired = ws.schedules.fire(every)
    runs = api.get(f"wiz/api/schedules/{every.id}").json()["runs"]
    assert runs[0]["job_id"] == fired.id and runs[0]["reason"] == "manual"
    assert api.get("wiz/api/schedules/999999").status_code == 404


def test_pause_and_resume_a_schedule(api, ws):
    s = ws.schedules.add("refresh", every=60, name="refresh every minute")
    r = api.post(f"wiz/api/schedules/{s.id}/pause")
    assert r.status_code == 200 and r.json()["schedule"]["status"] == "paused"
    assert ws.schedules.get(s.id).status == "paused"
    r = api.post(f"wiz/api/schedules/{s.id}/resume")
    assert r.status_code == 200 and r.json()["schedule"]["status"] == "active"
    assert ws.schedules.get(s.id).status == "active"
    assert api.post("wiz/api/schedules/999999/pause").status_code == 404


def test_agents_without_the_agents_table_is_empty(api):
    assert api.get("wiz/api/agents").json() == {"agents": []}


def test_changes_answers_at_once_without_a_token(api):
    t = time.monotonic()
    r = api.get("wiz/api/changes", params={"timeout": 10}).json()
    assert time.monotonic() - t < 2
    assert r["changed"] is True and r["token"] and "waiting" in r["counts"]


def test_changes_waits_for_the_timeout_when_nothing_changes(api):
    token = api.get("wiz/api/counts").json()["token"]
    t = time.monotonic()
    r = api.get("wiz/api/changes", params={"since": token, "timeout": 1}).json()
    took = time.monotonic() - t
    assert r["changed"] is False and r["token"] == token
    assert 0.9 < took < 3


def test_changes_wakes_when_another_process_commits(api, ws):
    before = api.get("wiz/api/counts").json()
    timer = threading.Timer(0.3, lambda: ws.jobs.add("ingest", {"late": True}))
    timer.start()
    t = time.monotonic()
    r = api.get("wiz/api/changes", params={"since": before["token"], "timeout": 20}).json()
    took = time.monotonic() - t
    timer.join()
    assert r["changed"] is True and r["token"] != before["token"]
    assert r["counts"]["waiting"] == before["counts"]["waiting"] + 1
    assert took < 2, f"the long-poll took {took:.2f} s to notice the change"


def test_changes_bad_timeout_is_400(api):
    assert api.get("wiz/api/changes", params={"timeout": "soon"}).status_code == 400


@pytest.mark.parametrize("path", GETS)
def test_reads_need_a_token(jupyter, path):
    with jupyter.client(token=False) as anonymous:
        assert anonymous.get(f"wiz/api/{path}").status_code == 403
    with httpx.Client(base_url=jupyter.url, headers={"Authorization": "token wrong"}) as bad:
        assert bad.get(f"wiz/api/{path}").status_code == 403


@pytest.mark.parametrize("path", POSTS)
def test_actions_need_a_token(jupyter, ws, path):
    ws.jobs.add("ingest", {})  # so job 1 exists: the refusal is about auth, not a 404
    with jupyter.client(token=False) as anonymous:
        assert anonymous.post(f"wiz/api/{path}", json={"priority": 1}).status_code == 403


def test_cookie_session_needs_the_xsrf_token_to_act(jupyter, ws):
    job = ws.jobs.add("ingest", {})
    with jupyter.client(token=False) as browser:
        # a token in the URL logs the browser in: from then on the cookie authenticates
        assert browser.get("lab", params={"token": jupyter.token}).status_code == 200
        assert any(name.startswith("username-") for name in browser.cookies)
        assert browser.get("wiz/api/counts").status_code == 200  # reads work with the cookie

        r = browser.post(f"wiz/api/jobs/{job.id}/cancel")
        assert r.status_code == 403 and "xsrf" in r.text.lower()
        assert ws.jobs.get(job.id).status == "waiting"

        xsrf = browser.cookies.get("_xsrf")
        assert xsrf, "JupyterLab's page sets the _xsrf cookie"
        r = browser.post(f"wiz/api/jobs/{job.id}/cancel", headers={"X-XSRFToken": xsrf})
        assert r.status_code == 200 and r.json()["cancelled"] is True


def test_unknown_api_path_is_404(api):
    assert api.get("wiz/api/nothing-here").status_code == 404
    assert api.post("wiz/api/jobs/1/explode").status_code == 404
