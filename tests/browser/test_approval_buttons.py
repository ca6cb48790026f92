"""Approvals and questions in a real JupyterLab, driven in headless Chromium.

The sidebar shows a job awaiting approval with the tool's name and arguments (the
model's text, hostile HTML included, shown as text); *Approve* runs it to completed and
*Deny* (with its reason) hands the reason to the model; both go through the REST API
while the notebook's kernel runs the jobs. In the chat panel, a reply that waits shows
*Approve* and, for ``ask_user``, a reply box that answers it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.lab import (
    SCREENSHOTS,
    browser_page,
    chat_panel,
    open_notebook,
    run_cell,
    start_lab,
)

EVIL = '<img src=x onerror="window.__pwned = 1">'
CELLS = [
    f"""\
%load_ext wiz_jupyter
import wiz_jupyter as wiz

ws = wiz.workspace()  # $WIZ_HOME/wiz.db: the database the sidebar shows
EVIL = {EVIL!r}
clerk = ws.agent("clerk", tools=["write_file"], model=wiz.ScriptedModel(
    [wiz.ToolCall("write_file", {{"path": "a.txt", "content": EVIL}}), "wrote a.txt"]))
careful = ws.agent("careful", tools=["write_file"], model=wiz.ScriptedModel(
    [wiz.ToolCall("write_file", {{"path": "b.txt", "content": "b"}}), "ok, I won't"]))
ws.agent("writer", tools=["write_file", "ask_user"])  # the offline model
await ws.start()""",
    """a = clerk.submit("ask", "write a.txt")
