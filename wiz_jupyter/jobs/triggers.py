"""Triggers: when a schedule fires. Each is an object that validates its arguments
when made, describes itself, computes its fire times (time triggers) and converts
to and from the small JSON dict stored in the ``schedules`` table.

Built in: :class:`At` (once), :class:`Every` (interval), :class:`Cron` (croniter,
with a time zone), :class:`After` (another job or schedule finishing),
:class:`Watch` (files changing), :class:`Webhook` (fired by name), :class:`Kernel`
(runtime start / exit in a notebook kernel) and :class:`Idle` (an agent without
work for N seconds). A :class:`Trigger` subclass is a custom trigger (stored as
kind ``custom``): a user's, or one of the system events ``boot``,
``system_idle``, ``shutdown`` and ``network_available`` of
:mod:`wiz_jupyter.jobs.system`. All share :class:`BaseTrigger`.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidSchedule
from .models import Job, epoch

if TYPE_CHECKING:
    from .schedules import Schedules

TIME_KINDS = frozenset({"at", "every", "cron"})
OUTCOMES = ("completed", "failed", "timeout", "finished")
MISFIRES = ("skip", "catch_up")
#: a time trigger later than this (seconds) when its process was down is a misfire
DEFAULT_GRACE = 60.0
#: the built-in system-event triggers (wiz_jupyter.jobs.system), by the name ``trigger=`` takes
SYSTEM_TRIGGERS = ("boot", "system_idle", "shutdown", "network_available")


class BaseTrigger:
    """What every trigger is: the built-in ones (:class:`Cron`, :class:`Every`, ...)
    and :class:`Trigger`, the base of custom ones.

    A trigger checks its arguments when made (raising :class:`InvalidSchedule`),
    describes itself, says when it fires first and next (time triggers; the
    others fire on events), and converts to the dict stored with its schedule
    (:meth:`to_spec`) and back (:meth:`from_spec`).
    """

    #: the ``"kind"`` of the stored dict
    kind: ClassVar[str] = ""

    def to_spec(self) -> dict[str, Any]:
        """The JSON dict stored in the ``schedules`` table."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short human description (never shows a webhook's secret)."""
        raise NotImplementedError

    def first_run(self, now: float) -> float | None:
        """The first fire time of a time trigger added at ``now``; None for events."""
        return None

    def next_after(self, fired_for: float, now: float) -> float | None:
        """The fire time after the one at ``fired_for``; None when the trigger is done
        (or fires on events). Never a time already past: missed ones are the misfire
        policy's business."""
        return None

    def _resolve(self, schedules: Schedules) -> BaseTrigger:
        """This trigger with what it names looked up in the workspace (``After``)."""
        return self

    @staticmethod
    def from_spec(
        spec: Mapping[str, Any], classes: Mapping[str, type[Trigger]] | None = None
    ) -> BaseTrigger:
        """Rebuild a trigger from its stored dict.

        Built-in kinds are not checked again: a stored trigger was valid when added,
        and must still describe itself (a watched folder since deleted, an interval
        below a floor introduced later). A custom trigger is made by its class in
        ``classes`` (by name; by default the system triggers), as the scheduler does.
        """
        kind = spec["kind"]
        if kind == "custom":
            if classes is None:
                from .system import BUILTIN_TRIGGERS as classes  # system.py builds on this module
            cls = classes.get(spec["name"])
            if cls is None:
                raise InvalidSchedule(f"trigger {spec['name']!r} is not registered here")
            return cls(**(spec.get("params") or {}))
        if kind not in _KINDS:
            raise InvalidSchedule(f"unknown trigger kind {kind!r}")
        return _KINDS[kind]._stored(spec)


class Trigger(BaseTrigger):
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

    kind = "custom"
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

    def to_spec(self) -> dict[str, Any]:
        params = self.params()
        try:
            json.dumps(params)
        except (TypeError, ValueError) as e:
            raise InvalidSchedule(
                f"a custom trigger's parameters must be JSON to be stored: {e}"
            ) from None
        return {"kind": "custom", "name": type(self).name or type(self).__name__, "params": params}

    def describe(self) -> str:
        return self.describe_params(self.params())

    @classmethod
    def describe_params(cls, params: dict[str, Any]) -> str:
        """The description from the stored parameters, so that listing schedules never
        has to make (and set up) a trigger. Override to say more than the name."""
        return f"custom {cls.name or cls.__name__}"


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


def _misfire(value: Any) -> str:
    if value not in MISFIRES:
        raise InvalidSchedule(f"misfire must be 'skip' or 'catch_up', not {value!r}")
    return value


# -- the built-in triggers -----------------------------------------------------------------------


