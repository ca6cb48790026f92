"""wiz/offline and ScriptedModel: real litellm custom providers, called through litellm."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from pydantic import BaseModel

import wiz_jupyter.agents._litellm as lazy
from tests.agents.conftest import ADD, LITELLM_NOISE, READ_FILE
from wiz_jupyter.agents import ScriptedModel, ToolCall
from wiz_jupyter.errors import InvalidOutput, LLMError, ModelNotFound

pytestmark = LITELLM_NOISE


class Plan(BaseModel):
    goal: str
    steps: list[str]
    budget: int
    approved: bool


@pytest.fixture
def llm(llm):
    """The layer with its direct path off: these tests are of litellm's custom providers.
    (With it on, the same replies come in-process: tests/agents/test_inprocess.py.)"""
    llm.direct = False
    return llm


# -- every call goes through litellm.acompletion --------------------------------------------------


async def test_on_the_direct_path_offline_calls_never_reach_litellm(llm, monkeypatch):
    await llm.complete("warm up")  # loads litellm
    llm.direct = True
    litellm = lazy.loaded()

    async def refuse(**kwargs):
        raise AssertionError(f"litellm called for {kwargs['model']}")

    monkeypatch.setattr(litellm, "acompletion", refuse)
    script = ScriptedModel(["one", "two"])
    assert await llm.complete("Say hi") == "hi"
    assert (await llm.stream("x", model=script).collect()).text == "one"
    assert [r["error"] for r in llm.history()] == [None, None, None]


async def test_offline_calls_go_through_litellm_acompletion(llm, monkeypatch):
    await llm.complete("warm up")  # loads litellm
    litellm = lazy.loaded()
    seen = []
    real = litellm.acompletion

    async def spy(**kwargs):
        seen.append((kwargs["model"], kwargs.get("stream", False), kwargs["num_retries"]))
        return await real(**kwargs)

    monkeypatch.setattr(litellm, "acompletion", spy)
    script = ScriptedModel(["one", "two"])
    await llm.complete("Say hi")
    await llm.stream("Say hi").collect()
    await llm.complete("x", model=script)
    await llm.stream("x", model=script).collect()
    assert seen == [
        ("wiz/offline", False, 0),
        ("wiz/offline", True, 0),
        (script.name, False, 0),
        (script.name, True, 0),
    ]


# -- wiz/offline ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("Say hello", "hello"),
        ("Repeat after me: the owl flies at night", "the owl flies at night"),
        ("uppercase: quiet please", "QUIET PLEASE"),
        ("Reverse 'stressed'", "desserts"),
        ("Count the words in: one two three four", "4"),
        ("What is 2 + 3?", "5"),
        ("calculate (7 - 1) * 6", "36"),
        ("Summarise: Owls hunt at night. They sleep by day.", "Owls hunt at night."),
        ("What is the capital of France?", "You asked: What is the capital of France?"),
        ("Hello there", "You said: Hello there"),
    ],
)
async def test_offline_follows_simple_instructions(llm, prompt, answer):
    assert await llm.complete(prompt) == answer


async def test_offline_is_deterministic_and_shortens_long_messages(llm):
    long = "The survey covered 40 farms in the valley. " + "More detail follows here. " * 30
    first = await llm.complete(long)
    assert first == "You said: The survey covered 40 farms in the valley."
    assert await llm.complete(long) == first


async def test_offline_streams_word_by_word_through_litellm(llm):
    s = llm.stream("Repeat after me: one two three")
    pieces = [p async for p in s]
    assert pieces == ["one ", "two ", "three"]
    assert s.reply.text == "one two three"
    assert s.reply.tokens_out > 0 and s.reply.tokens_in > 0
    assert s.reply.cost == 0.0


async def test_offline_calls_the_tool_the_prompt_names_with_arguments_from_it(llm):
    calls = await llm.tool_calls("Please add 2 and 40", [READ_FILE, ADD])
    assert calls == [ToolCall("add", {"a": 2, "b": 40})]
    calls = await llm.tool_calls("read_file notes/today.md, then add 1 and 2", [ADD, READ_FILE])
    assert calls == [
        ToolCall("read_file", {"path": "notes/today.md"}),
        ToolCall("add", {"a": 1, "b": 2}),
    ]
    assert calls[0].id != calls[1].id
    assert await llm.tool_calls("nothing to do here", [ADD]) == []  # no tool named: text
    forced = {"type": "function", "function": {"name": "add"}}
    assert await llm.tool_calls("just numbers 4, 5", [ADD], tool_choice=forced) == [
        ToolCall("add", {"a": 4, "b": 5})
    ]


async def test_offline_answers_with_the_tool_result(llm):
    messages = [{"role": "user", "content": "add 2 and 3"}]
    reply = await llm.chat(messages, tools=[ADD])
    assert reply.text == "" and reply.finish_reason == "tool_calls"
    messages.append(reply.message())
    messages.append(reply.tool_calls[0].result_message(5))
    final = await llm.chat(messages, tools=[ADD])
    assert final.text == "add returned 5."
    assert final.tool_calls == []


async def test_offline_streams_tool_calls(llm):
    s = llm.stream("read_file data.csv and add 3 and 4", tools=[ADD, READ_FILE])
    assert [p async for p in s] == []
    assert s.reply.tool_calls == [
        ToolCall("read_file", {"path": "data.csv"}),
        ToolCall("add", {"a": 3, "b": 4}),
    ]


async def test_offline_fills_a_json_schema_from_the_prompt(llm):
    plan = await llm.structured(
        "Plan the harvest festival for 300 guests. Book the barn. Hire a band.", Plan
    )
    assert plan == Plan(
        goal="Plan the harvest festival for 300 guests.",
        steps=["Plan the harvest festival for 300 guests.", "Book the barn.", "Hire a band."],
        budget=300,
        approved=True,
    )
    row = llm.history()[-1]
    assert row["model"] == "wiz/offline" and row["error"] is None  # one call: no repair needed


async def test_offline_honours_explicit_field_values(llm):
    class Person(BaseModel):
        name: str
        age: int
        role: str = "guest"

    person = await llm.structured("Register name: Ada age: 36 role=host", Person)
    assert person == Person(name="Ada", age=36, role="host")


async def test_offline_json_object_mode(llm):
    text = await llm.complete("Say yes", response_format={"type": "json_object"})
    assert json.loads(text) == {"answer": "yes"}


async def test_an_unknown_wiz_model_is_a_clear_error_without_retries(llm):
    with pytest.raises(ModelNotFound, match="unknown model 'wiz/nope'"):
        await llm.complete("x", model="wiz/nope")
    assert [r["attempt"] for r in llm.history()] == [1]


# -- ScriptedModel ----------------------------------------------------------------------------------


async def test_scripted_steps_are_consumed_in_order(llm):
    model = ScriptedModel(
        [
            "a text reply",
            ToolCall("add", {"a": 2, "b": 3}),
            [ToolCall("add", {"a": 1, "b": 1}), ToolCall("read_file", {"path": "x"})],
            RuntimeError("down"),
            lambda messages: f"you sent {len(messages)} messages",
        ]
    )
    assert model.name.startswith("wiz/scripted-")
    assert await llm.complete("hi", model=model) == "a text reply"
    assert await llm.tool_calls("go", [ADD], model=model.name) == [
        ToolCall("add", {"a": 2, "b": 3})
    ]
    reply = await llm.chat("go", tools=[ADD, READ_FILE], model=model)
    assert [c.name for c in reply.tool_calls] == ["add", "read_file"]
    assert len({c.id for c in reply.tool_calls}) == 2
    with pytest.raises(RuntimeError, match="down") as raised:
        await llm.complete("again", model=model)
    assert type(raised.value) is RuntimeError  # the step's own exception, not litellm's wrapper
    assert await llm.complete(["a", "b"], model=model) == "you sent 2 messages"
    assert model.remaining == 0
    with pytest.raises(LLMError, match=r"ran out of steps after 5 replies"):
        await llm.complete("more", model=model)
    assert [r["content"] for r in model.requests[0]["messages"]] == ["hi"]
    assert model.requests[1]["tools"] == [ADD]


async def test_a_scripted_exception_is_not_retried_unless_it_is_a_rate_limit(llm):
    await llm.complete("warm up")
    litellm = lazy.loaded()
    limited = litellm.RateLimitError("slow down", llm_provider="wiz", model="scripted")
    model = ScriptedModel([ValueError("bad"), limited, "after the limit"])
    with pytest.raises(ValueError, match="bad"):
        await llm.complete("x", model=model)
    assert await llm.complete("x", model=model) == "after the limit"
    rows = [r for r in llm.history() if r["model"] == model.name]
    assert [(r["attempt"], r["error"] is None) for r in rows] == [(1, False), (1, False), (2, True)]
    assert "retry 1 of 4" in rows[1]["error"]


async def test_scripted_text_streams_and_tool_calls_stream(llm):
    model = ScriptedModel(["three little words", [ToolCall("add", {"a": 1, "b": 2})]])
    s = llm.stream("x", model=model)
    assert [p async for p in s] == ["three ", "little ", "words"]
    s = llm.stream("x", model=model, tools=[ADD])
    assert [p async for p in s] == []
    assert s.reply.tool_calls == [ToolCall("add", {"a": 1, "b": 2})]


@pytest.mark.parametrize("direct", [True, False], ids=["in-process", "through-litellm"])
async def test_a_paced_scripted_model_streams_its_pieces_that_far_apart(llm, direct):
    llm.direct = direct
    model = ScriptedModel(["one two three four"], pace=0.03)
    arrived = []
    async for piece in llm.stream("x", model=model):
        arrived.append((piece, time.monotonic()))
    assert [p for p, _ in arrived] == ["one ", "two ", "three ", "four"]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(arrived)]
    assert min(gaps) >= 0.02, gaps  # a piece never comes before its pace (a lower bound)
    with pytest.raises(ValueError, match="pace"):
        ScriptedModel(["x"], pace=-1)


async def test_a_scripted_stream_that_fails_before_its_first_piece_raises(llm):
    model = ScriptedModel([KeyError("gone")])
    with pytest.raises(KeyError):
        await llm.stream("x", model=model).collect()


async def test_structured_output_without_schema_support_asks_in_the_prompt_and_repairs(llm):
    model = ScriptedModel(
        [
            '{"goal": "g", "steps": "not a list"}',
            '```json\n{"goal": "g", "steps": ["s"], "budget": 5, "approved": false}\n```',
        ]
    )
    plan = await llm.structured("Plan it", Plan, model=model)
    assert plan == Plan(goal="g", steps=["s"], budget=5, approved=False)
    first, repair = model.requests
    assert first["response_format"] is None  # scripted models do not claim JSON schema support
    assert "JSON schema" in first["messages"][-1]["content"]
    assert '"budget"' in first["messages"][-1]["content"]
    assert repair["messages"][-2] == {
        "role": "assistant",
        "content": '{"goal": "g", "steps": "not a list"}',
    }
    assert "does not match the schema" in repair["messages"][-1]["content"]


async def test_structured_output_gives_up_after_one_repair(llm):
    model = ScriptedModel(["nope", "still nope", "never asked"])
    with pytest.raises(InvalidOutput, match=r"does not match Plan even after a repair"):
        await llm.structured("Plan it", Plan, model=model)
    assert model.remaining == 1


async def test_scripted_models_are_found_by_name_only_while_alive(llm):
    model = ScriptedModel(["hi"], name="wiz/my-script")
    assert await llm.complete("x", model="wiz/my-script") == "hi"
    del model
    with pytest.raises(ModelNotFound):
        await llm.complete("x", model="wiz/my-script")
    with pytest.raises(ValueError, match="starts with 'wiz/'"):
        ScriptedModel([], name="openai/fake")
