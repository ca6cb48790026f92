"""Triggers: when a schedule fires. Each is stored as a small JSON dict in the
``schedules`` table; this module validates them and computes fire times.

Kinds: ``at`` (once), ``every`` (interval), ``cron`` (croniter, with a time
zone), ``after`` (another job or schedule finishing), ``watch`` (files
changing), ``webhook`` (fired by name), ``kernel`` (runtime start / exit in a
notebook kernel), ``idle`` (an agent without work for N seconds) and
``custom`` (a :class:`Trigger` subclass: a user's, or one of the built-in
system events ``boot``, ``system_idle``, ``shutdown`` and
``network_available`` of :mod:`wiz_jupyter.jobs.system`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidSchedule
from .models import epoch

TIME_KINDS = frozenset({"at", "every", "cron"})
OUTCOMES = ("completed", "failed", "timeout", "finished")
#: a time trigger later than this (seconds) when its process was down is a misfire
DEFAULT_GRACE = 60.0


class Trigger:
    """Base class of custom triggers. Subclass, register with
    ``@ws.schedules.trigger``, and add with ``ws.schedules.add(task, trigger=MyTrigger(...))``.

    The scheduler calls :meth:`setup` once, :meth:`evaluate` every
    :attr:`check_every` seconds (a truthy answer fires the schedule; a dict is
    merged into the job's data), and :meth:`teardown` when the schedule stops.
    Constructor keyword arguments are stored (they must be JSON) so the trigger
    is rebuilt in any process that registered the class::

        @ws.schedules.trigger
        class DiskFull(wiz.Trigger):
            check_every = 60
            def __init__(self, path: str, limit: float = 0.9):
                self.path, self.limit = path, limit
            def evaluate(self, now):
                total, used, _ = shutil.disk_usage(self.path)
                return used / total > self.limit
    """

    check_every: ClassVar[float] = 1.0
    name: ClassVar[str] = ""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def params(self) -> dict[str, Any]:
        """What to store to rebuild this trigger: its attributes, by default."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def setup(self) -> None:
        """Called once before the first :meth:`evaluate`."""

    def evaluate(self, now: float) -> bool | dict[str, Any] | Fire | None:
        """Return truthy to fire (a dict is merged into the job's data; a
        :class:`Fire` also says which occasion this is, for exactly-once firing)."""
        return None

    def teardown(self) -> None:
        """Called when the schedule is paused, removed or the scheduler stops."""


@dataclass
class Fire:
    """What :meth:`Trigger.evaluate` returns to fire with more control than ``True``.

    ``data`` is merged into the job's data. ``occasion`` names the event: every
    process whose trigger fires for the same occasion creates one job between
    them (``"boot:<boot id>"``, say); by default the occasion is the
    ``check_every`` time slot. ``not_since`` (a Unix time) fires only if the
    schedule has not fired since then: for events each process sees at a
    slightly different moment (the network coming back).
    """

    data: dict[str, Any] | None = None
    occasion: str | None = None
    not_since: float | None = None


#: The shortest interval of ``every=``: a smaller one only floods the queue.
MIN_EVERY = 0.05


def _epoch(value: Any, what: str) -> float:
    when = epoch(value)
    if when is None:
        raise InvalidSchedule(
            f"{what} must be a datetime, an ISO date-time or a Unix time, not {value!r:.60}"
        )
    return when


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        if what == "every" and value < MIN_EVERY:
            raise InvalidSchedule(
                f"every={value!r} s is shorter than the shortest interval, {MIN_EVERY} s"
            )
        return float(value)
    raise InvalidSchedule(
        f"{what} must be a positive number of seconds or a timedelta, not {value!r:.60}"
    )


def _zone(tz: str | None) -> ZoneInfo | None:
    if tz is None:
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            f"unknown time zone {tz!r}; use an IANA name like 'Europe/Paris'"
        ) from None


def cron_spec(expr: str, tz: str | None) -> dict[str, Any]:
    from croniter import croniter

    if not isinstance(expr, str) or not croniter.is_valid(expr):
        raise InvalidSchedule(
            f"malformed cron expression {expr!r}; expected 5 fields like '*/5 * * * *' "
            "(minute hour day month weekday)"
        )
    _zone(tz)
    return {"kind": "cron", "expr": expr, "tz": tz}


def next_cron(expr: str, tz: str | None, after: float, previous: float | None = None) -> float:
    """The first fire time strictly after ``after``, in the schedule's time zone.

    Clock changes follow cron(8). When clocks go back, a wall-clock time happens
    twice: a job at a fixed time (minute and hour fields both specific, like
    ``30 2 * * *``) fires at the first one only; one with a wildcard minute or hour
    (``0 * * * *``, ``*/5 * * * *``) runs as the new time says, so at both. When
    clocks go forward, a wildcard job skips the wall times that do not exist, and a
    fixed-time job whose time was skipped fires when the clock resumes.
    (``previous`` is accepted for callers of older versions; it is not needed.)
    """
    from croniter import croniter

    zone = _zone(tz) or dt.datetime.now().astimezone().tzinfo
    minute, hour = [*expr.split(), "*", "*"][:2]
    fixed = not (minute.startswith("*") or hour.startswith("*"))
    # walk wall-clock times (naive), from a little before `after`'s: a repeated hour
    # lies up to an hour (or half) behind the wall time that `after` shows
    wall = dt.datetime.fromtimestamp(after, zone).replace(tzinfo=None)
    it = croniter(expr, wall - dt.timedelta(hours=3))
    for _ in range(100_000):
        candidate = it.get_next(dt.datetime)
        for instant in _instants(candidate, zone, fixed):
            if instant > after:
                return instant
    raise InvalidSchedule(f"cron expression {expr!r} never fires")


