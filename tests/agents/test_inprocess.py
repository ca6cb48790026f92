"""While litellm is still being imported, the offline and scripted models answer in-process
(wiz_jupyter/agents/inprocess.py) with the very replies litellm's path gives: the same
requests run through both paths here and are compared field by field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.agents.conftest import ADD, LITELLM_NOISE
from wiz_jupyter.agents import LLM, ScriptedModel, ToolCall, _litellm
from wiz_jupyter.jobs.store import Store

pytestmark = LITELLM_NOISE


class City(BaseModel):
    name: str
    population: int


def script() -> list:
    return ["a scripted text", ToolCall("add", {"a": 2, "b": 3}), RuntimeError("provider down")]


async def run_all(llm: LLM, scripted: ScriptedModel) -> list:
    """What each kind of call gives: text, tools, structured output, streams, a failure."""
    out: list = []
    for prompt in ["what is 6 * 7?", "summarise: queues let work happen later."]:
        out.append(await llm.chat(prompt))
        stream = llm.stream(prompt)
        out.append(("pieces", [p async for p in stream]))
        out.append(stream.reply)
    out.append(await llm.chat("add 2 and 3", tools=[ADD], tool_choice="auto"))
    stream = llm.stream("add 2 and 3", tools=[ADD])
    out.append(("pieces", [p async for p in stream]))
    out.append(stream.reply)
    out.append(await llm.structured("Paris has 2100000 people", City))
    out.append(await llm.chat("hi", model=scripted))
    out.append(await llm.chat("add", model=scripted, tools=[ADD]))
    with pytest.raises(RuntimeError) as failed:
        await llm.chat("again", model=scripted)
    out.append(("error", type(failed.value).__name__, str(failed.value)))
    return out


def fields(item) -> object:
    if isinstance(item, tuple) or isinstance(item, BaseModel):
        return item
    return {
        "text": item.text,
        "tool_calls": [(c.name, c.args, c.id) for c in item.tool_calls],
        "finish_reason": item.finish_reason,
        "tokens": (item.tokens_in, item.tokens_out),
        "cost": item.cost,
        "model": item.model,
    }


async def test_the_inprocess_path_gives_litellms_replies(tmp_path, monkeypatch):
    monkeypatch.delenv("WIZ_MODEL", raising=False)
    _litellm.load()
    results, hashes = [], []
    for path, via_litellm in [("a.db", True), ("b.db", False)]:
        if not via_litellm:  # as if litellm's import had not finished yet
            monkeypatch.setattr(_litellm, "_module", None)
        store = Store(tmp_path / path)
        llm = LLM(store, retries=0)
        llm.direct = not via_litellm  # the direct path answers wiz/ models in-process too
        scripted = ScriptedModel(script(), name="wiz/scripted-same")
        results.append([fields(r) for r in await run_all(llm, scripted)])
        hashes.append([r["request_hash"] for r in llm.history(limit=1000)])
        store.close()
    assert _litellm.loaded() is None, "the second run did not touch litellm"
    assert results[1] == results[0]
    assert hashes[1] == hashes[0] and len(hashes[0]) >= 10  # every call is in llm_calls
