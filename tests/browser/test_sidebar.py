"""JupyterLab in headless Chromium: the Wiz sidebar follows a notebook's jobs live.

A real JupyterLab (subprocess, token, a temp root with WIZ_HOME), the extension as
``make`` installed it, a real kernel running a notebook's cells, and the system's
Chromium driven by Playwright. A missing Chromium or a server that does not start
fails the test: nothing here is skipped.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.lab import SCREENSHOTS, browser_page, open_notebook, run_cell, start_lab

CELLS = [
    """\
import asyncio
import wiz_jupyter as wiz

ws = wiz.workspace()  # $WIZ_HOME/wiz.db: the database the sidebar shows

@ws.task
async def quick(n: int) -> int:
    return n * 2

@ws.task
async def slow() -> str:
    await asyncio.sleep(600)
    return "too late"

first = ws.jobs.add("quick", {"n": 21})
second = ws.jobs.add("slow", {})
first.id, second.id""",
    "await ws.start()",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("lab"), "demo.ipynb", CELLS)
    yield server
    server.stop()


@pytest.fixture
def chromium(lab):
    """A page in headless Chromium, and the errors its console reports."""
    with browser_page() as (page, errors):
        yield page, errors


def job(page: Page, job_id: int, status: str | None = None):
    sel = f'#wiz-sidebar li.wiz-job[data-job-id="{job_id}"]'
    if status:
        sel += f'[data-status="{status}"]'
    return page.locator(sel)


@pytest.mark.timeout(180)
def test_sidebar_follows_a_notebooks_jobs_live(lab, chromium):
    page, errors = chromium
    open_notebook(page, lab, "demo.ipynb")

    # the sidebar, from its tab in the left bar
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="wiz-sidebar"]').click()
    sidebar = page.locator("#wiz-sidebar")
    expect(sidebar).to_be_visible()
    expect(sidebar.locator(".wiz-conn")).to_have_text("live")
    expect(sidebar.locator(".wiz-db")).to_contain_text("wiz.db")

    # the notebook adds two jobs; no runtime yet, so they wait
    run_cell(page, 0)
    expect(job(page, 1, "waiting")).to_be_visible()
    expect(job(page, 2, "waiting")).to_be_visible()
    expect(sidebar.locator('.wiz-chip[data-status="waiting"]')).to_have_text("waiting 2")

    # the runtime starts in the kernel: the first completes, the second runs; no reload
    run_cell(page, 1)
    expect(job(page, 1, "completed")).to_be_visible(timeout=15_000)
    expect(job(page, 2, "active")).to_be_visible(timeout=15_000)

    # a job's detail: its events and its result
    job(page, 1).click()
    detail = sidebar.locator('.wiz-detail[data-job-id="1"]')
    expect(detail).to_be_visible()
    expect(detail.locator('li[data-event="job.completed"]')).to_have_count(1)
    expect(detail.locator(".wiz-result")).to_have_text("42")

    # cancel the long-running one from the sidebar
    job(page, 2).locator("button.wiz-cancel").click()
    expect(job(page, 2, "cancelled")).to_be_visible(timeout=10_000)
    ws = lab.workspace()
    try:
        assert ws.jobs.get(2).status == "cancelled"
        assert ws.jobs.get(1).result == 42

        # schedules: one added by another process shows up, and pauses from the sidebar
        s = ws.schedules.add("quick", {"n": 1}, every=3600, name="hourly quick")
        row = sidebar.locator(f'li.wiz-schedule[data-schedule-id="{s.id}"]')
        expect(row).to_have_attribute("data-status", "active", timeout=10_000)
        row.locator("button.wiz-pause").click()
        expect(row).to_have_attribute("data-status", "paused", timeout=10_000)
        assert ws.schedules.get(s.id).status == "paused"
    finally:
        ws.close()

    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sidebar.png"))

    # palette commands: open the sidebar, insert a chat cell for an agent
    opened = page.evaluate(
        "async () => { await window.jupyterapp.commands.execute('wiz:open-sidebar'); "
        "return window.jupyterapp.shell.currentWidget.id; }"
    )
    assert opened  # the notebook stays the current document
    page.evaluate("window.jupyterapp.commands.execute('wiz:insert-chat', {agent: 'analyst'})")
    sources = page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
                .map(c => c.model.sharedModel.getSource())"""
    )
    assert "%wiz chat analyst" in sources
    assert sources.index("%wiz chat analyst") == 2  # below the active cell (the last run)
    labels = page.evaluate(
        "() => ['wiz:open-sidebar', 'wiz:insert-chat'].map("
        "c => window.jupyterapp.commands.label(c))"
    )
    assert labels == ["Wiz: Open the Sidebar", "Wiz: Insert a Chat Cell for an Agent"]

    assert [e for e in errors if "wiz" in e.lower()] == []
