"""%wiz in a real kernel: every subcommand, interpolation, -o, bad input."""

from __future__ import annotations

import wiz_jupyter as wiz


def test_load_ext_registers_starts_the_runtime_and_stays_light(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    kernel.ok("%load_ext wiz_jupyter")  # twice is harmless
    res = kernel.ok("import sys; print('litellm' in sys.modules, 'nest_asyncio2' in sys.modules)")
    assert res.stdout.strip() == "False False"
    status = kernel.ok("%wiz status")
    assert "runtime running" in status.stdout
    assert "/home/wiz.db" in status.stdout  # WIZ_HOME decides where the workspace lives


def test_result_waits_for_a_background_job_and_stores_it(kernel):
    kernel.ok("""
        %load_ext wiz_jupyter
        import asyncio, wiz_jupyter as wiz
        ws = wiz.workspace()

        @ws.task
        async def slow_square(n: int) -> int:
            await asyncio.sleep(0.2)
            return n * n

        job = ws.jobs.add("slow_square", {"n": 7})
        jid = job.id
    """)
    res = kernel.ok("%wiz result {jid}")  # {var} is the notebook variable
    assert "is waiting" in res.stdout or "is active" in res.stdout
    res = kernel.ok("%wiz result {jid} --wait -o answer")
    assert res.plain == ["49"]
    assert kernel.ok("print(answer, job.status)").stdout.strip() == "49 completed"


def test_jobs_table_cancel_retry_priority_pause_resume(kernel):
    kernel.ok("""
        %load_ext wiz_jupyter
        import wiz_jupyter as wiz
        ws = wiz.workspace()
        ws.jobs.pause()
        a = ws.jobs.add("nobody_runs_this", {"x": 1})
        b = ws.jobs.add("nobody_runs_this", {"x": 2})
    """)
    table = kernel.ok("%wiz jobs --status waiting")
    assert "<table" in table.html[0] and "nobody_runs_this" in table.html[0]
    assert "waiting" in table.plain[0]
    assert "job 1 cancelled" in kernel.ok("%wiz cancel 1").stdout
    assert "already finished" in kernel.ok("%wiz cancel 1").stdout
    assert "waiting" in kernel.ok("%wiz retry 1").plain[0]
    kernel.ok("%wiz priority 2 9")
    assert kernel.ok("print(b.priority)").stdout.strip() == "9"
    assert "queue resumed" in kernel.ok("%wiz resume").stdout
    assert "queue paused" in kernel.ok("%wiz pause").stdout
    assert "(queue paused)" in kernel.ok("%wiz status").stdout


def test_schedule_and_schedules(kernel, tmp_path):
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.ok(
        """%wiz schedule report '{"day": "mon"}' --cron "0 9 * * 1-5" --tz Europe/Paris --name weekdays"""
    )
    assert "weekdays" in res.plain[0]
    kernel.ok("%wiz schedule cleanup --every 300")
    listed = kernel.ok("%wiz schedules")
    assert "weekdays" in listed.plain[0] and "every 300 s" in listed.plain[0]
    assert "sync on boot" in kernel.ok("%wiz schedule sync --trigger boot").plain[0]
    ws = wiz.Workspace(tmp_path / "home" / "wiz.db")  # the same file, from outside the kernel
    assert ws.schedules.get("weekdays").template["data"] == {"day": "mon"}


def test_bad_input_prints_a_short_message_never_a_traceback(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    cases = {
        "%wiz jobs --status done": "invalid choice: 'done'",
        "%wiz frobnicate": "invalid choice: 'frobnicate'",
        "%wiz result": "the following arguments are required: id",
        "%wiz result 999": "wiz: no job 999 in this workspace",
        "%wiz result abc": "expected a whole number, got 'abc'",
        "%wiz schedule t --cron 'not cron'": "wiz: malformed cron expression 'not cron'",
        "%wiz schedule t": "one of the arguments --cron --every --at --after --trigger is required",
        "%wiz schedule t --trigger reboot": "wiz: unknown trigger 'reboot'; named triggers: boot,",
        "%wiz schedule t '{bad json' --every 5": "wiz: data must be JSON",
        "%wiz retry 12345": "wiz: no job 12345",
        "%wiz jobs --limit 'unclosed": "wiz: No closing quotation",
    }
    for line, message in cases.items():
        res = kernel.run(line)
        assert res.status == "ok" and res.error is None, line
        assert message in res.stderr, (line, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout, line


BIG = "9223372036854775808"  # 2**63: one past what SQLite stores


def test_the_inputs_that_gave_tracebacks_give_one_line(kernel, tmp_path):
    """Issue 19, item 5: each of these printed a traceback; now one `wiz`/usage line each."""
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent x --role r")
    kernel.ok("import wiz_jupyter as wiz\nws = wiz.workspace()\nj = ws.jobs.add('never_handled')")
    cases = {
        f"%wiz cancel {BIG}": "is out of range",
        f"%wiz result {BIG}": "is out of range",
        f"%wiz retry {BIG}": "is out of range",
        f"%wiz priority 1 {BIG}": "is out of range",
        f"%wiz priority {BIG} 1": "is out of range",
        f"%wiz jobs --limit {BIG}": "is out of range",
        f"%wiz assign x --priority {BIG} go": "is out of range",
        f"%wiz agent y --max-steps {BIG}": "is out of range",
        f"%wiz run nb.ipynb --attempts {BIG}": "is out of range",
        "%wiz result 1 --wait --timeout 0.2": "wiz: result: no answer within its timeout",
        "%wiz ask x hi --timeout 0": "expected seconds > 0, got 0",
        "%wiz ask x hi --timeout nan": "expected a finite number of seconds",
        "%wiz result 1 --wait --timeout -1": "expected seconds > 0, got -1",
        "%wiz assign x --delay -5 go": "expected seconds >= 0, got -5",
        "%wiz schedule t --every 0": "expected seconds > 0",
        "%wiz agent x --export nodir/x.yaml": "wiz: agent:",
        f"%wiz agent {'n' * 300} --role r": "wiz: agent:",
        "%wiz jobs --limit 0": "expected a number >= 1",
    }
    for line, message in cases.items():
        res = kernel.run(line)
        assert res.status == "ok" and res.error is None, (line, res.error)
        assert message in res.stderr, (line, res.stderr)
        assert "Traceback" not in res.stderr + res.stdout, line
        assert res.stderr.strip().count("\n") == 0, (line, res.stderr)  # one line
    usage = kernel.run("%wiz result").stderr.strip()
    assert usage.endswith("see %wiz result --help") and "\n" not in usage


def test_a_dask_address_that_cannot_be_reached_fails_within_its_timeout(kernel):
    import time

    kernel.ok("%load_ext wiz_jupyter")
    t0 = time.monotonic()
    res = kernel.run("%wiz dask tcp://127.0.0.1:1 --timeout 3", timeout=60)
    assert time.monotonic() - t0 < 20
    assert res.status == "ok" and res.stderr.startswith("wiz: "), res.stderr
    assert "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr


def test_help_is_generated_for_every_subcommand(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    top = kernel.ok("%wiz --help").stdout
    for sub in (
        "jobs",
        "result",
        "cancel",
        "retry",
        "priority",
        "pause",
        "resume",
        "schedule",
        "schedules",
        "status",
    ):
        assert sub in top
    assert "--wait" in kernel.ok("%wiz result --help").stdout
    assert "--cron" in kernel.ok("%wiz schedule --help").stdout


def test_unload_stops_the_runtime(kernel):
    kernel.ok("%load_ext wiz_jupyter\nimport wiz_jupyter as wiz")
    kernel.ok("%unload_ext wiz_jupyter")
    kernel.ok("import asyncio; await asyncio.sleep(0.2)")
    assert kernel.ok("print(wiz.workspace().runtime.running)").stdout.strip() == "False"


def test_board_displays_a_widget(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.ok("%wiz board")
    assert res.plain and "JobBoard" in res.plain[0]


def test_a_question_mark_at_the_end_asks_instead_of_opening_help(kernel):
    kernel.ok("%load_ext wiz_jupyter\nimport wiz_jupyter as wiz\nws = wiz.workspace()\nx = 3")
    kernel.ok("%wiz agent echo --role helper")
    res = kernel.ok("%wiz ask echo is {x} in df?", timeout=60)
    assert "Object" not in res.stdout + res.stderr  # IPython's "Object `df` not found."
    prompt = kernel.ok("print(ws.jobs.list(task='agent:echo')[0].data['prompt'])").stdout
    assert prompt.strip() == "is 3 in df?"


def test_the_question_mark_transformer_rewrites_only_wiz_lines():
    from wiz_jupyter.notebook.magics import keep_question_marks

    assert keep_question_marks(["%wiz ask a why?\n", "y = 1?\n"]) == [
        "get_ipython().run_line_magic('wiz', 'ask a why?')\n",
        "y = 1?\n",
    ]
    assert keep_question_marks(["if ok:\n", "    %wiz ask a how?  \n"])[1] == (
        "    get_ipython().run_line_magic('wiz', 'ask a how?')\n"
    )
    assert keep_question_marks(["%wiz ask a 'how?'\n"]) == ["%wiz ask a 'how?'\n"]  # not help
    cell = ["%%wiz ask a\n", "%wiz what?\n"]
    assert keep_question_marks(cell) == cell
    assert keep_question_marks(["%wiz jobs\n"]) == ["%wiz jobs\n"]