class _Builtin(BaseTrigger):
    """A built-in trigger: its stored dict is its ``kind`` and the attributes ``_keys``
    names, in that order: the stored JSON, as existing databases hold it."""

    _keys: ClassVar[tuple[str, ...]] = ()

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: getattr(self, k) for k in self._keys}}

    @classmethod
    def _stored(cls, spec: Mapping[str, Any]) -> _Builtin:
        trigger = cls.__new__(cls)  # no __init__: stored values were checked when added
        for k in cls._keys:  # a key an older row lacks keeps the class default
            setattr(trigger, k, spec.get(k, getattr(cls, k, None)))
        return trigger

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self._keys
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        shown = {k: getattr(self, k) for k in self._keys}
        if shown.get("secret"):
            shown["secret"] = "***"  # a repr lands in notebook outputs
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


class _Timed(_Builtin):
    """A time trigger. One missed by more than ``grace`` seconds (no scheduler was
    running) fires once when a scheduler is back (``misfire="catch_up"``) or not
    (``"skip"``)."""

    misfire: str = "catch_up"
    grace: float = DEFAULT_GRACE

    def _timing(self, misfire: str, grace: float) -> None:
        self.misfire, self.grace = _misfire(misfire), float(grace)

    def timed(self, misfire: str | None = None, grace: float | None = None) -> _Timed:
        """A copy with another misfire policy or grace (what ``schedules.add``'s
        ``misfire=`` and ``grace=`` do to a trigger object)."""
        new = copy.copy(self)
        new._timing(
            self.misfire if misfire is None else misfire, self.grace if grace is None else grace
        )
        return new


class At(_Timed):
    """Fires once, at ``when``: a datetime, an ISO date-time or a Unix time.
    ``schedules.add(task, at=when)`` is short for ``trigger=At(when)``."""

    kind = "at"
    _keys = ("at", "misfire", "grace")

    def __init__(self, when: Any, *, misfire: str = "catch_up", grace: float = DEFAULT_GRACE):
        self._timing(misfire, grace)
        self.at = _epoch(when, "at")

    def first_run(self, now: float) -> float | None:
        return self.at

    def describe(self) -> str:
        return f"at {dt.datetime.fromtimestamp(self.at).isoformat(timespec='seconds')}"


