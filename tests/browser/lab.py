"""Shared parts of the browser tests: a real JupyterLab (subprocess, token, a temp root)
with this checkout's build of the lab extension, and the system's Chromium driven by
Playwright. A missing Chromium or a server that does not start fails the test: nothing
here is skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
from playwright.sync_api import Locator, Page, expect, sync_playwright

import wiz_jupyter
from tests.server.jupyter import Jupyter, start_jupyter

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = Path(__file__).parent / "screenshots"


def start_lab(tmp: Path, name: str | None, cells: list[str], *, own_home: bool = True) -> Jupyter:
    """A real JupyterLab rooted at ``tmp/root`` with one notebook of ``cells`` (none when
    ``name`` is None), and its own WIZ_HOME (``own_home=False``: the default
    ``root/.wiz/wiz.db``); the news toast is switched off so nothing covers the page."""
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    if name is not None:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(nb, root / name)
    jupyter_path = use_this_build(tmp / "jupyter-path")
    labconfig = tmp / "jupyter-config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    return start_jupyter(
        tmp,
        app="jupyterlab",
        wiz_home=tmp / "home" if own_home else None,
        args=("--LabApp.expose_app_in_browser=True",),
        env={"JUPYTER_PATH": str(jupyter_path)} if jupyter_path else None,
    )


def use_this_build(path: Path) -> Path | None:
    """A JUPYTER_PATH folder whose ``labextensions/wiz-jupyter`` is the lab extension built
    in this checkout (``wiz_jupyter/labextension``), or None if it is not built here.

    ``make`` also installs that build into the venv's share/, which JupyterLab would find
    first (jupyter_core puts a venv's own paths ahead of the user's); JUPYTER_PATH comes
    before both. In a ``make`` checkout it is the same build; in a second worktree on a
    shared venv, the worktree's own, so what is tested is the code beside the test."""
    built = Path(wiz_jupyter.__file__).parent / "labextension"
    if not (built / "package.json").is_file():
        return None
    (path / "labextensions").mkdir(parents=True, exist_ok=True)
    (path / "labextensions" / "wiz-jupyter").symlink_to(built, target_is_directory=True)
    return path


@contextmanager
def browser_page(height: int = 900) -> Iterator[tuple[Page, list[str]]]:
    """A page in headless Chromium, and the errors its page and console report."""
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        try:
            yield page, errors
        finally:
            browser.close()


def open_notebook(page: Page, lab: Jupyter, name: str) -> None:
    """Open ``name`` in JupyterLab and wait until its kernel is connected and idle."""
    page.goto(f"{lab.url}lab/tree/{name}?token={lab.token}")
    wait_for_kernel(page)


def wait_for_kernel(page: Page, timeout: float = 60_000) -> None:
    """Wait until the current notebook's kernel is connected and idle."""
    page.wait_for_function(
        """() => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const kernel = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
        }""",
        timeout=timeout,
    )


def run_cell(page: Page, index: int) -> None:
    """Run one cell of the open notebook through JupyterLab's own command."""
    page.evaluate(
        """async (index) => {
            const app = window.jupyterapp;
            const panel = app.shell.currentWidget;
            panel.content.activeCellIndex = index;
            await app.commands.execute('notebook:run-cell');
        }""",
        index,
    )


def chat_panel(page: Page) -> tuple[Locator, Locator]:
    """The chat panel the last cell run showed, once visible, and its message box."""
    panel = page.locator(".wiz-chat-panel")
    expect(panel).to_be_visible(timeout=30_000)
    return panel, panel.locator("textarea.wiz-chat-input")
