"""OpenAI-compatible endpoints straight through the ``openai`` SDK: the LLM layer's fast path.

litellm spends about 4 ms of CPU per call around the ``openai`` client it drives (its
logging object and callbacks, provider look-ups, a cost calculation, response
conversion): at tens of concurrent calls on a small machine that, not the
network, sets the pace. For the providers that *are* the OpenAI API (``openai/*``,
with or without ``api_base``; ``hosted_vllm/*`` with one), the LLM layer calls the
SDK itself, over its aiohttp transport, and does the rest as it does for litellm's
path: retries, rate limits, budgets, metering, replay. Everything else (other
providers, litellm-only parameters, reasoning models whose parameters litellm
rewrites, a user who registered litellm callbacks) keeps going through litellm.

The object :func:`load` returns offers the part of litellm's module interface the
LLM layer uses (``acompletion``, ``completion_cost``, the capability look-ups), so
the layer treats both paths alike. Prices and capabilities come from litellm's own
table (``llm_prices.py``), read without importing litellm. ``import openai`` takes
about half a second: it happens off the loop, on the first call that needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace as NS
from typing import Any

from ..errors import LLMAuthError
from . import _litellm, llm_prices
from .keys import keys_file, load_keys_file
from .scripted import STEP_MARK

#: provider prefix -> (the environment variable of its key, the key sent when there is none)
PROVIDERS: dict[str, tuple[str, str | None]] = {
    "openai": ("OPENAI_API_KEY", None),
    "hosted_vllm": ("HOSTED_VLLM_API_KEY", "fake-api-key"),  # as litellm sends: vLLM wants none
}
#: parameters of the Chat Completions API, sent as they are
PARAMS = frozenset(
    {
        "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens",
        "presence_penalty", "frequency_penalty", "logit_bias", "seed", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "user", "logprobs", "top_logprobs",
        "reasoning_effort", "modalities", "audio", "prediction", "store", "verbosity",
        "prompt_cache_key", "safety_identifier", "stream", "stream_options",
    }
)  # fmt: skip
#: where and how to send, not what: handled here
TRANSPORT = frozenset(
    {"api_base", "base_url", "api_key", "timeout", "num_retries", "max_retries",
     "extra_headers", "organization"}
)  # fmt: skip

_lock = threading.Lock()
_direct: Direct | None = None


def eligible(model: str, kwargs: dict[str, Any]) -> bool:
    """Whether a call to ``model`` with ``kwargs`` may take the direct path (cheap: no import)."""
    provider, _, name = model.partition("/")
    if provider not in PROVIDERS or not name:
        return False
    if provider != "openai" and not (kwargs.get("api_base") or kwargs.get("base_url")):
        return False  # litellm knows where such a provider's default endpoint is
    if not kwargs.keys() <= PARAMS | TRANSPORT:
        return False
    return not callbacks()


def callbacks() -> bool:
    """Whether litellm callbacks are registered (Langfuse, a custom logger): they see only
    the calls litellm makes, so every call then goes through litellm."""
    lit = _litellm.loaded()
    return lit is not None and bool(lit.callbacks or lit.success_callback or lit.failure_callback)


def loaded() -> Direct | None:
    """The direct path if :func:`load` already ran, else None."""
    return _direct


def load() -> Direct:
    """Import the ``openai`` SDK and read the price table once (seconds at most; run it in
    a thread); returns the direct path."""
    global _direct
    if _direct is None:
        with _lock:
            if _direct is None:
                load_keys_file()
                import openai

                llm_prices.table()
                _direct = Direct(openai)
    return _direct


class Direct:
    """The part of litellm's module interface the LLM layer uses, over the ``openai`` SDK."""

    def __init__(self, openai: Any):
        self.openai = openai
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._closer: asyncio.Task[None] | None = None

    def handles(self, model: str) -> bool:
        """Whether ``model`` goes direct: not a reasoning model (litellm rewrites their
        parameters, ``max_tokens`` to ``max_completion_tokens`` and the like)."""
        entry = llm_prices.info(model)
        return not (entry and entry.get("supports_reasoning"))

    async def acompletion(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        timeout: float | None = None,
        api_base: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        extra_headers: dict[str, str] | None = None,
        num_retries: int = 0,  # the LLM layer retries, visibly
        max_retries: int = 0,
        **params: Any,
    ) -> Any:
        """A ``ChatCompletion``, or the SDK's stream of chunks when ``stream=True``."""
        provider, _, name = model.partition("/")
        env, placeholder = PROVIDERS[provider]
        key = api_key or os.environ.get(env) or placeholder
        if not key:
            where = f"in the environment or in {keys_file()}"
            raise _marked(LLMAuthError(f"{model}: no API key; set {env} {where}", model=model))
        base = (
            api_base
            or base_url
            or (os.environ.get("OPENAI_API_BASE") if provider == "openai" else None)
        )
        fmt = params.get("response_format")
        if isinstance(fmt, type):  # a pydantic class, as litellm takes it
            from openai.lib._parsing._completions import type_to_response_format_param

            params["response_format"] = type_to_response_format_param(fmt)
        client = self._client(base, key, organization)
        # the client's own request, as the SDK documents for any endpoint: the body is
        # plain JSON already, so its per-call type transform of the parameters (a third
        # of its CPU) and its pydantic reply objects are skipped
        body = {"model": name, "messages": messages, **params}
        options: dict[str, Any] = {"timeout": timeout}
        if extra_headers:
            options["headers"] = extra_headers
        if params.get("stream"):
            # cast_to=object: the SDK parses the events and hands over each chunk's JSON,
            # without building pydantic objects (two thirds of a stream's CPU)
            events = await client.post(
                "/chat/completions", body=body, options=options, cast_to=object, stream=True,
                stream_cls=self.openai.AsyncStream[object],
            )  # fmt: skip
            return _chunks(events)
        raw = await client.post("/chat/completions", body=body, options=options, cast_to=bytes)
        return completion(raw)

    def _client(self, base: str | None, key: str, organization: str | None) -> Any:
        """One client per endpoint and key on the running loop (its connections belong to it)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._clients = loop, {}
            self._closer = loop.create_task(
                _close_at_shutdown(self._clients), name="wiz-llm-clients"
            )
        client = self._clients.get((base, key, organization))
        if client is None:
            client = self.openai.AsyncOpenAI(
                api_key=key, base_url=base, organization=organization, max_retries=0,
                http_client=_http_client(self.openai),
            )  # fmt: skip
            self._clients[(base, key, organization)] = client
        return client

    async def aclose(self) -> None:
        """Close the clients of the running loop (their connections)."""
        if self._loop is asyncio.get_running_loop():
            clients, self._clients = list(self._clients.values()), {}
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()

    # -- litellm's look-ups, from its table ----------------------------------------------------

    def completion_cost(self, *, completion_response: Any, model: str) -> float:
        return llm_prices.cost(model, getattr(completion_response, "usage", None)) or 0.0

    def cost_per_token(
        self, *, model: str, prompt_tokens: int, completion_tokens: int
    ) -> tuple[float, float]:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 0}
        prompt = llm_prices.cost(model, usage) or 0.0
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        return prompt, (llm_prices.cost(model, usage) or 0.0) - prompt

    def token_counter(self, *, model: str, messages: Sequence[dict[str, Any]]) -> int:
        lit = _litellm.loaded()
        if lit is not None:  # litellm's count, the same as on its path
            return int(lit.token_counter(model=model, messages=messages))
        return max(1, len(json.dumps(list(messages), default=str)) // 4)

    def get_supported_openai_params(self, model: str) -> list[str]:
        return sorted(PARAMS)

    def supports_response_schema(self, model: str) -> bool:
        return bool((llm_prices.info(model) or {}).get("supports_response_schema"))

    def supports_function_calling(self, model: str) -> bool:
        return bool((llm_prices.info(model) or {}).get("supports_function_calling"))


def completion(raw: bytes) -> Any:
    """A chat completion's JSON as the attributes the LLM layer reads of litellm's objects."""
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        text = raw[:200].decode("utf-8", "replace")
        raise BadReply(f"the reply is not a chat completion ({e!r}): {text}") from None
    usage = data.get("usage") or None
    return NS(
        id=data.get("id"),
        model=data.get("model"),
        choices=[
            NS(
                message=NS(content=message.get("content"), tool_calls=message.get("tool_calls")),
                finish_reason=choice.get("finish_reason"),
            )
        ],
        usage=_usage(usage) if usage else None,
    )


async def _chunks(events: Any) -> AsyncIterator[Any]:
    """A stream's chunks (JSON) as the attributes the LLM layer reads of litellm's chunks."""
    try:
        async for data in events:
            yield chunk(data)
    finally:  # read to the end or not, the connection goes back to the pool
        await events.close()


def chunk(data: Any) -> Any:
    """One streamed chunk's JSON as attributes: ``choices[0].delta`` (``content``,
    ``tool_calls``), ``finish_reason``, ``usage``."""
    if not isinstance(data, dict):
        raise BadReply(f"a streamed chunk is not a JSON object: {str(data)[:200]}")
    choices = []
    for c in (data.get("choices") or [])[:1]:  # the layer reads the first choice only
        delta = c.get("delta") or {}
        calls = [
            NS(index=t.get("index"), id=t.get("id"), function=NS(**_function(t)))
            for t in delta.get("tool_calls") or ()
        ]
        choices.append(
            NS(delta=NS(content=delta.get("content"), tool_calls=calls or None),
               finish_reason=c.get("finish_reason"))
        )  # fmt: skip
    usage = data.get("usage")
    return NS(choices=choices, usage=_usage(usage) if usage else None)


def _function(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"name": fn.get("name"), "arguments": fn.get("arguments")}


def _usage(usage: dict[str, Any]) -> Any:
    return NS(**{"prompt_tokens": 0, "completion_tokens": 0, **usage})


class BadReply(Exception):
    """The endpoint answered 200 with a body that is not a chat completion (retried)."""


def _marked(error: BaseException) -> BaseException:
    setattr(error, STEP_MARK, True)  # the LLM layer gives the caller this very error
    return error


def _http_client(openai: Any) -> Any:
    """The SDK's aiohttp transport (a third of the CPU per call of its default), if installed."""
    try:
        return openai.DefaultAioHttpClient()
    except (AttributeError, RuntimeError):  # an SDK without it, or without aiohttp
        return None


async def _close_at_shutdown(clients: dict[tuple[Any, ...], Any]) -> None:
    """Close a loop's clients when the loop shuts down (``asyncio.run``, pytest and
    ``asyncio.Runner`` cancel the tasks left), so no connection is left unclosed."""
    try:
        await asyncio.Event().wait()
    finally:
        for client in list(clients.values()):
            with contextlib.suppress(Exception):
                await client.close()
