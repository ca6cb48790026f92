"""``ws.schedules``: persisted triggers, each with the job it creates when it fires.

Firing is one transaction: check the schedule is still due (its ``next_run``
unchanged: a compare-and-set, so two processes never both fire it), add the
job with a dedup key naming the schedule and the occasion, advance
``next_run``, record the run. Several notebooks and the headless worker can
therefore run schedulers on one database.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidSchedule, ScheduleNotFound, WebhookRejected
from . import triggers
from .display import ScheduleList, when
from .models import Job, dumps, epoch, loads
from .notebooks import TASK as NOTEBOOK_TASK
from .notebooks import Notebook
from .options import JOB_OPTIONS
from .queue import Queue, Transaction
from .system import BUILTIN_TRIGGERS
from .triggers import BaseTrigger, Trigger

if TYPE_CHECKING:
    from collections.abc import Callable

#: a schedule's job template takes the job options that make sense on every run
_JOB_OPTIONS = JOB_OPTIONS - {"delay", "run_at", "depends_on", "parent", "key", "fail_parent"}
_COLUMNS = (
    "id name trigger template status next_run last_run run_count fail_count last_result "
    "created_at overlap skip_count last_skipped pending skipped_occasion"
).split()
_ANY = object()

#: What a schedule does when an occasion comes while a run it made is still unfinished
#: (waiting, delayed, blocked or active): ``skip`` drops the occasion (counted, and a
#: ``schedule.skipped`` event on the unfinished run), ``buffer_one`` keeps the first such
#: occasion and starts it when the run ends, ``allow`` starts it anyway.
OVERLAPS = ("skip", "buffer_one", "allow")
#: A run of a schedule is a job keyed ``schedule:<id>:<occasion>``; these statuses are
#: "still going" (the partial index jobs_open_keys holds exactly these rows).
_OPEN_RUN = (
    "SELECT id FROM jobs INDEXED BY jobs_open_keys WHERE key >= ? AND key < ? AND status IN "
    "('waiting', 'delayed', 'blocked', 'active', 'awaiting_input') LIMIT 1"
)
#: The most occasions one backfill creates unless its ``limit`` says otherwise.
BACKFILL_LIMIT = 10_000


def overlap_policy(value: Any) -> str:
    """``value`` if it names an overlap policy, else a one-line :class:`InvalidSchedule`."""
    if value not in OVERLAPS:
        raise InvalidSchedule(
            f"unknown overlap {value!r}; use 'skip' (the default), 'buffer_one' or 'allow'"
        )
    return value


def time_occasion(due: float) -> str:
    """The occasion of a time trigger's fire time ``due``, in milliseconds: a live run and
    a backfill of the same moment share it (and so the job key) whatever float arithmetic
    reached it."""
    return f"time:{round(due * 1000)}"


def iso(t: float) -> str:
    """A Unix time as an ISO 8601 date-time in UTC (``scheduled_for``)."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


@dataclass
class Schedule:
    """A schedule row. ``trigger`` and ``template`` are the stored dicts."""

    id: int
    name: str
    trigger: dict[str, Any]
    template: dict[str, Any]
    status: str
    next_run: float | None
    last_run: float | None
    run_count: int
    fail_count: int
    last_result: Any
    created_at: float
    #: the overlap policy (:data:`OVERLAPS`); rows older than the policies hold "allow"
    overlap: str = "allow"
    #: occasions dropped because a run was still going, and the time of the last one
    skip_count: int = 0
    last_skipped: float | None = None
    #: the occasion ``buffer_one`` keeps for when the running run ends, if any
    pending: dict[str, Any] | None = None
    _schedules: Schedules | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.trigger["kind"]

    @property
    def task(self) -> str:
        return self.template["task"]

    @property
    def description(self) -> str:
        return triggers.describe(self.trigger)

    def runs(self) -> list[Job]:
        """The jobs this schedule created, oldest first."""
        assert self._schedules is not None
        return self._schedules.runs(self.id)

    def __repr__(self) -> str:
        nxt = when(self.next_run, "-")
        return (
            f"<Schedule {self.id} {self.name!r}: {self.task} {self.description}, {self.status}, "
            f"runs {self.run_count}, failed {self.fail_count}, {self._overlap_text()}, next {nxt}>"
        )

    def _overlap_text(self) -> str:
        text = f"overlap {self.overlap}"
        return text + (f" (skipped {self.skip_count})" if self.skip_count else "")

    def _repr_html_(self) -> str:
        e = html.escape
        return (
            f"<code>Schedule {self.id}</code> <b>{e(self.name)}</b>: {e(self.task)} "
            f"<i>{e(self.description)}</i> · {e(self.status)} · runs {self.run_count} · "
            f"failed {self.fail_count} · {e(self._overlap_text())} · next {e(when(self.next_run, '-'))}"
        )


