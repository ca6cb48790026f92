"""``wiz/*`` models answered in-process: always on the LLM layer's direct path (the
default), and while litellm is still being imported.

``%load_ext`` starts litellm's import in a background thread (``_litellm.preload``);
it takes seconds. A first question to the offline or a scripted model asked before
it is done is answered here instead of waiting, and so is every later one unless
``ws.llm.direct`` is off (or litellm callbacks are registered): through litellm such a
call cost about 4 ms, and left a success-logging task of litellm's running after it.
This module is the small part of litellm's module interface that the LLM layer uses
(``acompletion``, streaming chunks, the capability look-ups), backed by the same
provider code (:func:`provider.answer`, :func:`provider.usage`) that litellm's
``CustomLLM`` calls.

The replies are the same on both paths (text, tool calls, finish reason, tokens,
cost, request hash): ``tests/agents/test_inprocess.py`` runs the same requests
through both and compares them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace as NS
from typing import Any

from .messages import ToolCall, chunk_text
from .provider import OFFLINE, PROVIDER, answer, usage
from .scripted import pace


def handles(model: str) -> bool:
    """Whether ``model`` can be answered here (the offline and scripted models)."""
    return model.startswith(f"{PROVIDER}/")


async def acompletion(
    *, model: str, messages: list[dict[str, Any]], stream: bool = False, **params: Any
) -> Any:
    """litellm's ``acompletion`` for a ``wiz/*`` model: a response, or an async iterator
    of chunks when ``stream``."""
    text, calls = answer(model, messages, params)
    tokens = NS(**usage(messages, text, calls))
    finish = "tool_calls" if calls else "stop"
    if stream:
        return _chunks(text, calls, finish, tokens, pace(model))
    entries = [c.to_openai(f"call_{i}") for i, c in enumerate(calls)]
    message = NS(content=text or None, tool_calls=entries or None)
    return NS(choices=[NS(message=message, finish_reason=finish)], usage=tokens, model=model)


async def _chunks(
    text: str, calls: list[ToolCall], finish: str, tokens: Any, gap: float
) -> AsyncIterator[Any]:
    for piece in chunk_text(text):
        await asyncio.sleep(gap)  # a stream lets the loop run between its pieces
        yield _chunk(NS(content=piece, tool_calls=None), None)
    for i, call in enumerate(calls):
        yield _chunk(NS(content=None, tool_calls=[_call(i, call)]), None)
    yield _chunk(NS(content=None, tool_calls=None), finish)
    yield NS(choices=[], usage=tokens)


def _chunk(delta: Any, finish: str | None) -> Any:
    return NS(choices=[NS(delta=delta, finish_reason=finish)], usage=None)


def _call(index: int, call: ToolCall) -> Any:
    spec = call.to_openai(f"call_{index}")
    return NS(index=index, id=spec["id"], function=NS(**spec["function"]))


def completion_cost(**_: Any) -> float:
    return 0.0  # offline models are free


def get_supported_openai_params(model: str) -> None:
    # as litellm says of a custom provider; the LLM layer treats wiz/* as supporting all
    return None


def supports_response_schema(model: str) -> bool:
    return model == OFFLINE  # litellm knows wiz/offline's model info, not a scripted model's


def supports_function_calling(model: str) -> bool:
    return model == OFFLINE
