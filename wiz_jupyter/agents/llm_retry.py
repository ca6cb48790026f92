"""Retries of model calls: which failures are worth another attempt, how long to wait,
and the one loop that makes the attempts, for plain calls and streams alike.

A failure becomes one of our errors (:class:`~wiz_jupyter.errors.LLMError` and its
subclasses) with a one-line message that never holds an API key. Rate limits,
server errors, timeouts and dropped connections are retried after
``backoff * 2**n`` seconds with jitter, or the server's ``Retry-After``; every
attempt, failed or not, is a row of ``llm_calls``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..errors import LLMAuthError, LLMError, ModelNotFound
from . import _litellm
from .keys import keys_file, redact
from .llm_openai import PROVIDERS, BadReply
from .llm_request import Request
from .scripted import STEP_MARK

log = logging.getLogger("wiz_jupyter.llm")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a retryable failure is retried, and how long to wait in between."""

    retries: int
    backoff: float
    max_backoff: float

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed ``attempt``: the server's word, else exponential."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        base = self.backoff * 2 ** (attempt - 1)
        return min(base * random.uniform(0.5, 1.0), self.max_backoff)  # jitter: no thundering herd


class Limiter(Protocol):
    """The models' shared rate limits (``llm_rate.ModelRates``), as the retry loop uses them."""

    async def admit(self, req: Request) -> int | None: ...
    def failed(self, req: Request, error: BaseException, longest: float) -> None: ...


@dataclass
class Attempt(Generic[T]):
    """The attempt that succeeded: its result, its number, and the model's slot it holds."""

    result: T
    number: int
    started: float  # time.perf_counter() when the attempt began
    latency: float  # seconds until ``result`` was in
    slot: asyncio.Semaphore  # still held: the caller releases it when the call is done
    ticket: int | None = None  # the model's rate-limit take (settled with the usage), if any


async def with_retries(
    req: Request,
    start: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    slot: Callable[[str], asyncio.Semaphore],
    record: Callable[..., int],
    stream: bool,
    limiter: Limiter | None = None,
) -> Attempt[T]:
    """Await ``start()`` within ``req.timeout``, holding a slot of ``req.model``, until it
    succeeds or fails for good (then the error to give is raised).

    ``slot(model)`` gives the model's semaphore, asked anew for each attempt so that a
    changed concurrency bound applies to the next one; ``record(req, **fields)`` writes
    an attempt's row of ``llm_calls``. The slot is free while waiting to retry, and
    still held when this returns: a stream keeps it while the provider writes.
    ``limiter``: each attempt first waits for room in the model's rate limits, slot
    held (so the take's time is the send's), and a 429's ``Retry-After`` is told to it.
    """
    number = 0
    while True:
        number += 1
        sem = slot(req.model)
        await sem.acquire()
        ticket = None
        t0 = time.perf_counter()
        try:
            if limiter is not None:
                ticket = await limiter.admit(req)
                t0 = time.perf_counter()
            result = await asyncio.wait_for(start(), req.timeout)
        except BaseException as e:
            sem.release()
            if not isinstance(e, Exception):  # cancelled: the slot is free, nothing to log
                raise
            if limiter is not None:
                limiter.failed(req, e, policy.max_backoff)
            latency = time.perf_counter() - t0
            delay = _failed(req, e, number, latency, policy=policy, record=record, stream=stream)
            await asyncio.sleep(delay)
            continue
        return Attempt(result, number, t0, time.perf_counter() - t0, sem, ticket)


def _failed(
    req: Request,
    error: BaseException,
    attempt: int,
    latency: float,
    *,
    policy: RetryPolicy,
    record: Callable[..., int],
    stream: bool,
) -> float:
    """Log a failed attempt; return the delay before the next, or raise the error to give."""
    exc, retryable, retry_after = classify(req, error)
    text = one_line(exc, [req.api_key])
    if retryable and attempt <= policy.retries:
        delay = policy.delay(attempt, retry_after)
        record(
            req,
            latency=latency,
            attempt=attempt,
            stream=stream,
            error=f"{text} (retry {attempt} of {policy.retries} in {delay:.3g}s)",
        )
        log.info("%s: %s; retry %d in %.3gs", req.model, text, attempt, delay)
        return delay
    record(req, latency=latency, attempt=attempt, stream=stream, error=text)
    log.debug("%s failed: %s", req.model, text)
    if isinstance(exc, LLMError):  # ours: one line, no key, and how hard we tried
        exc.args = (text + (f" (gave up after {attempt} attempts)" if attempt > 1 else ""),)
    raise exc from None