class Schedules:
    """Add, inspect and control schedules. A schedule fires only while a
    scheduler runs on the database (``await ws.start()``, or ``wiz worker``).

    ::

        ws.schedules.add("report", {"day": "today"}, cron="0 9 * * 1-5", tz="Europe/Paris")
        ws.schedules.add("report", trigger=wiz.Cron("0 9 * * 1-5", tz="Europe/Paris"))  # the same
        ws.schedules.add("clean", every=300)
        ws.schedules.add("notify", after=job, on="failed")
        ws.schedules.add("ingest", watch="data/", patterns="*.csv")
        ws.schedules.add("deploy", webhook="github", secret="s3cret")
    """

    def __init__(self, queue: Queue, clock: Any = None):
        self.queue = queue
        self.store = queue.store
        self.clock = clock or triggers.SystemClock()
        #: custom trigger classes by name (``@ws.schedules.trigger``), the built-in
        #: system events (boot, system_idle, shutdown, network_available) included
        self.trigger_classes: dict[str, type[Trigger]] = dict(BUILTIN_TRIGGERS)
        #: called after any change, so a running scheduler reloads at once
        self.changed: Callable[[], None] = lambda: None

    # -- adding and reading --------------------------------------------------------------------

    def add(
        self, target: Any, data: dict[str, Any] | None = None,
        trigger: BaseTrigger | str | None = None, *, name: str | None = None,
        misfire: str | None = None, grace: float | None = None, overlap: str | None = None,
        cron: str | None = None, tz: str | None = None, every: Any = None, start: Any = None,
        at: Any = None, after: Any = None, on: str | list[str] | None = None,
        watch: str | None = None, patterns: list[str] | str | None = None,
        debounce: float | None = None, webhook: str | None = None, secret: str | None = None,
        kernel: str | None = None, idle: tuple[str, float] | None = None, **job_options: Any,
    ) -> Schedule:  # fmt: skip
        """Add a schedule that creates a ``target`` job with ``data`` each time it fires.

        ``target`` is a task name (or an object with ``schedule_template()``, such
        as an agent). Exactly one trigger: ``trigger``, a trigger object
        (:class:`~wiz_jupyter.Cron`, ``Every``, ``At``, ``After``, ``Watch``,
        ``Webhook``, ``Kernel``, ``Idle``, or a custom :class:`~wiz_jupyter.Trigger`)
        or the name of a registered custom one (the system events ``"boot"``,
        ``"system_idle"``, ``"shutdown"`` and ``"network_available"`` are built in;
        see :mod:`wiz_jupyter.jobs.system`); or a shorthand keyword for a built-in
        one: ``cron`` (with ``tz``), ``every`` (seconds or a timedelta; first at
        ``start``), ``at`` (once), ``after`` (a job or a schedule, ``on`` completed /
        failed / timeout / finished), ``watch`` (a folder, ``patterns``,
        ``debounce``), ``webhook`` (a name; ``secret`` makes callers sign),
        ``kernel`` ("start" / "exit") or ``idle`` ((agent, seconds)). Time triggers
        that were missed by more than ``grace`` seconds (no scheduler running) fire
        once on restart (``misfire="catch_up"``, the default) or not (``"skip"``).
        Other keywords (``priority``, ``attempts``, ``backoff``, ``timeout``) go to
        each job.

        ``overlap``, while a run it made is unfinished: ``"skip"`` (new schedules' default)
        drops the occasion, counted (``skip_count``, ``last_skipped``, a ``schedule.skipped``
        event on that run); ``"buffer_one"`` starts the first such occasion when the run
        ends; ``"allow"`` starts it anyway (and older schedules keep it). Adding again
        without ``overlap`` keeps the policy. ``fire()`` and ``backfill()`` ignore it.

        Adding again under the same ``name`` (by default, the task and the
        trigger) updates that schedule, so re-running a cell never duplicates it.

        Data the trigger brings is added to the job's data: ``payload``
        (webhook), ``changes`` (watch), ``upstream`` (after: the job, its status,
        result or error), or the dict a custom trigger returns.
        """
        template = self._template(target, data, job_options)
        overlap = None if overlap is None else overlap_policy(overlap)
        if isinstance(trigger, str):
            trigger = self._named_trigger(trigger)
        when = triggers.build(
            trigger, misfire=misfire, grace=grace, cron=cron, tz=tz, every=every, start=start,
            at=at, after=after, on=on, watch=watch, patterns=patterns, debounce=debounce,
            webhook=webhook, secret=secret, kernel=kernel, idle=idle,
        )._resolve(self)  # fmt: skip
        spec = when.to_spec()
        if isinstance(when, Trigger):  # rebuilt from its class wherever a scheduler runs
            self.trigger_classes.setdefault(spec["name"], type(when))
        label = template["task"]
        if label == NOTEBOOK_TASK:  # "report.ipynb cron ..." says more than "notebook cron ..."
            label = os.path.basename(template["data"]["path"])
        name = name or f"{label} {when.describe()}"
        now = self.clock.now()
        nxt = when.first_run(now)
        with self.queue.transaction() as ch:
            c = ch.c
            row = c.execute("SELECT id FROM schedules WHERE name = ?", (name,)).fetchone()
            if row is None:
                sid = c.execute(
                    "INSERT INTO schedules (name, trigger, template, status, next_run, run_count, "
                    "fail_count, created_at, overlap) VALUES (?, ?, ?, 'active', ?, 0, 0, ?, ?)",
                    (name, dumps(spec), dumps(template), nxt, now, overlap or "skip"),
                ).lastrowid
            else:
                sid = row[0]
                c.execute(
                    "UPDATE schedules SET trigger = ?, template = ?, status = 'active', next_run = ?, "
                    "overlap = COALESCE(?, overlap) WHERE id = ?",
                    (dumps(spec), dumps(template), nxt, overlap, sid),
                )
            self._bump(ch)
        self.changed()
        return self.get(sid)

    def _template(self, target: Any, data: Any, options: dict[str, Any]) -> dict[str, Any]:
        unknown = set(options) - set(_JOB_OPTIONS)
        if unknown:
            raise InvalidSchedule(
                f"unknown option(s) {', '.join(sorted(unknown))} for schedules.add"
            )
        if isinstance(target, (str, os.PathLike)) and str(target).endswith(".ipynb"):
            target = Notebook(target)  # a notebook: the schedule's data are its parameters
        if hasattr(target, "schedule_template"):
            base = dict(target.schedule_template())
            task = base.pop("task")
            options = {**base, **options}
            if hasattr(target, "schedule_data"):
                data = target.schedule_data(data)
        elif isinstance(target, str) and target:
            task = target
        else:
            raise InvalidSchedule(f"schedule a task name, an agent or a notebook, not {target!r}")
        self.queue.spec(task, data, **options)  # the same checks as jobs.add, now
        return {"task": task, "data": data or {}, "options": options}

    def _named_trigger(self, name: str) -> Trigger:
        cls = self.trigger_classes.get(name)
        if cls is None:
            raise InvalidSchedule(
                f"unknown trigger {name!r}; named triggers: {', '.join(self.trigger_classes)}"
            )
        try:
            return cls()
        except TypeError as e:
            raise InvalidSchedule(
                f"trigger {name!r} needs arguments: pass an instance, trigger={cls.__name__}(...) ({e})"
            ) from None

    def get(self, schedule: int | str | Schedule) -> Schedule:
        """A schedule by id or name; raises :class:`ScheduleNotFound`."""
        if isinstance(schedule, Schedule):
            schedule = schedule.id
        column = "name" if isinstance(schedule, str) else "id"
        rows = self.store.read(f"SELECT * FROM schedules WHERE {column} = ?", (schedule,))
        if not rows:
            raise ScheduleNotFound(f"no schedule {schedule!r} in this workspace")
        return self._from_row(tuple(rows[0]))

    def list(self, status: str | None = None) -> list[Schedule]:
        sql, params = "SELECT * FROM schedules", ()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (status,)
        return ScheduleList(
            self._from_row(tuple(r)) for r in self.store.read(sql + " ORDER BY id", params)
        )

    def _from_row(self, row: tuple) -> Schedule:
        d = dict(zip(_COLUMNS, row))
        for k in ("trigger", "template", "last_result", "pending"):
            d[k] = loads(d[k])
        del d["skipped_occasion"]
        return Schedule(**d, _schedules=self)

    def runs(self, schedule: int | str | Schedule) -> list[Job]:
        sid = self.get(schedule).id
        ids = [
            r[0]
            for r in self.store.read(
                "SELECT job_id FROM schedule_runs WHERE schedule_id = ? ORDER BY job_id", (sid,)
            )
        ]
        return [self.queue.get(i) for i in ids]

    # -- control -------------------------------------------------------------------------------

    def pause(self, schedule: int | str | Schedule) -> Schedule:
        return self._set_status(schedule, "paused")

    def resume(self, schedule: int | str | Schedule) -> Schedule:
        """Resume a paused schedule; time triggers continue from now (no catch-up)."""
        s = self.get(schedule)
        now = self.clock.now()
        nxt = s.next_run
        if s.kind in ("every", "cron") and (nxt is None or nxt < now):
            nxt = BaseTrigger.from_spec(s.trigger).next_after(nxt or now, now)
        with self.queue.transaction() as ch:
            ch.c.execute(
                "UPDATE schedules SET status = 'active', next_run = ? WHERE id = ?", (nxt, s.id)
            )
            self._bump(ch)
        self.changed()
        return self.get(s.id)

    def remove(self, schedule: int | str | Schedule) -> None:
        """Delete a schedule (the jobs it created stay)."""
        s = self.get(schedule)
        with self.queue.transaction() as ch:
            ch.c.execute("DELETE FROM schedules WHERE id = ?", (s.id,))
            self._bump(ch)
        self.changed()

    def _set_status(self, schedule: int | str | Schedule, status: str) -> Schedule:
        s = self.get(schedule)
        with self.queue.transaction() as ch:
            ch.c.execute("UPDATE schedules SET status = ? WHERE id = ?", (status, s.id))
            self._bump(ch)
        self.changed()
        return self.get(s.id)

    def fire(self, schedule: int | str | Schedule, data: dict[str, Any] | None = None) -> Job:
        """Fire now, whatever the trigger (a paused schedule too); returns the job.
        A time trigger keeps its next run."""
        s = self.get(schedule)
        job = self._fire(
            s.id, extra=data, occasion=f"manual:{uuid.uuid4().hex}", reason="manual", force=True
        )
        assert job is not None
        return job

    def fire_webhook(
        self,
        name: str,
        payload: Any = None,
        *,
        body: bytes | str | None = None,
        signature: str | None = None,
        delivery: str | None = None,
    ) -> list[Job]:
        """Fire the active webhook schedules called ``name`` with ``payload``.

        A schedule with a secret needs ``signature`` = ``wiz.sign_webhook(secret,
        body)`` over the raw ``body`` (by default, the payload as compact JSON),
        else :class:`WebhookRejected`. ``delivery``, a sender's id for the call,
        makes a repeated delivery fire only once. Returns the jobs created.
        """
        hooks = [
            s
            for s in self.list(status="active")
            if s.kind == "webhook" and s.trigger["name"] == name
        ]
        if not hooks:
            raise ScheduleNotFound(f"no active webhook schedule named {name!r}")
        raw = body if body is not None else dumps(payload)
        for s in hooks:
            secret = s.trigger.get("secret")
            if secret and not triggers.verify_webhook(secret, raw, signature):
                raise WebhookRejected(f"bad or missing signature for webhook {name!r}")
        occasion = f"webhook:{delivery or uuid.uuid4().hex}"
        jobs = [
            self._fire(s.id, extra={"payload": payload}, occasion=occasion, reason="webhook")
            for s in hooks
        ]
        return [j for j in jobs if j is not None]

    def trigger(self, cls: type[Trigger]) -> type[Trigger]:
        """Register a custom :class:`Trigger` class (a decorator)."""
        if not (isinstance(cls, type) and issubclass(cls, Trigger)):
            raise InvalidSchedule(f"{cls!r} is not a wiz.Trigger subclass")
        self.trigger_classes[cls.name or cls.__name__] = cls
        self.changed()
        return cls

    # -- firing (used by the scheduler) --------------------------------------------------------

    def _fire(
        self,
        sid: int,
        *,
        occasion: str,
        reason: str,
        extra: dict[str, Any] | None = None,
        expect_next: Any = _ANY,
        next_run: Any = _ANY,
        expire: bool = False,
        force: bool = False,
        not_since: float | None = None,
    ) -> Job | None:
        """Create the schedule's job for one occasion, exactly once across processes.

        ``expect_next``: fire only if ``next_run`` is still this (compare-and-set);
        ``next_run``: the new value; ``expire``: a one-shot trigger is done;
        ``not_since``: fire only if the schedule has not fired since this Unix time.
        Unless ``force`` (a manual fire), the overlap policy is applied in this same
        write transaction, so two processes never both start a run while one is going.
        """
        with self.queue.transaction() as ch:
            c = ch.c
            row = c.execute(_FIRE_ROW, (sid,)).fetchone()
            if row is None or (row[0] != "active" and not force):
                return None
            if expect_next is not _ANY and row[1] != expect_next:
                return None  # another process fired it first
            if not_since is not None and any(t is not None and t >= not_since for t in row[4:6]):
                return None  # another process saw the same event and fired (or skipped) it
            key = f"schedule:{sid}:{occasion}"
            if c.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone():
                return None
            sets = _updates(next_run, expire)
            blocker = None if force or row[6] == "allow" else _open_run(c, sid)
            if blocker is not None:
                held = {"occasion": occasion, "reason": reason, "extra": extra}
                self._hold(ch, sid, row, blocker, held, sets)
                return None
            return self._run(ch, sid, row, key, reason, extra, sets)

    def _run(
        self, ch: Transaction, sid: int, row: tuple, key: str, reason: str,
        extra: dict[str, Any] | None, sets: list[tuple[str, Any]],
    ) -> Job:  # fmt: skip
        """Insert one run (in ``ch``), count it and apply the schedule's other ``sets``."""
        tpl = loads(row[2])
        data = {**tpl["data"], **(extra or {})}
        spec = self.queue.spec(tpl["task"], data, key=key, **tpl["options"])
        [job] = self.queue.insert_in(ch, [spec])
        _update(ch, sid, [("last_run = ?", ch.now), ("run_count = run_count + 1", _ANY), *sets])
        ch.c.execute("INSERT INTO schedule_runs VALUES (?, ?, ?, ?)", (sid, job.id, reason, ch.now))
        ch.event(job.id, "schedule.fired", {"schedule": row[3], "reason": reason})
        self._bump(ch)
        return job

    def _hold(
        self, ch: Transaction, sid: int, row: tuple, blocker: int, held: dict[str, Any],
        sets: list[tuple[str, Any]],
    ) -> None:  # fmt: skip
        """An occasion that came while run ``blocker`` is unfinished: kept (buffer_one,
        when none is kept yet) or dropped and counted, with an event on ``blocker``."""
        policy, pending, skipped = row[6], loads(row[7]), row[8]
        if held["occasion"] in (skipped, pending and pending["occasion"]):
            _update(ch, sid, sets)  # seen already (an idle period checked again)
            return
        if policy == "buffer_one" and pending is None:
            sets = [*sets, ("pending = ?", dumps(held))]
            event = "schedule.buffered"
        else:
            sets = [
                *sets, ("skip_count = skip_count + 1", _ANY), ("last_skipped = ?", ch.now),
                ("skipped_occasion = ?", held["occasion"]),
            ]  # fmt: skip
            event = "schedule.skipped"
        _update(ch, sid, sets)
        ch.event(blocker, event, {
            "schedule": row[3], "schedule_id": sid, "overlap": policy,
            "occasion": held["occasion"], "reason": held["reason"],
        })  # fmt: skip
        self._bump(ch)

    def _release(self, sid: int) -> Job | None:
        """Start the occasion ``buffer_one`` kept, if no run of the schedule is still going."""
        held = self.store.read(
            "SELECT 1 FROM schedules WHERE id = ? AND pending IS NOT NULL", (sid,)
        )
        if not held or self.store.read(_OPEN_RUN, _run_keys(sid)):  # no write lock until it can
            return None
        with self.queue.transaction() as ch:
            row = ch.c.execute(_FIRE_ROW, (sid,)).fetchone()
            if row is None or row[0] != "active" or row[7] is None or _open_run(ch.c, sid):
                return None
            held = loads(row[7])
            key = f"schedule:{sid}:{held['occasion']}"
            clear = [("pending = NULL", _ANY)]
            if ch.c.execute("SELECT 1 FROM jobs WHERE key = ?", (key,)).fetchone():
                _update(ch, sid, clear)  # backfilled or fired meanwhile: nothing to start
                self._bump(ch)
                return None
            return self._run(ch, sid, row, key, "buffered", held["extra"], clear)

    # -- backfill ------------------------------------------------------------------------------

    def backfill(
        self, schedule: int | str | Schedule, start: Any, end: Any, *, limit: int = BACKFILL_LIMIT
    ) -> list[Job]:
        """Create the runs the schedule's time trigger (cron, every, at) would have fired
        in ``[start, end)`` (datetimes, ISO date-times or Unix times); returns the jobs
        made, oldest occasion first. ::

            ws.schedules.backfill("report", "2026-11-01", "2026-11-08")  # last week's runs

        Each job's data has ``scheduled_for``, its occasion as an ISO date-time (UTC).
        Each occasion runs once: one that already has a run (fired live, or by an
        earlier backfill) is left alone, so a second backfill of a range makes nothing;
        occasions that ``overlap="skip"`` dropped are filled in. The runs are added at
        once, whatever the overlap policy (give the task ``concurrency=1`` to run them
        one at a time). More than ``limit`` occasions is an error, before any is made.
        """
        s = self.get(schedule)
        if s.kind not in triggers.TIME_KINDS:
            raise InvalidSchedule(
                f"schedule {s.name!r} fires on {s.description}, not by the clock: only cron, "
                "every and at schedules can be backfilled"
            )
        t0, t1 = _moment(start, "start"), _moment(end, "end")
        if t0 >= t1:
            raise InvalidSchedule(f"backfill start {iso(t0)} is not before its end {iso(t1)}")
        anchor = s.next_run if s.next_run is not None else s.created_at
        times = triggers.occasions(s.trigger, t0, t1, anchor, limit)
        if len(times) > limit:
            raise InvalidSchedule(
                f"backfilling {s.name!r} from {iso(t0)} to {iso(t1)} makes more than {limit} "
                "runs; narrow the range or pass a larger limit="
            )
        jobs = self._backfill(s.id, times) if times else []
        if jobs:
            self.changed()
        return jobs

    def _backfill(self, sid: int, times: list[float]) -> list[Job]:
        with self.queue.transaction() as ch:
            c = ch.c
            row = c.execute("SELECT template, name FROM schedules WHERE id = ?", (sid,)).fetchone()
            if row is None:
                raise ScheduleNotFound(f"no schedule {sid!r} in this workspace")
            tpl = loads(row[0])
            keys = {t: f"schedule:{sid}:{time_occasion(t)}" for t in times}
            new = [t for t in times if not c.execute(
                "SELECT 1 FROM jobs WHERE key = ?", (keys[t],)).fetchone()
            ]  # fmt: skip
            specs = [
                self.queue.spec(
                    tpl["task"], {**tpl["data"], "scheduled_for": iso(t)}, key=keys[t],
                    **tpl["options"],
                )
                for t in new
            ]  # fmt: skip
            jobs = self.queue.insert_in(ch, specs) if specs else []
            if not jobs:
                return []
            c.execute(
                "UPDATE schedules SET run_count = run_count + ? WHERE id = ?", (len(jobs), sid)
            )
            c.executemany(
                "INSERT INTO schedule_runs VALUES (?, ?, 'backfill', ?)",
                [(sid, j.id, ch.now) for j in jobs],
            )
            for job, t in zip(jobs, new):
                ch.event(job.id, "schedule.fired", {
                    "schedule": row[1], "reason": "backfill", "scheduled_for": iso(t),
                })  # fmt: skip
            self._bump(ch)
        return jobs

    def _advance(
        self, sid: int, expect_next: float | None, next_run: float | None, expire: bool = False
    ) -> bool:
        """Move ``next_run`` on without firing (a skipped misfire)."""
        with self.queue.transaction() as ch:
            cur = ch.c.execute(
                "UPDATE schedules SET next_run = ?" + (", status = 'expired'" if expire else "")
                + " WHERE id = ? AND next_run IS ? AND status = 'active'",
                (next_run, sid, expect_next),
            )  # fmt: skip
            self._bump(ch)
            return cur.rowcount == 1

    def _record_outcomes(self, job_ids: Iterable[int]) -> None:
        """Refresh fail counts and last results of the schedules that made these jobs.
        Recomputed from the runs, so several processes doing it agree."""
        ids = list(job_ids)
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self.queue.transaction() as ch:
            sids = [r[0] for r in ch.c.execute(
                f"SELECT DISTINCT schedule_id FROM schedule_runs WHERE job_id IN ({marks})", ids
            )]  # fmt: skip
            for sid in sids:
                failed = ch.c.execute(
                    "SELECT COUNT(*) FROM schedule_runs r JOIN jobs j ON j.id = r.job_id "
                    "WHERE r.schedule_id = ? AND j.status IN ('failed', 'cancelled')",
                    (sid,),
                ).fetchone()[0]
                last = ch.c.execute(
                    "SELECT j.id, j.status, j.result, j.error FROM schedule_runs r JOIN jobs j "
                    "ON j.id = r.job_id WHERE r.schedule_id = ? AND j.status IN "
                    "('completed', 'failed', 'cancelled') ORDER BY j.finished_at DESC, j.id DESC LIMIT 1",
                    (sid,),
                ).fetchone()
                last_result = None
                if last is not None:
                    last_result = {
                        "job": last[0],
                        "status": last[1],
                        "result": loads(last[2]),
                        "error": last[3],
                    }
                ch.c.execute(
                    "UPDATE schedules SET fail_count = ?, last_result = ? WHERE id = ?",
                    (failed, dumps(last_result), sid),
                )
            if sids:
                self._bump(ch)

    def version(self) -> int:
        rows = self.store.read("SELECT value FROM settings WHERE key = 'schedules.version'")
        return int(rows[0][0]) if rows else 0

    @staticmethod
    def _bump(ch: Transaction) -> None:
        ch.c.execute(
            "INSERT INTO settings VALUES ('schedules.version', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1"
        )


