"""MCP servers' tools given to agents: a real server of the SDK over stdio (a subprocess)
and over streamable HTTP on 127.0.0.1, driven by scripted model turns."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter.agents import ScriptedModel, ToolCall

pytestmark = LITELLM_NOISE

SERVER = str(Path(__file__).with_name("_mcp_server.py"))


def tool_results(model: ScriptedModel) -> list[str]:
    return [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "tool"]


def said(messages: list[dict]) -> str:
    """A scripted final answer that repeats what the tools returned."""
    return "tools said: " + " | ".join(m["content"] for m in messages if m["role"] == "tool")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return not alive(pid)


async def test_stdio_server_tools_reach_the_model_and_answer(ws):
    model = ScriptedModel([ToolCall("add", {"a": 2, "b": 3}), ToolCall("pid", {}), said])
    calc = wiz.mcp("calc", command=[sys.executable, SERVER])
    a = ws.agent("calc", model=model, tools=["read_file", calc], auto_approve=True)
    assert await a.ask("What is 2 + 3?", timeout=60) == f"tools said: 5 | {tool_results(model)[1]}"
    offered = {t["function"]["name"]: t["function"] for t in model.requests[0]["tools"]}
    assert {"read_file", "add", "pid", "fail", "slow", "leave", "die"} <= set(offered)
    assert offered["add"]["description"] == "Add two numbers."
    assert offered["add"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert offered["add"]["parameters"]["required"] == ["a", "b"]
    pid = int(tool_results(model)[1])
    assert alive(pid) and pid != os.getpid()
    # the persona keeps a reference, not a session: a fresh workspace on the file sees it
    row = ws.store.read("SELECT tools FROM agents WHERE name = 'calc'")[0]["tools"]
    assert json.loads(row) == ["read_file", {"mcp": "calc", "command": [sys.executable, SERVER]}]
    other = wiz.Workspace(ws.path)
    try:
        assert other.agents.get("calc").mcp_servers == [calc]
        assert other.agents.get("calc").tool_names == ["read_file", "mcp:calc"]
    finally:
        other.close()
    # the server stops with the workspace
    await ws.stop()
    assert await gone(pid)


async def test_errors_timeouts_and_a_crash_go_back_to_the_model(ws):
    model = ScriptedModel([
        ToolCall("fail", {"message": "no such thing"}),
        ToolCall("add", {"a": "x", "b": 1}),
        ToolCall("slow", {"seconds": 30}),
        ToolCall("die", {}),
        ToolCall("add", {"a": 20, "b": 22}),  # after the crash the server starts again
        said,
    ])  # fmt: skip
    server = wiz.mcp("calc", command=[sys.executable, SERVER], timeout=1.0)
    a = ws.agent("careful", model=model, tools=[server], auto_approve=True)
    answer = await a.ask("try everything", timeout=60)
    fail, bad_args, slow, die, add = tool_results(model)
    assert fail.startswith("error: fail (MCP server calc):") and "fail" in fail
    assert bad_args.startswith("error: add (MCP server calc):")
    assert slow == "error: slow (MCP server calc) timed out after 1 s"
    assert die == (
        "error: die (MCP server calc): the server stopped during the call "
        "(it crashed or exited) (its stderr: dying on purpose)"
    )
    assert add == "42"
    assert answer.endswith("| 42")
    job = a.history()[0]
    calls = json.loads(
        ws.store.read("SELECT tool_calls FROM activity WHERE job_id = ?", (job.id,))[0][0]
    )
    assert [c["ok"] for c in calls] == [False, False, False, False, True]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--http", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:  # listening yet?
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the MCP HTTP server did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


async def test_streamable_http_server_and_close(tmp_path, http_server):
    ws = wiz.Workspace(tmp_path / "http.db")
    model = ScriptedModel([
        ToolCall("add", {"a": 40, "b": 2}), ToolCall("fail", {"message": "x"}), said,
    ])  # fmt: skip
    a = ws.agent("remote", model=model, tools=[wiz.mcp("web", url=http_server)], auto_approve=True)
    answer = await a.ask("What is 40 + 2?", timeout=60)
    assert answer.startswith("tools said: 42 | error: fail (MCP server web):")
    assert ws.agents.mcp.running() == ["web"]
    await ws.runtime.stop(1)
    ws.close()  # asks the servers' sessions to end; they do on the loop
    deadline = time.monotonic() + 10
    while ws.agents.mcp.running() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert ws.agents.mcp.running() == []


async def test_a_server_that_cannot_start_fails_the_job_in_one_line(ws, tmp_path):
    a = ws.agent("broken", model=ScriptedModel(["unused"]),
                 tools=[wiz.mcp("nothing", command=[sys.executable, "-c", "import sys; sys.exit('no server here')"])])  # fmt: skip
    with pytest.raises(
        wiz.JobFailed, match=r"MCP server 'nothing' did not start: .*no server here"
    ):
        await a.ask("hello", timeout=60)


def test_bad_server_references_are_refused_in_one_line():
    cases = {
        lambda: wiz.mcp("files"): "either command=",
        lambda: wiz.mcp("files", command=["x"], url="http://a"): "either command=",
        lambda: wiz.mcp("my files", command="x"): "short word",
        lambda: wiz.mcp("files", url="ftp://x"): "starts with http",
        lambda: wiz.mcp("files", command=""): "empty command",
        lambda: wiz.mcp("files", command="x", timeout=0): "timeout",
    }
    for make, message in cases.items():
        with pytest.raises(wiz.WizError, match=message):
            make()
    assert wiz.mcp("files", command="my-server --root 'my data'").command == (
        "my-server", "--root", "my data",
    )  # fmt: skip


async def test_the_missing_extra_is_named(ws, monkeypatch):
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the extra were not installed
    a = ws.agent("lonely", model=ScriptedModel(["unused"]),
                 tools=[wiz.mcp("calc", command=[sys.executable, SERVER])])  # fmt: skip
    with pytest.raises(
        wiz.JobFailed, match=r"MCP tools need the mcp extra: pip install 'wiz_jupyter\[mcp\]'"
    ):
        await a.ask("hello", timeout=30)


async def test_two_servers_with_the_same_tool_names_are_told_apart(ws):
    model = ScriptedModel(
        [[ToolCall("add", {"a": 1, "b": 1}), ToolCall("b_add", {"a": 2, "b": 2})], said]
    )
    one = wiz.mcp("a", command=[sys.executable, SERVER])
    two = wiz.mcp("b", command=[sys.executable, SERVER])
    agent = ws.agent("twins", model=model, tools=[one, two], auto_approve=True)
    assert await agent.ask("add twice", timeout=60) == "tools said: 2 | 4"
    offered = [t["function"]["name"] for t in model.requests[0]["tools"]]
    assert offered[:6] == ["add", "pid", "fail", "slow", "leave", "die"]
    assert offered[6:] == ["b_add", "b_pid", "b_fail", "b_slow", "b_leave", "b_die"]
    with pytest.raises(wiz.WizError, match="two MCP servers called 'a'"):
        ws.agent("clash", tools=[one, wiz.mcp("a", url="http://127.0.0.1:1/mcp")])


async def test_a_server_that_exits_while_idle_is_started_again_for_the_next_call(ws):
    first = ScriptedModel([ToolCall("pid", {}), ToolCall("leave", {}), said])
    a = ws.agent(
        "patient",
        model=first,
        tools=[wiz.mcp("calc", command=[sys.executable, SERVER])],
        auto_approve=True,
    )
    await a.ask("say goodbye", timeout=60)
    pid = int(tool_results(first)[0])
    assert await gone(pid)  # the server exited after answering
    second = ScriptedModel([ToolCall("add", {"a": 1, "b": 2}), ToolCall("pid", {}), said])
    ws.agent("patient", model=second)
    answer = await a.ask("add", timeout=60)
    added, new_pid = tool_results(second)
    assert added == "3" and int(new_pid) != pid and answer == f"tools said: 3 | {new_pid}"


async def test_an_mcp_tool_call_waits_for_approval_unless_the_persona_says_otherwise(ws):
    from tests.conftest import reach

    model = ScriptedModel([ToolCall("add", {"a": 2, "b": 3}), said])
    calc = wiz.mcp("calc", command=[sys.executable, SERVER])
    a = ws.agent("careful_calc", model=model, tools=[calc])
    job = a.submit("ask", "What is 2 + 3?")
    await ws.start()
    await reach(ws, job, "awaiting_input", timeout=60)
    [pending] = ws.jobs.pending()
    assert (pending["tool"], pending["args"]) == ("add", {"a": 2, "b": 3})
    ws.jobs.approve(job)
    assert await job.wait(timeout=60) == "tools said: 5"
