"""Agents through the whole lifecycle, with scripted models (and once over HTTP)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter.agents import ScriptedModel, ToolCall

pytestmark = LITELLM_NOISE


def plan(*steps, criteria=()):
    return json.dumps({"goal": "do the job", "steps": list(steps), "criteria": list(criteria)})


def verdict(passed, reasons="", learnings=()):
    return json.dumps({"passed": passed, "reasons": reasons, "learnings": list(learnings)})


async def test_full_lifecycle_plan_two_tools_failed_validation_then_replan(ws):
    seen = []

    def lookup(city: str) -> dict:
        """Look up a city's population.

        Args:
            city: the city's name
        """
        seen.append(city)
        return {"city": city, "population": {"Paris": 2_100_000, "Lyon": 520_000}[city]}

    model = ScriptedModel([
        plan("look up Paris", "look up Lyon", "compare", criteria=["names the bigger city"]),
        ToolCall("lookup", {"city": "Paris"}),
        ToolCall("lookup", {"city": "Lyon"}),
        "They are both cities.",
        verdict(False, "it does not say which is bigger"),
        plan("compare the two numbers", criteria=["names the bigger city"]),
        "Paris (2.1 M) is bigger than Lyon (0.52 M).",
        verdict(True, learnings=["Paris is about four times bigger than Lyon"]),
    ])  # fmt: skip
    analyst = ws.agent(
        "analyst", role="data analyst", goal="compare cities", model=model, tools=[lookup]
    )
    job = analyst.assign("Which is bigger, Paris or Lyon?", validation=["gives both populations"])
    await ws.start()
    assert await job.wait(timeout=10) == "Paris (2.1 M) is bigger than Lyon (0.52 M)."
    assert seen == ["Paris", "Lyon"]
    act = ws.store.read("SELECT * FROM activity WHERE job_id = ?", (job.id,))[0]
    assert act["phase"] == "done" and act["replans"] == 1
    assert json.loads(act["criteria"]) == ["names the bigger city", "gives both populations"]
    calls = json.loads(act["tool_calls"])
    assert [(c["name"], c["ok"]) for c in calls] == [("lookup", True), ("lookup", True)]
    assert [v["passed"] for v in json.loads(act["validation"])] == [False, True]
    assert [m["content"] for m in analyst.memory.all()] == [
        "Paris is about four times bigger than Lyon"
    ]
    # the plan prompt carried the persona; the tools went with every act turn
    assert "data analyst" in model.requests[0]["messages"][0]["content"]
    assert model.requests[1]["tools"][0]["function"]["name"] == "lookup"
    assert job.events()[-1]["event"] == "job.completed"
    assert ws.llm.usage(job.id).calls == 8


async def test_validation_that_keeps_failing_fails_the_job_clearly(ws):
    model = ScriptedModel([plan("try"), "wrong", verdict(False, "bad"), plan("retry"), "wrong",
                           verdict(False, "bad"), plan("again"), "wrong", verdict(False, "still bad")])  # fmt: skip
    a = ws.agent("stubborn", model=model)
    job = a.assign("do it")
    await ws.start()
    with pytest.raises(wiz.JobFailed, match="failed validation 3 times: still bad"):
        await job.wait(timeout=10)


async def test_a_crash_between_steps_resumes_without_repeating_a_tool_call(ws):
    runs = []

    def expensive(n: int) -> int:
        """An expensive computation."""
        runs.append(n)
        return n * 10

    model = ScriptedModel([
        plan("compute"),
        [ToolCall("expensive", {"n": 1}), ToolCall("expensive", {"n": 2})],
        RuntimeError("kernel died"),  # the crash: this attempt ends here
        "30",
        verdict(True),
    ])  # fmt: skip
    a = ws.agent("worker", model=model, tools=[expensive])
    job = a.assign("compute", attempts=2)
    await ws.start()
    assert await job.wait(timeout=10) == "30"
    assert runs == [1, 2]  # not run again by the second attempt
    assert job.attempts_made == 2
    assert len(model.requests) == 5  # the plan was not asked for again either


async def test_tool_errors_go_back_to_the_model(ws):
    def fragile(x: int) -> int:
        """Fails on zero."""
        return 10 // x

    async def sleepy() -> str:
        """Takes too long."""
        await asyncio.sleep(5)
        return "late"

    model = ScriptedModel([
        ToolCall("fragile", {"x": 0}), ToolCall("fragile", {"x": "not a number"}),
        ToolCall("sleepy", {}), ToolCall("nonexistent", {}), "done",
    ])  # fmt: skip
    a = ws.agent("careful", model=model, tools=[fragile, wiz.tool(sleepy, timeout=0.1)])
    assert await a.ask("try things", timeout=10) == "done"
    results = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert results[0] == "error: ZeroDivisionError: integer division or modulo by zero"
    assert results[1].startswith("error: bad arguments for fragile: x:")
    assert results[2] == "error: sleepy timed out after 0.1 s"
    assert results[3].startswith("error: there is no tool 'nonexistent'")


async def test_file_tools_stay_inside_the_agents_folder(ws, tmp_path):
    folder = tmp_path / "desk"
    folder.mkdir()
    (folder / "notes.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", folder / "link.txt")
    model = ScriptedModel([
        ToolCall("read_file", {"path": "notes.txt"}),
        ToolCall("read_file", {"path": "../secret.txt"}),
        ToolCall("read_file", {"path": str(tmp_path / "secret.txt")}),
        ToolCall("read_file", {"path": "link.txt"}),
        ToolCall("write_file", {"path": "../escape.txt", "content": "x"}),
        ToolCall("write_file", {"path": "out/report.md", "content": "# hi"}),
        ToolCall("list_dir", {"path": "."}),
        "ok",
    ])  # fmt: skip
    # auto_approve: this test is about confinement, not approvals (tests/agents/test_approvals.py)
    a = ws.agent("clerk", model=model, folder=folder, tools=["read_file", "write_file", "list_dir"],
                 auto_approve=True)  # fmt: skip
    await a.ask("look around", timeout=10)
    results = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert results[0] == "inside"
    assert "outside your folder" in results[1]
    assert "is absolute" in results[2]
    assert "outside your folder" in results[3]  # the symlink leads out
    assert "outside your folder" in results[4]
    assert not (tmp_path / "escape.txt").exists()
    assert (folder / "out" / "report.md").read_text() == "# hi"
    assert json.loads(results[6]) == ["link.txt", "notes.txt", "out/"]


async def test_one_agent_messages_another_and_gets_its_answer(ws):
    expert_model = ScriptedModel(["The capital of Australia is Canberra."])
    expert = ws.agent("expert", model=expert_model)
    boss = ws.agent("boss", model=ScriptedModel([
        ToolCall("send_message", {"agent": "expert", "message": "What is the capital of Australia?"}),
        "Canberra, says the expert.",
    ]), tools=["send_message"])  # fmt: skip
    assert (
        await boss.ask("Ask the expert about Australia", timeout=10) == "Canberra, says the expert."
    )
    [asked] = expert.history()
    assert asked.data == {
        "kind": "message",
        "prompt": "What is the capital of Australia?",
        "sender": "boss",
    }
    assert expert.status == "idle"
    assert expert_model.requests[0]["messages"][-1]["content"].startswith("Message from boss: ")


async def test_subjobs_finish_before_their_parent(ws):
    order = []

    def part_done(messages):
        order.append("child")
        return "part done"

    helper_model = ScriptedModel([plan("do the part"), part_done, verdict(True)] * 2)
    ws.agent("helper", model=helper_model)
    lead_model = ScriptedModel([
        plan("split"),
        [ToolCall("create_subjob", {"prompt": "part 1", "agent": "helper"}),
         ToolCall("create_subjob", {"prompt": "part 2", "agent": "helper", "priority": 3})],
        "delegated",
        verdict(True),
    ])  # fmt: skip
    lead = ws.agent("lead", model=lead_model, tools=["create_subjob"])
    done = []
    ws.events.on("job.completed", lambda e: done.append(e.job_id))
    job = lead.assign("split the work")
    await ws.start()
    assert await job.wait(timeout=10) == "delegated"
    children = job.children()
    assert len(children) == 2 and all(c.status == "completed" for c in children)
    assert done.index(job.id) > max(done.index(c.id) for c in children)
    assert sorted(c.priority for c in children) == [0, 3]
    assert order == ["child", "child"]


async def test_memory_is_searched_by_full_text_and_loaded_at_the_start_of_a_job(ws):
    model = ScriptedModel(["noted"])
    a = ws.agent("librarian", model=model)
    a.memory.save("The quarterly sales report lives in reports/sales.xlsx")
    a.memory.save("Lunch is at noon")
    a.memory.save("Lunch is at noon")  # kept once
    assert len(a.memory) == 2
    hits = a.memory.search("where are the sales reports?")
    assert hits[0]["content"].startswith("The quarterly sales report")
    await a.ask("Where is the sales report?", timeout=10)
    assert "reports/sales.xlsx" in model.requests[0]["messages"][0]["content"]


@pytest.mark.usefixtures("monkeypatch")
async def test_an_agent_over_a_real_http_server(ws, server, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-loopback")
    monkeypatch.setenv("WIZ_CONFIG", str(tmp_path / "none.env"))
    server.reply(tool_calls=[("add", {"a": 20, "b": 22})])
    server.reply("The sum is 42.")

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    a = ws.agent(
        "http_agent", model="openai/gpt-test", settings={"api_base": server.url}, tools=[add]
    )
    assert await a.ask("What is 20 + 22?", timeout=20) == "The sum is 42."
    second = server.requests[1].body["messages"]
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": second[-2]["tool_calls"][0]["id"],
        "content": "42",
    }


async def test_the_offline_model_carries_out_an_assigned_job(ws):
    helper = ws.agent("helper", role="assistant")  # no model: the built-in wiz/offline
    job = helper.assign("uppercase: hello queue")
    assert await job.wait(timeout=30) == "HELLO QUEUE"
    act = ws.store.read("SELECT phase, plan FROM activity WHERE job_id = ?", (job.id,))[0]
    assert act["phase"] == "done" and "uppercase: hello queue" in act["plan"]


async def test_run_python_captures_its_own_prints_only(ws, capsys):
    """Issue 19: redirect_stdout swapped sys.stdout for the whole process, so what the
    notebook printed while the tool ran went to the model and never reached the cell."""
    import threading

    code = (
        "import time\n"
        "def helper():\n    print('from a function of the code')\n"
        "for i in range(5):\n    print('tool', i)\n    time.sleep(0.02)\n"
        "helper()\nprint('to stderr', file=__import__('sys').stderr)"
    )
    model = ScriptedModel([ToolCall("run_python", {"code": code}), "ok"])
    a = ws.agent("coder", model=model, tools=["run_python"], auto_approve=True)
    stop = threading.Event()

    def notebook_prints() -> None:
        while not stop.is_set():
            print("cell output")
            stop.wait(0.005)

    printer = threading.Thread(target=notebook_prints)
    printer.start()
    try:
        assert await a.ask("run it", timeout=10) == "ok"
    finally:
        stop.set()
        printer.join()
    result = next(m["content"] for m in model.requests[-1]["messages"] if m["role"] == "tool")
    assert result == "tool 0\ntool 1\ntool 2\ntool 3\ntool 4\nfrom a function of the code\n"
    captured = capsys.readouterr()
    assert "cell output" in captured.out and "tool 0" not in captured.out
    assert "to stderr" in captured.err
