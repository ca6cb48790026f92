"""Issue 22: an answer's code into cells, and the chat panel's markdown, in a real JupyterLab.

A ``%wiz ask`` answer (plain safe HTML) gets *Insert below*, *Replace active cell* and
*Copy* on its code block from the lab extension: Insert adds a cell below with the code,
not run; Replace shows a diff of the active cell against the code and replaces it only
after the user confirms. The chat panel renders markdown with marked and DOMPurify
(a table, a nested list, highlighted code; hostile HTML and ``javascript:``/``data:``
links inert) and its own Insert button works through the ``wiz:code`` event; without the
lab extension's announcement the panel offers only Copy.
"""

from __future__ import annotations

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

CODE = "def double(x):\n    return 2 * x\n\nprint(double(21))"
MARKDOWN = """\
| name | n |
|------|--:|
| a    | 1 |

1. first
   - inner
     - deepest
2. second

<img src=x onerror="window.__pwned = 'img'"> <script>window.__pwned = 'script'</script>

[bad](javascript:window.__pwned='link') [data](data:text/html,<b>hi</b>) [good](https://example.org/x)

```python
import math
```"""

CELLS = [
    f"""\
%load_ext wiz_jupyter
import wiz_jupyter as wiz

ws = wiz.workspace()
CODE = {CODE!r}
ws.agent("coder", model=wiz.ScriptedModel([f"Here you are:\\n\\n```python\\n{{CODE}}\\n```\\n\\nDone."]))
ws.agent("chatty", model=wiz.ScriptedModel([{MARKDOWN!r}] * 2))""",
    "%wiz ask coder write a function that doubles",
    'x = "old"',
    "%wiz chat chatty",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("code-actions"), "code.ipynb", CELLS)
    yield server
    server.stop()


