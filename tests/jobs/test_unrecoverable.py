"""``raise wiz.Unrecoverable(why)``: the job fails at once, whatever its attempts, and the
lists and the board say so. Real SQLite files; a thread handler, a loop handler and a
second process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import wiz_jupyter as wiz
from wiz_jupyter.jobs.display import why_failed
from wiz_jupyter.notebook.board import _row


async def test_an_unrecoverable_error_fails_the_job_at_once_and_a_plain_one_retries(ws):
    calls = {"bad": 0, "flaky": 0}

    @ws.task(attempts=5)
    def bad(path: str) -> None:
        calls["bad"] += 1
        raise wiz.Unrecoverable(f"{path} is not a CSV file")

    @ws.task(attempts=3)
    async def flaky() -> None:
        calls["flaky"] += 1
        raise ValueError("boom")

    a, b = ws.jobs.add("bad", {"path": "x.txt"}), ws.jobs.add("flaky")
    await ws.run_until_idle(timeout=30)
    assert calls == {"bad": 1, "flaky": 3}
    assert (a.status, a.fail_reason, a.attempts_made) == ("failed", "unrecoverable", 1)
    assert a.error == "Unrecoverable: x.txt is not a CSV file"
    assert (b.status, b.fail_reason, b.attempts_made) == ("failed", "error", 3)
    # %wiz jobs --status failed prints this list: each says why it gave up
    text = repr(ws.jobs.list(status="failed"))
    assert "unrecoverable: Unrecoverable: x.txt is not a CSV file" in text
    assert "3/3 attempts used: ValueError: boom" in text
    board = {r["id"]: r for r in (_row(j.snapshot, ws.runs_dir) for j in (a, b))}
    assert board[a.id]["why"] == "unrecoverable" and board[b.id]["why"] == "3/3 attempts used"


async def test_a_subclass_is_unrecoverable_too_and_retry_runs_it_again(ws):
    class BadInput(wiz.Unrecoverable):
        pass

    seen = []

    @ws.task(attempts=4)
    def check(n: int) -> int:
        seen.append(n)
        if len(seen) == 1:
            raise BadInput("n must be even")
        return n

    job = ws.jobs.add("check", {"n": 3})
    await ws.run_until_idle(timeout=30)
    assert (job.status, job.fail_reason, len(seen)) == ("failed", "unrecoverable", 1)
    ws.jobs.retry(job)  # a person fixed what was wrong: a retry is theirs to make
    await ws.run_until_idle(timeout=30)
    assert (job.status, job.result) == ("completed", 3)


def test_why_failed_words():
    row = {"fail_reason": "timeout", "attempts_made": 2, "attempts": 2}
    assert why_failed(row) == "timed out, 2/2 attempts used"
    assert why_failed({**row, "fail_reason": "dependency"}) == "dependency failed"
    assert why_failed({**row, "fail_reason": "error", "attempts_made": 1}) == "after 1/2 attempts"


def test_a_worker_process_fails_an_unrecoverable_job_at_once(db_path, tmp_path):
    tasks = tmp_path / "mytasks.py"
    tasks.write_text(
        textwrap.dedent("""
        import wiz_jupyter as wiz
        ws = wiz.workspace()

        @ws.task(attempts=9)
        def parse(text: str):
            raise wiz.Unrecoverable("not a number: " + text)
    """)
    )
    ws = wiz.Workspace(db_path)
    job = ws.jobs.add("parse", {"text": "abc"}, attempts=9)
    out = subprocess.run(
        [sys.executable, "-m", "wiz_jupyter", "run-due", "--db", str(db_path), "--tasks", str(tasks)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (job.status, job.fail_reason, job.attempts_made) == ("failed", "unrecoverable", 1)
    ws.close()
