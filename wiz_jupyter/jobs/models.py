"""Rows as small objects: :class:`Job` (a live handle on a job row) and :class:`JobContext`
(what a running handler sees); the jobs row's columns (:data:`COLUMNS`, the one list of
them: the table's migrations are checked against it by the tests)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime as dt
import json
import math
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import JobCancelled, JobFailed, StoreError

if TYPE_CHECKING:
    from .queue import Queue

WAITING, DELAYED, BLOCKED, ACTIVE = "waiting", "delayed", "blocked", "active"
#: a job parked until a person replies (an approval, an answer): no slot, no lease
AWAITING_INPUT = "awaiting_input"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
STATUSES = (WAITING, DELAYED, BLOCKED, ACTIVE, AWAITING_INPUT, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

COLUMNS = (
    "id task agent data status priority run_at attempts attempts_made backoff timeout "
    "parent_id key on_dep_failure lease_owner lease_expires progress result error "
    "fail_reason body_done created_at started_at finished_at notify keep group group_seq input"
).split()
_JSON_COLUMNS = ("data", "backoff", "progress", "result", "input")
#: reads name the columns, so rows never depend on the table's column order; quoted,
#: since "group" is an SQL keyword
SELECT_JOBS = "SELECT " + ", ".join(f'"{c}"' for c in COLUMNS) + " FROM jobs"
#: what a new row is written with; the other columns start as in NEW_ROW
INSERT_COLUMNS = (
    "id task agent data status priority run_at attempts backoff timeout parent_id key "
    "on_dep_failure error fail_reason created_at finished_at notify keep group group_seq"
).split()
INSERT_JOB = (
    "INSERT INTO jobs (" + ", ".join(f'"{c}"' for c in INSERT_COLUMNS) + ") "
    f"VALUES ({','.join('?' * len(INSERT_COLUMNS))})"
)
#: the same without the group columns (the last two), for batches with no grouped job: two
#: parameters fewer per row is most of what groups would otherwise cost a plain add
INSERT_JOB_NO_GROUP = (
    "INSERT INTO jobs (" + ", ".join(f'"{c}"' for c in INSERT_COLUMNS[:-2]) + ") "
    f"VALUES ({','.join('?' * (len(INSERT_COLUMNS) - 2))})"
)
NEW_ROW: dict[str, Any] = {**dict.fromkeys(COLUMNS), "attempts_made": 0, "body_done": 0}
#: a job in a list (the board, the sidebar, the REST API); data and result come with its detail
SUMMARY_COLUMNS = (
    "id task agent status priority progress attempts attempts_made error fail_reason "
    "parent_id run_at created_at started_at finished_at notify group input"
).split()


def _default(o: Any) -> Any:
    """JSON for the values notebook code returns most: numpy scalars and arrays,
    datetimes, sets, dataclasses and pydantic models."""
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, (dt.datetime, dt.date, dt.time)):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "tolist"):  # numpy arrays and scalars
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


_encoder = json.JSONEncoder(default=_default, separators=(",", ":"))
dumps = _encoder.encode


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Job:
    """A job of the workspace queue, as returned by ``ws.jobs.add`` and ``ws.jobs.get``.

    Attributes read the row afresh when the database has changed since the last
    read (another cell, a handler thread or another process), so ``job.status``
    is always current::

        job = ws.jobs.add("fetch", {"url": u})
        result = await job.wait()
    """

    __slots__ = ("_queue", "_row", "_seen")

    def __init__(self, queue: Queue, row: dict[str, Any], seen: tuple[int, int] | None = None):
        self._queue = queue
        self._row = row
        self._seen = seen

    @property
    def snapshot(self) -> dict[str, Any]:
        """The row as last read, with no query (columns by name, JSON columns as text):
        what a list of jobs shows, consistent with the moment it was read."""
        return self._row

    def _get(self, column: str) -> Any:
        if self._queue.store.version() != self._seen:
            self.refresh()
        return self._row[column]

    def refresh(self) -> Job:
        """Re-read the row now."""
        fresh = self._queue._row(self.id)
        if fresh is not None:
            self._row = fresh
        self._seen = self._queue.store.version()
        return self

    # identity never changes
    @property
    def id(self) -> int:
        return self._row["id"]

    @property
    def task(self) -> str:
        return self._row["task"]

    @property
    def agent(self) -> str | None:
        return self._row["agent"]

    @property
    def data(self) -> dict[str, Any]:
        return loads(self._row["data"])

    @property
    def key(self) -> str | None:
        return self._row["key"]

    @property
    def parent_id(self) -> int | None:
        return self._row["parent_id"]

    @property
    def group(self) -> str | None:
        """The group it was added with (``ws.jobs.add(..., group="alice")``), or None."""
        return self._row["group"]

    # state, read live
    @property
    def status(self) -> str:
        return self._get("status")

    @property
    def priority(self) -> int:
        return self._get("priority")

    @property
    def progress(self) -> Any:
        return loads(self._get("progress"))

    @property
    def result(self) -> Any:
        return loads(self._get("result"))

    @property
    def error(self) -> str | None:
        return self._get("error")

    @property
    def fail_reason(self) -> str | None:
        """Why it failed: ``error``, ``timeout``, ``stalled``, ``dependency`` or ``cancelled``."""
        return self._get("fail_reason")

    @property
    def attempts(self) -> int:
        return self._get("attempts")

    @property
    def attempts_made(self) -> int:
        return self._get("attempts_made")

    @property
    def run_at(self) -> float | None:
        return self._get("run_at")

    @property
    def created_at(self) -> float:
        return self._row["created_at"]

    @property
    def started_at(self) -> float | None:
        return self._get("started_at")

    @property
    def finished_at(self) -> float | None:
        return self._get("finished_at")

    @property
    def notify(self) -> bool:
        """Whether the front ends announce this job when it completes or fails."""
        return bool(self._row["notify"])

    @property
    def input(self) -> dict[str, Any] | None:
        """What the job asked a person and their reply, while or since it was
        ``awaiting_input``: ``{"request": {...}, "reply": {...} or None, "since": t}``;
        None for a job that never asked."""
        return loads(self._get("input"))

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        """The row, with its JSON columns decoded."""
        self.refresh()
        row = dict(self._row)
        for c in _JSON_COLUMNS:
            row[c] = loads(row[c])
        return row

    async def wait(self, timeout: float | None = None) -> Any:
        """Wait until the job is finished; return its result or raise :class:`JobFailed`.

        Raises ``TimeoutError`` after ``timeout`` seconds (the job goes on).
        """
        return await self._queue.wait(self.id, timeout)

    def cancel(self) -> bool:
        return self._queue.cancel(self.id)

    def retry(self) -> Job:
        return self._queue.retry(self.id)

    def set_priority(self, priority: int) -> Job:
        return self._queue.set_priority(self.id, priority)

    def events(self) -> list[dict[str, Any]]:
        """This job's history from ``job_events``, oldest first."""
        return self._queue.events_of(self.id)

    def logs(self) -> list[str]:
        return [e["data"].get("line", "") for e in self.events() if e["event"] == "job.log"]

    def children(self) -> list[Job]:
        return self._queue.list(parent=self.id)

    def children_results(self) -> dict[int, Any]:
        """``{child id: result}`` of the completed children."""
        return {c.id: c.result for c in self.children() if c.status == COMPLETED}

    def _raise_if_failed(self) -> Any:
        status = self.status
        if status == COMPLETED:
            return self.result
        raise JobFailed(self.id, status, self.error)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} {self.status}>"

    def _repr_html_(self) -> str:
        from .display import JobList

        self.refresh()
        return JobList([self])._repr_html_()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and other._queue is self._queue

    def __hash__(self) -> int:
        return hash(self.id)


