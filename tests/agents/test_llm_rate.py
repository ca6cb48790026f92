"""Per-model rate limits (``ws.llm.set_rate``), shared by every process on the file, against
the loopback OpenAI-compatible server: requests and tokens per window, and a 429's
``Retry-After`` holding the next calls of other jobs and of other processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from tests.jobs.test_rate_limits import SLACK, most_in_any_window
from wiz_jupyter.agents import LLM
from wiz_jupyter.jobs.rates import Rate
from wiz_jupyter.jobs.store import Store

pytestmark = LITELLM_NOISE

GPT = "openai/gpt-test"


def takes(store: Store, model: str) -> list[tuple[float, int, int]]:
    """The model's window log: (time, requests, tokens) of each call let through."""
    rows = store.read(
        "SELECT at, n, tokens FROM rate_log WHERE key = ? ORDER BY at", (f"llm:{model}",)
    )
    return [tuple(r) for r in rows]


async def until(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.01)


async def test_a_requests_limit_spreads_the_calls_over_the_windows(llm, server, store):
    await llm.complete("warm up", model=GPT, api_base=server.url)  # litellm's client, once
    server.reset()
    llm.set_rate(GPT, requests=(3, 0.5))
    replies = await asyncio.gather(
        *(llm.complete(f"q{i}", model=GPT, api_base=server.url) for i in range(9))
    )
    assert sorted(replies) == sorted(f"echo: q{i}" for i in range(9))
    log = takes(store, GPT)
    assert len(log) == 9 and all(n == 1 for _, n, _ in log)
    assert most_in_any_window([at for at, _, _ in log], 0.5) == 3
    sent = sorted(r.at for r in server.requests)
    assert len(sent) == 9 and sent[-1] - sent[0] >= 1.0 - 0.05  # three windows
    assert most_in_any_window(sent, 0.25) <= 3  # as the server saw them (network jitter aside)


async def test_a_tokens_limit_counts_the_prompt_first_and_the_real_usage_after(llm, server, store):
    llm.set_rate(GPT, tokens=(250, 0.6))
    prompt = "word " * 150  # about 150 tokens: two of them do not fit in one window
    await asyncio.gather(*(llm.complete(prompt, model=GPT, api_base=server.url) for _ in range(3)))
    log = takes(store, GPT)
    assert len(log) == 3
    assert log[-1][0] - log[0][0] >= 1.2 - SLACK
    calls = store.read("SELECT tokens_in + tokens_out FROM llm_calls WHERE error IS NULL")
    assert sorted(t for _, _, t in log) == sorted(r[0] for r in calls)  # settled to usage
    assert all(t > 250 for _, _, t in log)  # the prompt and its echo: more than estimated


async def test_a_model_without_limits_writes_nothing(llm, server, store):
    await llm.complete("hi", model=GPT, api_base=server.url)
    assert store.read("SELECT COUNT(*) FROM rate_log")[0][0] == 0
    assert llm.rate(GPT) == {"requests": None, "tokens": None, "blocked_until": None}


def test_limits_are_kept_in_the_file_for_every_process(llm, db_path):
    llm.set_rate(GPT, requests=(500, 60), tokens=(30_000, 60))
    other = LLM(Store(db_path))
    assert other.rate(GPT) == {
        "requests": Rate(500, 60.0),
        "tokens": Rate(30_000, 60.0),
        "blocked_until": None,
    }
    llm.set_rate(GPT)
    assert other.rate(GPT)["requests"] is None and other.rate(GPT)["tokens"] is None
    other.db.store.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"requests": (0, 60)}, {"requests": (-5, 60)}, {"tokens": (100, 0)}, {"tokens": "many"},
     {"requests": (10, -1)}, {"tokens": (1.5, 60)}],
)  # fmt: skip
def test_a_bad_model_rate_is_one_line(llm, kwargs):
    with pytest.raises(wiz.InvalidRate) as e:
        llm.set_rate(GPT, **kwargs)
    (what,) = kwargs
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{what} must be (count >= 1")
    assert llm.rate(GPT)["requests"] is None  # nothing kept


async def test_a_429_with_retry_after_holds_the_next_calls_of_other_jobs(ws, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-loopback")

    @ws.task
    async def ask(q: str) -> str:
        return await ws.llm.complete(q, model=GPT, api_base=server.url)

    server.fail(429, retry_after=1.0)
    first = ws.jobs.add("ask", {"q": "first"})
    await ws.start()
    await until(lambda: ws.llm.rate(GPT)["blocked_until"] is not None)  # the 429 is in
    refused_at = server.requests[0].at
    assert ws.llm.rate(GPT)["blocked_until"] == pytest.approx(refused_at + 1.0, abs=0.2)
    second = ws.jobs.add("ask", {"q": "second"})  # another job, after the 429
    assert await second.wait(timeout=10) == "echo: second"
    assert await first.wait(timeout=10) == "echo: first"
    at = {r.body["messages"][-1]["content"]: r.at for r in server.requests[1:]}
    assert at["second"] >= refused_at + 1.0 - 0.05  # held, not sent at once
    assert second.attempts_made == 1  # it waited; it did not fail an attempt


CALLER = """
import asyncio, sys, time
from wiz_jupyter.agents import LLM, _litellm
from wiz_jupyter.jobs.store import Store
_litellm.load()
llm = LLM(Store(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
print(asyncio.run(llm.complete("other process", model=sys.argv[2], api_base=sys.argv[3])), flush=True)
"""


async def test_a_429_with_retry_after_holds_the_calls_of_another_process(llm, server, db_path):
    env = {**os.environ, "OPENAI_API_KEY": "sk-dummy-loopback", "WIZ_CONFIG": os.devnull}
    proc = subprocess.Popen(
        [sys.executable, "-c", CALLER, str(db_path), GPT, server.url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert await asyncio.to_thread(proc.stdout.readline) == "ready\n"
        server.fail(429, retry_after=1.5)
        mine = asyncio.ensure_future(llm.complete("this process", model=GPT, api_base=server.url))
        await until(lambda: llm.rate(GPT)["blocked_until"] is not None)  # the 429 is in
        refused_at = server.requests[0].at
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        assert out.strip() == "echo: other process"
        assert await mine == "echo: this process"
    finally:
        proc.kill()
    at = {r.body["messages"][-1]["content"]: r.at for r in server.requests[1:]}
    assert at["other process"] >= refused_at + 1.5 - 0.05


async def test_an_agents_model_calls_take_the_models_rate(ws):
    analyst = ws.agent("analyst", model="wiz/offline")
    ws.llm.set_rate("wiz/offline", requests=(2, 0.5))
    answers = await asyncio.gather(*(analyst.ask(f"question {i}") for i in range(4)))
    assert all(answers)
    log = takes(ws.store, "wiz/offline")
    assert len(log) >= 4
    assert most_in_any_window([at for at, _, _ in log], 0.5) == 2
    assert log[-1][0] - log[0][0] >= 0.5 * (len(log) // 2 - 1) - SLACK


async def test_a_call_waiting_for_room_leaves_the_event_loop_running(llm, server):
    llm.set_rate(GPT, requests=(1, 1.0))
    await llm.complete("first", model=GPT, api_base=server.url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    t = asyncio.ensure_future(ticker())
    t0 = time.monotonic()
    assert await llm.complete("second", model=GPT, api_base=server.url) == "echo: second"
    waited = time.monotonic() - t0
    t.cancel()
    assert waited >= 0.8  # it waited for the window
    assert ticks >= waited / 0.02 * 0.5  # and the loop kept turning meanwhile
