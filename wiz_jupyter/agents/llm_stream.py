"""Streamed replies: the :class:`Stream` a caller iterates, and the reading of litellm's
chunks (starting a stream, the text of a chunk, the whole reply from all chunks).

:meth:`~wiz_jupyter.agents.llm.LLM.stream` drives these: it retries the start of a
stream like any call and meters the whole of it in ``llm_calls``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .llm_request import Request
from .messages import Reply, ToolCall


@dataclass
class Stream:
    """The reply of :meth:`LLM.stream`: an async iterator of text pieces.

    After the last piece, ``reply`` holds the whole :class:`Reply` (text, tool
    calls, tokens, cost)::

        s = llm.stream("Tell me a story")
        async for piece in s:
            print(piece, end="")
        s.reply.tool_calls, s.reply.tokens_out
    """

    model: str
    reply: Reply | None = None
    _pieces: AsyncIterator[str] | None = field(default=None, repr=False)

    def __aiter__(self) -> AsyncIterator[str]:
        assert self._pieces is not None
        return self._pieces

    async def collect(self) -> Reply:
        """Read the stream to its end; returns the whole reply."""
        async for _ in self:
            pass
        assert self.reply is not None
        return self.reply


async def open_stream(
    lit: ModuleType, kwargs: dict[str, Any]
) -> tuple[list[Any], AsyncIterator[Any] | None]:
    """Start a stream and read its first chunk, so that a failure to start is retried.

    Returns the chunks read so far and the iterator of the rest (None if there is none).
    """
    response = await lit.acompletion(**kwargs)
    chunks = response.__aiter__()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        return [], None
    return [first], chunks


def piece(chunk: Any) -> str:
    """The text a chunk adds to the reply ("" for usage and tool-call chunks)."""
    choices = getattr(chunk, "choices", None)
    if not choices:
        return ""
    delta = choices[0].delta
    return (getattr(delta, "content", None) or "") if delta is not None else ""


def finished(chunk: Any) -> bool:
    """Whether the provider has said its last word with this chunk."""
    return bool(chunk.choices and chunk.choices[0].finish_reason)


def reply_from_chunks(
    chunks: list[Any], req: Request, latency: float, price: Callable[[Any], float] | None = None
) -> Reply:
    """The whole reply of a stream, from its chunks.

    litellm's stream wrapper has already assembled the reply once: its last
    chunk carries the final usage and, in its hidden params, the cost. So
    only text and tool-call deltas are joined here; a second
    ``stream_chunk_builder`` pass cost more than the rest of the layer. The
    direct path's streams carry no cost: ``price(usage)`` gives it.
    """
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    cost: float | None = None
    for chunk in chunks:
        if getattr(chunk, "usage", None) is not None:
            usage = chunk.usage
            hidden = getattr(chunk, "_hidden_params", None) or {}
            cost = hidden.get("response_cost", cost)
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        delta = choice.delta
        if delta is None:
            continue
        if delta.content:
            text.append(delta.content)
        for d in delta.tool_calls or []:
            call = calls.setdefault(d.index or 0, {"id": None, "name": "", "arguments": ""})
            call["id"] = call["id"] or d.id
            if d.function is not None:
                call["name"] = call["name"] or d.function.name or ""
                call["arguments"] += d.function.arguments or ""
    if cost is None and price is not None and usage is not None:
        cost = price(usage)
    tool_calls = [
        ToolCall.from_openai(
            {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
        )
        for _, c in sorted(calls.items())
    ]
    return Reply(
        text="".join(text),
        tool_calls=tool_calls,
        model=req.model,
        finish_reason=finish,
        tokens_in=(usage.prompt_tokens or 0) if usage is not None else 0,
        tokens_out=(usage.completion_tokens or 0) if usage is not None else 0,
        cost=0.0 if req.model.startswith("wiz/") else float(cost or 0.0),
        latency=latency,
    )
