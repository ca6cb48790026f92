"""The LLM layer: every model call of a workspace goes through one :class:`LLM` object.

It puts litellm behind a small async interface (text, streams, tool calls,
structured output), picks the model, retries what is worth retrying, bounds
concurrency per model, meters each call into ``llm_calls`` and records or
replays replies (``llm_cache``, cassette files). litellm itself is imported on
the first call that needs it, never by importing this module.

::

    llm = LLM(store)                                  # ws.llm in a workspace
    await llm.complete("Say hello")                   # 'hello' (wiz/offline)
    async for piece in llm.stream("Tell me a story", model="openai/gpt-4o-mini"):
        print(piece, end="")
    calls = await llm.tool_calls("add 2 and 3", tools)   # [ToolCall('add', {'a': 2, 'b': 3})]
    plan = await llm.structured("Plan a trip to Rome", Plan)
    llm.usage()                                       # Usage(calls=4, tokens_in=..., cost=...)
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidOutput, LLMAuthError, LLMError, ModelNotFound, ReplayMiss
from ..jobs.models import current_job
from . import _litellm, inprocess
from .keys import keys_file, redact
from .llm_store import SEMANTIC_PARAMS, LLMStore, Usage, request_hash
from .messages import Reply, ToolCall, chunk_text, last_user_text, to_messages
from .scripted import STEP_MARK, ScriptedModel

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..jobs.store import Store

    M = TypeVar("M", bound=BaseModel)

__all__ = ["DEFAULT_MODEL", "LLM", "MODES", "Reply", "Stream", "ToolCall", "Usage"]

log = logging.getLogger("wiz_jupyter.llm")

DEFAULT_MODEL = "wiz/offline"
#: off: always call, keep nothing; record: always call, keep the reply;
#: replay: only stored replies (a miss is an error); auto: stored reply if any, else call and keep.
MODES = ("off", "record", "replay", "auto")
MODEL_SETTING = "llm.model"


@dataclass
class _Request:
    """One call, resolved: what litellm gets, and what identifies it for replay."""

    model: str
    messages: list[dict[str, Any]]
    kwargs: dict[str, Any]  # tools, response_format, params: for litellm, never stored
    material: dict[str, Any]  # what is hashed and kept in llm_cache
    key: str
    job_id: int | None
    timeout: float

    @property
    def cacheable(self) -> bool:
        # wiz/ models are offline and free, and a scripted model's reply depends on
        # its position in the script, not on the request: replaying them would be wrong.
        return not self.model.startswith("wiz/")

    def describe(self) -> str:
        text = " ".join(last_user_text(self.messages).split())
        return text if len(text) <= 60 else text[:57] + "..."


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


class LLM:
    """Model calls for one workspace: ``ws.llm``. Every call is logged in ``llm_calls``.

    The model of a call is, first found: the ``model=`` argument (a name or a
    :class:`ScriptedModel`; an agent passes its own model here), the workspace
    setting (:meth:`set_default_model`), ``$WIZ_MODEL``, ``"wiz/offline"``.

    ``mode`` is the record/replay mode (:data:`MODES`; default ``$WIZ_LLM_MODE``
    or ``"off"``). ``timeout`` bounds each attempt (seconds); ``retries`` is how
    many times a rate limit, server error or timeout is retried, after
    ``backoff * 2**n`` seconds with jitter (or the server's ``Retry-After``), at
    most ``max_backoff``; ``concurrency`` bounds calls in flight per model.

    ::

        llm = LLM(store)
        llm.set_default_model("openai/gpt-4o-mini")
        llm.use_cassette("analysis.cassette.json")   # replay what is recorded, record the rest
        text = await llm.complete("Summarise: ...")
    """

    def __init__(
        self,
        store: Store,
        *,
        mode: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        concurrency: int = 8,
    ):
        self.db = LLMStore(store)
        self.mode = mode or os.environ.get("WIZ_LLM_MODE") or "off"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.limits: dict[str, int] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cassette: Path | None = None
        self._cassette_keys: set[str] = set()
        self._capabilities: dict[tuple[str, str], bool] = {}
        self._unpriced: set[str] = set()

    # -- configuration -------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {value!r}")
        self._mode = value

    @property
    def default_model(self) -> str | None:
        """The workspace setting ``llm.model``, if set."""
        return self.db.setting(MODEL_SETTING)

    def set_default_model(self, model: str | ScriptedModel | None) -> None:
        """Set (or with None, clear) the workspace's model, kept in its database.

        ::

            ws.llm.set_default_model("anthropic/claude-sonnet-4-5")
        """
        name = model.name if isinstance(model, ScriptedModel) else model
        self.db.set_setting(MODEL_SETTING, name)

    def resolve(self, model: str | ScriptedModel | None = None) -> str:
        """The name of the model a call with ``model=`` would use."""
        if isinstance(model, ScriptedModel):
            return model.name
        if model:
            return str(model)
        return self.default_model or os.environ.get("WIZ_MODEL") or DEFAULT_MODEL

    def set_concurrency(self, model: str, limit: int) -> None:
        """Allow ``limit`` calls in flight to ``model`` (default: ``concurrency``)."""
        self.limits[model] = limit
        self._semaphores.pop(model, None)  # calls from now on use the new bound

    # -- calls ---------------------------------------------------------------------------------

    async def complete(
        self,
        prompt: str | Sequence[Any],
        *,
        model: str | ScriptedModel | None = None,
        system: str | None = None,
        job_id: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> str:
        """The text of the model's reply to ``prompt`` (a string or a list of messages).

        ``params`` go to litellm (``temperature=0``, ``max_tokens=...``,
        ``api_base=...``)::

            await llm.complete("Say hello")                       # 'hello'
            await llm.complete(messages, model="openai/gpt-4o-mini", temperature=0)
        """
        reply = await self.chat(
            prompt, model=model, system=system, job_id=job_id, timeout=timeout, **params
        )
        return reply.text

    async def chat(
        self,
        prompt: str | Sequence[Any],
        *,
        model: str | ScriptedModel | None = None,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Any = None,
        job_id: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Reply:
        """One model turn: the whole :class:`Reply` (text, tool calls, tokens, cost).

        The building block of an agent's loop::

            reply = await llm.chat(messages, tools=tools)
            messages.append(reply.message())
        """
        req = self._request(
            prompt, model, system, tools, tool_choice, response_format, job_id, timeout, params
        )
        hit = self._replay(req, stream=False)
        if hit is not None:
            return hit
        lit = await self._load(req.model)
        kwargs = self._kwargs(req, lit, stream=False)
        attempt = 0
        while True:
            attempt += 1
            async with self._semaphore(req.model):
                t0 = time.perf_counter()
                try:
                    response = await asyncio.wait_for(lit.acompletion(**kwargs), req.timeout)
                except Exception as e:
                    delay = self._failed(req, e, attempt, time.perf_counter() - t0, stream=False)
                else:
                    latency = time.perf_counter() - t0
                    break
            await asyncio.sleep(delay)
        reply = self._reply(response, req, lit, latency)
        self._done(req, reply, attempt, stream=False)
        return reply

    def stream(
        self,
        prompt: str | Sequence[Any],
        *,
        model: str | ScriptedModel | None = None,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        job_id: int | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Stream:
        """The reply as it is written: a :class:`Stream` of text pieces.

        ::

            async for piece in llm.stream("Tell me a story"):
                print(piece, end="")

        A failure before the first piece is retried like any call; one after it
        is raised where the iteration stands. ``timeout`` bounds the wait for
        the first piece and (through litellm) each later read.
        """
        req = self._request(
            prompt, model, system, tools, tool_choice, None, job_id, timeout, params
        )
        out = Stream(req.model)
        out._pieces = self._stream(req, out)
        return out

    async def tool_calls(
        self,
        prompt: str | Sequence[Any],
        tools: Sequence[dict[str, Any]],
        *,
        model: str | ScriptedModel | None = None,
        tool_choice: Any = "auto",
        **kwargs: Any,
    ) -> list[ToolCall]:
        """The tools the model calls for ``prompt``, given OpenAI-style ``tools``.

        ::

            tools = [{"type": "function", "function": {"name": "add", "parameters": {
                "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"]}}}]
            await llm.tool_calls("add 2 and 3", tools)   # [ToolCall('add', {'a': 2, 'b': 3})]
        """
        reply = await self.chat(prompt, model=model, tools=tools, tool_choice=tool_choice, **kwargs)
        return reply.tool_calls

    async def structured(
        self,
        prompt: str | Sequence[Any],
        schema: type[M],
        *,
        model: str | ScriptedModel | None = None,
        system: str | None = None,
        **kwargs: Any,
    ) -> M:
        """The reply as an instance of the pydantic model ``schema``.

        Models that support JSON schemas get ``response_format``; the others are
        asked for JSON in the prompt. A reply that does not validate gets one
        repair turn (the error is shown to the model), then
        :class:`~wiz_jupyter.errors.InvalidOutput`::

            class Plan(BaseModel):
                goal: str
                steps: list[str]

            plan = await llm.structured("Plan a trip to Rome", Plan)
        """
        name = self.resolve(model)
        messages = to_messages(prompt, system)
        if await self._supports(name, "response_schema"):
            first = await self.chat(messages, model=name, response_format=schema, **kwargs)
            asked = messages
            fmt: dict[str, Any] = {"response_format": schema}
        else:
            asked = _ask_for_json(messages, schema)
            first = await self.chat(asked, model=name, **kwargs)
            fmt = {}
        try:
            return _parse(first.text, schema)
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            problem = _short(e)
        repair = [
            *asked,
            first.message(),
            {
                "role": "user",
                "content": f"That reply does not match the schema: {problem}. "
                "Reply with only the corrected JSON object.",
            },
        ]
        second = await self.chat(repair, model=name, **fmt, **kwargs)
        try:
            return _parse(second.text, schema)
        except ValueError as e:
            raise InvalidOutput(
                f"{name}: the reply does not match {schema.__name__} even after a repair "
                f"turn: {_short(e)}",
                model=name,
            ) from None

    # -- usage, history, cassettes -------------------------------------------------------------

    def usage(self, job_id: int | None = None) -> Usage:
        """Totals of calls, tokens, cost and latency: for one job, or all (``None``)."""
        return self.db.usage(job_id)

    def history(self, job_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The last ``limit`` rows of ``llm_calls`` (of one job), oldest first."""
        return self.db.history(job_id, limit)

    def export_cassette(
        self, path: str | os.PathLike[str], *, models: Sequence[str] | None = None
    ) -> int:
        """Write recorded replies (all, or those of ``models``) to a JSON file; returns how many."""
        return self.db.export(path, models=models)

    def import_cassette(self, path: str | os.PathLike[str]) -> int:
        """Load a cassette's replies into the workspace's cache; returns how many."""
        keys = self.db.import_(path)
        return len(keys)

    def use_cassette(self, path: str | os.PathLike[str], mode: str = "auto") -> int:
        """Tie this notebook to a cassette file beside it: load it if it exists, set
        ``mode``, and from now on write every reply recorded or replayed back to it.

        ::

            ws.llm.use_cassette("report.cassette.json")            # reruns cost nothing
            ws.llm.use_cassette("report.cassette.json", "replay")  # CI: no network at all
        """
        self.mode = mode
        self._cassette = Path(path)
        self._cassette_keys = set(self.db.import_(path)) if self._cassette.exists() else set()
        return len(self._cassette_keys)

    def __repr__(self) -> str:
        return f"<wiz LLM model={self.resolve()} mode={self.mode}>"

    # -- internals: requests -------------------------------------------------------------------

    def _request(
        self,
        prompt: Any,
        model: Any,
        system: str | None,
        tools: Sequence[dict[str, Any]] | None,
        tool_choice: Any,
        response_format: Any,
        job_id: int | None,
        timeout: float | None,
        params: dict[str, Any],
    ) -> _Request:
        name = self.resolve(model)
        messages = to_messages(prompt, system)
        kwargs = {k: v for k, v in params.items() if v is not None}
        material: dict[str, Any] = {"model": name, "messages": messages}
        if tools:
            kwargs["tools"] = material["tools"] = list(tools)
        if tool_choice is not None and tools:
            kwargs["tool_choice"] = tool_choice
        if response_format is not None:
            kwargs["response_format"] = response_format
            material["response_format"] = _format_material(response_format)
        for k in SEMANTIC_PARAMS & kwargs.keys():
            material[k] = kwargs[k]
        if material.get("tool_choice") == "auto":  # the default when tools are given
            del material["tool_choice"]
        if job_id is None:
            ctx = current_job.get()
            job_id = ctx.id if ctx is not None else None
        return _Request(
            model=name,
            messages=messages,
            kwargs=kwargs,
            material=material,
            key=request_hash(material),
            job_id=job_id,
            timeout=timeout if timeout is not None else self.timeout,
        )

    def _kwargs(self, req: _Request, lit: ModuleType, *, stream: bool) -> dict[str, Any]:
        # litellm's retries (and the openai client's) off: ours are visible in llm_calls
        kwargs = {
            "model": req.model,
            "messages": req.messages,
            "timeout": req.timeout,
            "num_retries": 0,
            "max_retries": 0,
            **req.kwargs,
        }
        if stream:
            kwargs["stream"] = True
            if self._supported(lit, req.model, "stream_options"):
                kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    async def _load(self, model: str) -> ModuleType:
        lit = _litellm.loaded()
        if lit is None and inprocess.handles(model):
            # litellm is still being imported (seconds): an offline or scripted model
            # answers in-process, with the same reply (see inprocess.py)
            return inprocess
        if lit is None:  # the first call: import litellm off the loop, which keeps running
            lit = await asyncio.to_thread(_litellm.load)
        return lit

    async def _supports(self, model: str, what: str) -> bool:
        """Whether litellm's model map says ``model`` supports ``what`` (cached)."""
        key = (model, what)
        if key not in self._capabilities:
            lit = await self._load(model)
            check = getattr(lit, f"supports_{what}")
            try:
                self._capabilities[key] = bool(check(model=model))
            except Exception:  # an unknown model supports nothing special
                self._capabilities[key] = False
        return self._capabilities[key]

    def _supported(self, lit: ModuleType, model: str, param: str) -> bool:
        key = (model, f"param:{param}")
        if key not in self._capabilities:
            try:
                supported = lit.get_supported_openai_params(model=model) or []
            except Exception:
                supported = []
            self._capabilities[key] = param in supported or model.startswith("wiz/")
        return self._capabilities[key]

    def _semaphore(self, model: str) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a semaphore belongs to one loop (tests run many)
            self._loop, self._semaphores = loop, {}
        sem = self._semaphores.get(model)
        if sem is None:
            sem = self._semaphores[model] = asyncio.Semaphore(
                self.limits.get(model, self.concurrency)
            )
        return sem

    # -- internals: replay, results, failures --------------------------------------------------

    def _replay(self, req: _Request, *, stream: bool) -> Reply | None:
        if not req.cacheable or self.mode in ("off", "record"):
            return None
        t0 = time.perf_counter()
        stored = self.db.lookup(req.key)
        if stored is None:
            if self.mode == "replay":
                message = (
                    f"replay miss: no recorded reply of {req.model} to {req.describe()!r}; "
                    "record it first (mode 'record' or 'auto') or load the notebook's cassette"
                )
                self._log(req, error="replay miss", stream=stream)
                raise ReplayMiss(message, model=req.model)
            return None
        reply = Reply.from_stored(stored, req.model)
        reply.latency = time.perf_counter() - t0
        reply.call_id = self._log(
            req,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            latency=reply.latency,
            cache_hit=True,
            stream=stream,
        )
        self._keep(req)
        return reply

    def _reply(self, response: Any, req: _Request, lit: ModuleType, latency: float) -> Reply:
        choice = response.choices[0]
        message = choice.message
        usage = getattr(response, "usage", None)
        return Reply(
            text=message.content or "",
            tool_calls=[ToolCall.from_openai(c) for c in message.tool_calls or []],
            model=req.model,
            finish_reason=choice.finish_reason,
            tokens_in=(usage.prompt_tokens or 0) if usage else 0,
            tokens_out=(usage.completion_tokens or 0) if usage else 0,
            cost=self._cost(response, req, lit),
            latency=latency,
        )

    def _cost(self, response: Any, req: _Request, lit: ModuleType) -> float:
        if req.model.startswith("wiz/"):
            return 0.0  # offline models are free
        hidden = getattr(response, "_hidden_params", None) or {}
        if hidden.get("response_cost") is not None:
            return float(hidden["response_cost"])
        if req.model in self._unpriced:
            return 0.0
        try:
            return float(lit.completion_cost(completion_response=response, model=req.model) or 0.0)
        except Exception:  # not in litellm's price map: a local or private model
            self._unpriced.add(req.model)
            return 0.0

    def _done(self, req: _Request, reply: Reply, attempt: int, *, stream: bool) -> None:
        reply.call_id = self._log(
            req,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            cost=reply.cost,
            latency=reply.latency,
            attempt=attempt,
            stream=stream,
        )
        if req.cacheable and self.mode in ("record", "auto"):
            self.db.save(req.key, req.model, req.material, reply.stored())
            self._keep(req)

    def _keep(self, req: _Request) -> None:
        """Write the cassette in use, if any, when it gains an entry."""
        if self._cassette is not None and req.key not in self._cassette_keys:
            self._cassette_keys.add(req.key)
            self.db.export(self._cassette, hashes=self._cassette_keys)

    def _log(self, req: _Request, **fields: Any) -> int:
        return self.db.log(job_id=req.job_id, model=req.model, request_hash=req.key, **fields)

    def _failed(
        self, req: _Request, error: BaseException, attempt: int, latency: float, *, stream: bool
    ) -> float:
        """Log a failed attempt; return the delay before the next, or raise the error to give."""
        exc, retryable, retry_after = self._classify(req, error)
        text = _one_line(exc, [req.kwargs.get("api_key")])
        if retryable and attempt <= self.retries:
            delay = self._delay(attempt, retry_after)
            self._log(
                req,
                latency=latency,
                attempt=attempt,
                stream=stream,
                error=f"{text} (retry {attempt} of {self.retries} in {delay:.3g}s)",
            )
            log.info("%s: %s; retry %d in %.3gs", req.model, text, attempt, delay)
            return delay
        self._log(req, latency=latency, attempt=attempt, stream=stream, error=text)
        log.debug("%s failed: %s", req.model, text)
        if isinstance(exc, LLMError):  # ours: one line, no key, and how hard we tried
            exc.args = (text + (f" (gave up after {attempt} attempts)" if attempt > 1 else ""),)
        raise exc from None

    def _classify(
        self, req: _Request, error: BaseException
    ) -> tuple[BaseException, bool, float | None]:
        """(the exception to give the caller, whether to retry, the server's Retry-After)."""
        model = req.model
        step = _marked(error)
        if step is not None:  # a scripted step's own exception, or an LLMError of ours
            status = getattr(step, "status_code", None)
            return step, _retryable_status(status), _retry_after(step)
        if isinstance(error, asyncio.TimeoutError):
            return (
                LLMError(f"{model}: no reply within {req.timeout:g}s", model=model, status=408),
                True,
                None,
            )
        inner = getattr(error, "original_exception", None) or error  # a stream's wrapper
        status = getattr(inner, "status_code", None)
        message = _message(inner, [req.kwargs.get("api_key")])
        lit = _litellm.loaded()
        if lit is not None and isinstance(inner, lit.Timeout):
            return (
                LLMError(f"{model}: no reply within {req.timeout:g}s", model=model, status=408),
                True,
                None,
            )
        if status in (401, 403):
            return (
                LLMAuthError(
                    f"{model}: {message} ({status}); {_key_hint(model)}", model=model, status=status
                ),
                False,
                None,
            )
        if (
            lit is not None
            and isinstance(inner, lit.BadRequestError)
            and "Provider NOT provided" in str(inner)
        ):
            return (
                ModelNotFound(
                    f"unknown model {model!r}: name it as provider/model, e.g. "
                    "'openai/gpt-4o-mini', or use 'wiz/offline'",
                    model=model,
                    status=400,
                ),
                False,
                None,
            )
        if status == 404:
            return (
                ModelNotFound(
                    f"{model}: not found at the provider (404): {message}", model=model, status=404
                ),
                False,
                None,
            )
        retryable = _retryable_status(status) or (
            lit is not None and isinstance(inner, lit.APIConnectionError)
        )
        label = f" ({status})" if status else ""
        return (
            LLMError(f"{model}: {message}{label}", model=model, status=status),
            retryable,
            _retry_after(inner),
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        base = self.backoff * 2 ** (attempt - 1)
        return min(base * random.uniform(0.5, 1.0), self.max_backoff)  # jitter: no thundering herd

    # -- internals: streams --------------------------------------------------------------------

    async def _stream(self, req: _Request, out: Stream) -> AsyncIterator[str]:
        hit = self._replay(req, stream=True)
        if hit is not None:
            for piece in chunk_text(hit.text):
                yield piece
            out.reply = hit
            return
        lit = await self._load(req.model)
        kwargs = self._kwargs(req, lit, stream=True)
        attempt = 0
        while True:
            attempt += 1
            sem = self._semaphore(req.model)
            await sem.acquire()
            t0 = time.perf_counter()
            try:
                chunks, rest = await asyncio.wait_for(_open(lit, kwargs), req.timeout)
            except BaseException as e:
                sem.release()
                if not isinstance(e, Exception):  # cancelled: the slot is free, nothing to log
                    raise
                delay = self._failed(req, e, attempt, time.perf_counter() - t0, stream=True)
                await asyncio.sleep(delay)
                continue
            break
        state = "open"
        held = True
        try:
            for chunk in chunks:
                piece = _piece(chunk)
                if piece:
                    yield piece
            if rest is not None:
                async for chunk in rest:
                    chunks.append(chunk)
                    if held and chunk.choices and chunk.choices[0].finish_reason:
                        # the provider has answered: what is left is litellm's own
                        # bookkeeping (usage, cost), no reason to keep a call waiting
                        sem.release()
                        held = False
                    piece = _piece(chunk)
                    if piece:
                        yield piece
            state = "done"
        except Exception as e:
            state = "failed"
            exc, _, _ = self._classify(req, e)
            text = _one_line(exc, [req.kwargs.get("api_key")])
            latency = time.perf_counter() - t0
            self._log(req, latency=latency, attempt=attempt, stream=True, error=text)
            if isinstance(exc, LLMError):
                exc.args = (f"{text} (in the middle of the stream)",)
            raise exc from None
        finally:
            if held:
                sem.release()
            if state == "open":  # the caller stopped reading: the attempt is metered all the same
                latency = time.perf_counter() - t0
                error = "stream closed by the caller before the end"
                self._log(req, latency=latency, attempt=attempt, stream=True, error=error)
        reply = self._reply_from_chunks(chunks, req, lit, time.perf_counter() - t0)
        self._done(req, reply, attempt, stream=True)
        out.reply = reply

    def _reply_from_chunks(
        self, chunks: list[Any], req: _Request, lit: ModuleType, latency: float
    ) -> Reply:
        """The whole reply of a stream, from its chunks.

        litellm's stream wrapper has already assembled the reply once: its last
        chunk carries the final usage and, in its hidden params, the cost. So
        only text and tool-call deltas are joined here; a second
        ``stream_chunk_builder`` pass cost more than the rest of the layer.
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


# -- helpers ---------------------------------------------------------------------------------------


async def _open(
    lit: ModuleType, kwargs: dict[str, Any]
) -> tuple[list[Any], AsyncIterator[Any] | None]:
    """Start a stream and read its first chunk, so that a failure to start is retried."""
    response = await lit.acompletion(**kwargs)
    chunks = response.__aiter__()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        return [], None
    return [first], chunks


def _piece(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None)
    if not choices:
        return ""
    delta = choices[0].delta
    return (getattr(delta, "content", None) or "") if delta is not None else ""


def _marked(error: BaseException) -> BaseException | None:
    """The exception our provider raised (a scripted step's, or an LLMError), if litellm
    wrapped one: it keeps it as the context or ``original_exception`` of its own."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if getattr(e, STEP_MARK, False):
            return e
        stack.extend([getattr(e, "original_exception", None), e.__cause__, e.__context__])
    return None


def _retryable_status(status: Any) -> bool:
    return isinstance(status, int) and (status in (408, 409, 429) or 500 <= status < 600)


def _retry_after(error: BaseException) -> float | None:
    """The server's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), if any."""
    headers = getattr(error, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(error, "response", None), "headers", None)
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when is not None else None


_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*|\w+Error:\s*|\w+Exception\s*-\s*)+")


def _message(error: BaseException, keys: Iterable[str | None] = ()) -> str:
    """A provider error's own words, without litellm's class-name prefixes, keys redacted."""
    text = _one_line(error, keys)
    return _LITELLM_PREFIX.sub("", text) or type(error).__name__


def _one_line(error: BaseException, keys: Iterable[str | None] = ()) -> str:
    """The error's first line, keys redacted, at most 300 characters: redacted before the cut,
    so no key is cut into a piece the redaction would have to guess at."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = redact(lines[0] if lines else type(error).__name__, keys)
    return text if len(text) <= 300 else text[:297] + "..."


def _key_hint(model: str) -> str:
    lit = _litellm.loaded()
    missing: list[str] = []
    if lit is not None:
        try:
            missing = list(lit.validate_environment(model=model).get("missing_keys") or [])
        except Exception:
            missing = []
    where = f"in the environment or in {keys_file()}"
    if missing:
        return f"set {', '.join(missing)} {where}"
    return f"check the provider's API key {where}"


def _format_material(response_format: Any) -> Any:
    """What identifies a ``response_format`` in a request's hash (a pydantic class by its schema)."""
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return {
            "type": "json_schema",
            "name": response_format.__name__,
            "schema": response_format.model_json_schema(),
        }
    return response_format


def _ask_for_json(messages: list[dict[str, Any]], schema: type[BaseModel]) -> list[dict[str, Any]]:
    """``messages`` with a request for JSON matching ``schema`` added to the last user turn."""
    instruction = (
        "Reply with only a JSON object, no prose and no code fences, that matches this "
        f"JSON schema:\n{json.dumps(schema.model_json_schema())}"
    )
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                m["content"] = [*content, {"type": "text", "text": instruction}]
            else:
                m["content"] = f"{content or ''}\n\n{instruction}"
            return out
    out.append({"role": "user", "content": instruction})
    return out


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _parse(text: str, schema: type[M]) -> M:
    """Validate a reply as ``schema``, forgiving code fences and prose around the JSON."""
    fenced = _FENCE.search(text)
    candidate = fenced.group(1) if fenced else text
    start, end = candidate.find("{"), candidate.rfind("}")
    if start != -1 and end > start:
        candidate = candidate[start : end + 1]
    return schema.model_validate_json(candidate)


def _short(error: Exception) -> str:
    """A validation error in one line: pydantic's first lines, joined."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = "; ".join(lines[:4])
    return text if len(text) <= 400 else text[:397] + "..."
