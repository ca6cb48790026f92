"""The chat panel and the job board in a real JupyterLab, driven in headless Chromium.

A reply streams into the ChatPanel; a model reply with <script> or <img onerror>
shows as text and runs nothing; the JobBoard shows jobs change status live and
its cancel button cancels a running job. Screenshots of both widgets are saved.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.lab import (
    SCREENSHOTS,
    browser_page,
    chat_panel,
    open_notebook,
    run_cell,
    start_lab,
)

CELLS = [
    """\
%load_ext wiz_jupyter
import asyncio
import wiz_jupyter as wiz

ws = wiz.workspace()
story = "Hello **there**, friend. " + " ".join(f"word{i}" for i in range(60))
evil = '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> still text'
model = wiz.ScriptedModel([story, evil])
ws.agent("helper", role="assistant", model=model)""",
    "%wiz chat helper",
    """\
@ws.task
async def quick(n: int) -> int:
    await asyncio.sleep(1.5)
    return n

@ws.task
async def slow() -> None:
    await asyncio.sleep(600)

q = ws.jobs.add("quick", {"n": 7})
s = ws.jobs.add("slow")
ws.board()""",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("widgets"), "widgets.ipynb", CELLS)
    yield server
    server.stop()


@pytest.mark.timeout(240)
def test_chat_streams_escapes_html_and_the_board_cancels(lab):
    with browser_page(height=1000) as (page, _errors):
        open_notebook(page, lab, "widgets.ipynb")
        run_cell(page, 0)
        run_cell(page, 1)
        panel, box = chat_panel(page)

        # a reply streams in: partial text first, then the whole message, markdown rendered
        box.fill("Tell me a story")
        box.press("Enter")
        expect(panel.locator(".wiz-msg-user")).to_have_count(1)
        reply = panel.locator(".wiz-msg-agent .wiz-msg-body").first
        expect(reply).to_contain_text("word59", timeout=30_000)
        expect(reply.locator("strong")).to_have_text("there")
        expect(panel.locator(".wiz-chat-busy")).to_have_text("")

        # a reply with markup shows as text and runs nothing
        box.fill("Now something dangerous")
        box.press("Enter")
        evil = panel.locator(".wiz-msg-agent .wiz-msg-body").nth(1)
        expect(evil).to_contain_text("<script>window.__pwned = 1</script>", timeout=30_000)
        expect(evil).to_contain_text("onerror")
        assert evil.locator("script, img").count() == 0
        assert page.evaluate("() => window.__pwned") is None
        SCREENSHOTS.mkdir(exist_ok=True)
        panel.screenshot(path=str(SCREENSHOTS / "chat.png"))

        # the board: quick goes waiting/active -> completed live; cancel the slow one
        run_cell(page, 2)
        board = page.locator(".wiz-board")
        expect(board).to_be_visible(timeout=30_000)
        quick = board.locator("tr.wiz-row[data-job-id='3']")
        slow = board.locator("tr.wiz-row[data-job-id='4']")
        expect(quick).to_have_class("wiz-row wiz-row-active", timeout=15_000)
        expect(quick).to_have_class("wiz-row wiz-row-completed", timeout=15_000)
        expect(slow).to_have_class("wiz-row wiz-row-active", timeout=15_000)
        # the duration ticks each second in place: the row and its buttons stay the same
        # elements (a row replaced under the pointer loses the click being made on it)
        button = ".wiz-board tr[data-job-id='4'] button.wiz-cancel"
        page.evaluate(f"() => {{ document.querySelector({button!r}).wizMark = 1; }}")
        took = slow.locator(".wiz-duration").inner_text()
        expect(slow.locator(".wiz-duration")).not_to_have_text(took, timeout=5_000)
        assert page.evaluate(f"() => document.querySelector({button!r}).wizMark") == 1
        slow.locator("button.wiz-cancel").click()
        expect(slow).to_have_class("wiz-row wiz-row-cancelled", timeout=15_000)
        expect(board.locator("button.wiz-count[data-status='cancelled']")).to_have_text(
            "cancelled 1"
        )
        board.screenshot(path=str(SCREENSHOTS / "board.png"))
    ws = lab.workspace()
    try:
        assert ws.jobs.get(4).status == "cancelled"
        assert ws.jobs.get(3).result == 7
    finally:
        ws.close()
