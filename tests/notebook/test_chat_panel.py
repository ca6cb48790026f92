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
from wiz_jupyter.notebook.board import STATIC

pytestmark = LITELLM_NOISE


async def test_a_reply_streams_in_coalesced_updates_then_lands_as_a_message(ws):
    long_reply = " ".join(f"word{i}" for i in range(300))
    ws.agent("analyst", model=ScriptedModel([long_reply, RuntimeError("model down")]))
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


def test_markdown_is_rendered_after_escaping_raw_html():
    node = shutil.which("node")
    assert node, "node is needed to run the widget's JavaScript"
    cases = {
        "<script>alert(1)</script>": "&lt;script&gt;alert(1)&lt;/script&gt;",
        '<img src=x onerror="alert(1)">': "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;",
        "**bold** and `code`": "<strong>bold</strong> and <code>code</code>",
        "[ok](https://example.org) [bad](javascript:alert(1))": '<a href="https://example.org"',
        "- one\n- two": "<ul><li>one</li><li>two</li></ul>",
    }
    script = (
        f"import {{ renderMarkdown }} from {json.dumps(str(STATIC / 'chat.js'))};"
        f"for (const t of {json.dumps(list(cases))}) console.log(JSON.stringify(renderMarkdown(t)));"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    rendered = [json.loads(line) for line in out.stdout.splitlines()]
    for (source, expected), html in zip(cases.items(), rendered):
        assert expected in html, (source, html)
        assert (
            "<script" not in html
            and "<img" not in html
            and "javascript:" not in html.split("[bad]")[0]
        )
    assert 'href="javascript' not in rendered[3]
