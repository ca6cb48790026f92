"""Retention: finished jobs removed by their policies (per job, per task, the workspace's
default), with what goes with them, never before the jobs that wait for them; across
processes. Real SQLite files, real subprocesses, a real kernel for a notebook job."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.agents import ScriptedModel
from wiz_jupyter.jobs import retention


async def reach(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def ids(ws, **filters):
    return [j.id for j in ws.jobs.list(**filters)]


async def test_a_job_removed_on_complete_goes_with_its_events_and_a_failed_one_stays(ws):
    @ws.task
    def t(ok: bool = True) -> int:
        if not ok:
            raise ValueError("no")
        return 1

    done = ws.jobs.add("t", remove_on_complete=True)
    bad = ws.jobs.add("t", {"ok": False}, remove_on_complete=True)
    kept = ws.jobs.add("t")  # no policy, no default: kept forever
    await ws.run_until_idle(timeout=30)
    assert ws.gc(dry_run=True)["removed"] == 1 and len(ws.jobs.list()) == 3
    out = ws.gc()
    assert out["removed"] == 1 and out["by_task"] == {"t": 1}
    assert ids(ws) == [bad.id, kept.id]
    with pytest.raises(wiz.JobNotFound):
        ws.jobs.get(done.id)
    n = ws.store.read("SELECT COUNT(*) FROM job_events WHERE job_id = ?", (done.id,))[0][0]
    assert n == 0
    assert ws.jobs.add("t").id == kept.id + 1


async def test_a_task_keeps_its_newest_n_and_the_workspace_default_covers_the_rest(ws):
    @ws.task(remove_on_complete=3)
    def kept3(n: int) -> int:
        return n

    @ws.task
    def other(n: int) -> int:
        if n % 2:
            raise ValueError("odd")
        return n

    a = [ws.jobs.add("kept3", {"n": i}) for i in range(10)]
    b = [ws.jobs.add("other", {"n": i}) for i in range(6)]
    own = ws.jobs.add("other", {"n": 8}, remove_on_complete=False)  # kept, whatever the default
    await ws.run_until_idle(timeout=30)
    ws.gc()
    assert ids(ws, task="kept3") == [j.id for j in a[-3:]]
    assert len(ids(ws, task="other")) == 7  # no default yet
    ws.jobs.set_retention(completed=1, failed={"age": 0})
    assert ws.jobs.retention == {"completed": {"count": 1}, "failed": {"age": 0.0}}
    ws.gc()
    # completed: the newest by finish time stays (own's False keeps it too); failed: all gone
    left = ws.jobs.list(task="other")
    assert own.id in [j.id for j in left] and all(j.status == "completed" for j in left)
    assert len(left) <= 2 and not any(j.id in [x.id for x in b if x.data["n"] % 2] for j in left)
    ws.jobs.set_retention()  # back to keeping everything
    assert ws.jobs.retention == {}


async def test_a_job_that_others_wait_for_is_kept_until_they_finish(ws):
    gate = {"open": False}

    @ws.task(remove_on_complete=True)
    async def step() -> None:
        return None

    @ws.task(remove_on_complete=True)
    async def waits() -> None:
        await reach(lambda: gate["open"], timeout=30)

    first = ws.jobs.add("step")
    blocked = ws.jobs.add("waits", depends_on=[first])
    parent = ws.jobs.add("step")
    child = ws.jobs.add("waits", parent=parent)
    await ws.start()
    await reach(lambda: first.status == "completed" and blocked.status == "active")
    await reach(lambda: child.status == "active")
    ws.gc()
    assert ws.jobs.get(first.id) and ws.jobs.get(parent.id)  # still needed by unfinished jobs
    gate["open"] = True
    await ws.run_until_idle(timeout=30)
    ws.gc()
    assert ws.jobs.list() == []


async def test_the_running_runtime_removes_by_itself(db_path):
    ws = wiz.Workspace(db_path, poll_interval=0.05)

    @ws.task(remove_on_complete=5)
    async def quick(n: int) -> int:
        return n

    ws.jobs.add_bulk([("quick", {"n": i}) for i in range(50)])
    await ws.start()
    await reach(lambda: len(ws.jobs.list()) == 5, timeout=30)
    assert [j.data["n"] for j in ws.jobs.list()] == [45, 46, 47, 48, 49]
    await ws.stop()
    ws.close()


async def test_an_agent_job_goes_with_its_activity_messages_and_metering(ws):
    agent = ws.agent("helper", role="helps", model=ScriptedModel(["first answer", "second"]))
    chat = ws.chat("helper")
    await chat.ask("hello?", timeout=30)
    job = agent.submit("ask", "do it", remove_on_complete=True)
    await job.wait(timeout=30)
    tables = ("activity", "messages", "llm_calls")

    def rows_of(jid):
        return {t: ws.store.read(f"SELECT COUNT(*) FROM {t} WHERE job_id = ?", (jid,))[0][0]
                for t in tables}  # fmt: skip

    assert rows_of(job.id)["activity"] == 1 and rows_of(job.id)["llm_calls"] >= 1
    ws.gc()
    assert rows_of(job.id) == dict.fromkeys(tables, 0)
    assert [m["content"] for m in chat.messages()] == ["hello?", "first answer"]  # untouched


async def test_a_notebook_job_goes_with_its_executed_copy(ws, tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    src = tmp_path / "tiny.ipynb"
    nbformat.write(nb, str(src))
    await ws.start()
    job = ws.jobs.add_notebook(src, remove_on_complete=True)
    result = await job.wait(timeout=120)
    copy = tmp_path / result["notebook"]
    assert copy.exists()
    ws.gc()
    assert not copy.exists() and ws.jobs.list() == []


def test_another_process_applies_the_policies_stamped_here(db_path, tmp_path):
    ws = wiz.Workspace(db_path)

    @ws.task(remove_on_complete=2)
    def t(n: int) -> int:
        return n

    jobs = [ws.jobs.add("t", {"n": i}) for i in range(6)]
    spec = tmp_path / "tasks.py"
    spec.write_text(
        textwrap.dedent("""
        import wiz_jupyter as wiz
        ws = wiz.workspace()

        @ws.task
        def t(n: int) -> int:
            return n
    """)
    )
    wiz_cli = [sys.executable, "-m", "wiz_jupyter"]
    run = subprocess.run([*wiz_cli, "run-due", "--db", str(db_path), "--tasks", str(spec)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    dry = subprocess.run([*wiz_cli, "gc", "--db", str(db_path), "--dry-run"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert dry.stdout.startswith("wiz gc: would remove 4 jobs (t 4)"), dry.stdout
    gc = subprocess.run([*wiz_cli, "gc", "--db", str(db_path), "--vacuum"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert gc.returncode == 0 and gc.stdout.startswith("wiz gc: removed 4 jobs (t 4)"), gc
    assert ids(ws) == [j.id for j in jobs[-2:]]
    ws.close()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"remove_on_complete": -1}, "remove_on_complete must be True, a count >= 0"),
        ({"remove_on_fail": "always"}, "remove_on_fail must be True, a number of jobs"),
        ({"remove_on_fail": {"age": -5}}, "remove_on_fail: age must be a number of seconds >= 0"),
        ({"remove_on_complete": {"count": 1.5}}, "remove_on_complete: count must be an integer"),
        ({"remove_on_complete": {"days": 1}}, "remove_on_complete must be True"),
    ],
)
def test_a_bad_policy_is_one_line_and_adds_nothing(db_path, options, message):
    ws = wiz.Workspace(db_path)
    with pytest.raises(wiz.InvalidJob, match=message):
        ws.jobs.add("t", **options)
    with pytest.raises(wiz.InvalidJob, match=message):
        ws.task(lambda: None, name="bad", **options)
    with pytest.raises(wiz.InvalidJob):
        ws.jobs.set_retention(completed=-3)
    assert ws.jobs.list() == [] and "bad" not in ws.jobs.tasks
    ws.close()


def test_without_a_default_gc_reads_only_the_jobs_with_a_policy(db_path):
    # the partial index: with no default, gc does not scan every finished job
    ws = wiz.Workspace(db_path)
    args = {"default": None, "now": 0.0, "limit": 1}
    plan = ws.store.read("EXPLAIN QUERY PLAN " + retention.query(None), args)
    assert any("INDEX jobs_keep" in r[3] for r in plan), [tuple(r) for r in plan]
    assert ws.gc()["removed"] == 0
    ws.close()
