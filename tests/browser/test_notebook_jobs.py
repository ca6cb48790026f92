"""JupyterLab in headless Chromium: a notebook job's executed copy opens from the Wiz
sidebar and from the job board (real JupyterLab, real kernels, system Chromium)."""

from __future__ import annotations

import nbformat
import pytest
from playwright.sync_api import expect

from tests.browser.lab import browser_page, open_notebook, run_cell, start_lab

CELLS = [
    """\
import wiz_jupyter as wiz

ws = wiz.workspace()  # root/.wiz/wiz.db: runs go to root/wiz-runs, which JupyterLab opens
job = ws.jobs.add_notebook("inner.ipynb", {"x": 21})
await ws.start()
result = await job.wait(timeout=120)
result["notebook"]""",
    "ws.board()",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab-nb")
    server = start_lab(tmp, "outer.ipynb", CELLS, own_home=False)
    inner = nbformat.v4.new_notebook()
    inner.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    inner.cells = [params, nbformat.v4.new_code_cell("print('doubled', x * 2)")]
    nbformat.write(inner, tmp / "root" / "inner.ipynb")
    yield server
    server.stop()


@pytest.mark.timeout(240)
def test_the_sidebar_and_the_board_open_the_executed_notebook(lab):
    with browser_page() as (page, errors):
        open_notebook(page, lab, "outer.ipynb")
        run_cell(page, 0)
        expect(page.locator(".jp-OutputArea-output").first).to_contain_text(
            "wiz-runs/inner-1.ipynb", timeout=120_000
        )

        # the board: the notebook's row links to the executed copy in JupyterLab
        run_cell(page, 1)
        link = page.locator('.wiz-board tr[data-job-id="1"] a.wiz-open')
        expect(link).to_be_visible(timeout=30_000)
        assert link.get_attribute("href").endswith("lab/tree/wiz-runs/inner-1.ipynb")
        expect(page.locator('.wiz-board tr[data-job-id="1"]')).to_contain_text(
            "notebook · inner.ipynb"
        )
        expect(page.locator('.wiz-board tr[data-job-id="1"] .wiz-progress-steps')).to_have_text(
            "3/3"  # the injected parameters cell counts too
        )

        # the sidebar: the job's detail opens the copy as a JupyterLab document
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="wiz-sidebar"]').click()
        sidebar = page.locator("#wiz-sidebar")
        sidebar.locator('li.wiz-job[data-job-id="1"]').click()
        sidebar.locator("button.wiz-open-notebook").click()
        tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab:has-text("inner-1.ipynb")')
        expect(tab).to_be_visible(timeout=30_000)
        expect(
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output").last
        ).to_contain_text("doubled 42")
    assert [e for e in errors if "wiz" in e.lower()] == []
