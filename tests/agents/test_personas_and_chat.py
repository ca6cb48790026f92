"""Personas in the agents table, tools from functions, and chats."""

from __future__ import annotations

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter.agents import ScriptedModel, ToolCall

pytestmark = LITELLM_NOISE


def test_ws_agent_creates_then_updates_and_the_persona_is_stored(ws, db_path):
    a = ws.agent("analyst", role="data analyst", goal="answer questions", backstory="Ex-statistician.",
                 settings={"temperature": 0}, tools=["read_file"], max_steps=5)  # fmt: skip
    assert a.instructions.startswith("You are analyst, data analyst.")
    assert "Your goal: answer questions" in a.instructions and "Ex-statistician." in a.instructions
    b = ws.agent("analyst", goal="answer every question")  # an update keeps the rest
    assert (b.role, b.goal, b.max_steps, b.settings) == (
        "data analyst",
        "answer every question",
        5,
        {"temperature": 0},
    )
    assert ws.agent("analyst").tool_names == ["read_file"]
    assert b.folder == (db_path.parent / "agents" / "analyst") and b.folder.is_dir()
    assert [x.name for x in ws.agents.list()] == ["analyst"]
    other = wiz.Workspace(db_path)  # another process sees the same persona
    assert other.agents.get("analyst").goal == "answer every question"
    assert b.status == "idle" and "analyst" in repr(b) and "<b>analyst</b>" in b._repr_html_()
    ws.agents.remove("analyst")
    with pytest.raises(wiz.AgentNotFound, match="no agent 'analyst'"):
        ws.agents.get("analyst")


def test_bad_personas_are_refused_with_a_clear_message(ws):
    with pytest.raises(wiz.WizError, match="a word like"):
        ws.agent("two words", role="x")
    with pytest.raises(wiz.WizError, match="unknown built-in tool 'rm_rf'"):
        ws.agent("a", tools=["rm_rf"])
    with pytest.raises(wiz.WizError, match="unknown agent field"):
        ws.agent("a", colour="blue")
    with pytest.raises(wiz.WizError, match="max_steps"):
        ws.agent("a", max_steps=0)


def test_a_tool_schema_comes_from_the_signature_and_docstring():
    def search(query: str, limit: int = 5, exact: bool = False) -> list[str]:
        """Search the notes.

        Args:
            query: words to look for
            limit: how many results
        """
        return []

    schema = wiz.tool(search).schema["function"]
    assert schema["name"] == "search" and schema["description"] == "Search the notes."
    props = schema["parameters"]["properties"]
    assert props["query"] == {"type": "string", "description": "words to look for"}
    assert props["limit"] == {"type": "integer", "default": 5, "description": "how many results"}
    assert props["exact"]["type"] == "boolean"
    assert schema["parameters"]["required"] == ["query"]


async def test_a_chat_exchange_and_one_that_fails(ws):
    seen = []
    ws.events.on("chat.message", lambda e: seen.append((e.data["role"], e.data["author"])))
    model = ScriptedModel(["Hello! I am the analyst.", RuntimeError("the model is down")])
    ws.agent("analyst", model=model)
    ws.agent("writer", model=ScriptedModel(["Once upon a time."]))
    chat = ws.chat(["analyst", "writer"])
    assert await chat.ask("Hi there", timeout=10) == "Hello! I am the analyst."
    assert await chat.ask("@writer tell a story", timeout=10) == "Once upon a time."
    failing = chat.send("And now?")
    with pytest.raises(wiz.JobFailed):
        await failing.wait(timeout=10)
    msgs = chat.messages()
    assert [(m["role"], m["author"]) for m in msgs] == [
        ("user", "you"),
        ("agent", "analyst"),
        ("user", "you"),
        ("agent", "writer"),
        ("user", "you"),
        ("error", "analyst"),
    ]
    assert (
        msgs[-1]["content"].startswith("Sorry, I could not answer:")
        and "down" in msgs[-1]["content"]
    )
    assert seen == [(m["role"], m["author"]) for m in msgs]
    # the writer saw the conversation so far, the analyst's words as a quoted user turn
    writer_view = ws.agents.get("writer")
    assert writer_view.history()[0].data["chat_id"] == chat.id
    assert ws.chats.get(chat.id).messages(2)[0]["author"] == "you"


async def test_a_chat_with_a_missing_agent_or_an_empty_message_is_refused(ws):
    with pytest.raises(wiz.AgentNotFound, match="no agent 'ghost'"):
        ws.chat("ghost")
    ws.agent("analyst", model=ScriptedModel([]))
    with pytest.raises(wiz.WizError, match="empty message"):
        ws.chat("analyst").send("   ")


async def test_post_to_chat_and_agents_on_a_schedule(ws):
    model = ScriptedModel([ToolCall("post_to_chat", {"message": "working on it"}), "done"])
    ws.agent("analyst", model=model, tools=["post_to_chat"])
    chat = ws.chat("analyst")
    assert await chat.ask("go", timeout=10) == "done"
    assert [m["content"] for m in chat.messages()] == ["go", "working on it", "done"]
    s = ws.schedules.add(
        ws.agents.get("analyst"), {"kind": "assign", "prompt": "daily digest"}, every=3600
    )
    assert s.task == "agent:analyst"
    assert ws.schedules.fire(s).agent == "analyst"