def _instants(wall: dt.datetime, zone: Any, fixed: bool) -> list[float]:
    """The real moments at which the clock of ``zone`` shows ``wall``."""
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    second = wall.replace(tzinfo=zone, fold=1).timestamp()
    shows = [t for t in sorted({first, second}) if _wall(t, zone) == wall]
    if len(shows) == 2:  # a repeated time (clocks went back)
        return shows[:1] if fixed else shows
    if shows:
        return shows
    if not fixed:  # a time that never happens (clocks went forward)
        return []
    lo, hi = min(first, second), max(first, second)  # the jump lies between them
    while hi - lo > 1:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _wall(mid, zone) < wall else (lo, mid)
    return [float(round(hi))]


def _wall(t: float, zone: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)


def build(
    *,
    at: Any = None,
    every: Any = None,
    cron: str | None = None,
    tz: str | None = None,
    after: Any = None,
    on: str | list[str] = "completed",
    watch: str | None = None,
    patterns: list[str] | str | None = None,
    debounce: float = 0.5,
    webhook: str | None = None,
    secret: str | None = None,
    kernel: str | None = None,
    idle: tuple[str, float] | None = None,
    trigger: Trigger | None = None,
    start: Any = None,
    misfire: str = "catch_up",
    grace: float = DEFAULT_GRACE,
) -> dict[str, Any]:
    """Validate the trigger arguments of ``ws.schedules.add`` into the stored dict."""
    given = [
        name
        for name, v in (
            ("at", at), ("every", every), ("cron", cron), ("after", after), ("watch", watch),
            ("webhook", webhook), ("kernel", kernel), ("idle", idle), ("trigger", trigger),
        )
        if v is not None
    ]  # fmt: skip
    if len(given) != 1:
        raise InvalidSchedule(
            "give exactly one trigger: at=, every=, cron=, after=, watch=, webhook=, kernel=, "
            f"idle= or trigger= (got {', '.join(given) or 'none'})"
        )
    if misfire not in ("skip", "catch_up"):
        raise InvalidSchedule(f"misfire must be 'skip' or 'catch_up', not {misfire!r}")
    timing = {"misfire": misfire, "grace": float(grace)}
    if at is not None:
        return {"kind": "at", "at": _epoch(at, "at"), **timing}
    if every is not None:
        first = _epoch(start, "start") if start is not None else None
        return {"kind": "every", "seconds": _seconds(every, "every"), "start": first, **timing}
    if cron is not None:
        return {**cron_spec(cron, tz), **timing}
    if after is not None:
        outcomes = [on] if isinstance(on, str) else list(on)
        bad = [o for o in outcomes if o not in OUTCOMES]
        if bad or not outcomes:
            raise InvalidSchedule(f"on must be one or more of {OUTCOMES}, not {on!r}")
        return {"kind": "after", **after, "on": outcomes}
    if watch is not None:
        folder = Path(watch).expanduser().resolve()
        if not folder.is_dir():
            raise InvalidSchedule(f"watch needs an existing folder; {folder} is not one")
        watch = str(folder)
        pats = [patterns] if isinstance(patterns, str) else list(patterns or ["*"])
        return {"kind": "watch", "path": str(watch), "patterns": pats, "debounce": float(debounce)}
    if webhook is not None:
        if not isinstance(webhook, str) or not webhook or "/" in webhook:
            raise InvalidSchedule(f"webhook needs a name without '/', not {webhook!r}")
        return {"kind": "webhook", "name": webhook, "secret": secret}
    if kernel is not None:
        if kernel not in ("start", "exit"):
            raise InvalidSchedule(f"kernel must be 'start' or 'exit', not {kernel!r}")
        return {"kind": "kernel", "on": kernel}
    if idle is not None:
        try:
            agent, seconds = idle
        except (TypeError, ValueError):
            raise InvalidSchedule("idle takes (agent name, seconds)") from None
        return {"kind": "idle", "agent": str(agent), "seconds": _seconds(seconds, "idle seconds")}
    assert trigger is not None
    if not isinstance(trigger, Trigger):
        raise InvalidSchedule(f"trigger must be a wiz.Trigger instance, not {trigger!r}")
    params = trigger.params()
    try:
        json.dumps(params)
    except (TypeError, ValueError) as e:
        raise InvalidSchedule(
            f"a custom trigger's parameters must be JSON to be stored: {e}"
        ) from None
    return {
        "kind": "custom",
        "name": type(trigger).name or type(trigger).__name__,
        "params": params,
    }


