"""Local models as a first-class path: an endpoint per model for the workspace
(``ws.llm.set_api_base``, ``%wiz model NAME --api-base``) or per agent (``api_base=``),
through litellm's OpenAI-compatible routes against a real server on loopback, streamed
and with tool calls, with no API key in the environment; and ``ws.agents.models()``."""

from __future__ import annotations

import pytest

import wiz_jupyter as wiz

from .conftest import LITELLM_NOISE

pytestmark = LITELLM_NOISE

VLLM = "hosted_vllm/qwen2.5-test"  # vLLM's litellm route: OpenAI-compatible, no key needed


@pytest.fixture
def no_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("WIZ_CONFIG", str(tmp_path / "no-keys.env"))
    for name in ("OPENAI_API_KEY", "WIZ_MODEL", "WIZ_LLM_MODE"):
        monkeypatch.delenv(name, raising=False)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_the_workspace_endpoint_serves_a_streamed_answer_with_a_tool_call(
    ws, server, no_keys
):
    ws.llm.set_default_model(VLLM, api_base=server.url)
    server.reply(tool_calls=[("add", {"a": 20, "b": 22})])
    server.reply("The sum is 42.")
    local = ws.agent("local", role="calculator", tools=[add])  # the default model
    deltas: list[str] = []
    ws.events.on("agent.delta", lambda e: deltas.append(e.data["text"]))
    assert await local.ask("What is 20 + 22?", timeout=20) == "The sum is 42."
    assert len(server.requests) == 2
    first, second = (r.body for r in server.requests)
    assert first["model"] == "qwen2.5-test" and first.get("stream") is True
    assert second["messages"][-1]["content"] == "42"  # the tool ran and its result went back
    assert "".join(deltas) == "The sum is 42."  # streamed


async def test_an_agent_endpoint_wins_over_the_workspace_one(ws, server, no_keys):
    ws.llm.set_api_base(VLLM, "http://127.0.0.1:9/v1")  # nothing listens there
    mine = ws.agent("mine", model=VLLM, api_base=server.url, settings={"temperature": 0})
    assert mine.api_base == server.url and mine.settings["temperature"] == 0
    assert await mine.ask("hello", timeout=20) == "echo: hello"
    assert server.requests[0].body["temperature"] == 0
    mine = ws.agent("mine", api_base=None)  # back to the workspace's endpoint
    assert mine.api_base is None and mine.settings == {"temperature": 0}


def test_endpoints_are_kept_in_the_file_for_every_process(db_path, server):
    ws = wiz.Workspace(db_path)
    ws.llm.set_api_base(VLLM, server.url)
    ws.close()
    other = wiz.Workspace(db_path)
    assert other.llm.api_bases == {VLLM: server.url}
    other.llm.set_api_base(VLLM, None)
    assert other.llm.api_bases == {}
    other.close()


@pytest.mark.parametrize(
    "url", ["ftp://host/v1", "localhost:11434", "http://", "", 11434, "http://[::1"]
)
def test_an_endpoint_that_is_not_an_http_url_is_one_line(ws, url):
    with pytest.raises(wiz.InvalidEndpoint, match="api_base must be an http"):
        ws.llm.set_api_base(VLLM, url)
    with pytest.raises(wiz.InvalidEndpoint):
        ws.agent("bad", model=VLLM, api_base=url)
    assert ws.llm.api_bases == {} and ws.agents.list() == []


def test_models_in_use_say_whether_a_key_is_set_and_never_show_it(ws, server, no_keys, monkeypatch):
    ws.llm.set_api_base(VLLM, server.url)
    ws.agent("a", model=VLLM)
    ws.agent("b", model="openai/gpt-4o-mini")
    ws.agent("c", model="openai/gpt-4o-mini")
    ws.agent("d", role="helper")  # the default model
    rows = {r["model"]: r for r in ws.agents.models()}
    assert rows["wiz/offline"] == {
        "model": "wiz/offline", "used_by": ["d"], "api_base": None, "key": "offline"
    }  # fmt: skip
    assert rows[VLLM]["api_base"] == server.url and rows[VLLM]["key"] == "ok"
    assert rows["openai/gpt-4o-mini"]["used_by"] == ["b", "c"]
    assert rows["openai/gpt-4o-mini"]["key"] == "missing OPENAI_API_KEY"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-secret-value-123")
    shown = repr(ws.agents.models())
    assert "'key': 'ok'" in shown and "sk-local" not in shown
