"""Issue 19: model and job text never runs as script in JupyterLab, wherever it shows.

Hostile payloads (``<img onerror>``, ``<svg onload>``, ``<script>``, ``<iframe srcdoc>``,
``javascript:`` links) come back as a model's answer through ``%wiz ask`` (a trusted
output), a chat reply, a job's error on the board, an agent's role and a job's error in
the sidebar, and a failure notification. Every payload would call ``alert()`` or set
``window.__pwned``: a dialog handler records any alert, and the DOM of each place is
checked for live elements. Real JupyterLab, kernel and Chromium.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.lab import browser_page, chat_panel, open_notebook, run_cell, start_lab

PAYLOAD = (
    "<img src=x onerror=\"alert('img');window.__pwned='img'\"> "
    "<svg onload=\"alert('svg')\"></svg> <script>window.__pwned='script'</script> "
    "<iframe srcdoc=\"<script>parent.alert('iframe')</script>\"></iframe> "
    "[click](javascript:alert('link')) <b>bold?</b>"
)

CELLS = [
    f"""\
%load_ext wiz_jupyter
import wiz_jupyter as wiz

ws = wiz.workspace()
PAYLOAD = {PAYLOAD!r}
ws.agent("x", role=PAYLOAD, model=wiz.ScriptedModel([PAYLOAD] * 3))""",
    "%wiz ask x hi",
    "%wiz chat x",
    """\
@ws.task
async def hostile() -> None:
    raise ValueError(PAYLOAD)

bad = ws.jobs.add("hostile", notify=True)
ws.board()""",
]

# what a payload would leave if it were parsed as HTML (JupyterLab's own icons are svg)
LIVE = "img[src='x'], [onerror], [onload], script, iframe, a[href^='javascript' i]"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("hostile"), "hostile.ipynb", CELLS)
    yield server
    server.stop()


@pytest.mark.timeout(240)
def test_hostile_text_shows_as_text_everywhere(lab):
    with browser_page(height=1100) as (page, _errors):
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        open_notebook(page, lab, "hostile.ipynb")
        cells = page.locator(".jp-Notebook .jp-Cell")

        # %wiz ask: a trusted output of the answer
        run_cell(page, 0)
        run_cell(page, 1)
        answer = cells.nth(1).locator(".jp-OutputArea-output .wiz-answer")
        expect(answer).to_contain_text("onerror", timeout=60_000)
        expect(answer).to_contain_text("<b>bold?</b>")
        assert answer.locator(f"{LIVE}, img, svg").count() == 0
        expect(answer.locator("a", has_text="click")).to_have_attribute("href", "#blocked")
        answer.locator("a", has_text="click").click()  # a blocked link goes nowhere

        # the chat panel's reply
        run_cell(page, 2)
        panel, box = chat_panel(page)
        box.fill("hello")
        box.press("Enter")
        reply = panel.locator(".wiz-msg-agent .wiz-msg-body").first
        expect(reply).to_contain_text("onerror", timeout=30_000)
        assert reply.locator(LIVE).count() == 0

        # the board: the failed job's error; and its failure notification
        run_cell(page, 3)
        board = page.locator(".wiz-board")
        expect(board).to_be_visible(timeout=30_000)
        row = board.locator("tr.wiz-row.wiz-row-failed")
        expect(row).to_have_count(1, timeout=30_000)
        assert board.locator(LIVE).count() == 0
        toast = page.locator(".jp-toast-message").filter(has_text="failed")
        expect(toast).to_have_count(1, timeout=30_000)
        expect(toast).to_contain_text("onerror")
        assert page.locator(".Toastify").locator(LIVE).count() == 0

        # the sidebar: the agent's role, the job and its error
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="wiz-sidebar"]').click()
        sidebar = page.locator("#wiz-sidebar")
        agent = sidebar.locator('li.wiz-agent[data-agent="x"]')
        expect(agent).to_contain_text("onerror", timeout=30_000)
        job = sidebar.locator('li.wiz-job[data-status="failed"]').first
        expect(job).to_be_visible(timeout=15_000)
        job.click()
        detail = sidebar.locator(".wiz-detail")
        expect(detail).to_contain_text("onerror", timeout=15_000)
        assert sidebar.locator(LIVE).count() == 0

        page.wait_for_timeout(500)  # an image error or a frame load would have fired by now
        assert dialogs == [], dialogs
        assert page.evaluate("() => window.__pwned") is None
