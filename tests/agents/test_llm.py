"""The LLM layer over litellm's HTTP path, against a real OpenAI-compatible server on loopback:
text, streams, tools, structured output, retries, timeouts, concurrency, metering, keys."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import time

import pytest
from pydantic import BaseModel

import wiz_jupyter as wiz
from tests.agents.conftest import ADD, LITELLM_NOISE
from wiz_jupyter.agents import LLM, ScriptedModel, ToolCall, Usage
from wiz_jupyter.agents.keys import load_keys_file, redact
from wiz_jupyter.errors import LLMAuthError, LLMError, ModelNotFound

pytestmark = LITELLM_NOISE

GPT = "openai/gpt-test"  # unknown to litellm's price map and capabilities
PRICED = "openai/gpt-4o-mini"  # known: priced, and supports JSON schemas


class City(BaseModel):
    name: str
    population: int


@pytest.fixture(params=["direct", "litellm"])
def llm(request, llm):
    """The layer over both its paths to an OpenAI-compatible endpoint: the openai SDK
    itself (agents/llm_openai.py) and litellm; each test here holds for both."""
    llm.direct = request.param == "direct"
    return llm


# -- import stays light -------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["wiz_jupyter", "wiz_jupyter.agents.llm", "wiz_jupyter.agents"])
def test_importing_never_imports_litellm(module):
    code = f"import {module}, sys; assert 'litellm' not in sys.modules, 'litellm imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


NO_NETWORK = """
import asyncio, os, socket
attempts = []
real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
LOCAL = ("127.0.0.1", "::1", "localhost")
def connect(self, address):
    if isinstance(address, tuple) and address[0] not in LOCAL:
        attempts.append(address)
        raise OSError("no network in this test")
    return real_connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    if host not in LOCAL and host is not None:
        attempts.append(host)
        raise OSError("no network in this test")
    return real_getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
