"""Durable approvals and questions: a tool that needs approval parks its agent job in
``awaiting_input`` (no slot, no lease) until a person approves, denies or answers, in
this process or another, now or after a SIGKILL; approved, the tool runs exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from tests.conftest import reach
from wiz_jupyter.agents import ScriptedModel
from wiz_jupyter.errors import InvalidJob, JobNotFound, NotAwaitingInput

pytestmark = LITELLM_NOISE
WORKER = str(Path(__file__).with_name("_approvals_worker.py"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.delenv("WIZ_MODEL", raising=False)


def activity(ws, job) -> dict:
    row = dict(ws.store.read("SELECT * FROM activity WHERE job_id = ?", (job.id,))[0])
    return {k: json.loads(row[k]) for k in ("messages", "tool_calls")}


async def test_write_file_waits_for_approval_holding_no_slot_then_runs_once(tmp_path):
    ws = wiz.Workspace(tmp_path / "w.db", concurrency=1, lease=2.0, poll_interval=0.05)
    clerk = ws.agent("clerk", tools=["write_file"])
    job = clerk.submit("ask", "use write_file with path=notes.txt content=hello")
    await ws.start()
    await reach(ws, job, "awaiting_input")
    row = job.refresh().snapshot
    assert (row["lease_owner"], row["lease_expires"], row["attempts_made"]) == (None, None, 0)
    assert not (clerk.folder / "notes.txt").exists()
    assert ws.jobs.counts()["awaiting_input"] == 1 and ws.runtime.active_ids == []

    @ws.task
    def other() -> str:
        return "ran meanwhile"

    # concurrency 1, and the parked job does not hold it
    assert await ws.jobs.add("other").wait(timeout=5) == "ran meanwhile"
    [pending] = ws.jobs.pending()
    assert pending["job"] == job.id and pending["kind"] == "approval"
    assert (pending["tool"], pending["args"]) == (
        "write_file",
        {"path": "notes.txt", "content": "hello"},
    )
    assert ws.jobs.approve(job).status == "waiting"
    assert "wrote 5 characters" in await job.wait(timeout=10)
    assert (clerk.folder / "notes.txt").read_text() == "hello"
    calls = activity(ws, job)["tool_calls"]
    assert [(c["name"], c["person"]) for c in calls] == [("write_file", "approved")]
    assert [e["event"] for e in job.events()].count("job.approved") == 1
    assert job.attempts_made == 1 and ws.jobs.pending() == []
    await ws.stop()
    ws.close()


async def test_deny_hands_the_reason_to_the_model_and_the_file_is_not_written(ws):
    model = ScriptedModel(
        [wiz.ToolCall("write_file", {"path": "a.txt", "content": "x"}), "ok, I won't"]
    )
    clerk = ws.agent("clerk", model=model, tools=["write_file"])
    job = clerk.submit("ask", "write a.txt")
    await ws.start()
    await reach(ws, job, "awaiting_input")
    ws.jobs.deny(job.id, "not in my folder, please")
    assert await job.wait(timeout=10) == "ok, I won't"
    assert not (clerk.folder / "a.txt").exists()
    tool_messages = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1 and "not in my folder, please" in tool_messages[0]["content"]
    assert len(model.requests) == 2  # the model was not asked again for the parked turn
    assert activity(ws, job)["tool_calls"][0]["person"] == "denied"


async def test_auto_approve_and_the_personas_own_approve_list(ws):
    calls = []

    def population(city: str) -> int:
        """A city's population.

        Args:
            city: the city
        """
        calls.append(city)
        return 520_000

    free = ws.agent("free", tools=["write_file"], auto_approve=True)
    job = free.submit("ask", "use write_file with path=f.txt content=hi")
    await ws.start()
    assert "wrote 2 characters" in await job.wait(timeout=10)
    # a tool that does not ask by itself, named in the persona's approve list
    careful = ws.agent("careful", tools=[population], approve=["population"])
    assert careful.approve == ["population"] and careful.needs_approval(wiz.tool(population))
    job = careful.submit("ask", "use population with city=Lyon")
    await reach(ws, job, "awaiting_input")
    assert calls == []
    ws.jobs.approve(job)
    assert "520000" in await job.wait(timeout=10) and calls == ["Lyon"]
    # auto_approve as a list: those tools go ahead, the others still ask
    some = ws.agent("some", tools=["write_file", "run_python"], auto_approve=["write_file"])
    assert some.auto_approve == ["write_file"]
    job = some.submit("ask", "use run_python with code='print(1)'")
    await reach(ws, job, "awaiting_input")
    assert ws.jobs.pending()[0]["tool"] == "run_python"
    ws.jobs.cancel(job)


async def test_a_tool_made_with_approve_true_asks(ws):
    @wiz.tool(approve=True)
    def launch(target: str) -> str:
        """Launch something.

        Args:
            target: what
        """
        return f"launched {target}"

    assert launch.approve and not wiz.tool(lambda: 1).approve
    job = ws.agent("ops", tools=[launch]).submit("ask", "use launch with target=moon")
    await ws.start()
    await reach(ws, job, "awaiting_input")
    ws.jobs.approve(job.id)
    assert "launched moon" in await job.wait(timeout=10)


async def test_ask_user_waits_for_an_answer_that_becomes_the_tools_result(ws):
    model = ScriptedModel([wiz.ToolCall("ask_user", {"question": "Which year?"}), "Using 2024."])
    job = ws.agent("asker", model=model, tools=["ask_user"], auto_approve=True).submit(
        "ask", "report"
    )
    await ws.start()
    await reach(ws, job, "awaiting_input")  # auto_approve does not answer questions
    [pending] = ws.jobs.pending()
    assert (pending["kind"], pending["question"]) == ("question", "Which year?")
    with pytest.raises(NotAwaitingInput, match=r"asks a question, not for approval: answer it"):
        ws.jobs.approve(job)
    ws.jobs.answer(job, "2024, the last full year")
    assert await job.wait(timeout=10) == "Using 2024."
    tool_messages = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["content"] == "2024, the last full year"


async def test_bad_replies_are_one_line_errors(ws):
    @ws.task
    def plain() -> int:
        return 1

    done = ws.jobs.add("plain")
    await ws.run_until_idle(timeout=5)
    with pytest.raises(JobNotFound, match="no job 999"):
        ws.jobs.approve(999)
    with pytest.raises(NotAwaitingInput, match=f"^job {done.id} is not awaiting input"):
        ws.jobs.approve(done)
    with pytest.raises(NotAwaitingInput, match=f"^job {done.id} is not awaiting input"):
        ws.jobs.answer(done.id, "x")
    with pytest.raises(InvalidJob, match="a reason is needed"):
        ws.jobs.deny(done, "  ")
    with pytest.raises(InvalidJob, match="the text is empty"):
        ws.jobs.answer(done, "")
    job = ws.agent("clerk", tools=["write_file"]).submit(
        "ask", "use write_file with path=a content=b"
    )
    await ws.start()
    await reach(ws, job, "awaiting_input")
    with pytest.raises(NotAwaitingInput, match="awaits approval of a tool call, not an answer"):
        ws.jobs.answer(job, "yes")
    assert job.status == "awaiting_input"  # nothing changed


async def test_pending_shows_arguments_escaped_with_secrets_redacted(ws, monkeypatch):
    secret = "sk-test-0123456789abcdefXYZ"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    model = ScriptedModel([
        wiz.ToolCall("write_file", {"path": "k.txt", "content": f"<script>x</script> key={secret}"}),
        "done",
    ])  # fmt: skip
    clerk = ws.agent("clerk", model=model, tools=["write_file"])
    job = clerk.submit("ask", "save the key")
    await ws.start()
    await reach(ws, job, "awaiting_input")
    pending = ws.jobs.pending()
    assert secret not in json.dumps(pending) and "***" in pending[0]["args"]["content"]
    assert secret not in json.dumps(job.input) and secret not in json.dumps(job.events())
    page = pending._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "write_file" in repr(pending) and "write_file" in repr(ws.jobs.list("awaiting_input"))
    ws.jobs.approve(job)
    await job.wait(timeout=10)
    # the tool ran with the real arguments, kept in the activity, not in the request
    assert (clerk.folder / "k.txt").read_text().endswith(secret)


async def test_a_parked_job_is_neither_recovered_as_stalled_nor_removed_by_gc(tmp_path):
    ws = wiz.Workspace(tmp_path / "w.db", lease=0.3, poll_interval=0.05)
    ws.jobs.set_retention(completed=True, failed=True)
    job = ws.agent("clerk", tools=["write_file"]).submit(
        "ask", "use write_file with path=a content=b"
    )
    await ws.start()
    await reach(ws, job, "awaiting_input")
    await asyncio.sleep(1.0)  # several lease periods: stalled checks and gc passes ran
    assert ws.jobs.recover_stalled("someone else") == 0
    assert ws.gc()["removed"] == 0
    assert job.refresh().status == "awaiting_input" and job.attempts_made == 0
    await ws.stop()
    ws.close()


async def test_a_chain_step_awaiting_input_keeps_the_chain_waiting(ws):
    writer = ws.agent("writer", tools=["write_file"])
    reviewer = ws.agent("reviewer", model=ScriptedModel(["looks good"]))
    run = asyncio.ensure_future(
        (writer >> reviewer).run("use write_file with path=r.txt content=draft")
    )
    for _ in range(200):
        if ws.jobs.pending():
            break
        await asyncio.sleep(0.05)
    [pending] = ws.jobs.pending()
    await asyncio.sleep(0.3)
    assert not run.done()
    assert [j.status for j in ws.jobs.list(agent="reviewer")] in ([], ["blocked"])
    ws.jobs.approve(pending["job"])
    assert await asyncio.wait_for(run, 15) == "looks good"
    assert (writer.folder / "r.txt").read_text() == "draft"


async def test_a_job_awaiting_input_survives_a_sigkill_and_is_approved_from_another_process(
    tmp_path,
):
    db, marks = tmp_path / "shared.db", tmp_path / "marks.txt"
    proc = subprocess.Popen(
        [sys.executable, WORKER, "park", str(db), str(marks)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line.startswith("awaiting ")
        job_id = int(line.split()[1])
        proc.send_signal(9)
        assert await asyncio.to_thread(proc.wait, 10) == -9
    finally:
        proc.kill()
    sys.path.insert(0, str(Path(WORKER).parent))
    try:
        from _approvals_worker import recorder
    finally:
        sys.path.pop(0)
    ws = wiz.Workspace(db, lease=0.5, poll_interval=0.05)
    recorder(ws, str(marks))
    await ws.start()
    await asyncio.sleep(1.2)  # the dead process's lease would have run out twice over
    job = ws.jobs.get(job_id)
    assert job.status == "awaiting_input" and not marks.exists()
    ws.jobs.approve(job_id)
    assert "recorded 1" in await job.wait(timeout=15)
    assert marks.read_text().split() == ["1"]
    await ws.stop()
    ws.close()


async def test_two_processes_approving_at_once_run_the_tool_exactly_once(tmp_path):
    db, marks = tmp_path / "shared.db", tmp_path / "marks.txt"
    proc = subprocess.Popen(
        [sys.executable, WORKER, "park", str(db), str(marks)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        job_id = int(line.split()[1])
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
    at = time.time() + 3.0  # both processes started and waiting for the same moment
    approvers = [
        subprocess.Popen(
            [sys.executable, WORKER, "approve", str(db), str(marks), str(job_id), str(at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [(await asyncio.to_thread(p.communicate, timeout=60))[0].split("\n") for p in approvers]
    firsts = sorted(o[0] for o in outs)
    assert firsts[0] == "approved"
    # the second finds it waiting, running, or already done: never awaiting input
    assert firsts[1].startswith(f"error job {job_id} is not awaiting input")
    assert all("done completed" in o for o in outs)
    assert marks.read_text().split() == ["1"]  # once, whichever process ran it


def wiz_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wiz_jupyter", *args], capture_output=True, text=True, timeout=60
    )


async def test_the_cli_lists_approves_denies_and_answers(ws, db_path):
    clerk = ws.agent("clerk", tools=["write_file", "ask_user"])
    write = clerk.submit("ask", "use write_file with path=c.txt content=cli")
    deny = clerk.submit("ask", "use write_file with path=x.txt content=no")
    ask = clerk.submit("ask", "use ask_user with question='which colour?'")
    await ws.start()
    for job in (write, deny, ask):
        await reach(ws, job, "awaiting_input")
    db = str(db_path)
    listed = await asyncio.to_thread(wiz_cli, "jobs", "--status", "awaiting_input", "--db", db)
    assert listed.returncode == 0 and "awaiting_input 3" in listed.stdout
    assert "approve write_file(path='c.txt', content='cli')" in listed.stdout
    assert "asks: which colour?" in listed.stdout
    out = await asyncio.to_thread(wiz_cli, "approve", str(write.id), "--db", db)
    assert out.returncode == 0 and out.stdout.startswith(f"job {write.id} approved")
    out = await asyncio.to_thread(wiz_cli, "deny", str(deny.id), "wrong", "file", "--db", db)
    assert out.returncode == 0, out.stderr
    out = await asyncio.to_thread(wiz_cli, "answer", str(ask.id), "green", "--db", db)
    assert out.returncode == 0, out.stderr
    # this process runs the agent: it resumes all three
    assert "wrote 3 characters" in await write.wait(timeout=10)
    assert "wrong file" in await deny.wait(timeout=10)
    assert "green" in await ask.wait(timeout=10)
    assert (clerk.folder / "c.txt").read_text() == "cli" and not (clerk.folder / "x.txt").exists()
    for argv, message in (
        (
            ("approve", str(write.id)),
            f"wiz: job {write.id} is not awaiting input (it is completed)",
        ),
        (("approve", "999"), "wiz: no job 999 in this workspace"),
        (("deny", str(write.id)), f"wiz: say why job {write.id} is denied: a reason is needed"),
    ):
        out = await asyncio.to_thread(wiz_cli, *argv, "--db", db)
        assert (out.returncode, out.stderr.strip()) == (2, message)


async def test_the_board_shows_what_a_parked_job_asks_and_approves_or_denies_it(ws):
    board = ws.board(interval=0.05)
    sent = []
    board.send = lambda msg, buffers=None: sent.append(msg)
    clerk = ws.agent("clerk", tools=["write_file"])
    one = clerk.submit("ask", "use write_file with path=b1.txt content=<b>one</b>")
    two = clerk.submit("ask", "use write_file with path=b2.txt content=two")
    await ws.start()
    await reach(ws, one, "awaiting_input")
    await reach(ws, two, "awaiting_input")
    board.status_filter = "awaiting_input"
    rows = {r["id"]: r for r in sent[-1]["jobs"]}
    assert set(rows) == {one.id, two.id} and board.counts["awaiting_input"] == 2
    assert rows[one.id]["asks"] == "approve write_file(path='b1.txt', content='<b>one</b>')"
    assert rows[one.id]["ask_kind"] == "approval" and "input" not in rows[one.id]
    assert board._act({"action": "approve", "id": one.id}, []) == ({"ok": True}, [])
    assert board._act({"action": "deny", "id": two.id}, [])[0]["error"].endswith(
        "a reason is needed"
    )
    assert board._act({"action": "deny", "id": two.id, "reason": "no"}, []) == ({"ok": True}, [])
    assert board._act({"action": "approve", "id": one.id}, [])[0]["error"].startswith(
        f"job {one.id} is not awaiting input"
    )
    await one.wait(timeout=10)
    await two.wait(timeout=10)
    assert (clerk.folder / "b1.txt").read_text() == "<b>one</b>"
    assert not (clerk.folder / "b2.txt").exists()
    board.close()
    # the board's script puts every value in textContent, the parked job's arguments too
    from wiz_jupyter.notebook.board import STATIC

    js = (STATIC / "board.js").read_text()
    assert '"awaiting_input"' in js and "innerHTML" not in js


async def test_a_schedule_after_a_parked_job_waits_for_it_like_any_step(ws):
    @ws.task
    def publish() -> str:
        return "published"

    job = ws.agent("clerk", tools=["write_file"]).submit(
        "ask", "use write_file with path=p content=q"
    )
    ws.schedules.add("publish", {}, after=job.id, on="completed")
    await ws.start()
    await reach(ws, job, "awaiting_input")
    await asyncio.sleep(0.5)  # scheduler passes ran: nothing fired for a job that only waits
    assert ws.jobs.list(task="publish") == []
    ws.jobs.approve(job)
    await job.wait(timeout=10)
    for _ in range(100):
        if ws.jobs.list(task="publish"):
            break
        await asyncio.sleep(0.05)
    [published] = ws.jobs.list(task="publish")
    assert await published.wait(timeout=10) == "published"


async def test_a_chat_says_what_its_parked_reply_asks_and_goes_on_once_approved(ws):
    clerk = ws.agent("clerk", tools=["write_file"])
    chat = ws.chat("clerk")
    job = chat.send("use write_file with path=c.txt content=chat")
    await ws.start()
    await reach(ws, job, "awaiting_input")
    note = chat.messages()[-1]
    assert (note["role"], note["job_id"]) == ("input", job.id)
    assert note["content"].startswith("May I write_file(path='c.txt', content='chat')?")
    assert all(m["content"] != note["content"] for m in chat.context("clerk", 20))
    ws.jobs.approve(job)
    await job.wait(timeout=10)
    assert "wrote 4 characters" in chat.messages()[-1]["content"]
    assert (clerk.folder / "c.txt").read_text() == "chat"
