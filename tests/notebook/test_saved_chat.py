"""A chat panel's conversation and a board's rows survive saving: executed with its widget state stored and
rendered by nbconvert, the HTML carries the conversation's text (kept in the widget's
synced ``transcript``) and none of the model's text as live HTML."""

from __future__ import annotations

import json

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

HOSTILE = "<img src=x onerror=alert(1)>"


def test_a_saved_conversation_is_in_the_html_and_inert(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import os\nos.environ['WIZ_HOME'] = {str(tmp_path / 'home')!r}\n"
            "import wiz_jupyter as wiz\nws = wiz.workspace()\n"
            "ws.agent('helper', role='helper')\npanel = ws.chat_panel('helper')\npanel"
        ),
        nbformat.v4.new_code_cell("board = ws.board()\nboard"),
        nbformat.v4.new_code_cell(
            # the markup is put together in the kernel, so the cell's source does not carry it
            "bad = '<' + 'img src=x on' + 'error=alert(1)>'\n"
            "await panel.chat.ask('say the tide is high ' + bad)\n"
            "await panel.chat.ask('say and *the moon* is full')\nlen(panel.transcript)"
        ),
        nbformat.v4.new_code_cell("board.save_state()\n[r['task'] for r in board.saved]"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    assert nb.cells[2].outputs[-1]["data"]["text/plain"] == "4"  # two questions, two answers
    assert nb.cells[3].outputs[-1]["data"]["text/plain"] == "['agent:helper', 'agent:helper']"
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    (panel,) = [w for w in state.values() if "transcript" in w["state"]]
    said = [(m["role"], m["content"]) for m in panel["state"]["transcript"]]
    assert said[1] == ("agent", f"the tide is high {HOSTILE}")
    assert said[3] == ("agent", "and *the moon* is full")
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    html, _ = HTMLExporter().from_filename(str(path))
    assert "the tide is high" in html and "and *the moon* is full" in html
    start = html.index('<script type="application/vnd.jupyter.widget-state+json">')
    end = html.index("</script>", start)
    outside = html[:start] + html[end:]
    # the model's markup is nowhere in the page as HTML: only inside the state's JSON, a
    # script element of a data type that browsers keep as raw text and that it cannot close
    assert HOSTILE not in outside and "onerror" not in outside
    raw = html[start:end].split(">", 1)[1]
    assert "</" not in raw.lower()
    embedded = json.loads(raw)
    assert any("transcript" in w["state"] for w in embedded["state"].values())
    (saved,) = [w["state"]["saved"] for w in embedded["state"].values() if "saved" in w["state"]]
    assert [(r["id"], r["status"]) for r in saved] == [(2, "completed"), (1, "completed")]
