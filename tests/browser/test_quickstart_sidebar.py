"""Issue 18, as a user meets it: the quickstart sits in a subfolder of JupyterLab's root and
makes its own workspace (a fresh ``$WIZ_HOME`` in a temporary folder), yet the Wiz sidebar
shows that notebook's agent and jobs.

Everything goes through the UI: the notebook is opened from the file browser, its cells
run from the Run menu, a message is typed into the chat panel it shows. A missing
Chromium or a server that does not start fails the test: nothing here is skipped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.lab import SCREENSHOTS, browser_page, start_lab, wait_for_kernel

QUICKSTART = Path(__file__).parents[2] / "notebooks" / "01_quickstart.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quickstart")
    (tmp / "root" / "notebooks").mkdir(parents=True)
    shutil.copy(QUICKSTART, tmp / "root" / "notebooks" / QUICKSTART.name)
    # the server's default workspace is root/.wiz/wiz.db; the notebook's is elsewhere
    server = start_lab(tmp, None, [], own_home=False)
    yield server
    server.stop()


@pytest.mark.timeout(110)
def test_the_sidebar_shows_the_quickstarts_own_workspace(lab):
    with browser_page(height=1000) as (page, errors):
        page.goto(f"{lab.url}lab?token={lab.token}")

        # open the notebook the way a user does: double-clicks in the file browser
        listing = page.locator(".jp-FileBrowser .jp-DirListing-content")
        listing.locator(".jp-DirListing-item", has_text="notebooks").dblclick()
        listing.locator(".jp-DirListing-item", has_text=QUICKSTART.name).dblclick()
        wait_for_kernel(page)
        kernel_id = page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"
        )

        # the Wiz sidebar, before the notebook ran: the server's default workspace
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="wiz-sidebar"]').click()
        sidebar = page.locator("#wiz-sidebar")
        picker = sidebar.locator("select.wiz-workspace")
        expect(sidebar.locator(".wiz-conn")).to_have_text("live")
        expect(picker.locator("option")).to_have_count(1)
        expect(picker.locator("option")).to_have_text(".wiz/wiz.db (default)")

        # Run > Run All Cells
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
        page.locator(".lm-Menu-content").get_by_text("Run All Cells", exact=True).click()
        panel = page.locator(".wiz-chat-panel")
        expect(panel).to_be_visible(timeout=60_000)
        wait_for_kernel(page)

        # the kernel announced its workspace; the sidebar moved to it by itself
        announcement = lab.runtime / "wiz-workspaces" / f"kernel-{kernel_id}.json"
        db = json.loads(announcement.read_text())["current"]
        assert db.endswith("wiz.db") and not db.startswith(str(lab.root))
        expect(picker).to_have_attribute("data-workspace", _id_of(lab, db), timeout=15_000)
        expect(picker.locator("option:checked")).to_have_text(f"{QUICKSTART.name} · {db}")
        expect(sidebar.locator(".wiz-db")).to_contain_text("wiz.db")

        # a message typed into the chat panel, and the reply streamed back
        box = panel.locator("textarea.wiz-chat-input")
        box.fill("What is a durable job queue?")
        box.press("Enter")
        expect(panel.locator(".wiz-msg-user")).to_have_count(1)
        reply = panel.locator(".wiz-msg-agent .wiz-msg-body").first
        expect(reply).not_to_be_empty(timeout=30_000)
        try:
            expect(panel.locator(".wiz-chat-busy")).to_have_text("", timeout=30_000)
        except AssertionError as e:  # say where the reply job stands, from the server
            raise AssertionError(f"{e}\nthe helper's jobs: {_jobs_of(lab, db)}") from None
        assert _jobs_of(lab, db)[0][1] == "completed"  # the reply's job, newest first

        # the notebook's agent and jobs, in the sidebar
        agent = sidebar.locator('li.wiz-agent[data-agent="helper"]')
        expect(agent).to_be_visible(timeout=15_000)
        expect(agent).to_contain_text("research assistant")
        squares = sidebar.locator('li.wiz-job[data-status="completed"]', has_text="slow_square")
        expect(squares).to_have_count(5, timeout=15_000)
        expect(sidebar.locator('.wiz-chip[data-status="completed"]')).not_to_have_text(
            "completed 0"
        )
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "quickstart-sidebar.png"))
        sidebar.screenshot(path=str(SCREENSHOTS / "sidebar-workspace.png"))

        # the picker offers the server's default too; picking it shows that one (empty)
        picker.select_option(label=".wiz/wiz.db (default)")
        expect(sidebar.locator("li.wiz-job")).to_have_count(0)
        expect(sidebar.locator(".wiz-db")).to_contain_text("(not created yet)")
        picker.select_option(_id_of(lab, db))
        expect(squares).to_have_count(5, timeout=15_000)

    assert [e for e in errors if "wiz" in e.lower()] == []


def _jobs_of(lab, db: str) -> list:
    with lab.client() as c:
        jobs = c.get("wiz/api/jobs", params={"workspace": db, "agent": "helper"}).json()
    return [(j["id"], j["status"], j.get("error")) for j in jobs["jobs"]]


def _id_of(lab, db: str) -> str:
    with lab.client() as c:
        listed = c.get("wiz/api/workspaces").json()["workspaces"]
    return next(w["id"] for w in listed if w["path"] == db)
