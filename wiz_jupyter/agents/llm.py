"""The LLM layer: every model call of a workspace goes through one :class:`LLM` object.

It puts litellm, the openai SDK for OpenAI-compatible endpoints (``llm_openai.py``)
and the in-process ``wiz/`` models behind a small async interface (text, streams,
tool calls, structured output), picks the model, retries what is worth retrying, bounds
concurrency per model, meters each call into ``llm_calls`` and records or
replays replies (``llm_cache``, cassette files). litellm itself is imported on
the first call that needs it, never by importing this module.

This module is the client: the :class:`LLM` object, how a call is resolved,
metered and replayed. Beside it: ``llm_request.py`` (a call, resolved),
``llm_retry.py`` (errors and retries), ``llm_stream.py`` (streamed replies),
``llm_structured.py`` (pydantic output), ``llm_store.py`` (the tables),
``llm_openai.py`` (the direct path), ``llm_prices.py`` (litellm's price table).

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
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from .. import telemetry
from ..errors import LLMError, ReplayMiss
from . import _litellm, inprocess, llm_openai
from .budgets import Budgets
from .llm_rate import ModelRates
from .llm_request import Request, build_request, check_api_base
from .llm_retry import Attempt, RetryPolicy, classify, one_line, with_retries
from .llm_retry import retry_after as _retry_after  # noqa: F401 - tests read it here
from .llm_store import LLMStore, Usage
from .llm_stream import Stream, finished, open_stream, piece, reply_from_chunks
from .llm_structured import structured
from .messages import Reply, ToolCall, chunk_text, to_messages
from .scripted import ScriptedModel

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..jobs.store import Store

    M = TypeVar("M", bound=BaseModel)

T = TypeVar("T")

__all__ = ["DEFAULT_MODEL", "LLM", "MODES", "Reply", "Stream", "ToolCall", "Usage"]

DEFAULT_MODEL = "wiz/offline"
#: off: always call, keep nothing; record: always call, keep the reply;
#: replay: only stored replies (a miss is an error); auto: stored reply if any, else call and keep.
MODES = ("off", "record", "replay", "auto")
MODEL_SETTING = "llm.model"
#: ``{model: api_base}``: where each model is served (a local server, a proxy)
API_BASES_SETTING = "llm.api_bases"


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
        self.rates = ModelRates(store)
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
        self._bases: tuple[Any, dict[str, str]] | None = None
        self.budgets = Budgets(self.db)
        #: OpenAI-compatible endpoints through the openai SDK itself (llm_openai.py);
        #: False sends every call through litellm
        self.direct = os.environ.get("WIZ_LLM_DIRECT", "1") != "0"

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

    def set_default_model(
        self, model: str | ScriptedModel | None, *, api_base: str | None = None
    ) -> None:
        """Set (or with None, clear) the workspace's model, kept in its database;
        ``api_base``: where it is served (see :meth:`set_api_base`).

        ::

            ws.llm.set_default_model("anthropic/claude-sonnet-4-5")
            ws.llm.set_default_model("ollama_chat/llama3.2", api_base="http://localhost:11434")
        """
        name = model.name if isinstance(model, ScriptedModel) else model
        if api_base is not None and name is not None:
            self.set_api_base(name, api_base)
        self.db.set_setting(MODEL_SETTING, name)

    @property
    def api_bases(self) -> dict[str, str]:
        """``{model: url}``: the endpoints set with :meth:`set_api_base` (every process)."""
        seen = self.db.settings_version()
        if self._bases is None or self._bases[0] != seen:
            self._bases = (seen, self.db.setting(API_BASES_SETTING) or {})
        return dict(self._bases[1])

    def set_api_base(self, model: str, url: str | None) -> None:
        """Send every call to ``model`` to ``url`` (an OpenAI-compatible or provider
        endpoint: Ollama, vLLM, llama.cpp's server, LM Studio, a proxy), unless the call
        or the agent's settings give their own ``api_base``; None removes it. Kept in the
        database, so other processes on the file use it too.

        ::

            ws.llm.set_api_base("openai/qwen2.5-7b-instruct", "http://127.0.0.1:8000/v1")
        """
        bases = self.api_bases
        if url is None:
            bases.pop(model, None)
        else:
            bases[model] = check_api_base(url)
        self.db.set_setting(API_BASES_SETTING, bases or None)

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

    def set_rate(
        self,
        model: str | ScriptedModel,
        requests: tuple[int, float] | None = None,
        tokens: tuple[int, float] | None = None,
    ) -> None:
        """Limit calls to ``model`` for every process on the workspace file: at most
        ``requests=(n, seconds)`` calls and ``tokens=(n, seconds)`` tokens (prompt and
        completion) in any window of that many seconds. A call over the limit waits (on
        the loop, never blocking it) until the window has room. Neither: no limits.
        A bad rate is a one-line :class:`~wiz_jupyter.errors.InvalidRate`.

        ::

            ws.llm.set_rate("openai/gpt-4o-mini", requests=(500, 60), tokens=(30_000, 60))
        """
        self.rates.set(self.resolve(model), requests, tokens)

    def rate(self, model: str | ScriptedModel | None = None) -> dict[str, Any]:
        """``model``'s limits, and until when a provider's 429 holds its calls (or None).

        ::

            ws.llm.rate("openai/gpt-4o-mini")
            # {"requests": Rate(limit=500, per=60.0), "tokens": None, "blocked_until": None}
        """
        return self.rates.get(self.resolve(model))

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
        lit = await self._load(req)
        capped = self._within_budget(req, lit)
        kwargs = self._kwargs(req, lit, stream=False)
        done = await self._with_retries(req, lambda: lit.acompletion(**kwargs), stream=False)
        done.slot.release()
        reply = self._reply(done.result, req, lit, done.latency)
        self.rates.settle(done.ticket, reply.tokens_in + reply.tokens_out)
        self._done(req, reply, done.number, stream=False)
        if capped:
            self.budgets.after(req.job_id)
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
        native = await self._supports(name, "response_schema")
        return await structured(self.chat, name, messages, schema, native=native, **kwargs)

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
    ) -> Request:
        name = self.resolve(model)
        if "api_base" not in params:
            base = self.api_bases.get(name)
            if base is not None:
                params = {**params, "api_base": base}
        return build_request(
            name,
            prompt,
            system=system,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            job_id=job_id,
            timeout=timeout if timeout is not None else self.timeout,
            params=params,
        )

    def _kwargs(self, req: Request, lit: ModuleType, *, stream: bool) -> dict[str, Any]:
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

    def _within_budget(self, req: Request, lit: ModuleType) -> bool:
        """Raise :class:`~wiz_jupyter.errors.BudgetExceeded` if this call would pass a
        budget (agents/budgets.py); True when budgets apply, to check them again after."""
        caps = self.budgets.caps(req.job_id)
        if not caps:
            return False
        try:
            tokens = int(lit.token_counter(model=req.model, messages=req.messages))
        except Exception:  # a model litellm cannot count for: its words, roughly
            tokens = sum(len(str(m.get("content") or "").split()) for m in req.messages)
        tokens += int(req.kwargs.get("max_tokens") or 0)
        try:
            prices = lit.cost_per_token(
                model=req.model,
                prompt_tokens=tokens - int(req.kwargs.get("max_tokens") or 0),
                completion_tokens=int(req.kwargs.get("max_tokens") or 0),
            )
            cost = float(sum(prices))
        except Exception:  # not in litellm's price table: priced after the call
            cost = 0.0
        self.budgets.check(caps, (cost, tokens))
        return True

    def set_budget(self, cost: float | None = None, tokens: int | None = None,
                   per: str | None = "month") -> None:  # fmt: skip
        """Cap the workspace's model spend (dollars, by litellm's price table) and tokens
        (in and out) ``per`` hour, day, week, month or, with None, all time; no limits
        clears it. Every process on the file keeps to it. See :mod:`.budgets`.

        ::

            ws.llm.set_budget(cost=20.0, per="month")
        """
        self.budgets.set_workspace(cost, tokens, per)

    async def _load(self, req: Request | str) -> Any:
        """What answers the call: the direct OpenAI path (llm_openai.py), litellm, or
        while litellm is still being imported, the in-process offline models."""
        model = req if isinstance(req, str) else req.model
        if self.direct and not isinstance(req, str) and llm_openai.eligible(model, req.kwargs):
            direct = llm_openai.loaded() or await asyncio.to_thread(llm_openai.load)
            if direct.handles(model):
                return direct
        lit = _litellm.loaded()
        if inprocess.handles(model) and (
            lit is None or (self.direct and not llm_openai.callbacks())
        ):
            # an offline or scripted model answers in-process, with the same reply (see
            # inprocess.py): while litellm is still being imported (seconds), and whenever
            # the direct path is on: through litellm, such a call cost 4 ms, and left a
            # success-logging task of litellm's (about 1 ms) running after it
            return inprocess
        if lit is None:  # the first call: import litellm off the loop, which keeps running
            lit = await asyncio.to_thread(_litellm.load)
        return lit

    async def _supports(self, model: str, what: str) -> bool:
        """Whether litellm's model map says ``model`` supports ``what`` (cached)."""
        key = (model, what)
        if key not in self._capabilities:
            if self.direct and model.partition("/")[0] in llm_openai.PROVIDERS:
                # the same table litellm reads, without waiting seconds for litellm
                lit = llm_openai.loaded() or await asyncio.to_thread(llm_openai.load)
            else:
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

    # -- internals: replay, results, metering --------------------------------------------------

    def _replay(self, req: Request, *, stream: bool) -> Reply | None:
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

    def _reply(self, response: Any, req: Request, lit: ModuleType, latency: float) -> Reply:
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

    def _cost(self, response: Any, req: Request, lit: ModuleType) -> float:
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

    def _done(self, req: Request, reply: Reply, attempt: int, *, stream: bool) -> None:
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

    def _keep(self, req: Request) -> None:
        """Write the cassette in use, if any, when it gains an entry."""
        if self._cassette is not None and req.key not in self._cassette_keys:
            self._cassette_keys.add(req.key)
            self.db.export(self._cassette, hashes=self._cassette_keys)

    def _log(self, req: Request, **fields: Any) -> int:
        """Every model call (each attempt, each replay hit) passes here: its row of
        ``llm_calls``, and its span when OpenTelemetry is installed."""
        telemetry.llm_call(req.model, job_id=req.job_id, **fields)
        return self.db.log(job_id=req.job_id, model=req.model, request_hash=req.key, **fields)

    async def _with_retries(
        self, req: Request, start: Callable[[], Awaitable[T]], *, stream: bool
    ) -> Attempt[T]:
        """:func:`~.llm_retry.with_retries` with this object's retry settings, read now
        (they are plain attributes, changed freely between calls)."""
        policy = RetryPolicy(self.retries, self.backoff, self.max_backoff)
        return await with_retries(
            req, start, policy=policy, slot=self._semaphore, record=self._log, stream=stream,
            limiter=self.rates,
        )  # fmt: skip

    # -- internals: streams --------------------------------------------------------------------

    async def _stream(self, req: Request, out: Stream) -> AsyncIterator[str]:
        hit = self._replay(req, stream=True)
        if hit is not None:
            for text in chunk_text(hit.text):
                yield text
            out.reply = hit
            return
        lit = await self._load(req)
        capped = self._within_budget(req, lit)
        kwargs = self._kwargs(req, lit, stream=True)
        done = await self._with_retries(req, lambda: open_stream(lit, kwargs), stream=True)
        (chunks, rest), attempt, t0, sem = done.result, done.number, done.started, done.slot
        state = "open"
        held = True
        try:
            for chunk in chunks:
                text = piece(chunk)
                if text:
                    yield text
            if rest is not None:
                async for chunk in rest:
                    chunks.append(chunk)
                    if held and finished(chunk):
                        # the provider has answered: what is left is litellm's own
                        # bookkeeping (usage, cost), no reason to keep a call waiting
                        sem.release()
                        held = False
                    text = piece(chunk)
                    if text:
                        yield text
            state = "done"
        except Exception as e:
            state = "failed"
            exc, _, _ = classify(req, e)
            message = one_line(exc, [req.api_key])
            latency = time.perf_counter() - t0
            self._log(req, latency=latency, attempt=attempt, stream=True, error=message)
            if isinstance(exc, LLMError):
                exc.args = (f"{message} (in the middle of the stream)",)
            raise exc from None
        finally:
            if held:
                sem.release()
            if state != "done" and hasattr(rest, "aclose"):  # its connection goes back now
                with contextlib.suppress(Exception):
                    await rest.aclose()
            if state == "open":  # the caller stopped reading: the attempt is metered all the same
                latency = time.perf_counter() - t0
                error = "stream closed by the caller before the end"
                self._log(req, latency=latency, attempt=attempt, stream=True, error=error)
        reply = reply_from_chunks(
            chunks, req, time.perf_counter() - t0,
            price=lambda usage: self._cost(SimpleNamespace(usage=usage), req, lit),
        )  # fmt: skip
        self.rates.settle(done.ticket, reply.tokens_in + reply.tokens_out)
        self._done(req, reply, attempt, stream=True)
        if capped:
            self.budgets.after(req.job_id)
        out.reply = reply
