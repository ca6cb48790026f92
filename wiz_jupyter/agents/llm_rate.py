"""Per-model rate limits, shared by every process on the workspace file.

``ws.llm.set_rate(model, requests=(500, 60), tokens=(30_000, 60))`` is kept in the
database (the ``rate_limits`` row ``llm:<model>``), so a ``wiz worker`` follows the
limit a notebook set. Every attempt of a call to the model (an agent's turns go
through ``ws.llm`` too) takes one request and the prompt's estimated tokens from
the model's sliding window (``jobs/rates.py``) right before it is sent, with the
model's concurrency slot held; once the reply is in, the take's tokens become the
reply's real usage (prompt and completion). With no room, the call waits on the
event loop (``asyncio.sleep``, never blocking it) until the window has room, and
tries again.

Waiting in the call, not parking the job as ``delayed``: a model call happens in the
middle of an agent's step, whose state lives in the coroutine; the wait is at most
the window (a minute for per-minute limits), the job keeps its lease and its slot
meanwhile, and its ``timeout``, if it has one, counts the wait.

A 429 with ``Retry-After`` blocks the model until then for every call of every
process on the file (``rate_limits.blocked_until``), limits set or not: the other
jobs wait instead of drawing more 429s. A model with neither limits nor a block
costs one primary-key read per call.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ..errors import StoreError, WorkspaceBusy
from ..jobs import rates
from ..jobs.store import Store
from . import _litellm
from .llm_request import Request
from .llm_retry import classify

KEY = "llm:"
#: how long a call waits before trying again when another process holds the write lock
BUSY_PAUSE = 0.05
#: this process's writes of models' limits and blocks (other processes': PRAGMA data_version)
_writes = [0]


def estimate_tokens(req: Request) -> int:
    """The prompt's tokens, as litellm counts them for the model (a cheap count of four
    characters a token when litellm is not loaded yet or does not know the model)."""
    lit = _litellm.loaded()
    if lit is not None:
        try:
            return int(lit.token_counter(model=req.model, messages=req.messages))
        except Exception:  # an unknown tokenizer, a message shape it does not count
            pass
    return max(1, len(json.dumps(req.messages, default=str)) // 4)


class ModelRates:
    """The models' limits and windows in one workspace database (``ws.llm`` uses it)."""

    def __init__(self, store: Store):
        self.store = store
        # model key -> settings_version-like stamp when it had no row (no limits, no block):
        # the common case, answered without a read until this process or another writes
        self._unlimited: dict[str, tuple[int, int]] = {}

    def set(self, model: str, requests: Any = None, tokens: Any = None) -> None:
        """Set (or with neither, clear) ``model``'s limits for every process on the file."""
        r = rates.parse(requests, "requests")
        t = rates.parse(tokens, "tokens")
        spec = None
        if r is not None or t is not None:
            spec = json.dumps({"requests": r and list(r), "tokens": t and list(t)})
        _writes[0] += 1
        with self.store.write() as c:
            rates.set_limits(c, KEY + model, spec)

    def get(self, model: str) -> dict[str, Any]:
        """``{"requests": (500, 60.0) | None, "tokens": ... | None, "blocked_until": float | None}``."""
        rows = self.store.read(
            "SELECT spec, blocked_until FROM rate_limits WHERE key = ?", (KEY + model,)
        )
        spec = _limits(rows[0][0] if rows else None)
        blocked = rows[0][1] if rows else None
        return {
            "requests": spec[0],
            "tokens": spec[1],
            "blocked_until": blocked if blocked and blocked > time.time() else None,
        }

    async def admit(self, req: Request) -> int | None:
        """Wait until ``req.model``'s window has room for this call, and take it; the take's
        id (for :meth:`settle`), or None when the model has no limits."""
        estimate: int | None = None
        while True:
            try:
                wait, ticket, wants = self._try(req, estimate)
            except WorkspaceBusy:  # another process writes: the loop goes on meanwhile
                wait, ticket, wants = BUSY_PAUSE, None, False
            if wants and estimate is None:
                estimate = estimate_tokens(req)
                continue
            if wait <= 0:
                return ticket
            await asyncio.sleep(wait)

    def _try(self, req: Request, estimate: int | None) -> tuple[float, int | None, bool]:
        """(seconds to wait, the take's id, whether a token estimate is needed first)."""
        key, now = KEY + req.model, time.time()
        seen = (_writes[0], self.store.version()[1])
        if self._unlimited.get(key) == seen:  # nothing changed since the model had no row
            return 0.0, None, False
        rows = self.store.read(  # no lock: the usual answer is "no limits"
            "SELECT spec, blocked_until FROM rate_limits WHERE key = ?", (key,)
        )
        if not rows:
            self._unlimited[key] = seen
            return 0.0, None, False
        if rows[0][0] is None:
            return (rows[0][1] or 0.0) - now, None, False
        if estimate is None and _limits(rows[0][0])[1] is not None:
            return 0.0, None, True  # count the prompt before taking the lock
        with self.store.write() as c:
            now = time.time()
            spec, blocked = rates.limits(c, key)
            requests, tokens = _limits(spec)
            if spec is None or blocked > now:
                return blocked - now, None, False
            if tokens is not None and estimate is None:
                return 0.0, None, True
            need = min(estimate or 0, tokens.limit) if tokens else 0
            longest = max(r.per for r in (requests, tokens) if r is not None)
            entries = rates.window(c, key, now, longest)
            when = now
            if requests is not None:
                when = max(when, rates.opens(entries, requests, now))
            if tokens is not None:
                when = max(when, rates.opens(entries, tokens, now, need, tokens=True))
            if when > now:
                return when - now, None, False
            return 0.0, rates.take(c, key, now, 1, need, longest=longest), False

    def settle(self, ticket: int | None, tokens: int) -> None:
        """The take ``ticket`` used ``tokens`` in the end (prompt and completion)."""
        if ticket is None:
            return
        try:
            with self.store.write() as c:
                rates.settle(c, ticket, tokens)
        except StoreError:  # the call succeeded: keep its reply; the estimate stays counted
            pass

    def failed(self, req: Request, error: BaseException, longest: float) -> None:
        """A 429 with ``Retry-After`` holds every call of the model, in every process, for
        that long (at most ``longest`` seconds: the longest the call itself would wait)."""
        exc, _, after = classify(req, error)
        status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
        if status != 429 or not after or after <= 0:
            return
        _writes[0] += 1
        try:
            with self.store.write() as c:
                rates.block(c, KEY + req.model, time.time() + min(after, longest))
        except StoreError:  # the retry still waits for it here; others may not hear of it
            pass


def _limits(spec: str | None) -> tuple[rates.Rate | None, rates.Rate | None]:
    if not spec:
        return None, None
    d = json.loads(spec)
    return (
        rates.Rate(*d["requests"]) if d.get("requests") else None,
        rates.Rate(*d["tokens"]) if d.get("tokens") else None,
    )
