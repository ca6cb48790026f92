"""Record and replay: modes, request hashing, streamed replays, cassette files."""

from __future__ import annotations

import json

import pytest

from tests.agents.conftest import ADD, LITELLM_NOISE
from wiz_jupyter.agents import LLM, ScriptedModel, ToolCall
from wiz_jupyter.agents.llm_store import request_hash
from wiz_jupyter.errors import ReplayMiss
from wiz_jupyter.jobs.store import Store

pytestmark = LITELLM_NOISE

GPT = "openai/gpt-test"


async def test_record_then_replay_makes_no_request(llm, server):
    llm.mode = "record"
    server.reply("recorded answer")
    assert await llm.complete("question", model=GPT, api_base=server.url) == "recorded answer"
    llm.mode = "replay"
    reply = await llm.chat("question", model=GPT, api_base=server.url)
    assert reply.text == "recorded answer" and reply.cache_hit
    assert reply.cost == 0.0 and reply.tokens_out > 0
    assert len(server.requests) == 1
    rows = llm.history()
    assert [(r["cache_hit"], r["request_hash"]) for r in rows] == [
        (0, rows[0]["request_hash"])
    ] * 1 + [(1, rows[0]["request_hash"])]
    assert llm.usage().cache_hits == 1


async def test_record_mode_always_calls_and_overwrites(llm, server):
    llm.mode = "record"
    server.reply("first")
    server.reply("second")
    await llm.complete("q", model=GPT, api_base=server.url)
    await llm.complete("q", model=GPT, api_base=server.url)
    llm.mode = "replay"
    assert await llm.complete("q", model=GPT, api_base=server.url) == "second"
    assert len(server.requests) == 2


async def test_a_replay_miss_names_the_model_and_the_question(llm, server):
    llm.mode = "replay"
    long = "Which of the three reports from the northern sites should we read first, and why?"
    with pytest.raises(ReplayMiss) as raised:
        await llm.complete(
            [{"role": "system", "content": "Be helpful"}, long], model=GPT, api_base=server.url
        )
    message = str(raised.value)
    assert message.startswith(
        f"replay miss: no recorded reply of {GPT} to 'Which of the three reports from the northern sites should..."
    )
    assert "record it first" in message
    assert server.requests == []
    assert llm.history()[-1]["error"] == "replay miss"


async def test_auto_replays_hits_and_records_misses(llm, server):
    llm.mode = "auto"
    server.reply("one")
    server.reply("two")
    assert await llm.complete("a", model=GPT, api_base=server.url) == "one"
    assert await llm.complete("a", model=GPT, api_base=server.url) == "one"
    assert await llm.complete("b", model=GPT, api_base=server.url) == "two"
    assert len(server.requests) == 2


async def test_off_mode_keeps_nothing(llm, server):
    await llm.complete("a", model=GPT, api_base=server.url)
    llm.mode = "replay"
    with pytest.raises(ReplayMiss):
        await llm.complete("a", model=GPT, api_base=server.url)


async def test_replay_serves_streams_rechunked_and_tool_calls(llm, server):
    llm.mode = "record"
    server.reply("a recorded story told slowly")
    await llm.complete("story", model=GPT, api_base=server.url)  # recorded without streaming
    server.reply(tool_calls=[("add", {"a": 1, "b": 2})])
    s = llm.stream("sum", model=GPT, api_base=server.url, tools=[ADD])  # recorded streaming
    await s.collect()
    llm.mode = "replay"
    s = llm.stream("story", model=GPT, api_base=server.url)
    assert [p async for p in s] == ["a ", "recorded ", "story ", "told ", "slowly"]
    assert s.reply.cache_hit
    assert await llm.tool_calls("sum", [ADD], model=GPT, api_base=server.url) == [
        ToolCall("add", {"a": 1, "b": 2})
    ]
    assert len(server.requests) == 2
    assert llm.history()[-2]["stream"] == 1 and llm.history()[-2]["cache_hit"] == 1


