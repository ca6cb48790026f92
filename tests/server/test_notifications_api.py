"""``GET /wiz/api/notifications``: the ends of jobs that asked to be announced."""

from __future__ import annotations

import asyncio


def test_notifications_follow_a_cursor_and_start_from_now(api, ws):
    @ws.task
    def double(n: int) -> int:
        return 2 * n

    early = ws.jobs.add("double", {"n": 0}, notify=True)
    asyncio.run(ws.run_until_idle(timeout=10))
    start = api.get("wiz/api/notifications").json()
    assert start["notifications"] == [] and start["cursor"] > 0  # not the early job's news

    ws.jobs.add("double", {"n": 1})  # does not ask
    loud = ws.jobs.add("double", {"n": 2}, notify=True)
    asyncio.run(ws.run_until_idle(timeout=10))
    got = api.get("wiz/api/notifications", params={"after": start["cursor"]}).json()
    assert [n["job_id"] for n in got["notifications"]] == [loud.id]
    note = got["notifications"][0]
    assert note["status"] == "completed" and note["task"] == "double" and note["error"] is None
    assert got["cursor"] > start["cursor"]
    again = api.get("wiz/api/notifications", params={"after": got["cursor"]}).json()
    assert again["notifications"] == []

    rows = {j["id"]: j for j in api.get("wiz/api/jobs").json()["jobs"]}
    assert rows[loud.id]["notify"] == 1 and rows[early.id]["notify"] == 1
    assert rows[loud.id - 1]["notify"] == 0

    r = api.get("wiz/api/notifications", params={"after": "soon"})
    assert r.status_code == 400 and "after" in r.json()["message"]
