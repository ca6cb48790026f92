"""The ``wiz`` litellm provider: ``wiz/offline`` and scripted models as a real ``CustomLLM``.

Registered in ``litellm.custom_provider_map``, they take litellm's own ``acompletion``
path (its parameter handling, its streaming wrapper, its response objects) when the
LLM layer's direct path is off (``ws.llm.direct = False``), as every provider litellm
serves does. With it on (the default), they answer in-process (``inprocess.py``, the
same replies, compared in ``tests/agents/test_inprocess.py``), as OpenAI-compatible
endpoints go straight through the openai SDK. litellm is imported inside :func:`register`,
which ``_litellm.load()`` calls on the first model call: importing this module
(or ``wiz_jupyter``) never imports litellm.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ModelNotFound
from . import offline
from .messages import ToolCall, chunk_text, text_of
from .scripted import STEP_MARK, pace, scripted

if TYPE_CHECKING:
    from litellm.types.utils import GenericStreamingChunk, ModelResponse

PROVIDER = "wiz"
OFFLINE = "wiz/offline"

#: litellm's model info for wiz/offline: free, and it fills JSON schemas, so
#: ``litellm.supports_response_schema`` sends it ``response_format`` like a real model.
OFFLINE_INFO = {
    OFFLINE: {
        "litellm_provider": PROVIDER,
        "mode": "chat",
        "max_tokens": 1_000_000,
        "max_input_tokens": 1_000_000,
        "max_output_tokens": 1_000_000,
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "cache_creation_input_token_cost": 0.0,
        "cache_read_input_token_cost": 0.0,
        "supports_function_calling": True,
        "supports_tool_choice": True,
        "supports_response_schema": True,
    }
}


def answer(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> tuple[str, list[ToolCall]]:
    """(text, tool calls) of the offline or scripted model ``model`` for one request."""
    try:
        return _answer(model, messages, params)
    except BaseException as e:
        # litellm wraps whatever a provider raises; the mark lets the LLM layer give
        # the caller this very exception (a scripted step's, or our LLMError) instead
        try:
            setattr(e, STEP_MARK, True)
        except AttributeError:  # an exception type with __slots__: litellm's wrapper it is
            pass
        raise


def full_name(model: str) -> str:
    """``wiz/<name>``, however it came (litellm hands a provider the name without it)."""
    return model if model.startswith(f"{PROVIDER}/") else f"{PROVIDER}/{model}"


def _answer(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> tuple[str, list[ToolCall]]:
    name = full_name(model)
    tools = params.get("tools")
    if name == OFFLINE:
        text, calls = offline.reply(
            messages, tools, params.get("tool_choice"), params.get("response_format")
        )
        return text or "", calls
    script = scripted(name)
    if script is None:
        raise ModelNotFound(
            f"unknown model {name!r}: the offline models are 'wiz/offline' and the names of "
            "live ScriptedModel objects",
            model=name,
        )
    text, calls = script.next_reply(
        {
            "messages": messages,
            "tools": tools,
            "tool_choice": params.get("tool_choice"),
            "response_format": params.get("response_format"),
        }
    )
    return text or "", calls


def usage(messages: list[dict[str, Any]], text: str, calls: list[ToolCall]) -> dict[str, int]:
    """Token counts of one offline reply, as litellm's ``usage`` fields."""
    prompt = offline.tokens(" ".join(text_of(m) for m in messages))
    completion = offline.tokens(text + "".join(json.dumps(c.args) for c in calls))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _respond(
    model: str, messages: list, model_response: ModelResponse, params: dict
) -> ModelResponse:
    """litellm's ``model_response`` filled in with the reply of ``model`` (not streamed)."""
    import litellm

    text, calls = answer(model, messages, params)
    model_response.choices[0].message = litellm.Message(
        content=text or None,
        tool_calls=[c.to_openai(f"call_{i}") for i, c in enumerate(calls)] or None,
    )
    model_response.choices[0].finish_reason = "tool_calls" if calls else "stop"
    model_response.model = f"{PROVIDER}/{model}"
    model_response.usage = litellm.Usage(**usage(messages, text, calls))  # type: ignore[attr-defined]
    return model_response


def _chunks(model: str, messages: list, params: dict) -> Iterator[GenericStreamingChunk]:
    """The reply of ``model`` as litellm's stream chunks: text pieces, tool calls, the end."""
    from litellm.types.utils import GenericStreamingChunk

    text, calls = answer(model, messages, params)
    for piece in chunk_text(text):
        yield GenericStreamingChunk(
            text=piece,
            is_finished=False,
            finish_reason="",
            usage=None,
            index=0,
            tool_use=None,
        )
    for i, call in enumerate(calls):
        yield GenericStreamingChunk(
            text="",
            is_finished=False,
            finish_reason="",
            usage=None,
            index=0,
            tool_use={**call.to_openai(f"call_{i}"), "index": i},  # type: ignore[typeddict-item]
        )
    yield GenericStreamingChunk(
        text="",
        is_finished=True,
        finish_reason="tool_calls" if calls else "stop",
        usage=usage(messages, text, calls),  # type: ignore[typeddict-item]
        index=0,
        tool_use=None,
    )


def _provider_class() -> type:
    """The ``CustomLLM`` subclass; defined on first use because its base is litellm's."""
    from litellm import CustomLLM

    class WizProvider(CustomLLM):
        """litellm's handler for ``wiz/*`` models (completion, streaming, sync and async)."""

        # litellm calls these with keyword arguments only; the ones not named here
        # (api_key, api_base, logging_obj, ...) mean nothing to an offline model.
        def completion(  # type: ignore[override]
            self,
            *,
            model: str,
            messages: list,
            model_response: ModelResponse,
            optional_params: dict,
            **_: Any,
        ) -> ModelResponse:
            return _respond(model, messages, model_response, optional_params)

        async def acompletion(  # type: ignore[override]
            self,
            *,
            model: str,
            messages: list,
            model_response: ModelResponse,
            optional_params: dict,
            **_: Any,
        ) -> ModelResponse:
            return _respond(model, messages, model_response, optional_params)

        def streaming(  # type: ignore[override]
            self, *, model: str, messages: list, optional_params: dict, **_: Any
        ) -> Iterator[GenericStreamingChunk]:
            gap = pace(full_name(model))
            for chunk in _chunks(model, messages, optional_params):
                if gap and chunk["text"]:
                    time.sleep(gap)  # litellm runs a sync stream in its own thread
                yield chunk

        async def astreaming(  # type: ignore[override]
            self, *, model: str, messages: list, optional_params: dict, **_: Any
        ) -> AsyncIterator[GenericStreamingChunk]:
            gap = pace(full_name(model))
            for chunk in _chunks(model, messages, optional_params):
                if gap and chunk["text"]:
                    await asyncio.sleep(gap)
                yield chunk

    return WizProvider


def register() -> None:
    """Add the ``wiz`` provider and wiz/offline's model info to litellm (idempotent)."""
    import litellm

    if not any(p.get("provider") == PROVIDER for p in litellm.custom_provider_map):
        litellm.custom_provider_map.append(
            {"provider": PROVIDER, "custom_handler": _provider_class()()}
        )
        litellm.register_model(OFFLINE_INFO)