# -- firing helpers ------------------------------------------------------------------------------

_FIRE_ROW = (
    "SELECT status, next_run, template, name, last_run, last_skipped, overlap, pending, "
    "skipped_occasion FROM schedules WHERE id = ?"
)


def _open_run(c: Any, sid: int) -> int | None:
    """The id of a run of schedule ``sid`` that is still going, if any (one index probe)."""
    row = c.execute(_OPEN_RUN, _run_keys(sid)).fetchone()
    return row[0] if row else None


def _run_keys(sid: int) -> tuple[str, str]:
    """The range of the keys of schedule ``sid``'s runs (``;`` follows ``:``)."""
    return f"schedule:{sid}:", f"schedule:{sid};"


def _updates(next_run: Any, expire: bool) -> list[tuple[str, Any]]:
    """What an occasion does to its schedule however it ends: the trigger's next run, and
    the end of a one-shot trigger."""
    sets: list[tuple[str, Any]] = []
    if next_run is not _ANY:
        sets.append(("next_run = ?", next_run))
    if expire:
        sets.append(("status = 'expired'", _ANY))
    return sets


def _update(ch: Transaction, sid: int, sets: list[tuple[str, Any]]) -> None:
    """``UPDATE schedules`` with ``sets`` (SQL, value; ``_ANY``: no value) for ``sid``."""
    if sets:
        sql = ", ".join(s for s, _ in sets)
        params = [v for _, v in sets if v is not _ANY]
        ch.c.execute(f"UPDATE schedules SET {sql} WHERE id = ?", (*params, sid))


def _moment(value: Any, what: str) -> float:
    t = epoch(value)
    if t is None:
        raise InvalidSchedule(
            f"backfill {what} must be a datetime, an ISO date-time or a Unix time, not {value!r:.60}"
        )
    return t
