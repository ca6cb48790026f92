"""The direct path for OpenAI-compatible endpoints (agents/llm_openai.py): which calls take it,
that they never import litellm, price their replies by litellm's table the way litellm does,
and leave no connection open. What they record is tested over both paths in test_llm.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter.agents import _litellm, llm_openai, llm_prices
from wiz_jupyter.errors import LLMError

pytestmark = LITELLM_NOISE

PRICED = "openai/gpt-4o-mini"


@pytest.mark.parametrize(
    ("model", "kwargs", "direct"),
    [
        ("openai/gpt-4o-mini", {}, True),
        ("openai/my-model", {"api_base": "http://h/v1", "temperature": 0, "tools": []}, True),
        ("hosted_vllm/qwen", {"api_base": "http://h/v1"}, True),
        ("hosted_vllm/qwen", {}, False),  # litellm knows where its default endpoint is
        ("anthropic/claude-sonnet-4-5", {}, False),
        ("wiz/offline", {}, False),
        ("openai/gpt-4o-mini", {"drop_params": True}, False),  # litellm's own parameter
        ("openai/gpt-4o-mini", {"headers": {"x": "y"}}, False),
    ],
)
def test_which_calls_go_direct(model, kwargs, direct):
    assert llm_openai.eligible(model, kwargs) is direct


def test_registered_litellm_callbacks_keep_calls_with_litellm(monkeypatch):
    litellm = _litellm.load()
    assert llm_openai.eligible(PRICED, {})
    monkeypatch.setattr(litellm, "success_callback", ["langfuse"])  # they see litellm's calls only
    assert not llm_openai.eligible(PRICED, {})


def test_reasoning_models_stay_with_litellm_which_rewrites_their_parameters():
    path = llm_openai.load()
    assert path.handles("openai/gpt-4o-mini") and path.handles("openai/local-model")
    assert not path.handles("openai/o3-mini")


FIRST_CALL = """
import asyncio, sys
from pydantic import BaseModel
from wiz_jupyter.agents import LLM
from wiz_jupyter.jobs.store import Store

class City(BaseModel):
    name: str

async def main(url):
    llm = LLM(Store(":memory:"))
    reply = await llm.chat("hello", model="openai/gpt-4o-mini", api_base=url)
    assert reply.text == "echo: hello" and reply.cost > 0 and reply.tokens_in > 0, reply
    streamed = await llm.stream("again", model="openai/gpt-4o-mini", api_base=url).collect()
    assert streamed.text == "echo: again" and streamed.cost > 0, streamed
    city = await llm.structured("a city", City, model="openai/gpt-4o-mini", api_base=url)
    assert city.name == "Lyon", city
    rows = llm.history()
    assert [r["cost"] > 0 for r in rows] == [True, True, True], rows
    assert "litellm" not in sys.modules, "litellm imported"

asyncio.run(main(sys.argv[1]))
"""


def test_a_first_openai_call_never_waits_for_litellm(server, tmp_path):
    server.reply(None)  # the default echo, for the plain and the streamed call
    server.reply(None)
    server.reply('{"name": "Lyon"}')
    env = {**os.environ, "OPENAI_API_KEY": "sk-dummy-loopback", "WIZ_CONFIG": os.devnull}
    env.pop("WIZ_LLM_DIRECT", None)
    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL, server.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Unclosed" not in out.stderr, out.stderr[-2000:]  # the loop's clients were closed
    assert server.requests[2].body["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("model", [PRICED, "gpt-4o", "gemini/gemini-2.5-pro", "openai/gpt-4.1"])
@pytest.mark.parametrize(
    ("prompt", "completion", "cached"),
    [(1000, 200, 0), (1000, 200, 600), (250_000, 1000, 0), (250_000, 1000, 100_000)],
)
def test_prices_are_litellms(model, prompt, completion, cached):
    litellm = _litellm.load()
    from litellm.types.utils import ModelResponse, PromptTokensDetailsWrapper, Usage

    details = PromptTokensDetailsWrapper(cached_tokens=cached) if cached else None
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=details,
    )
    theirs = litellm.completion_cost(completion_response=ModelResponse(model=model, usage=usage))
    ours = llm_prices.cost(
        model,
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    )
    assert ours == pytest.approx(theirs, rel=1e-9) and ours > 0


def test_the_table_is_read_from_litellms_file_without_importing_it():
    code = (
        "import sys; from wiz_jupyter.agents import llm_prices; "
        "entry = llm_prices.info('openai/gpt-4o-mini'); "
        "assert entry['input_cost_per_token'] > 0, entry; "
        "assert llm_prices.info('openai/nobody-prices-this') is None; "
        "assert 'litellm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_refused_connection_is_retried_and_named(llm):
    llm.retries = 1
    with pytest.raises(LLMError, match="cannot reach the endpoint") as raised:
        await llm.complete("hi", model="openai/gpt-test", api_base="http://127.0.0.1:9/v1")
    assert "gave up after 2 attempts" in str(raised.value)
    assert len(llm.history()) == 2


async def test_no_key_at_all_is_a_clear_error_before_any_request(llm, server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LLMError, match="no API key; set OPENAI_API_KEY in the environment or in"):
        await llm.complete("hi", model="openai/gpt-test", api_base=server.url)
    assert server.requests == []
