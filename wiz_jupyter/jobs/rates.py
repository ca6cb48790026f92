"""Rate limits shared by every process on the workspace file: a sliding window per key.

A rate ``(limit, per)`` means at most ``limit`` in any ``per`` seconds, exactly: not
a token bucket, which lets a full bucket and then its refill through within one
window (twice the limit). Each key (``task:fetch``, ``llm:openai/gpt-4o``) keeps a
log of what was taken in ``rate_log``: one row per take, with its time, how many
starts or requests (``n``) and how many tokens. A take reads the key's window and
writes its row in the write transaction that acts on it (the claim that starts the
jobs), so two processes never both see the same room. ``rate_limits`` holds what a
key shares beyond its log: a model's limits (``ws.llm.set_rate``) and a time before
which nothing is taken (a provider's ``Retry-After``).

The window is read as "rows with ``at > now - per``". A process's ``now`` may be a
little older than rows another process has written meanwhile (it took the time
before waiting for the lock): those rows count too, which only makes the limit
stricter, and rows are deleted only :data:`KEEP` seconds after they left every
window, so none is missing when such a process reads.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..errors import InvalidRate

#: seconds a log row is kept after it left its window (see the module doc)
KEEP = 60.0
#: added to a reopening time: the window test ``at > now - per`` is then false for sure
EPS = 1e-6


class Rate(NamedTuple):
    """At most ``limit`` in any ``per`` seconds."""

    limit: int
    per: float

    def __str__(self) -> str:
        return f"{self.limit} per {self.per:g} s"


def parse(value: Any, what: str = "rate") -> Rate | None:
    """A :class:`Rate` from ``(count, seconds)`` (``None`` stays ``None``); anything else,
    a count below 1, a window that is not a positive finite number, is a one-line
    :class:`~wiz_jupyter.errors.InvalidRate` naming ``what``."""
    if value is None or isinstance(value, Rate):
        return value
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    if ok:
        limit, per = value
        ok = (
            isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1
            and isinstance(per, (int, float)) and not isinstance(per, bool)
            and math.isfinite(per) and per > 0
        )  # fmt: skip
    if not ok:
        raise InvalidRate(
            f"{what} must be (count >= 1, seconds > 0), e.g. {what}=(10, 1.0) for at most "
            f"10 per second, not {value!r:.60}"
        )
    return Rate(int(limit), float(per))


class Entry(NamedTuple):
    at: float
    n: int
    tokens: int


def window(c: sqlite3.Connection, key: str, now: float, per: float) -> list[Entry]:
    """What ``key`` took in the ``per`` seconds up to ``now`` (and after it), oldest first."""
    return [
        Entry(*r)
        for r in c.execute(
            "SELECT at, n, tokens FROM rate_log WHERE key = ? AND at > ? ORDER BY at",
            (key, now - per),
        )
    ]


def room(entries: Sequence[Entry], rate: Rate, now: float, tokens: bool = False) -> int:
    """How much more fits in the window ending at ``now`` (starts, or tokens)."""
    since = now - rate.per
    used = sum(e.tokens if tokens else e.n for e in entries if e.at > since)
    return rate.limit - used


def opens(
    entries: Sequence[Entry], rate: Rate, now: float, need: int = 1, tokens: bool = False
) -> float:
    """When ``need`` more fit (``now`` if they do): the oldest rows leave the window
    one by one. More than the whole limit fits once the window is empty."""
    since = now - rate.per
    inside = sorted(e for e in entries if e.at > since)  # a take may be newer than ``now``
    used = sum(e.tokens if tokens else e.n for e in inside)
    need = min(need, rate.limit)
    if used + need <= rate.limit:
        return now
    for e in inside:
        used -= e.tokens if tokens else e.n
        if used + need <= rate.limit:
            return e.at + rate.per + EPS
    return now  # not reached: the empty window holds ``limit``


def take(
    c: sqlite3.Connection, key: str, now: float, n: int, tokens: int = 0, longest: float = 0.0
) -> int:
    """Write a take of ``key`` at ``now``; rows that left every window of ``key`` (the
    longest is ``longest`` seconds) more than :data:`KEEP` seconds ago go. Returns the
    row's id (to correct its tokens once known: :func:`settle`)."""
    c.execute("DELETE FROM rate_log WHERE key = ? AND at < ?", (key, now - longest - KEEP))
    return c.execute(
        "INSERT INTO rate_log (key, at, n, tokens) VALUES (?, ?, ?, ?)", (key, now, n, tokens)
    ).lastrowid


def settle(c: sqlite3.Connection, entry_id: int, tokens: int) -> None:
    """A take's tokens as they turned out (a model call's usage, once it answered)."""
    c.execute("UPDATE rate_log SET tokens = ? WHERE id = ?", (int(tokens), entry_id))


def limits(c: sqlite3.Connection, key: str) -> tuple[str | None, float]:
    """``key``'s shared limits (JSON, or None) and the time before which nothing is taken."""
    row = c.execute("SELECT spec, blocked_until FROM rate_limits WHERE key = ?", (key,)).fetchone()
    return (row[0], row[1] or 0.0) if row else (None, 0.0)


def set_limits(c: sqlite3.Connection, key: str, spec: str | None) -> None:
    c.execute(
        "INSERT INTO rate_limits (key, spec) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET spec = excluded.spec",
        (key, spec),
    )


def block(c: sqlite3.Connection, key: str, until: float) -> None:
    """Take nothing of ``key`` before ``until`` (a later block wins, an earlier one does not
    shorten it)."""
    c.execute(
        "INSERT INTO rate_limits (key, blocked_until) VALUES (?, ?) ON CONFLICT (key) "
        "DO UPDATE SET blocked_until = MAX(COALESCE(blocked_until, 0), excluded.blocked_until)",
        (key, until),
    )