def first_run(spec: dict[str, Any], now: float) -> float | None:
    """The first fire time of a time trigger (None for the event-driven kinds)."""
    kind = spec["kind"]
    if kind == "at":
        return spec["at"]
    if kind == "every":
        return spec["start"] if spec["start"] is not None else now + spec["seconds"]
    if kind == "cron":
        return next_cron(spec["expr"], spec["tz"], now)
    return None


def following_run(spec: dict[str, Any], fired_for: float, now: float) -> float | None:
    """The fire time after the one at ``fired_for``; None when a trigger is done.

    Intervals keep their phase (start + k * seconds) so they do not drift, and
    never return a time already past: missed ones are the misfire policy's business.
    """
    kind = spec["kind"]
    if kind == "every":
        step = spec["seconds"]
        nxt = fired_for + step
        if nxt <= now:
            nxt += ((now - nxt) // step + 1) * step
        return nxt
    if kind == "cron":
        return next_cron(spec["expr"], spec["tz"], max(fired_for, now), previous=fired_for)
    return None


def describe(spec: dict[str, Any]) -> str:
    """A short human description (never shows a webhook's secret)."""
    kind = spec["kind"]
    if kind == "at":
        return f"at {dt.datetime.fromtimestamp(spec['at']).isoformat(timespec='seconds')}"
    if kind == "every":
        return f"every {spec['seconds']:g} s"
    if kind == "cron":
        return f"cron '{spec['expr']}'" + (f" ({spec['tz']})" if spec["tz"] else "")
    if kind == "after":
        what = (
            f"job {spec['job']}" if spec.get("job") is not None else f"schedule {spec['schedule']}"
        )
        return f"after {what} {'/'.join(spec['on'])}"
    if kind == "watch":
        return f"watch {spec['path']} {' '.join(spec['patterns'])}"
    if kind == "webhook":
        return f"webhook {spec['name']}" + (" (signed)" if spec.get("secret") else "")
    if kind == "kernel":
        return f"kernel {spec['on']}"
    if kind == "idle":
        return f"{spec['agent']} idle {spec['seconds']:g} s"
    if spec["name"] in SYSTEM_TRIGGERS:
        params = spec.get("params") or {}
        if spec["name"] == "system_idle":
            return f"system idle {params.get('minutes', 0):g} min"
        if spec["name"] == "network_available":
            return f"network available ({params.get('host')}:{params.get('port')})"
        return f"on {spec['name']}"
    return f"custom {spec['name']}"


#: the built-in system-event triggers (wiz_jupyter.jobs.system), by the name ``trigger=`` takes
SYSTEM_TRIGGERS = ("boot", "system_idle", "shutdown", "network_available")


# -- webhooks ------------------------------------------------------------------------------------


def sign_webhook(secret: str, body: bytes | str) -> str:
    """The signature header value for ``body``: ``"sha256=<hex HMAC-SHA256>"``.

    ::

        requests.post(url, data=body, headers={"X-Wiz-Signature": wiz.sign_webhook(secret, body)})
    """
    if isinstance(body, str):
        body = body.encode()
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_webhook(secret: str, body: bytes | str, signature: str | None) -> bool:
    """True if ``signature`` is ``sign_webhook(secret, body)`` (compared in constant time)."""
    if not signature:
        return False
    # compared as bytes: compare_digest refuses str with non-ASCII characters, and a
    # header is whatever the sender put there
    given = signature.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(sign_webhook(secret, body).encode("ascii"), given)


# -- clocks --------------------------------------------------------------------------------------


class SystemClock:
    """Wall-clock time; timers run on the event loop."""

    def now(self) -> float:
        return time.time()

    def call_at(self, loop: Any, when: float, callback: Any) -> Any:
        return loop.call_later(max(0.0, when - time.time()), callback)


class ManualClock(SystemClock):
    """A clock that moves only when told to: for tests, and to replay a day in a second.

    ::

        clock = wiz.ManualClock("2026-11-24T08:59:00+01:00")
        ws = wiz.Workspace(clock=clock)
        clock.advance(60)      # due schedules fire now
    """

    def __init__(self, start: Any = None):
        self._now = time.time() if start is None else _epoch(start, "start")
        self._timers: list[tuple[float, Any]] = []

    def now(self) -> float:
        return self._now

    def call_at(self, loop: Any, when: float, callback: Any) -> Any:
        entry = (when, callback)
        self._timers.append(entry)
        return _ManualTimer(self._timers, entry)

    def advance(self, seconds: float | dt.timedelta) -> None:
        if isinstance(seconds, dt.timedelta):
            seconds = seconds.total_seconds()
        self._now += seconds
        due = [t for t in self._timers if t[0] <= self._now]
        for t in due:
            self._timers.remove(t)
            t[1]()

    def set(self, when: Any) -> None:
        self.advance(_epoch(when, "when") - self._now)


class _ManualTimer:
    def __init__(self, timers: list, entry: tuple):
        self._timers, self._entry = timers, entry

    def cancel(self) -> None:
        if self._entry in self._timers:
            self._timers.remove(self._entry)
