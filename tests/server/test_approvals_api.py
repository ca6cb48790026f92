"""Approvals over the REST API: POST /wiz/api/jobs/ID/approve|deny|answer, authenticated
like every action; the notebook's process (here, the test's) resumes the job."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import reach


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.delenv("WIZ_MODEL", raising=False)


async def park(ws, clerk, prompt):
    job = clerk.submit("ask", prompt)
    await ws.start()
    await reach(ws, job, "awaiting_input", timeout=10)
    return job


async def test_approve_deny_and_answer_over_rest(jupyter, api, ws):
    clerk = ws.agent("clerk", tools=["write_file", "ask_user"])
    job = await park(ws, clerk, "use write_file with path=r.txt content=rest")
    listed = (
        await asyncio.to_thread(api.get, "wiz/api/jobs", params={"status": "awaiting_input"})
    ).json()
    [row] = [r for r in listed["jobs"] if r["id"] == job.id]
    assert row["input"]["request"]["tool"] == "write_file"
    assert row["input"]["request"]["args"] == {"path": "r.txt", "content": "rest"}

    with jupyter.client(token=False) as anonymous:
        refused = await asyncio.to_thread(anonymous.post, f"wiz/api/jobs/{job.id}/approve")
    assert refused.status_code == 403 and ws.jobs.get(job.id).status == "awaiting_input"

    r = await asyncio.to_thread(api.post, f"wiz/api/jobs/{job.id}/approve")
    assert r.status_code == 200 and r.json()["job"]["status"] == "waiting"
    again = await asyncio.to_thread(api.post, f"wiz/api/jobs/{job.id}/approve")
    assert again.status_code == 409
    assert again.json()["message"].startswith(f"job {job.id} is not awaiting input")
    assert "wrote 4 characters" in await job.wait(timeout=10)
    assert (clerk.folder / "r.txt").read_text() == "rest"

    job = await park(ws, clerk, "use write_file with path=no.txt content=x")
    bad = await asyncio.to_thread(api.post, f"wiz/api/jobs/{job.id}/deny", json={})
    assert bad.status_code == 400 and "reason" in bad.json()["message"]
    r = await asyncio.to_thread(api.post, f"wiz/api/jobs/{job.id}/deny", json={"reason": "no x"})
    assert r.status_code == 200
    assert "no x" in await job.wait(timeout=10) and not (clerk.folder / "no.txt").exists()

    job = await park(ws, clerk, "use ask_user with question='what now?'")
    wrong = await asyncio.to_thread(api.post, f"wiz/api/jobs/{job.id}/approve")
    assert wrong.status_code == 409
    r = await asyncio.to_thread(api.post, f"wiz/api/jobs/{job.id}/answer", json={"text": "stop"})
    assert r.status_code == 200 and "stop" in await job.wait(timeout=10)
    assert (await asyncio.to_thread(api.post, "wiz/api/jobs/999999/approve")).status_code == 404
    await ws.stop()
