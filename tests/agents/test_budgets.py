"""Budgets: a job's, an agent's per period and the workspace's, checked before each model
call (a call that would pass a cap is never made) and after it; the job then fails at
once with wiz.BudgetExceeded. Costs come from litellm's price table for a priced model
served by the loopback server; tokens from the offline model too."""

from __future__ import annotations

import re

import pytest

import wiz_jupyter as wiz

from .conftest import LITELLM_NOISE

pytestmark = LITELLM_NOISE

PRICED = "openai/gpt-4o-mini"  # in litellm's price table; served here by the loopback server


@pytest.fixture
def priced(ws, server, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-loopback")
    monkeypatch.setenv("WIZ_CONFIG", str(tmp_path / "none.env"))
    ws.llm.set_api_base(PRICED, server.url)
    return ws.agent("priced", model=PRICED)


def calls(ws, job) -> int:
    return ws.store.read("SELECT COUNT(*) FROM llm_calls WHERE job_id = ?", (job.id,))[0][0]


async def failure(ws, job) -> str:
    with pytest.raises(wiz.JobFailed):
        await job.wait(timeout=20)
    got = ws.jobs.get(job.id)
    assert got.status == "failed" and got.fail_reason == "unrecoverable"
    assert got.attempts_made == 1  # no retry
    return got.error


async def test_a_call_that_would_pass_the_jobs_cost_is_never_made(ws, server, priced):
    await ws.start()
    job = priced.submit("ask", "What is the capital of France?", max_cost=1e-9, attempts=3)
    error = await failure(ws, job)
    assert error.startswith(f"BudgetExceeded: job {job.id} spent $0 of its $0.0000000010")
    assert re.search(r"\(the next call would add \$0\.00000\d\d\)$", error)
    assert len(server.requests) == 0 and calls(ws, job) == 0


async def test_spend_past_the_cap_after_a_call_fails_the_job(ws, server, priced):
    await ws.start()
    server.reply(" ".join(["word"] * 300))  # ~300 tokens out at $0.60/M: ~$0.00018
    job = priced.submit("ask", "Write a lot.", max_cost=0.00005)
    error = await failure(ws, job)
    assert re.fullmatch(
        rf"BudgetExceeded: job {job.id} spent \$0\.000\d\d of its \$0\.000050", error
    )
    assert len(server.requests) == 1 and calls(ws, job) == 1  # metered all the same


async def test_a_tool_loop_stops_before_the_call_that_passes(ws, server, priced):
    def fetch(n: int) -> str:
        """Fetch n words."""
        return "word " * n  # 4,000 words: the next turn's prompt alone costs ~$0.0006

    priced = ws.agent("priced", tools=[fetch])
    await ws.start()
    server.reply(tool_calls=[("fetch", {"n": 4000})])
    server.reply("never sent")
    job = priced.submit("ask", "Fetch 4000 words.", max_cost=0.0001)  # the first turn: ~$0.00001
    error = await failure(ws, job)
    assert re.fullmatch(
        rf"BudgetExceeded: job {job.id} spent \$0\.0000\d\d of its \$0\.00010 "
        r"\(the next call would add \$0\.000\d\d\)",
        error,
    )
    assert len(server.requests) == 1  # the second turn was never sent
    assert ws.store.read("SELECT COUNT(*) FROM activity WHERE job_id = ?", (job.id,))[0][0] == 1


async def test_tokens_cap_a_job_an_agent_per_day_and_the_workspace(ws):
    await ws.start()
    free = ws.agent("free", role="helper")
    capped = ws.agent("capped", role="helper", budget={"tokens": 1, "per": "day"})
    assert await free.ask("say hello", max_tokens=10_000) == "hello"
    job = capped.submit("ask", "say hello")
    assert "agent capped used 0 of its 1 tokens per day" in await failure(ws, job)
    small = free.submit("ask", "say hello there", max_tokens=2)
    assert f"job {small.id} used 0 of its 2 tokens" in await failure(ws, small)
    spent = ws.llm.usage().tokens
    ws.llm.set_budget(tokens=spent + 1, per="month")
    over = free.submit("ask", "say hello again")
    assert f"the workspace used {spent:,} of its {spent + 1:,} tokens per month" in await failure(
        ws, over
    )
    report = {b["who"]: b for b in ws.llm.budgets.report()}
    assert report["the workspace"]["tokens"] == spent and report["agent capped"]["max_tokens"] == 1
    ws.llm.set_budget()  # no limits: cleared
    assert await free.ask("say done") == "done"


def test_budgets_are_kept_in_the_file_for_every_process(db_path):
    ws = wiz.Workspace(db_path)
    ws.llm.set_budget(cost=20.0, per="month")
    ws.agent("a", role="x", budget={"cost": 1.0, "per": "day"})
    ws.close()
    other = wiz.Workspace(db_path)
    assert [(b["who"], b["max_cost"], b["per"]) for b in other.llm.budgets.report()] == [
        ("the workspace", 20.0, "month"),
        ("agent a", 1.0, "day"),
    ]
    other.close()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ws: ws.llm.set_budget(cost=-1), "a budget's cost must be a number > 0, not -1"),
        (lambda ws: ws.llm.set_budget(cost=1, per="year"), "per must be one of hour, day"),
        (lambda ws: ws.llm.set_budget(tokens=float("nan")), "tokens must be a number > 0"),
        (lambda ws: ws.agent("a", budget={"dollars": 1}), "unknown budget field(s): dollars"),
        (lambda ws: ws.agent("a", budget=5), "an agent's budget is a dict"),
        (lambda ws: ws.agent("a", role="x").submit("ask", "hi", max_cost=0), "cost must be"),
    ],
)
def test_a_bad_budget_is_one_line(ws, call, message):
    with pytest.raises(wiz.WizError) as e:
        call(ws)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert ws.llm.budgets.report() == []