from wiz_jupyter.agents import LLM, _litellm
from wiz_jupyter.jobs.store import Store
llm = LLM(Store(":memory:"))
# before litellm is in, the offline model answers in-process (agents/inprocess.py) ...
assert asyncio.run(llm.complete("Say ok")) == "ok"
assert _litellm.loaded() is None
# ... and once litellm is loaded, through it
_litellm.load()
assert asyncio.run(llm.complete("Say ok")) == "ok"
assert asyncio.run(llm.stream("Say ok").collect()).text == "ok"
assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
assert attempts == [], attempts
"""


def test_loading_litellm_touches_no_network(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "WIZ_"))}
    env["WIZ_CONFIG"] = str(tmp_path / "no-keys.env")
    subprocess.run([sys.executable, "-c", NO_NETWORK], check=True, timeout=120, env=env)


# -- the HTTP path ----------------------------------------------------------------------------------


async def test_complete_over_http(llm, server):
    assert await llm.complete("hello there", model=GPT, api_base=server.url) == "echo: hello there"
    (request,) = server.requests
    assert request.body["model"] == "gpt-test"
    assert request.body["messages"] == [{"role": "user", "content": "hello there"}]
    assert "stream" not in request.body or request.body["stream"] is False


async def test_system_prompt_and_params_reach_the_server(llm, server):
    await llm.complete("hi", model=GPT, api_base=server.url, system="Be brief.", temperature=0)
    body = server.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["temperature"] == 0


async def test_stream_over_http_yields_pieces_and_a_full_reply(llm, server):
    server.reply("the quick brown fox")
    s = llm.stream("go", model=GPT, api_base=server.url)
    pieces = [p async for p in s]
    assert pieces == ["the ", "quick ", "brown ", "fox"]
    assert s.reply.text == "the quick brown fox"
    assert server.requests[0].body["stream"] is True
    assert server.requests[0].body["stream_options"] == {"include_usage": True}
    assert s.reply.tokens_out == len("the quick brown fox") // 4  # the server's own usage figure
    row = llm.history()[-1]
    assert row["stream"] == 1 and row["tokens_out"] == s.reply.tokens_out


async def test_tool_calls_over_http_plain_and_streamed(llm, server):
    server.reply(tool_calls=[("add", {"a": 2, "b": 3}), ("add", {"a": 5, "b": 8})])
    calls = await llm.tool_calls("add things", [ADD], model=GPT, api_base=server.url)
    assert calls == [ToolCall("add", {"a": 2, "b": 3}), ToolCall("add", {"a": 5, "b": 8})]
    assert [c.id for c in calls] == ["call_0", "call_1"]
    assert server.requests[0].body["tools"] == [ADD]
    assert server.requests[0].body["tool_choice"] == "auto"

    server.reply(tool_calls=[("add", {"a": 1, "b": 1})])
    s = llm.stream("add", model=GPT, api_base=server.url, tools=[ADD])
    assert [p async for p in s] == []
    assert s.reply.tool_calls == [ToolCall("add", {"a": 1, "b": 1})]
    assert s.reply.finish_reason == "tool_calls"


async def test_structured_uses_response_format_when_the_model_supports_json_schema(llm, server):
    server.reply('{"name": "Lyon", "population": 520000}')
    city = await llm.structured("A French city", City, model=PRICED, api_base=server.url)
    assert city == City(name="Lyon", population=520000)
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["name", "population"]
    assert "JSON schema" not in body["messages"][-1]["content"]


async def test_structured_falls_back_to_the_prompt_and_repairs_once(llm, server):
    server.reply("Sure! Here it is: {name: Lyon}")
    server.reply('Sorry. {"name": "Lyon", "population": 520000}')
    city = await llm.structured("A French city", City, model=GPT, api_base=server.url)
    assert city.population == 520000
    first, repair = (r.body for r in server.requests)
    assert "response_format" not in first
    assert "JSON schema" in first["messages"][-1]["content"]
    assert "does not match the schema" in repair["messages"][-1]["content"]


# -- retries, timeouts, errors ---------------------------------------------------------------------


async def test_a_429_is_retried_after_the_servers_retry_after(llm, server):
    server.fail(429, retry_after=0.3)
    assert await llm.complete("hi", model=GPT, api_base=server.url) == "echo: hi"
    first, second = server.requests
    assert second.at - first.at >= 0.29  # the backoff alone would be ~10 ms
    rows = llm.history()
    assert [r["attempt"] for r in rows] == [1, 2]
    assert "(429)" in rows[0]["error"] and "in 0.3s" in rows[0]["error"]
    assert rows[1]["error"] is None


def test_retry_after_is_read_in_its_three_forms():
    from email.utils import formatdate

    from wiz_jupyter.agents.llm import _retry_after

    def error(headers):
        e = Exception("limited")
        e.litellm_response_headers = headers  # where litellm keeps the response's headers
        return e

    assert _retry_after(error({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert _retry_after(error({"retry-after": "1.5"})) == 1.5
    assert 8 <= _retry_after(error({"retry-after": formatdate(time.time() + 10)})) <= 10
    assert _retry_after(error({})) is None
    assert _retry_after(Exception("no headers at all")) is None


async def test_server_errors_are_retried_with_backoff_and_recorded(llm, server):
    server.fail(500)
    server.fail(503)
    assert await llm.complete("hi", model=GPT, api_base=server.url) == "echo: hi"
    assert len(server.requests) == 3
    errors = [r["error"] for r in llm.history()]
    assert "(500)" in errors[0] and "(503)" in errors[1] and errors[2] is None
    assert llm.usage() == Usage(
        calls=1,
        tokens_in=llm.history()[-1]["tokens_in"],
        tokens_out=llm.history()[-1]["tokens_out"],
        cost=0.0,
        latency=pytest.approx(sum(r["latency"] for r in llm.history())),
        cache_hits=0,
        errors=2,
    )


async def test_retries_stop_after_the_limit_with_a_one_line_error(llm, server):
    llm.retries = 2
    server.fail(500, times=5)
    with pytest.raises(LLMError) as raised:
        await llm.complete("hi", model=GPT, api_base=server.url)
    assert len(server.requests) == 3
    assert str(raised.value) == f"{GPT}: injected 500 (500) (gave up after 3 attempts)"
    assert raised.value.status == 500 and raised.value.model == GPT


async def test_a_slow_reply_times_out_and_is_retried(llm, server):
    server.reply("too late", delay=5)
    t0 = time.perf_counter()
    assert await llm.complete("hi", model=GPT, api_base=server.url, timeout=0.3) == "echo: hi"
    assert time.perf_counter() - t0 < 3
    assert "no reply within 0.3s" in llm.history()[0]["error"]


async def test_a_malformed_reply_is_an_error_after_retries(llm, server):
    llm.retries = 1
    server.reply(body="{not json", times=2)
    with pytest.raises(LLMError, match=GPT):
        await llm.complete("hi", model=GPT, api_base=server.url)
    assert len(server.requests) == 2


async def test_a_streamed_call_that_fails_to_start_is_retried(llm, server):
    server.fail(429, retry_after=0)
    server.fail(502)
    server.reply("finally")
    reply = await llm.stream("hi", model=GPT, api_base=server.url).collect()
    assert reply.text == "finally"
    assert len(server.requests) == 3
    assert [r["error"] is None for r in llm.history()] == [False, False, True]


async def test_a_bad_key_is_a_clear_error_without_retries(llm, server, monkeypatch):
    server.api_key = "sk-the-right-one"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a-wrong-one")
    with pytest.raises(LLMAuthError) as raised:
        await llm.complete("hi", model=GPT, api_base=server.url)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{GPT}: Incorrect API key provided.")
    assert "keys.env" in message or "no-keys.env" in message
    assert len(server.requests) == 1


async def test_a_missing_key_names_the_variable_to_set(llm, server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    server.fail(401)
    with pytest.raises(LLMAuthError, match="set OPENAI_API_KEY in the environment or in"):
        await llm.complete("hi", model=GPT, api_base=server.url, api_key="sk-explicit-but-bad")


async def test_unknown_models_are_clear_errors(llm, server):
    with pytest.raises(ModelNotFound, match=r"unknown model 'gpt-nope': name it as provider/model"):
        await llm.complete("hi", model="gpt-nope")
    server.fail(404, message="The model `gpt-gone` does not exist")
    with pytest.raises(ModelNotFound, match="does not exist"):
        await llm.complete("hi", model="openai/gpt-gone", api_base=server.url)
    assert len(server.requests) == 1


async def test_a_stream_the_caller_stops_reading_frees_its_slot_and_is_metered(llm, server):
    llm.set_concurrency(GPT, 1)
    server.reply("one two three four")
    pieces = aiter(llm.stream("go", model=GPT, api_base=server.url))
    assert await anext(pieces) == "one "
    await pieces.aclose()
    assert llm.history()[-1]["error"] == "stream closed by the caller before the end"
    # the slot is free again: with a limit of 1, this call would wait forever otherwise
    assert await asyncio.wait_for(llm.complete("next", model=GPT, api_base=server.url), 5)


# -- concurrency -------------------------------------------------------------------------------------


async def test_concurrency_is_bounded_per_model(llm, server):
    server.delay = 0.1
    llm.set_concurrency(GPT, 2)
    other = "openai/gpt-other"
    results = await asyncio.gather(
        *[llm.complete(f"n{i}", model=GPT, api_base=server.url) for i in range(6)],
        *[llm.complete(f"o{i}", model=other, api_base=server.url) for i in range(3)],
    )
    assert results[:6] == [f"echo: n{i}" for i in range(6)]
    # 2 of GPT and 3 of the other model (default limit 8) at once, never more
    assert server.max_in_flight == 5


async def test_streams_hold_their_slot_until_their_reply_is_complete(llm, server):
    server.delay = 0.1
    llm.set_concurrency(GPT, 1)
    replies = await asyncio.gather(
        *[llm.stream(f"s{i}", model=GPT, api_base=server.url).collect() for i in range(3)]
    )
    assert [r.text for r in replies] == ["echo: s0", "echo: s1", "echo: s2"]
    arrivals = [r.at for r in server.requests]
    # each request reached the server only after the previous reply (0.1 s) was complete
    assert all(b - a >= 0.095 for a, b in itertools.pairwise(arrivals)), arrivals


# -- metering ----------------------------------------------------------------------------------------


async def test_cost_comes_from_litellms_price_map(llm, server):
    reply = await llm.chat("hello", model=PRICED, api_base=server.url)
    assert reply.cost > 0
    assert reply.tokens_in > 0 and reply.tokens_out > 0
    row = llm.history()[-1]
    assert row["cost"] == pytest.approx(reply.cost)
    assert row["latency"] > 0 and row["cache_hit"] == 0
    assert (await llm.chat("hello", model=GPT, api_base=server.url)).cost == 0.0  # unpriced
    assert (await llm.chat("hello")).cost == 0.0  # offline


async def test_calls_inside_a_job_are_metered_per_job(db_path, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-loopback")
    ws = wiz.Workspace(db_path)
    llm = LLM(ws.store)

    @ws.task
    async def research(topic: str) -> str:
        first = await llm.complete(f"about {topic}", model=PRICED, api_base=server.url)
        return first + " / " + await llm.complete("more")

    job = ws.jobs.add("research", {"topic": "owls"})
    other = ws.jobs.add("research", {"topic": "bats"})
    await ws.run_until_idle(timeout=30)
    assert job.result == "echo: about owls / You said: more"
    await llm.complete("outside any job")
    await llm.complete("for job 99", job_id=99)
    mine = llm.usage(job.id)
    assert mine.calls == 2 and mine.cost > 0 and mine.tokens_in > 0
    assert llm.usage(other.id).calls == 2
    assert llm.usage(99).calls == 1
    assert llm.usage().calls == 6
    assert llm.usage().cost == pytest.approx(mine.cost + llm.usage(other.id).cost)
    await ws.stop()
    ws.close()


# -- model resolution --------------------------------------------------------------------------------


async def test_model_resolution_order(llm, monkeypatch):
    script = ScriptedModel(["scripted"])
    assert llm.resolve() == "wiz/offline"
    monkeypatch.setenv("WIZ_MODEL", "openai/from-env")
    assert llm.resolve() == "openai/from-env"
    llm.set_default_model("openai/from-setting")
    assert llm.resolve() == "openai/from-setting"
    assert LLM(llm.db.store).resolve() == "openai/from-setting"  # kept in the database
    assert llm.resolve("openai/explicit") == "openai/explicit"
    assert llm.resolve(script) == script.name
    llm.set_default_model(script)
    assert await llm.complete("x") == "scripted"
    llm.set_default_model(None)
    assert llm.resolve() == "openai/from-env"


def test_modes_are_checked(llm):
    with pytest.raises(ValueError, match="mode must be one of off, record, replay, auto"):
        llm.mode = "sometimes"


# -- keys ---------------------------------------------------------------------------------------------

SECRET = "sk-wiz-SECRET-fake-key-0123456789"


async def test_the_api_key_never_reaches_the_database_logs_or_reprs(
    llm, server, monkeypatch, caplog, capfd, db_path
):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    llm.mode = "record"
    llm.retries = 1
    seen = []
    seen.append(await llm.chat("hello", model=PRICED, api_base=server.url))
    seen.append(await llm.stream("hello again", model=GPT, api_base=server.url).collect())
    server.fail(500)
    seen.append(await llm.chat("after an error", model=GPT, api_base=server.url))
    server.api_key = "sk-something-else"
    with pytest.raises(LLMAuthError) as raised:
        await llm.complete("refused", model=GPT, api_base=server.url)
    with pytest.raises(LLMAuthError) as raised_explicit:
        await llm.complete("refused", model=GPT, api_base=server.url, api_key=SECRET + "-x")
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"  # it was used
    shown = repr(llm)
    llm.db.store.close()
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert len(stored) > 0 and b"hello again" in stored
    assert b"SECRET" not in stored
    out, err = capfd.readouterr()
    texts = [
        caplog.text,
        out,
        err,
        shown,
        str(raised.value),
        repr(raised.value),
        str(raised_explicit.value),
        *map(repr, seen),
        *map(str, seen),
    ]
    assert not [t for t in texts if "SECRET" in t]


def test_redact_hides_key_like_environment_values(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567890")
    assert redact("bad token tok-1234567890 here") == "bad token *** here"
    assert redact("sk-explicit-123 failed", ["sk-explicit-123"]) == "*** failed"


@pytest.mark.parametrize("pad", [250, 270, 285, 292, 299])
async def test_an_error_echoing_the_key_near_the_cut_stores_no_piece_of_it(
    llm, server, monkeypatch, caplog, db_path, pad
):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    llm.retries = 1
    server.fail(500, times=2, message="x" * pad + f" Bearer {SECRET} was refused")
    with pytest.raises(wiz.LLMError) as raised:
        await llm.complete("hello", model=GPT, api_base=server.url)
    llm.db.store.close()
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    pieces = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    for text in (str(raised.value), caplog.text, stored.decode("utf-8", "replace")):
        assert not [p for p in pieces if p in text], text[-400:]


def test_redact_hides_every_piece_of_eight_or_more_characters(monkeypatch):
    monkeypatch.setenv("WIZ_TEST_API_KEY", "sk-abcdefghijklmnop")
    assert redact("cut at sk-abcdefg") == "cut at ***"  # a prefix, as a length limit leaves it
    assert redact("...ijklmnop echoed") == "...*** echoed"  # a suffix
    assert (
        redact("sk-abcd is short enough to be ordinary") == "sk-abcd is short enough to be ordinary"
    )
    assert redact("two: sk-abcdefghijklmnop and sk-abcdefghij") == "two: *** and ***"


def test_keys_file_fills_in_missing_variables_only(tmp_path, monkeypatch):
    path = tmp_path / "keys.env"
    path.write_text("WIZ_TEST_KEY_A=from-file-aaaa\nWIZ_TEST_KEY_B=from-file-bbbb\n")
    monkeypatch.setenv("WIZ_TEST_KEY_B", "from-env")
    monkeypatch.delenv("WIZ_TEST_KEY_A", raising=False)
    monkeypatch.setenv("WIZ_CONFIG", str(path))
    try:
        assert load_keys_file() == ["WIZ_TEST_KEY_A"]
        assert os.environ["WIZ_TEST_KEY_A"] == "from-file-aaaa"
        assert os.environ["WIZ_TEST_KEY_B"] == "from-env"
    finally:
        monkeypatch.delenv("WIZ_TEST_KEY_A", raising=False)


def test_request_bodies_are_plain_json(server):
    # the fixture server itself: a request that is not JSON gets a 400, not a crash
    import urllib.error
    import urllib.request

    req = urllib.request.Request(server.url + "/chat/completions", data=b"{", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(req, timeout=5)
    assert raised.value.code == 400
    assert json.loads(raised.value.read())["error"]["message"] == "the request body is not JSON"