def classify(req: Request, error: BaseException) -> tuple[BaseException, bool, float | None]:
    """(the exception to give the caller, whether to retry, the server's Retry-After)."""
    model = req.model
    step = _marked(error)
    if step is not None:  # a scripted step's own exception, or an LLMError of ours
        status = getattr(step, "status_code", None)
        return step, _retryable_status(status), retry_after(step)
    if isinstance(error, asyncio.TimeoutError):
        return _timed_out(req), True, None
    inner = getattr(error, "original_exception", None) or error  # a stream's wrapper
    status = getattr(inner, "status_code", None)
    message = _message(inner, [req.api_key])
    lit = _litellm.loaded()
    if lit is not None and isinstance(inner, lit.Timeout):
        return _timed_out(req), True, None
    sdk = sys.modules.get("openai")  # the direct path's errors (llm_openai.py)
    if sdk is not None and isinstance(inner, sdk.APIConnectionError) and status is None:
        refused = _cause(inner, OSError)
        if isinstance(inner, sdk.APITimeoutError) and refused is None:
            return _timed_out(req), True, None
        text = f"{model}: cannot reach the endpoint: {one_line(refused or inner, [req.api_key])}"
        return LLMError(text, model=model), True, None
    if isinstance(inner, (json.JSONDecodeError, BadReply)):  # garbled: worth another try
        return LLMError(f"{model}: {message}", model=model), True, None
    if status in (401, 403):
        text = f"{model}: {message} ({status}); {_key_hint(model)}"
        return LLMAuthError(text, model=model, status=status), False, None
    if (
        lit is not None
        and isinstance(inner, lit.BadRequestError)
        and "Provider NOT provided" in str(inner)
    ):
        text = (
            f"unknown model {model!r}: name it as provider/model, e.g. "
            "'openai/gpt-4o-mini', or use 'wiz/offline'"
        )
        return ModelNotFound(text, model=model, status=400), False, None
    if status == 404:
        text = f"{model}: not found at the provider (404): {message}"
        return ModelNotFound(text, model=model, status=404), False, None
    retryable = _retryable_status(status) or (
        lit is not None and isinstance(inner, lit.APIConnectionError)
    )
    label = f" ({status})" if status else ""
    return (
        LLMError(f"{model}: {message}{label}", model=model, status=status),
        retryable,
        retry_after(inner),
    )


def _timed_out(req: Request) -> LLMError:
    return LLMError(f"{req.model}: no reply within {req.timeout:g}s", model=req.model, status=408)


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


def retry_after(error: BaseException) -> float | None:
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


def _cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` among ``error``'s causes (the SDK's transport maps a
    refused connection to a timeout; the refusal is kept as a cause)."""
    seen: set[int] = set()
    e: BaseException | None = error.__cause__ or error.__context__
    while e is not None and id(e) not in seen:
        if isinstance(e, kind) and not isinstance(e, TimeoutError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _message(error: BaseException, keys: Iterable[str | None] = ()) -> str:
    """A provider error's own words, without litellm's class-name prefixes, keys redacted."""
    body = getattr(error, "body", None)
    if type(error).__module__.startswith("openai") and isinstance(body, dict):
        said = body.get("message")  # the SDK's own error: "Error code: 500 - {...}" otherwise
        if isinstance(said, str) and said.strip():
            return one_line(Exception(said), keys)
    text = one_line(error, keys)
    return _LITELLM_PREFIX.sub("", text) or type(error).__name__


def one_line(error: BaseException, keys: Iterable[str | None] = ()) -> str:
    """The error's first line, keys redacted, at most 300 characters: redacted before the cut,
    so no key is cut into a piece the redaction would have to guess at."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = redact(lines[0] if lines else type(error).__name__, keys)
    return text if len(text) <= 300 else text[:297] + "..."


def _key_hint(model: str) -> str:
    lit = _litellm.loaded()
    missing: list[str] = []
    provider = model.partition("/")[0]
    if provider in PROVIDERS and PROVIDERS[provider][1] is None:  # the direct path's own
        env = PROVIDERS[provider][0]
        missing = [] if os.environ.get(env) else [env]
    elif lit is not None:
        try:
            missing = list(lit.validate_environment(model=model).get("missing_keys") or [])
        except Exception:
            missing = []
    where = f"in the environment or in {keys_file()}"
    if missing:
        return f"set {', '.join(missing)} {where}"
    return f"check the provider's API key {where}"
