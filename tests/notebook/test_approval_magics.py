"""Approvals and questions from notebook cells, in a real kernel: %wiz ask returns when
the job parks, %wiz approve / deny / answer resume it and follow it again, and a parked
job survives the kernel (a new kernel approves it)."""

from __future__ import annotations

import os

from jupyter_client.manager import start_new_kernel

from tests.notebook.conftest import Kernel

SETUP = "%load_ext wiz_jupyter\n%wiz agent clerk --tools write_file,ask_user"


def test_ask_returns_when_the_job_parks_and_approve_runs_the_tool_once(kernel, tmp_path):
    kernel.ok(SETUP)
    res = kernel.ok("%wiz ask clerk use write_file with path=n.txt content=hi")
    assert "job 1 awaits your input: approve write_file(path='n.txt', content='hi')" in res.stdout
    assert "%wiz approve 1  or  %wiz deny 1 REASON" in res.stdout
    listed = kernel.ok("%wiz jobs --status awaiting_input")
    assert "awaiting_input" in listed.plain[0] and "write_file(path='n.txt'" in listed.plain[0]
    kernel.ok("import wiz_jupyter as wiz; ws = wiz.workspace()")
    assert kernel.ok("print(ws.jobs.pending()[0]['tool'])").stdout.strip() == "write_file"
    waited = kernel.ok("%wiz result 1 --wait", timeout=30)  # returns: the reply is for a later cell
    assert waited.stdout.startswith("job 1 awaits your input: approve write_file(")
    res = kernel.ok("%wiz approve 1")
    assert "job 1 approved" in res.stdout
    assert any("wrote 2 characters" in p for p in res.plain), res.plain
    folder = kernel.ok("print(ws.agents.get('clerk').folder)").stdout.strip()
    assert open(os.path.join(folder, "n.txt")).read() == "hi"
    again = kernel.ok("%wiz approve 1")
    assert again.stderr.strip() == "wiz: job 1 is not awaiting input (it is completed)"


def test_deny_answer_and_bad_input_are_one_line_each(kernel):
    kernel.ok(SETUP)
    kernel.ok("%wiz ask clerk use write_file with path=d.txt content=no")
    res = kernel.ok("%wiz deny 1 not today")
    assert "job 1 denied" in res.stdout
    assert any("not today" in p for p in res.plain), res.plain  # the model got the reason
    kernel.ok("import wiz_jupyter as wiz; ws = wiz.workspace()")
    assert (
        kernel.ok("print((ws.agents.get('clerk').folder / 'd.txt').exists())").stdout.strip()
        == "False"
    )
    res = kernel.ok("%wiz ask clerk \"use ask_user with question='which year?'\"")
    assert "job 2 awaits your input: asks: which year?" in res.stdout
    assert "%wiz answer 2 TEXT" in res.stdout
    bad = kernel.ok("%wiz approve 2")
    assert bad.stderr.strip().startswith("wiz: job 2 asks a question, not for approval: answer it")
    bad = kernel.ok("%wiz deny 2")
    assert bad.stderr.strip() == "wiz: say why job 2 is denied: a reason is needed"
    bad = kernel.ok("%wiz approve 99")
    assert bad.stderr.strip() == "wiz: no job 99 in this workspace"
    bad = kernel.ok("%wiz approve")
    assert bad.stderr.count("\n") == 1 and "%wiz approve" in bad.stderr
    res = kernel.ok("%%wiz answer 2\nnineteen ninety-nine")
    assert "job 2 answered" in res.stdout
    assert any("nineteen ninety-nine" in p for p in res.plain), res.plain


def test_a_parked_job_survives_its_kernel_and_a_new_kernel_approves_it(tmp_path):
    env = {**os.environ, "WIZ_HOME": str(tmp_path / "home")}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:
        first = Kernel(kc)
        first.ok(SETUP)
        assert (
            "awaits your input"
            in first.ok("%wiz ask clerk use write_file with path=k.txt content=kept").stdout
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)  # killed, not asked: no grace, no goodbye
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:
        second = Kernel(kc)
        second.ok("%load_ext wiz_jupyter")
        assert "awaiting_input" in second.ok("%wiz jobs").plain[0]
        res = second.ok("%wiz approve 1")
        assert any("wrote 4 characters" in p for p in res.plain), (res.plain, res.stderr)
        assert (tmp_path / "home" / "agents" / "clerk" / "k.txt").read_text() == "kept"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_an_agent_made_with_auto_approve_acts_without_asking(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent free --tools write_file --auto-approve")
    res = kernel.ok("%wiz ask free use write_file with path=f.txt content=free")
    assert "awaits" not in res.stdout and any("wrote 4 characters" in p for p in res.plain)
    kernel.ok("%wiz agent free --ask-first")
    res = kernel.ok("%wiz ask free use write_file with path=g.txt content=asks")
    assert "job 2 awaits your input" in res.stdout