class Every(_Timed):
    """Fires every ``seconds`` (a number or a timedelta), first at ``start`` (by
    default one interval after it is added), keeping that phase so it never drifts.
    ``schedules.add(task, every=300)`` is short for ``trigger=Every(300)``."""

    kind = "every"
    _keys = ("seconds", "start", "misfire", "grace")

    def __init__(
        self,
        seconds: float | dt.timedelta,
        start: Any = None,
        *,
        misfire: str = "catch_up",
        grace: float = DEFAULT_GRACE,
    ):
        self._timing(misfire, grace)
        self.start = _epoch(start, "start") if start is not None else None
        self.seconds = _seconds(seconds, "every")

    def first_run(self, now: float) -> float | None:
        return self.start if self.start is not None else now + self.seconds

    def next_after(self, fired_for: float, now: float) -> float | None:
        nxt = fired_for + self.seconds
        if nxt <= now:
            nxt += ((now - nxt) // self.seconds + 1) * self.seconds
        return nxt

    def describe(self) -> str:
        return f"every {self.seconds:g} s"


class Cron(_Timed):
    """Fires at the times of a 5-field cron expression (minute hour day month
    weekday), in time zone ``tz`` (an IANA name; by default the machine's).
    ``schedules.add(task, cron=expr, tz=tz)`` is short for ``trigger=Cron(expr, tz)``."""

    kind = "cron"
    _keys = ("expr", "tz", "misfire", "grace")

    def __init__(
        self,
        expr: str,
        tz: str | None = None,
        *,
        misfire: str = "catch_up",
        grace: float = DEFAULT_GRACE,
    ):
        from croniter import croniter

        self._timing(misfire, grace)
        if not isinstance(expr, str) or not croniter.is_valid(expr):
            raise InvalidSchedule(
                f"malformed cron expression {expr!r}; expected 5 fields like '*/5 * * * *' "
                "(minute hour day month weekday)"
            )
        _zone(tz)
        self.expr, self.tz = expr, tz

    def first_run(self, now: float) -> float | None:
        return next_cron(self.expr, self.tz, now)

    def next_after(self, fired_for: float, now: float) -> float | None:
        return next_cron(self.expr, self.tz, max(fired_for, now))

    def describe(self) -> str:
        return f"cron '{self.expr}'" + (f" ({self.tz})" if self.tz else "")


class After(_Builtin):
    """Fires when ``target`` finishes ``on`` one of completed / failed / timeout /
    finished: a job (or a job id) once, a schedule (or its name) after each of its
    jobs. The job's data gets ``upstream``: the job, its status, result or error.
    ``schedules.add(task, after=job, on="failed")`` is short for
    ``trigger=After(job, on="failed")``."""

    kind = "after"
    _keys = ("job", "schedule", "on")
    job: int | None = None
    schedule: int | str | None = None  # a name until schedules.add looks it up

    def __init__(self, target: Any, on: str | list[str] = "completed"):
        from .schedules import Schedule  # schedules.py builds on this module

        if isinstance(target, Job):
            self.job = target.id
        elif isinstance(target, Schedule):
            self.schedule = target.id
        elif isinstance(target, int) and not isinstance(target, bool):
            self.job = target
        elif isinstance(target, str):
            self.schedule = target
        else:
            raise InvalidSchedule(
                f"after takes a job, a job id, a schedule or its name, not {target!r}"
            )
        outcomes = [on] if isinstance(on, str) else list(on)
        if not outcomes or any(o not in OUTCOMES for o in outcomes):
            raise InvalidSchedule(f"on must be one or more of {OUTCOMES}, not {on!r}")
        self.on = outcomes

    def _resolve(self, schedules: Schedules) -> After:
        if self.job is not None:
            schedules.queue.get(self.job)  # JobNotFound now, not a schedule that never fires
            return self
        if not isinstance(self.schedule, str):
            return self
        resolved = copy.copy(self)
        resolved.schedule = schedules.get(self.schedule).id  # type: ignore[arg-type]
        return resolved

    def to_spec(self) -> dict[str, Any]:
        if isinstance(self.schedule, str):
            raise InvalidSchedule(
                f"after={self.schedule!r} names a schedule; ws.schedules.add looks it up"
            )
        target = {"job": self.job} if self.job is not None else {"schedule": self.schedule}
        return {"kind": "after", **target, "on": self.on}

    def describe(self) -> str:
        what = f"job {self.job}" if self.job is not None else f"schedule {self.schedule}"
        return f"after {what} {'/'.join(self.on)}"


class Watch(_Builtin):
    """Fires when files matching ``patterns`` (globs, by default ``*``) change under
    the folder ``path``, once per burst of changes (``debounce`` seconds). The job's
    data gets ``changes``. ``schedules.add(task, watch="data/", patterns="*.csv")``
    is short for ``trigger=Watch("data/", "*.csv")``."""

    kind = "watch"
    _keys = ("path", "patterns", "debounce")

    def __init__(
        self, path: str | Path, patterns: list[str] | str | None = None, debounce: float = 0.5
    ):
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise InvalidSchedule(f"watch needs an existing folder; {folder} is not one")
        self.path = str(folder)
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns or ["*"])
        self.debounce = float(debounce)

    def describe(self) -> str:
        return f"watch {self.path} {' '.join(self.patterns)}"


class Webhook(_Builtin):
    """Fires when called by ``name`` (``ws.schedules.fire_webhook``, or a POST to
    ``/wiz/hooks/NAME``); with a ``secret``, only for callers that sign the body.
    The job's data gets ``payload``. ``schedules.add(task, webhook="github",
    secret=s)`` is short for ``trigger=Webhook("github", secret=s)``."""

    kind = "webhook"
    _keys = ("name", "secret")

    def __init__(self, name: str, secret: str | None = None):
        if not isinstance(name, str) or not name or "/" in name:
            raise InvalidSchedule(f"webhook needs a name without '/', not {name!r}")
        self.name, self.secret = name, secret

    def describe(self) -> str:
        return f"webhook {self.name}" + (" (signed)" if self.secret else "")


class Kernel(_Builtin):
    """Fires when a notebook kernel's runtime starts or exits (``on``: "start" or
    "exit"). ``schedules.add(task, kernel="start")`` is short for
    ``trigger=Kernel("start")``."""

    kind = "kernel"
    _keys = ("on",)

    def __init__(self, on: str):
        if on not in ("start", "exit"):
            raise InvalidSchedule(f"kernel must be 'start' or 'exit', not {on!r}")
        self.on = on

    def describe(self) -> str:
        return f"kernel {self.on}"


class Idle(_Builtin):
    """Fires once per idle period: when the agent ``agent`` has had no work for
    ``seconds``. ``schedules.add(task, idle=("analyst", 60))`` is short for
    ``trigger=Idle("analyst", 60)``."""

    kind = "idle"
    _keys = ("agent", "seconds")

    def __init__(self, agent: str, seconds: float | dt.timedelta):
        self.agent = str(agent)
        self.seconds = _seconds(seconds, "idle seconds")

    def describe(self) -> str:
        return f"{self.agent} idle {self.seconds:g} s"