def epoch(value: Any) -> float | None:
    """A moment as a Unix time: a datetime (naive ones are local time, as users write
    them), an ISO date-time string, or a finite number of seconds; None for anything else
    (``True`` included). Callers raise their own error with the option's name."""
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip()).timestamp()
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


#: The keys a schedule's trigger adds to a job's data (webhook, watch, after; a
#: backfilled run's ``scheduled_for``).
TRIGGER_DATA = ("payload", "changes", "upstream", "scheduled_for")

current_job: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "wiz_current_job", default=None
)


class JobContext:
    """What a running handler sees of its job: ``wiz.current_job()``, or a parameter
    named ``job``. Safe to use from a handler thread.

    ::

        @ws.task
        def crunch(n: int, job):
            for i in range(n):
                job.progress(100 * i // n)
                job.check_cancelled()
    """

    def __init__(self, queue: Queue, row: dict[str, Any], loop: asyncio.AbstractEventLoop):
        self._queue = queue
        self._loop = loop
        self.id: int = row["id"]
        self.task: str = row["task"]
        self.attempt: int = row["attempts_made"]
        self.attempts: int = row["attempts"]
        self.data: dict[str, Any] = loads(row["data"])
        self._cancelled = False  # a plain flag is enough across threads
        # resolved by an executor whose bodies may wait in a queue first (Dask) when the
        # body starts: the job's timeout counts from then (set only for jobs with one)
        self._began: asyncio.Future | None = None

    @property
    def trigger(self) -> dict[str, Any]:
        """What the schedule's trigger brought: ``payload`` (webhook), ``changes`` (watch),
        ``upstream`` (after), ``scheduled_for`` (a backfilled run); empty for a job not
        made by such a trigger."""
        return {k: self.data[k] for k in TRIGGER_DATA if k in self.data}

    def _on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._write(fn, *args)
        else:
            self._loop.call_soon_threadsafe(self._write, fn, *args)

    def _write(self, fn: Callable[..., Any], *args: Any) -> None:
        """A progress report or log line, now or, while another process holds the
        database (or the disk is full), a little later: never an error for the job."""
        try:
            fn(*args)
        except (StoreError, sqlite3.Error):
            if not self._loop.is_closed():
                self._loop.call_later(0.2, self._write, fn, *args)

    def progress(self, value: float | dict[str, Any]) -> None:
        """Report progress: a number 0-100 or a dict (``{"done": 3, "of": 10}``)."""
        self._on_loop(self._queue.progress, self.id, value)

    def log(self, line: str) -> None:
        """Append a log line to the job's history."""
        self._on_loop(self._queue.log, self.id, str(line))

    @property
    def input(self) -> dict[str, Any] | None:
        """The job's last request to a person and its reply (see :attr:`Job.input`): a
        handler resumed after ``approve``/``deny``/``answer`` finds the reply here."""
        return self._queue.get(self.id).input

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def stop(self) -> None:
        """Tell the handler to stop: :attr:`cancelled` turns true and
        :meth:`check_cancelled` raises. The runtime calls it when the job is cancelled,
        times out or its process stops; it changes nothing in the database."""
        self._cancelled = True

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled (for long sync loops)."""
        if self._cancelled:
            raise JobCancelled(f"job {self.id} was cancelled")

    def add_child(self, task: str, data: dict[str, Any] | None = None, **options: Any) -> Job:
        """Add a child job; this job completes only after its children finish."""
        return self._queue.add(task, data, parent=self.id, **options)

    def children_results(self) -> dict[int, Any]:
        return self.job().children_results()

    def job(self) -> Job:
        return self._queue.get(self.id)

    def __repr__(self) -> str:
        return f"<JobContext {self.id} {self.task} attempt {self.attempt}/{self.attempts}>"
