"""The job board names the Dask cluster and links its dashboard, in a real JupyterLab
driven in headless Chromium (the cluster is a one-worker LocalCluster started by the
notebook's kernel with ``%wiz dask local``)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.lab import browser_page, open_notebook, run_cell, start_lab

CELLS = [
    """\
%load_ext wiz_jupyter
import os
import wiz_jupyter as wiz

ws = wiz.workspace()

@ws.task(executor="dask")
def where() -> int:
    return os.getpid()

ws.board()""",
    "%wiz dask local --workers 1",
    "job = ws.jobs.add('where')",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("board-dask"), "dask.ipynb", CELLS)
    yield server
    server.stop()


@pytest.mark.timeout(240)
def test_the_board_shows_the_cluster_and_its_dashboard_link(lab):
    with browser_page() as (page, _errors):
        open_notebook(page, lab, "dask.ipynb")
        run_cell(page, 0)
        board = page.locator(".wiz-board")
        expect(board).to_be_visible(timeout=30_000)
        cluster = board.locator(".wiz-board-cluster")
        expect(cluster).to_have_text("")  # no cluster yet
        run_cell(page, 1)  # the board was shown before: it follows the connection
        expect(cluster.locator(".wiz-dask-connected")).to_contain_text(
            "dask: LocalCluster tcp://127.0.0.1:", timeout=60_000
        )
        link = cluster.locator("a.wiz-dask-dashboard")
        expect(link).to_have_text("dashboard")
        assert link.get_attribute("href").startswith("http://127.0.0.1:")
        assert link.get_attribute("target") == "_blank"
        run_cell(page, 2)
        expect(board.locator("tr.wiz-row[data-job-id='1']")).to_have_class(
            "wiz-row wiz-row-completed", timeout=60_000
        )
    ws = lab.workspace()
    try:
        job = ws.jobs.get(1)
        assert job.status == "completed" and isinstance(job.result, int)
    finally:
        ws.close()