def sources(page: Page) -> list[str]:
    return page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.widgets
            .map(c => c.model.sharedModel.getSource())"""
    )


def cell_state(page: Page, index: int) -> dict:
    return page.evaluate(
        """(i) => {
            const cell = window.jupyterapp.shell.currentWidget.content.widgets[i].model;
            return {type: cell.type, count: cell.executionCount, outputs: cell.outputs.length};
        }""",
        index,
    )


@pytest.mark.timeout(300)
def test_answer_code_goes_into_cells_and_the_chat_renders_markdown_safely(lab):
    with browser_page(height=1100) as (page, errors):
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
        open_notebook(page, lab, "code.ipynb")
        cells = page.locator(".jp-Notebook .jp-Cell")
        assert page.evaluate("() => document.body.dataset.wizCodeActions") == "1"

        # %wiz ask: the answer's code block has the three buttons
        run_cell(page, 0)
        run_cell(page, 1)
        answer = cells.nth(1).locator(".jp-OutputArea-output .wiz-answer")
        expect(answer).to_contain_text("Here you are", timeout=60_000)
        actions = answer.locator(".wiz-code-actions")
        expect(actions.locator("button")).to_have_text(
            ["Insert below", "Replace active cell", "Copy"]
        )
        assert answer.locator("script").count() == 0

        # Copy puts the code (not the buttons' text) on the clipboard
        actions.locator("button.wiz-code-copy").click()
        expect(actions.locator("button.wiz-code-copy")).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == CODE

        # Insert below: a new code cell right below the answer's cell, with the code, not run
        actions.locator("button.wiz-code-insert").click()
        expect(cells).to_have_count(5)
        assert sources(page)[2] == CODE
        assert cell_state(page, 2) == {"type": "code", "count": None, "outputs": 0}
        assert sources(page)[3] == 'x = "old"'

        # Replace active cell: a diff first; Cancel keeps the cell, Replace replaces it
        page.evaluate(
            "() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 3; }"
        )
        actions.locator("button.wiz-code-replace").click()
        dialog = page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("Replace cell 4")
        expect(dialog.locator(".wiz-diff-del")).to_have_text(['- x = "old"'])
        expect(dialog.locator(".wiz-diff-add")).to_have_count(len(CODE.splitlines()))
        expect(dialog.locator(".wiz-diff-add").nth(1)).to_have_text("+     return 2 * x")
        SCREENSHOTS.mkdir(exist_ok=True)
        dialog.locator(".jp-Dialog-content").screenshot(path=str(SCREENSHOTS / "replace-diff.png"))
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)
        assert sources(page)[3] == 'x = "old"'
        actions.locator("button.wiz-code-replace").click()
        dialog.get_by_role("button", name="Replace").click()
        expect(dialog).to_have_count(0)
        assert sources(page)[3] == CODE
        assert cell_state(page, 3)["outputs"] == 0 and len(sources(page)) == 5

        # the chat panel: markdown by marked, sanitized by DOMPurify
        run_cell(page, 4)
        panel, box = chat_panel(page)
        box.fill("show me everything")
        box.press("Enter")
        reply = panel.locator(".wiz-msg-agent .wiz-msg-body").first
        expect(reply.locator("table")).to_have_count(1, timeout=30_000)
        expect(reply.locator("table th")).to_have_text(["name", "n"])
        expect(reply.locator("table td")).to_have_text(["a", "1"])
        expect(reply.locator("ol > li")).to_have_count(2)
        expect(reply.locator("ol > li > ul > li > ul > li")).to_have_text("deepest")
        expect(reply.locator("pre code .hljs-keyword")).to_have_text("import")
        # hostile HTML is text; javascript: and data: links lose their target
        expect(reply).to_contain_text("<script>window.__pwned = 'script'</script>")
        assert reply.locator("img, script, [onerror]").count() == 0
        for text in ("bad", "data"):
            link = reply.locator("a", has_text=text)
            expect(link).to_have_count(1)
            assert link.get_attribute("href") is None
        good = reply.locator("a", has_text="good")
        expect(good).to_have_attribute("href", "https://example.org/x")
        expect(good).to_have_attribute("target", "_blank")
        expect(good).to_have_attribute("rel", "noopener noreferrer")
        reply.locator("a", has_text="bad").click()  # a link without a target goes nowhere
        panel.screenshot(path=str(SCREENSHOTS / "chat-markdown.png"))

        # the panel's own Insert below goes through the wiz:code event to the extension
        chat_actions = reply.locator(".wiz-code-actions button")
        expect(chat_actions).to_have_text(["Insert below", "Replace active cell", "Copy"])
        chat_actions.nth(0).click()
        expect(cells).to_have_count(6)
        assert sources(page)[5] == "import math"
        assert cell_state(page, 5) == {"type": "code", "count": None, "outputs": 0}

        # the panel's Replace: typing in the panel made its own cell active, so the cell the
        # user worked in before (cell 3) is the one replaced, after the diff
        page.evaluate(
            "() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 2; }"
        )
        box.fill("one more")  # focuses the panel: its cell (4) becomes the active one
        assert (
            page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex")
            == 4
        )
        chat_actions.nth(1).click()
        expect(dialog).to_contain_text("Replace cell 3")
        expect(dialog.locator(".wiz-diff-add")).to_have_text(["+ import math"])
        expect(dialog.locator(".wiz-diff-del")).to_have_count(len(CODE.splitlines()))
        dialog.get_by_role("button", name="Replace").click()
        expect(dialog).to_have_count(0)
        assert sources(page)[2] == "import math" and sources(page)[4] == "%wiz chat chatty"

        # without the extension's announcement (as in a front end without it): Copy only
        page.evaluate("() => { delete document.body.dataset.wizCodeActions; }")
        run_cell(page, 4)  # a new panel (and a new conversation)
        fresh_panel = cells.nth(4).locator(".wiz-chat-panel")
        expect(fresh_panel.locator(".wiz-msg")).to_have_count(0, timeout=30_000)
        fresh_panel.locator("textarea.wiz-chat-input").fill("again")
        fresh_panel.locator("textarea.wiz-chat-input").press("Enter")
        fresh = fresh_panel.locator(".wiz-msg-agent .wiz-msg-body").first
        expect(fresh.locator("table")).to_have_count(1, timeout=30_000)
        expect(fresh.locator(".wiz-code-actions button")).to_have_text(["Copy"])

        page.wait_for_timeout(500)  # an image error would have fired by now
        assert page.evaluate("() => window.__pwned") is None
        assert not [e for e in errors if "wiz" in e.lower()], errors
