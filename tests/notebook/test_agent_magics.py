"""%wiz agent / ask / assign / chat / model in a real kernel, with the offline model."""

from __future__ import annotations


def test_agent_ask_streams_into_the_cell_and_stores_the_answer(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    made = kernel.ok(
        "%wiz agent helper --role 'research assistant' --goal 'answer briefly' --tools read_file"
    )
    assert "helper" in made.plain[0] and "read_file" in made.plain[0]
    listed = kernel.ok("%wiz agent")
    assert "research assistant" in listed.stdout
    res = kernel.ok("topic = 'tides'\n%wiz ask helper What causes {topic}? -o answer")
    answer = kernel.ok("print(answer)").stdout.strip()
    assert answer and "tides" in answer.lower()
    # streamed into a display of its own cell, which ends empty; the answer shows once
    shown = [o for o in res.outputs if o["type"] == "display_data"]
    assert [o["data"]["text/plain"] for o in shown] == ["", answer]
    assert res.outputs[-2]["type"] == "update_display_data"
    assert res.outputs[-2]["data"]["text/plain"] == "" and not res.stdout.strip()
    cell = kernel.ok("%%wiz ask helper\nSummarise: the moon pulls the sea.")
    assert cell.plain[-1].strip()
    bg = kernel.ok("%wiz ask helper --background -o job hello")
    assert "Job" in bg.plain[0]
    assert (
        kernel.ok("print(job.status in ('waiting', 'active', 'completed'))").stdout.strip()
        == "True"
    )


def test_assign_returns_a_job_or_waits(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent planner --role planner")
    res = kernel.ok("%wiz assign planner --priority 3 --validate 'is short' -o j Plan a picnic")
    assert "agent:planner" in res.plain[0]
    done = kernel.ok("%wiz assign planner --wait -o text Plan a walk")
    assert done.plain[-1].strip() == kernel.ok("print(text)").stdout.strip() != ""
    assert kernel.ok("print(j.priority, j.data['validation'])").stdout.strip() == "3 ['is short']"


def test_chat_and_model_subcommands(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    assert "no agents yet" in kernel.run("%wiz chat").stderr
    kernel.ok("%wiz agent helper --role assistant")
    panel = kernel.ok("%wiz chat helper")
    assert "ChatPanel" in panel.plain[0]
    assert "default model: wiz/offline" in kernel.ok("%wiz model").stdout
    assert "default model: openai/gpt-4o-mini" in kernel.ok("%wiz model openai/gpt-4o-mini").stdout


def test_agent_errors_are_one_line(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    cases = {
        "%wiz ask ghost hello": "wiz: no agent 'ghost'",
        "%wiz ask": "the following arguments are required: name",
        "%wiz agent helper --tools rm_rf": "wiz: unknown built-in tool 'rm_rf'",
        "%wiz assign ghost do it": "wiz: no agent 'ghost'",
        "%wiz chat ghost": "wiz: no agent 'ghost'",
    }
    kernel.ok("%wiz agent helper --role assistant")
    cases["%wiz ask helper"] = "wiz: give a prompt"
    for line, message in cases.items():
        res = kernel.run(line)
        assert res.status == "ok" and message in res.stderr, (line, res.stderr)
        assert "Traceback" not in res.stderr, line


def test_agent_from_a_persona_file_and_export(kernel, tmp_path):
    (tmp_path / "critic.yaml").write_text(
        "name: critic\nrole: film critic\ngoal: judge briefly\nmodel: wiz/offline\n"
        "settings: {temperature: 0}\ntools: [read_file, shout]\nmax_steps: 4\n"
    )
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.run("%wiz agent --from critic.yaml")
    assert res.status == "ok"
    assert (
        "wiz: critic.yaml: field 'tools[1]': expected a built-in or registered tool" in res.stderr
    )
    assert res.stderr.count("\n") == 1 and not res.plain  # one line, nothing made
    kernel.ok(
        """
        import wiz_jupyter as wiz
        @wiz.workspace().agents.register_tool
        def shout(text: str) -> str:
            '''Shout a text.'''
            return text.upper()
        """
    )
    made = kernel.ok("%wiz agent --from critic.yaml")
    assert "critic: film critic" in made.plain[0] and "read_file, shout" in made.plain[0]
    again = kernel.ok("%wiz agent second --from critic.yaml --goal 'judge at length'")
    assert "second: film critic" in again.plain[0]
    shown = kernel.ok("a = wiz.workspace().agent('second'); print(a.goal, a.max_steps, a.settings)")
    assert shown.stdout.strip() == "judge at length 4 {'temperature': 0}"
    out = kernel.ok("%wiz agent second --export second.json")
    assert "wrote second.json" in out.stdout
    assert '"goal": "judge at length"' in (tmp_path / "second.json").read_text()
    assert "--from FILE" in kernel.ok("%wiz agent --help").stdout
    for line, message in {
        "%wiz agent --from missing.yaml": "wiz: missing.yaml: no such file",
        "%wiz agent --export x.yaml": "wiz: --export needs the agent",
        "%wiz agent --from": "argument --from: expected one argument",
    }.items():
        res = kernel.run(line)
        assert res.status == "ok" and message in res.stderr, (line, res.stderr)


HOSTILE_ANSWER = (
    "<img src=x onerror=alert(1)> <script>alert(2)</script> <svg onload=alert(3)> "
    "[x](javascript:alert(4)) ![p](https://evil.example/?k=1)\n\n```python\nprint('<b>ok</b>')\n```"
)


def test_a_hostile_answer_is_displayed_as_inert_html_never_markdown(kernel):
    """Issue 19: an answer that carries HTML (a prompt injection is enough) must not run in
    a trusted output: %wiz ask, %%wiz ask and %wiz assign --wait display safe HTML only."""
    kernel.ok("%load_ext wiz_jupyter\nimport wiz_jupyter as wiz\nws = wiz.workspace()")
    kernel.ok(f"ws.agent('x', model=wiz.ScriptedModel([{HOSTILE_ANSWER!r}] * 2))")
    for code in ["%wiz ask x hi", "%%wiz ask x\nhi"]:
        res = kernel.ok(code)
        shown = [o for o in res.outputs if o["type"] == "display_data" and o["data"]["text/plain"]]
        assert len(shown) == 1, res.outputs
        data = shown[0]["data"]
        assert "text/markdown" not in data and data["text/plain"] == HOSTILE_ANSWER
        page = data["text/html"]
        for live in ["<img", "<script", "<svg", "javascript:"]:
            assert live not in page, (live, page)
        assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<pre><code" in page


def test_a_local_model_by_magic_and_the_models_in_use(kernel):
    from wiz_jupyter.testing import OpenAIServer

    with OpenAIServer() as server:
        kernel.ok("%load_ext wiz_jupyter")
        made = kernel.ok(f"%wiz model hosted_vllm/qwen-test --api-base {server.url}")
        assert f"default model: hosted_vllm/qwen-test at {server.url}" in made.stdout
        kernel.ok("%wiz agent local --role helper\n%wiz agent cloud --model openai/gpt-4o-mini")
        kernel.ok("%wiz ask local hello there -o got")
        assert kernel.ok("print(got)").stdout.strip() == "echo: hello there"
        assert server.requests[0].body["model"] == "qwen-test"
        listed = kernel.ok("%wiz models").stdout
        rows = {line.split()[0]: line for line in listed.splitlines()[2:]}
        assert (
            server.url in rows["hosted_vllm/qwen-test"] and "local" in rows["hosted_vllm/qwen-test"]
        )
        assert "cloud" in rows["openai/gpt-4o-mini"]
    for line, message in {
        "%wiz model --api-base http://localhost:1/v1": "wiz: name the model",
        "%wiz model m --api-base ftp://x": "wiz: api_base must be an http(s) URL",
    }.items():
        res = kernel.run(line)
        assert message in res.stderr and "Traceback" not in res.stderr, (line, res.stderr)


def test_budgets_by_magic_and_in_the_status(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent helper --role helper")
    res = kernel.run("%wiz ask helper --max-tokens 2 say hello there")
    assert "BudgetExceeded: job 1 used 0 of its 2 tokens" in res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    kernel.ok("%wiz assign helper --wait --max-cost 0.50 --max-tokens 100000 say hello")
    kernel.ok(
        "import wiz_jupyter as wiz\nws = wiz.workspace()\n"
        "ws.llm.set_budget(tokens=1_000_000, per='month')\n"
        "ws.agents.set_budget('helper', {'cost': 1.0, 'per': 'day'})"
    )
    status = kernel.ok("%wiz status").stdout
    assert "budget of agent helper per day: $0 of $1.00" in status
    used = kernel.ok("print(ws.llm.usage().tokens)").stdout.strip()
    assert f"budget of the workspace per month: {int(used):,} of 1,000,000 tokens" in status
    for line in ("%wiz ask helper --max-cost abc hi", "%wiz ask helper --max-tokens 0 hi"):
        res = kernel.run(line)
        assert "%wiz ask: argument --max-" in res.stderr and "Traceback" not in res.stderr