_KINDS: dict[str, type[_Builtin]] = {
    c.kind: c for c in (At, Every, Cron, After, Watch, Webhook, Kernel, Idle)
}


def build(
    trigger: BaseTrigger | None = None,
    *,
    misfire: str | None = None,
    grace: float | None = None,
    at: Any = None,
    every: Any = None,
    start: Any = None,
    cron: str | None = None,
    tz: str | None = None,
    after: Any = None,
    on: str | list[str] | None = None,
    watch: str | None = None,
    patterns: list[str] | str | None = None,
    debounce: float | None = None,
    webhook: str | None = None,
    secret: str | None = None,
    kernel: str | None = None,
    idle: tuple[str, float] | None = None,
) -> BaseTrigger:
    """The trigger ``ws.schedules.add`` was given: ``trigger``, or the object its one
    shorthand keyword stands for (with that keyword's options: ``start``, ``tz``,
    ``on``, ``patterns``, ``debounce``, ``secret``). ``misfire`` and ``grace`` set
    a time trigger's; None keeps its own."""
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
    if misfire is not None:
        _misfire(misfire)  # refused for any trigger, though only time triggers use it
    timing = {k: v for k, v in (("misfire", misfire), ("grace", grace)) if v is not None}
    if trigger is not None:
        if not isinstance(trigger, BaseTrigger):
            raise InvalidSchedule(f"trigger must be a wiz.Trigger instance, not {trigger!r}")
        if isinstance(trigger, _Timed) and timing:
            return trigger.timed(misfire, grace)
        return trigger
    if at is not None:
        return At(at, **timing)
    if every is not None:
        return Every(every, start, **timing)
    if cron is not None:
        return Cron(cron, tz, **timing)
    if after is not None:
        return After(after, "completed" if on is None else on)
    if watch is not None:
        return Watch(watch, patterns, 0.5 if debounce is None else debounce)
    if webhook is not None:
        return Webhook(webhook, secret)
    if kernel is not None:
        return Kernel(kernel)
    try:
        agent, seconds = idle  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InvalidSchedule("idle takes (agent name, seconds)") from None
    return Idle(agent, seconds)


def describe(spec: Mapping[str, Any]) -> str:
    """A short human description of a stored trigger (never shows a webhook's secret)."""
    if spec["kind"] != "custom":
        return BaseTrigger.from_spec(spec).describe()
    from .system import BUILTIN_TRIGGERS  # system.py builds on this module

    cls = BUILTIN_TRIGGERS.get(spec["name"])  # a user's class may not be registered here
    return cls.describe_params(spec.get("params") or {}) if cls else f"custom {spec['name']}"


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


def occasions(
    spec: Mapping[str, Any], start: float, end: float, anchor: float, limit: int
) -> list[float]:
    """The times in ``[start, end)`` at which the stored time trigger ``spec`` fires,
    oldest first, at most ``limit + 1`` of them (so a caller can tell "too many").

    ``anchor`` is one fire time of an ``every`` trigger that has no ``start`` (its
    phase: the schedule's next run); ``at`` and ``cron`` do not need it.
    """
    kind = spec["kind"]
    if kind == "at":
        return [spec["at"]] if start <= spec["at"] < end else []
    if kind == "every":
        step = float(spec["seconds"])
        base = spec.get("start") if spec.get("start") is not None else anchor
        k = math.ceil((start - base) / step)
        out = []
        while len(out) <= limit:
            t = base + k * step
            if t >= end:
                break
            if t >= start:  # ceil of a float quotient may land one step early
                out.append(t)
            k += 1
        return out
    if kind == "cron":
        return _cron_between(spec["expr"], spec.get("tz"), start, end, limit)
    raise InvalidSchedule(f"a {kind} trigger has no fire times to list")


def _cron_between(expr: str, tz: str | None, start: float, end: float, limit: int) -> list[float]:
    # next_cron's walk, continued: the wall-clock candidates from a little before
    # start's until a little after end's (a repeated hour lies up to an hour off)
    from croniter import croniter

    zone = _zone(tz) or dt.datetime.now().astimezone().tzinfo
    minute, hour = [*expr.split(), "*", "*"][:2]
    fixed = not (minute.startswith("*") or hour.startswith("*"))
    stop = _wall(end, zone) + dt.timedelta(hours=3)
    it = croniter(expr, _wall(start, zone) - dt.timedelta(hours=3))
    found: set[float] = set()
    while len(found) <= limit:
        candidate = it.get_next(dt.datetime)
        if candidate > stop:
            break
        found.update(t for t in _instants(candidate, zone, fixed) if start <= t < end)
    return sorted(found)[: limit + 1]


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
