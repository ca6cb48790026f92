"""The chat panel's Python side and its markdown renderer (run in node)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter.agents import ScriptedModel
from wiz_jupyter.notebook import provenance
from wiz_jupyter.notebook.chat_panel import chat_esm

pytestmark = LITELLM_NOISE


async def test_a_reply_streams_in_coalesced_updates_then_lands_as_a_message(ws):
    long_reply = " ".join(f"word{i}" for i in range(300))
    # the words come 2 ms apart, as from a provider (through litellm's streaming path):
    # 0.6 s of them, about 12 of the panel's 50 ms intervals
    model = ScriptedModel([long_reply, RuntimeError("model down")], pace=0.002)
    ws.agent("analyst", model=model)
    ws.llm.direct = False
    panel = ws.chat_panel("analyst")
    sent = []
    panel.send = lambda msg, buffers=None: sent.append(msg)
    await ws.start()
    panel._on_front_end(panel, {"type": "ready"}, None)
    assert sent[-1] == {"type": "history", "messages": []}
    panel._on_front_end(
        panel, {"type": "send", "text": "Tell me everything", "agent": "analyst"}, None
    )
    assert panel.busy
    job = ws.jobs.list(agent="analyst")[-1]
    assert await job.wait(timeout=10) == long_reply
    await asyncio.sleep(0.1)
    deltas = [m for m in sent if m["type"] == "delta"]
    assert 1 <= len(deltas) < 100  # 300 words, far fewer updates
    streamed = "".join(d["text"] for d in deltas)
    assert long_reply.startswith(streamed.strip()[:50])
    messages = [m["message"] for m in sent if m["type"] == "message"]
    assert [(m["role"], m["content"][:10]) for m in messages] == [
        ("user", "Tell me ev"),
        ("agent", "word0 word"),
    ]
    made = messages[1]["wiz"]  # the answer's provenance travels with it, and is recorded
    assert made["job_id"] == job.id and made["agent"] == "analyst" and made["source"] == "chat"
    assert made["model"].startswith("wiz/scripted") and len(made["request_hash"]) == 64
    assert made in provenance.session() and "wiz" not in messages[0]
    panel._on_front_end(panel, {"type": "ready"}, None)  # a panel opened later: the history
    history = sent[-1]["messages"]
    assert history[1]["wiz"]["job_id"] == job.id and "wiz" not in history[0]
    assert history[1]["wiz"]["request_hash"] == made["request_hash"]
    assert not panel.busy
    panel._on_front_end(panel, {"type": "send", "text": "again?"}, None)
    failed = ws.jobs.list(agent="analyst")[-1]
    with pytest.raises(wiz.JobFailed):
        await failed.wait(timeout=10)
    await asyncio.sleep(0.05)
    last = [m["message"] for m in sent if m["type"] == "message"][-1]
    assert last["role"] == "error" and "could not answer" in last["content"]
    panel._on_front_end(panel, {"type": "send", "text": "   "}, None)
    assert "empty message" in sent[-1]["message"]
    panel.close()


async def test_a_reply_ended_where_the_panel_did_not_hear_of_it_stops_thinking(ws, db_path):
    # the kernel holding the panel runs nothing; another workspace on the file (as a
    # `wiz worker` would) answers, and its events never reach this one's bus
    ws.agent("analyst", model=ScriptedModel(["done elsewhere"]))
    panel = ws.chat_panel("analyst")
    panel.send = lambda msg, buffers=None: None
    panel._on_front_end(panel, {"type": "send", "text": "work on it"}, None)
    assert panel.busy
    other = wiz.Workspace(db_path, poll_interval=0.05)
    try:
        await other.start()
        job = other.jobs.list(agent="analyst")[-1]
        assert await job.wait(timeout=10) == "done elsewhere"
        for _ in range(60):  # the panel's own look, within a RECHECK (1 s)
            if not panel.busy:
                break
            await asyncio.sleep(0.05)
        assert not panel.busy and panel._recheck is None  # and it stopped looking
    finally:
        await other.stop(grace=1)
        other.close()
        panel.close()


def run_chat_js(tmp_path, script: str) -> list:
    """Run ``script`` in node against the panel's module exactly as the widget ships it
    (chat.js with the vendored libraries inlined); each printed line is JSON."""
    node = shutil.which("node")
    assert node, "node is needed to run the widget's JavaScript"
    module = tmp_path / "chat.mjs"
    module.write_text(chat_esm(), encoding="utf-8")
    out = subprocess.run(
        [node, "--input-type=module", "-e", f"import * as chat from {json.dumps(str(module))};"
         f"\n{script}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_markdown_by_marked_tables_lists_code_and_raw_html_as_text(tmp_path):
    cases = [
        "| a | b |\n|---|--:|\n| 1 | 2 |",
        "1. one\n   - inner\n     - deeper\n2. two",
        "3. three\n4. four",
        "<script>alert(1)</script>\n\ntext <img src=x onerror=alert(1)> more",
        "```python\ndef f(x):\n    return 'hi'  # c\n```",
        "![a cat](https://example.org/cat.png)",
    ]
    (html,) = run_chat_js(
        tmp_path,
        "const toHtml = chat.markdownToHtml(await chat.loadLibraries());"
        f"console.log(JSON.stringify({json.dumps(cases)}.map(toHtml)));",
    )
    table, nested, ordered, raw, code, image = html
    assert "<table>" in table and "<th>a</th>" in table and '<td align="right">2</td>' in table
    assert nested.count("<ul>") == 2 and nested.startswith("<ol>")
    assert nested.index("deeper") < nested.index("</ul>") < nested.index("two")
    assert ordered.startswith('<ol start="3">')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw and "&lt;img src=x" in raw
    assert "<script" not in raw and "<img" not in raw and raw.startswith('<p class="wiz-raw">')
    assert '<code class="hljs language-python">' in code
    assert '<span class="hljs-keyword">def</span>' in code and "hljs-comment" in code
    assert "<img" not in image and ">[image: a cat]</a>" in image


def test_links_keep_only_http_mailto_and_relative_targets(tmp_path):
    urls = {
        "https://example.org/x": True,
        "http://example.org": True,
        "mailto:a@example.org": True,
        "/files/x.csv": True,
        "#part": True,
        "notes/a.md": True,
        "javascript:alert(1)": False,
        "JavaScript:alert(1)": False,
        "data:text/html,<script>alert(1)</script>": False,
        "vbscript:msgbox(1)": False,
        "file:///etc/passwd": False,
    }
    (kept,) = run_chat_js(
        tmp_path,
        f"console.log(JSON.stringify({json.dumps(list(urls))}.map(u => chat.SAFE_URI.test(u))));",
    )
    assert dict(zip(urls, kept)) == urls
