"""What goes into and comes out of a model call: chat messages, :class:`ToolCall`, :class:`Reply`.

Messages are OpenAI-style dicts throughout (litellm's lingua franca); these
helpers turn a prompt string, a :class:`Reply` or a pydantic message object into
one, so callers can pass whatever they hold.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any


@dataclasses.dataclass
class ToolCall:
    """A call of a tool by a model: the tool's ``name`` and its ``args``.

    Returned by ``llm.tool_calls(...)`` and found in ``Reply.tool_calls``; also a
    step of a :class:`ScriptedModel`::

        ToolCall("add", {"a": 2, "b": 3})

    ``id`` is the provider's call id (needed to answer with a tool message);
    ``raw`` keeps the arguments text when the model sent JSON that does not parse.
    Neither takes part in ``==``.
    """

    name: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    id: str | None = dataclasses.field(default=None, compare=False)
    raw: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def to_openai(self, default_id: str = "call_0") -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry for this call."""
        return {
            "id": self.id or default_id,
            "type": "function",
            "function": {
                "name": self.name,
                "arguments": self.raw if self.raw is not None else json.dumps(self.args),
            },
        }

    @classmethod
    def from_openai(cls, call: Any) -> ToolCall:
        """From an OpenAI ``tool_calls`` entry (a dict or litellm's object)."""
        if not isinstance(call, dict):
            call = call.model_dump() if hasattr(call, "model_dump") else dict(call)
        fn = call.get("function") or {}
        text = fn.get("arguments") or "{}"
        if isinstance(text, dict):
            return cls(fn.get("name") or "", text, call.get("id"))
        try:
            args = json.loads(text)
        except ValueError:
            return cls(fn.get("name") or "", {}, call.get("id"), raw=text)
        if not isinstance(args, dict):
            return cls(fn.get("name") or "", {}, call.get("id"), raw=text)
        return cls(fn.get("name") or "", args, call.get("id"))

    def result_message(self, content: Any) -> dict[str, Any]:
        """The ``tool`` message that answers this call with ``content``."""
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        return {"role": "tool", "tool_call_id": self.id or "call_0", "content": text}


@dataclasses.dataclass
class Reply:
    """One model reply: its ``text``, its ``tool_calls`` and what the call cost.

    ``str(reply)`` is the text. ``reply.message()`` is the assistant message to
    append to a conversation before the tool results::

        reply = await llm.chat(messages, tools=tools)
        messages.append(reply.message())
        for call in reply.tool_calls:
            messages.append(call.result_message(run(call)))
    """

    text: str
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)
    model: str = ""
    finish_reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency: float = 0.0
    cache_hit: bool = False
    call_id: int | None = None  # the row in llm_calls

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_openai(f"call_{i}") for i, c in enumerate(self.tool_calls)]
        return msg

    def stored(self) -> dict[str, Any]:
        """What the replay cache keeps of this reply (no costs: a replay costs nothing)."""
        return {
            "text": self.text,
            "tool_calls": [c.to_openai(f"call_{i}") for i, c in enumerate(self.tool_calls)],
            "finish_reason": self.finish_reason,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any], model: str) -> Reply:
        return cls(
            text=data.get("text") or "",
            tool_calls=[ToolCall.from_openai(c) for c in data.get("tool_calls") or []],
            model=model,
            finish_reason=data.get("finish_reason"),
            tokens_in=data.get("tokens_in") or 0,
            tokens_out=data.get("tokens_out") or 0,
            cache_hit=True,
        )

    def __str__(self) -> str:
        return self.text


def to_messages(prompt: Any, system: str | None = None) -> list[dict[str, Any]]:
    """A fresh list of message dicts from a prompt string or a list of messages."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, dict):
        messages = [dict(prompt)]
    else:
        messages = [to_message(m) for m in prompt]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def to_message(m: Any) -> dict[str, Any]:
    if isinstance(m, dict):
        return dict(m)
    if isinstance(m, Reply):
        return m.message()
    if isinstance(m, str):
        return {"role": "user", "content": m}
    if hasattr(m, "model_dump"):  # litellm's Message and other pydantic messages
        return {k: v for k, v in m.model_dump().items() if v is not None}
    raise TypeError(f"a message must be a dict or a str, not {type(m).__name__}")


def text_of(message: dict[str, Any]) -> str:
    """The text of a message, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return "" if content is None else str(content)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return text_of(m)
    return ""


_SPLIT = re.compile(r"\S+\s*|\s+")


def chunk_text(text: str) -> list[str]:
    """Split ``text`` into word-sized pieces that join back to it exactly (for streaming)."""
    return _SPLIT.findall(text)