async def test_the_hash_ignores_transport_and_keys_but_not_what_changes_the_answer(
    llm, server, monkeypatch
):
    llm.mode = "record"
    await llm.complete("q", model=GPT, api_base=server.url, temperature=0)
    llm.mode = "replay"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key-entirely")
    # another api_base (say the port of another run), another key, a timeout: same request
    assert (
        await llm.complete(
            "q",
            model=GPT,
            api_base="http://127.0.0.1:9/v1",
            api_key="sk-other",
            timeout=3,
            temperature=0,
        )
        == "echo: q"
    )
    for changed in [
        {"temperature": 1},
        {"temperature": 0, "max_tokens": 5},
        {"temperature": 0, "system": "Be brief"},
        {"temperature": 0, "tools": [ADD]},
    ]:
        with pytest.raises(ReplayMiss):
            await llm.complete("q", model=GPT, api_base=server.url, **changed)
    with pytest.raises(ReplayMiss):
        await llm.complete("q", model="openai/gpt-other", api_base=server.url, temperature=0)
    assert len(server.requests) == 1


def test_request_hashes_are_stable_across_key_order():
    a = request_hash(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    )
    b = request_hash(
        {"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m"}
    )
    assert a == b and len(a) == 64


async def test_offline_and_scripted_models_are_never_cached(llm):
    llm.mode = "auto"
    model = ScriptedModel(["first", "second"])
    assert await llm.complete("same", model=model) == "first"
    assert await llm.complete("same", model=model) == "second"  # the script, not a replay
    await llm.complete("Say hi")
    llm.mode = "replay"
    assert await llm.complete("Say hi") == "hi"  # offline models just run in replay mode
    assert llm.db.entries() == []


async def test_cassettes_carry_recordings_to_a_fresh_workspace(llm, server, tmp_path):
    llm.mode = "record"
    server.reply("alpha")
    server.reply(tool_calls=[("add", {"a": 2, "b": 2})])
    await llm.complete("first", model=GPT, api_base=server.url)
    await llm.chat("second", model=GPT, api_base=server.url, tools=[ADD])
    path = tmp_path / "nb.cassette.json"
    assert llm.export_cassette(path) == 2
    data = json.loads(path.read_text())
    assert data["wiz_cassette"] == 1
    assert sorted(e["request"]["messages"][0]["content"] for e in data["entries"]) == [
        "first",
        "second",
    ]
    assert "api_base" not in path.read_text() and "dummy" not in path.read_text()

    fresh = LLM(Store(tmp_path / "other.db"), mode="replay")
    assert fresh.import_cassette(path) == 2
    assert await fresh.complete("first", model=GPT, api_base="http://127.0.0.1:9/v1") == "alpha"
    calls = await fresh.tool_calls("second", [ADD], model=GPT)
    assert calls == [ToolCall("add", {"a": 2, "b": 2})]
    assert len(server.requests) == 2


async def test_a_hand_edited_cassette_matches_the_edited_prompt(llm, server, tmp_path):
    llm.mode = "record"
    await llm.complete("old wording", model=GPT, api_base=server.url)
    path = tmp_path / "c.json"
    llm.export_cassette(path)
    data = json.loads(path.read_text())
    data["entries"][0]["request"]["messages"][0]["content"] = "new wording"
    path.write_text(json.dumps(data))
    fresh = LLM(Store(tmp_path / "other.db"), mode="replay")
    fresh.import_cassette(path)
    assert await fresh.complete("new wording", model=GPT) == "echo: old wording"


async def test_use_cassette_replays_and_writes_back_what_it_records(llm, server, tmp_path):
    path = tmp_path / "notebook.cassette.json"
    assert llm.use_cassette(path) == 0  # auto mode, no file yet
    assert llm.mode == "auto"
    await llm.complete("kept", model=GPT, api_base=server.url)
    assert [e["response"]["text"] for e in json.loads(path.read_text())["entries"]] == [
        "echo: kept"
    ]

    # the notebook re-run elsewhere: a fresh database, the cassette beside the notebook
    other = LLM(Store(tmp_path / "elsewhere.db"))
    assert other.use_cassette(path, "replay") == 1
    assert await other.complete("kept", model=GPT) == "echo: kept"
    with pytest.raises(ReplayMiss):
        await other.complete("never recorded", model=GPT)
    assert len(server.requests) == 1


async def test_cassettes_only_hold_their_notebooks_entries(llm, server, tmp_path):
    llm.mode = "record"
    await llm.complete("from another notebook", model=GPT, api_base=server.url)
    path = tmp_path / "mine.json"
    llm.use_cassette(path)
    await llm.complete("mine", model=GPT, api_base=server.url)
    entries = json.loads(path.read_text())["entries"]
    assert [e["request"]["messages"][0]["content"] for e in entries] == ["mine"]


def test_a_file_that_is_not_a_cassette_is_refused(llm, tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a wiz cassette"):
        llm.import_cassette(path)
