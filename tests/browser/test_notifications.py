"""JupyterLab in headless Chromium: a background job that ends becomes a notification.

``%wiz ask --background`` asks to be announced (the default for background jobs);
when the agent's job completes, JupyterLab shows a notification whose "Show job"
action opens the job in the Wiz sidebar, and the cell that submitted it shows the
widget fallback (a one-line note that says the job ended). A job that fails says
so with its error. Real JupyterLab, kernel and Chromium, as in test_sidebar.py.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.lab import SCREENSHOTS, browser_page, open_notebook, run_cell, start_lab

CELLS = [
    "%load_ext wiz_jupyter\n%wiz agent helper --role assistant",
    "%wiz ask helper --background -o job what is 6 * 7?",
    """\
import wiz_jupyter as wiz

ws = wiz.workspace()

@ws.task
async def broken() -> None:
    raise ValueError("no luck today")

bad = ws.jobs.add("broken", notify=True)
quiet = ws.jobs.add("broken")  # does not ask: no notification""",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("lab"), "notify.ipynb", CELLS)
    yield server
    server.stop()


@pytest.mark.timeout(240)
def test_a_finished_background_job_becomes_a_notification(lab):
    with browser_page() as (page, errors):
        open_notebook(page, lab, "notify.ipynb")
        toasts = page.locator(".jp-toast-message")

        run_cell(page, 0)
        run_cell(page, 1)
        done = toasts.filter(has_text="Wiz job 1 (helper: agent:helper) completed")
        expect(done).to_have_count(1, timeout=60_000)

        # the widget fallback in the cell that submitted the job says the same
        note = page.locator(".jp-Cell").nth(1).locator(".wiz-note")
        expect(note).to_have_attribute("data-status", "completed", timeout=30_000)
        expect(note).to_contain_text("job 1 (helper) completed")

        # the notification's action opens the job in the sidebar
        toast = page.locator(".Toastify__toast").filter(has=done)
        toast.get_by_role("button", name="Show job").click()
        sidebar = page.locator("#wiz-sidebar")
        expect(sidebar).to_be_visible()
        detail = sidebar.locator('.wiz-detail[data-job-id="1"]')
        expect(detail).to_be_visible(timeout=15_000)
        expect(detail.locator('li[data-event="job.completed"]')).to_have_count(1)

        # a failed job that asked: an error notification with the error; the other: none
        run_cell(page, 2)
        failed = toasts.filter(has_text="Wiz job 2 (broken) failed")
        expect(failed).to_have_count(1, timeout=30_000)
        expect(failed).to_contain_text("no luck today")
        expect(failed).to_be_in_viewport(ratio=1)  # slid in: the screenshot shows it whole
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "notification.png"))
        ws = lab.workspace()
        try:
            assert ws.jobs.get(3).status == "failed" and ws.jobs.get(3).notify is False
        finally:
            ws.close()
        expect(toasts.filter(has_text="Wiz job 3")).to_have_count(0)
    assert [e for e in errors if "wiz" in e.lower()] == []
