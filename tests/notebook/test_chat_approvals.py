"""The chat panel's side of approvals and questions: a reply job that waits for a person
shows as an input note with what it asks (the tool and its arguments, or the question),
and the note's *Approve*, *Deny* and *Answer* (the panel's ``_reply`` command) go to
``ws.jobs.approve/deny/answer``; the job goes on and the note says how it was replied."""

from __future__ import annotations

import asyncio

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from tests.conftest import reach
from wiz_jupyter.agents import ScriptedModel
from wiz_jupyter.notebook import provenance

pytestmark = LITELLM_NOISE


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.delenv("WIZ_MODEL", raising=False)
    yield
    # the kernel's record of answers shown is per process, by job id: these workspaces'
    # job 1 is not the next test's
    provenance._session.clear()


def panel_of(ws, agent):
    panel = ws.chat_panel(agent)
    sent: list[dict] = []
    panel.send = lambda msg, buffers=None: sent.append(msg)
    return panel, sent


async def parked(ws, panel, text):
    panel._on_front_end(panel, {"type": "send", "text": text}, None)
    job = ws.jobs.list(agent=panel.agent)[-1]
    await reach(ws, job, "awaiting_input", timeout=10)
    return job


def notes(sent):
    return [
        m["message"] for m in sent if m["type"] == "message" and m["message"]["role"] == "input"
    ]


async def test_approve_from_the_note_runs_the_tool_once_and_the_note_says_approved(ws):
    clerk = ws.agent("clerk", tools=["write_file"])
    panel, sent = panel_of(ws, "clerk")
    await ws.start()
    job = await parked(ws, panel, "use write_file with path=p.txt content=<b>hi</b>")
    [note] = notes(sent)
    assert note["job_id"] == job.id
    assert note["asks"] == {
        "kind": "approval",
        "tool": "write_file",
        "args": {"path": "p.txt", "content": "<b>hi</b>"},
        "live": True,
    }
    assert not panel.busy  # waiting for a person is not thinking
    assert panel._reply({"action": "approve", "id": job.id}, []) == (
        {"ok": True, "reply": "approved"},
        [],
    )
    assert {"type": "replied", "job": job.id, "reply": "approved"} in sent
    assert panel.busy
    assert "wrote 9 characters" in await job.wait(timeout=10)
    await asyncio.sleep(0.05)
    assert not panel.busy and (clerk.folder / "p.txt").read_text() == "<b>hi</b>"
    again, _ = panel._reply({"action": "approve", "id": job.id}, [])
    assert again["error"] == f"job {job.id} is not awaiting input (it is completed)"
    assert [e["event"] for e in job.events()].count("job.approved") == 1

    # a panel opened later: the note with what it asked, no longer live, and how it ended
    later, later_sent = panel_of(ws, "clerk")
    later.chat = panel.chat
    later._on_front_end(later, {"type": "ready"}, None)
    [old] = [m for m in later_sent[-1]["messages"] if m["role"] == "input"]
    assert old["asks"]["live"] is False and old["asks"]["reply"] == "approved"
    assert old["asks"]["tool"] == "write_file"
    # the saved widget state keeps the note as text only: no live controls in a saved file
    assert all("asks" not in m for m in panel.transcript)
    for p in (panel, later):
        p.close()


async def test_deny_needs_a_reason_and_hands_it_to_the_model(ws):
    model = ScriptedModel(
        [wiz.ToolCall("write_file", {"path": "a.txt", "content": "x"}), "ok, I won't"]
    )
    clerk = ws.agent("clerk", model=model, tools=["write_file"])
    panel, sent = panel_of(ws, "clerk")
    await ws.start()
    job = await parked(ws, panel, "write a.txt")
    empty, _ = panel._reply({"action": "deny", "id": job.id, "reason": "  "}, [])
    assert "a reason is needed" in empty["error"] and job.status == "awaiting_input"
    answer, _ = panel._reply({"action": "deny", "id": job.id, "reason": "not there"}, [])
    assert answer == {"ok": True, "reply": "denied: not there"}
    assert {"type": "replied", "job": job.id, "reply": "denied: not there"} in sent
    assert await job.wait(timeout=10) == "ok, I won't"
    assert not (clerk.folder / "a.txt").exists()
    panel.close()


async def test_a_question_is_answered_from_the_reply_box(ws):
    ws.agent("clerk", tools=["ask_user"])
    panel, sent = panel_of(ws, "clerk")
    await ws.start()
    job = await parked(ws, panel, "use ask_user with question='which year?'")
    [note] = notes(sent)
    assert note["asks"] == {"kind": "question", "question": "which year?", "live": True}
    wrong, _ = panel._reply({"action": "approve", "id": job.id}, [])
    assert wrong["error"].startswith(f"job {job.id} asks a question, not for approval")
    assert panel._reply({"action": "answer", "id": job.id, "text": "2024"}, [])[0] == {
        "ok": True,
        "reply": "answered: 2024",
    }
    assert "2024" in await job.wait(timeout=10)
    panel.close()


async def test_replies_elsewhere_update_the_note_and_foreign_jobs_are_refused(ws):
    ws.agent("clerk", tools=["write_file"])
    panel, sent = panel_of(ws, "clerk")
    other = ws.chat("clerk")  # another conversation with the same agent
    await ws.start()
    job = await parked(ws, panel, "use write_file with path=q.txt content=q")
    foreign = other.send("use write_file with path=r.txt content=r")
    await reach(ws, foreign, "awaiting_input", timeout=10)
    refused, _ = panel._reply({"action": "approve", "id": foreign.id}, [])
    assert refused["error"] == f"job {foreign.id} is not a reply in this chat"
    assert foreign.status == "awaiting_input"
    assert "unknown reply" in panel._reply({"action": "cancel", "id": job.id}, [])[0]["error"]
    ws.jobs.set_priority(job, 3)  # still waiting: the note stays live
    assert [m for m in sent if m["type"] == "replied"] == []

    ws.jobs.deny(job, "from a cell")  # %wiz deny, or the sidebar through this runtime
    assert {"type": "replied", "job": job.id, "reply": "denied: from a cell"} in sent
    await job.wait(timeout=10)
    ws.jobs.approve(foreign)
    await foreign.wait(timeout=10)
    assert [m["job"] for m in sent if m["type"] == "replied"] == [job.id]
    panel.close()