b = careful.submit("ask", "write b.txt")
c = ws.agent("curious", tools=["ask_user"]).submit("ask", "use ask_user with question='Which colour?'")
a.id, b.id, c.id""",
    "%wiz chat writer",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("approvals"), "approvals.ipynb", CELLS)
    yield server
    server.stop()


def job_of(page: Page, agent: str):
    """The sidebar's row of ``agent``'s job (each agent here has one)."""
    return page.locator("#wiz-sidebar li.wiz-job").filter(
        has=page.locator(".wiz-muted", has_text=f"· {agent}")
    )


@pytest.mark.timeout(240)
def test_the_sidebar_approves_and_denies_a_tool_call_shown_as_text(lab):
    with browser_page() as (page, errors):
        open_notebook(page, lab, "approvals.ipynb")
        run_cell(page, 0)
        run_cell(page, 1)
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="wiz-sidebar"]').click()
        sidebar = page.locator("#wiz-sidebar")
        expect(sidebar.locator(".wiz-conn")).to_have_text("live")

        # both jobs park; each row says which tool, with which arguments, as text
        approved, denied, asked = (job_of(page, a) for a in ("clerk", "careful", "curious"))
        for row in (approved, denied, asked):
            expect(row).to_have_attribute("data-status", "awaiting_input", timeout=30_000)
        ids = [int(row.get_attribute("data-job-id")) for row in (approved, denied, asked)]
        expect(sidebar.locator('.wiz-chip[data-status="awaiting_input"]')).to_have_text(
            "awaiting_input 3"
        )
        ask = approved.locator(".wiz-ask")
        expect(ask.locator(".wiz-ask-tool")).to_have_text("write_file")
        args = ask.locator(".wiz-ask-args")
        expect(args).to_contain_text('"path": "a.txt"')
        expect(args).to_contain_text('<img src=x onerror=\\"window.__pwned = 1\\">')
        assert sidebar.locator("img").count() == 0
        SCREENSHOTS.mkdir(exist_ok=True)
        sidebar.screenshot(path=str(SCREENSHOTS / "sidebar-approval.png"))

        # Deny needs a reason
        denied.locator("button.wiz-deny").click()
        expect(denied.locator(".wiz-ask-error")).to_have_text(
            "say why first: the agent reads the reason"
        )
        expect(denied).to_have_attribute("data-status", "awaiting_input")
        reason = denied.locator("input.wiz-ask-reason")
        reason.fill("not that file")

        # Approve: the kernel's runtime picks the job up again; it runs the tool once
        ask.locator("button.wiz-approve").click()
        expect(approved).to_have_attribute("data-status", "completed", timeout=30_000)
        expect(approved.locator(".wiz-ask")).to_have_count(0)

        # the list was redrawn meanwhile: the reason typed is still there; the model reads
        # it and goes on without the file
        expect(reason).to_have_value("not that file")
        denied.locator("button.wiz-deny").click()
        expect(denied).to_have_attribute("data-status", "completed", timeout=30_000)

        # a question: its reply box answers it
        expect(asked.locator(".wiz-ask-question")).to_have_text("Which colour?")
        asked.locator("textarea.wiz-ask-answer").fill("teal")
        asked.locator("textarea.wiz-ask-answer").press("Enter")
        expect(asked).to_have_attribute("data-status", "completed", timeout=30_000)
        assert page.evaluate("() => window.__pwned") is None
        assert [e for e in errors if "wiz" in e.lower()] == []

    ws = lab.workspace()
    try:
        first, second, third = (ws.jobs.get(i) for i in ids)
        assert first.result == "wrote a.txt" and first.input["reply"]["approved"] is True
        assert [e["event"] for e in first.events()].count("job.approved") == 1
        assert (Path(ws.agents.get("clerk").folder) / "a.txt").read_text() == EVIL
        assert second.result == "ok, I won't"
        assert second.input["reply"] == {
            "approved": False,
            "reason": "not that file",
            "at": second.input["reply"]["at"],
        }
        assert not (Path(ws.agents.get("careful").folder) / "b.txt").exists()
        assert third.input["reply"]["answer"] == "teal" and "teal" in third.result
    finally:
        ws.close()


@pytest.mark.timeout(240)
def test_the_chat_panel_approves_and_answers_from_its_reply_box(lab):
    with browser_page(height=1000) as (page, _errors):
        open_notebook(page, lab, "approvals.ipynb")
        run_cell(page, 0)
        run_cell(page, 2)
        panel, box = chat_panel(page)

        # a tool call to approve: the note names it, with its arguments, and Approve runs it
        box.fill("use write_file with path=c.txt content=<b>bold</b>")
        box.press("Enter")
        note = panel.locator(".wiz-msg-input").first
        expect(note.locator(".wiz-ask-tool")).to_have_text("write_file", timeout=30_000)
        expect(note.locator(".wiz-ask-args")).to_contain_text('"path": "c.txt"')
        expect(note.locator(".wiz-ask-args")).to_contain_text('"content": "<b>bold</b>"')
        expect(note.locator(".wiz-msg-body")).to_contain_text("content='<b>bold</b>'")
        assert note.locator("b").count() == 0  # the model's markup is text here
        expect(panel.locator(".wiz-chat-busy")).to_have_text("")  # waiting for you
        note.locator("button.wiz-approve").click()
        expect(note.locator(".wiz-ask-status")).to_have_text("approved")
        expect(note.locator("button.wiz-approve")).to_be_hidden()
        expect(panel.locator(".wiz-msg-agent").last).to_contain_text(
            "wrote 11 characters", timeout=30_000
        )

        # a question: the reply box answers it, and the agent goes on with the answer
        box.fill("use ask_user with question='Which year?'")
        box.press("Enter")
        question = panel.locator(".wiz-msg-input").nth(1)
        expect(question.locator(".wiz-ask-question")).to_have_text("Which year?", timeout=30_000)
        reply = question.locator("textarea.wiz-ask-answer")
        reply.fill("2024")
        SCREENSHOTS.mkdir(exist_ok=True)
        panel.screenshot(path=str(SCREENSHOTS / "chat-approval.png"))
        reply.press("Enter")
        expect(question.locator(".wiz-ask-status")).to_have_text("answered: 2024")
        expect(panel.locator(".wiz-msg-agent").last).to_contain_text("2024", timeout=30_000)

    ws = lab.workspace()
    try:
        writer = [j for j in ws.jobs.list(agent="writer") if j.status == "completed"]
        assert len(writer) == 2
        assert (Path(ws.agents.get("writer").folder) / "c.txt").read_text() == "<b>bold</b>"
        assert writer[1].input["reply"]["answer"] == "2024"
    finally:
        ws.close()
