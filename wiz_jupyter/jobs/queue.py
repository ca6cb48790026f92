"""The queue: jobs, their dependencies and every state change, in SQL.

All state lives in the ``jobs`` and ``job_deps`` tables, so several processes
sharing one database see one queue. Each change runs in one ``BEGIN IMMEDIATE``
transaction that also appends its rows to ``job_events``; subscribers are told
after the commit. The runtime (``runtime.py``) claims and finishes jobs through
the methods in the "runtime side" section; users call the rest.

State machine::

    add ──> waiting ──claim──> active ──> completed
      │       ▲   ▲              │ └───> failed ──retry──> waiting
      │       │   └─ stalled ────┤ └───> delayed (retry after backoff) ──due──> waiting
      ├─> delayed ──due──┘       └─────> blocked (children still running) ──> completed
      └─> blocked ──deps done──> waiting / delayed        any unfinished ──cancel──> cancelled
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Unpack

from .. import telemetry
from ..errors import InvalidJob, JobNotFound, NotAwaitingInput
from . import groups, rates, retention
from .display import JobList, PendingList
from .events import Event, EventBus, resolve
from .models import (
    ACTIVE,
    AWAITING_INPUT,
    BLOCKED,
    CANCELLED,
    COLUMNS,
    COMPLETED,
    DELAYED,
    FAILED,
    INSERT_COLUMNS,
    INSERT_JOB,
    INSERT_JOB_NO_GROUP,
    NEW_ROW,
    SELECT_JOBS,
    STATUSES,
    TERMINAL,
    WAITING,
    Job,
    dumps,
    loads,
)
from .options import (
    Backoff,
    JobOptions,
    JobSpec,
    TaskSpec,
    backoff_delay,
    encode_data,
    job_spec,
)
from .options import (
    job_id as _job_id,
)
from .store import REMOVED, Store

_STATUS = INSERT_COLUMNS.index("status")  # in a row being inserted
# above the highest id in the table and the highest ever removed: ids are never reused
_NEXT_ID = (
    "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM jobs), COALESCE((SELECT CAST(value AS "
    f"INTEGER) FROM settings WHERE key = '{retention.MAX_ID_KEY}'), 0))"
)
_INSERT_TRACE = "INSERT INTO job_trace VALUES (?, ?, ?)"
_INSERT_EVENT = "INSERT INTO job_events (job_id, event, payload, at) VALUES (?,?,?,?)"
_UNRESOLVED = (
    "SELECT 1 FROM job_deps d JOIN jobs j ON j.id = d.dep_id WHERE d.job_id = ? "
    "AND j.status NOT IN ('completed', 'failed', 'cancelled') LIMIT 1"
)
_CLEAR_LEASE = "lease_owner = NULL, lease_expires = NULL"


#: see jobs/store.py, migrations 11 and 12: job_counts changes with each transaction
_COUNT = "UPDATE job_counts SET n = n + ? WHERE status = ?"
#: statuses job_counts does not keep (counts() derives them)
_DERIVED = frozenset((WAITING, ACTIVE))
#: above this many jobs in a status, a page of them walks the ids (Queue._page_by_status)
_WALK_FROM = 2000
_ISSUED_ROW = "-issued"
# counts(): the kept rows, the highest id given (ids are never reused) and active jobs
# (at most the processes' concurrency: counted by index)
_COUNTS = (
    f"SELECT status, n FROM job_counts UNION ALL SELECT '{_ISSUED_ROW}', ({_NEXT_ID}) "
    "UNION ALL SELECT 'active', COUNT(*) FROM jobs WHERE status = 'active'"
)


_TEXT_MATCH = (
    "instr(lower(task || ' ' || COALESCE(agent, '') || ' ' || COALESCE(\"group\", '') || ' ' "
    "|| id), ?) > 0"
)
_CLAIM = (
    "UPDATE jobs SET status = 'active', lease_owner = ?, lease_expires = ?, started_at = ?, "
    "attempts_made = attempts_made + 1"
)
_CLAIMED = 'RETURNING id, task, data, priority, attempts, attempts_made, timeout, "group"'
# a claim's pick: per task, its first waiting jobs (one seek of jobs_queue, which is by
# status and task: jobs of tasks this process does not run are never read, however many
# wait), at most its free slots; then the first of those in priority order
_PICK_TASK = (
    "SELECT * FROM (SELECT id, priority FROM jobs WHERE status = 'waiting' AND task = ? "
    "ORDER BY priority DESC, id LIMIT ?)"
)


@functools.lru_cache(maxsize=64)
def _pick(tasks: int) -> str:
    """The claim's pick of waiting jobs among ``tasks`` tasks (parameters: each task's name
    and its limit, then the slots)."""
    branches = " UNION ALL ".join([_PICK_TASK] * tasks)
    return f"SELECT id FROM ({branches}) ORDER BY priority DESC, id LIMIT ?"


_NOT_TERMINAL = "status NOT IN ('completed', 'failed', 'cancelled')"
# delayed jobs by their time (jobs_due, partial on status = 'delayed'): without INDEXED BY
# SQLite takes jobs_queue (status = ?) and reads every delayed job, a day of jobs planned a
# second apart on each promotion
_PROMOTE = (
    "UPDATE jobs INDEXED BY jobs_due SET status = 'waiting' "
    "WHERE status = 'delayed' AND run_at <= ? RETURNING id, task"
)
_NEXT_DUE = "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_due WHERE status = 'delayed'"


@dataclass
class Transaction:
    """One write transaction of the queue (``with queue.transaction() as tx``): its
    connection ``c``, its time ``now``, and what it did, announced once committed."""

    now: float
    c: sqlite3.Connection | None = None
    events: list[tuple[int, str, dict[str, Any] | None]] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    cancelled_active: list[int] = field(default_factory=list)
    ready: bool = False
    due: float | None = None
    #: job_counts' changes, written with the commit (see :meth:`moved`)
    counted: dict[str, int] = field(default_factory=dict)

    def event(self, job_id: int, name: str, data: dict[str, Any] | None = None) -> None:
        self.events.append((job_id, name, data))

    def delayed(self, run_at: float) -> None:
        self.due = run_at if self.due is None else min(self.due, run_at)

    def moved(self, was: str | None, to: str, n: int = 1) -> None:
        """``n`` jobs went from status ``was`` to ``to`` (``was`` None: new jobs). Every
        change of a job's status says so here, and job_counts takes the sums with the
        commit: one statement per status a transaction touched, where a trigger per row
        cost a claim-and-complete cycle 8-12% (jobs/store.py, migration 12)."""
        counted = self.counted
        if was is not None and was not in _DERIVED:
            counted[was] = counted.get(was, 0) - n
        if to not in _DERIVED:
            counted[to] = counted.get(to, 0) + n


class RuntimeHooks:
    """How the queue tells a runtime of this process about work (no-ops until one starts)."""

    def ready(self) -> None: ...
    def due(self, when: float) -> None: ...
    def cancelled(self, job_ids: list[int]) -> None: ...


class Queue:
    """``ws.jobs``: add jobs, look at them, act on them.

    Quick operations (add, get, list, cancel, retry) are plain methods; only
    :meth:`wait` is a coroutine.
    """

    def __init__(self, store: Store, events: EventBus):
        self.store = store
        self.events = events
        self._tasks: dict[str, TaskSpec] = {}
        self.hooks = RuntimeHooks()
        #: how often ``wait`` re-reads a job that another process may finish
        self.poll_interval = 0.2
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._paused: tuple[int, bool] | None = None
        self._retention: tuple[tuple[int, int], str | None] | None = None
        self._stamped = False  # this process added a job with a retention policy
        self._removers: list[Callable[[sqlite3.Connection, list[tuple]], None]] = []
        self._rates: dict[str, rates.Rate] = {}  # the tasks registered with a rate
        # per rated task: until when this process knows its window is full (it held jobs
        # back); its claims leave the task alone until then instead of holding more back
        self._rate_full: dict[str, float] = {}
        self._grouped = False  # grouped jobs were waiting at this process's last claim

    # -- tasks ---------------------------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        """The handlers this process can run, by task name (read-only: :meth:`register`)."""
        return MappingProxyType(self._tasks)

    def register(self, spec: TaskSpec) -> None:
        """Let this process run ``spec.name`` jobs (replacing an earlier handler); its
        defaults apply to jobs added here. A runtime that is running rescans at once."""
        if not isinstance(spec, TaskSpec):
            raise TypeError(f"register takes a TaskSpec, not {type(spec).__name__}")
        self._tasks[spec.name] = spec
        self._rates.pop(spec.name, None)
        self._rate_full.pop(spec.name, None)
        if spec.rate is not None:
            self._rates[spec.name] = spec.rate
        self.hooks.ready()

    def unregister(self, name: str) -> None:
        """This process no longer runs ``name`` jobs (they wait for a process that does)."""
        self._tasks.pop(name, None)
        self._rates.pop(name, None)

    # -- retention -----------------------------------------------------------------------------

    def set_retention(self, completed: Any = None, failed: Any = None) -> None:
        """The workspace's default for finished jobs whose own policy does not say (kept in
        the database, so every process applies it): ``True`` removes a job once it ends,
        an int N keeps the newest N of each task, ``{"age": seconds, "count": n}`` either
        or both; ``None`` keeps everything. Removal happens in :meth:`gc`, which a running
        runtime calls every second.

        ::

            ws.jobs.set_retention(completed={"age": 7 * 86400, "count": 1000}, failed=5000)
        """
        c, f = retention.policy(completed, "completed"), retention.policy(failed, "failed")
        value = dumps({k: v for k, v in (("completed", c), ("failed", f)) if v is not None})
        with self.transaction() as tx:
            if value == "{}":
                tx.c.execute("DELETE FROM settings WHERE key = ?", (retention.DEFAULT_KEY,))
            else:
                tx.c.execute(
                    "INSERT OR REPLACE INTO settings VALUES (?, ?)", (retention.DEFAULT_KEY, value)
                )

    @property
    def retention(self) -> dict[str, Any]:
        """The workspace's default policies as stored: ``{"completed": {...}, "failed": {...}}``."""
        return loads(self._default_retention()) or {}

    def _default_retention(self) -> str | None:
        seen = self.store.version()
        if self._retention is None or self._retention[0] != seen:
            rows = self.store.read(
                "SELECT value FROM settings WHERE key = ?", (retention.DEFAULT_KEY,)
            )
            self._retention = (seen, rows[0][0] if rows else None)
        return self._retention[1]

    def retention_active(self) -> bool:
        """Whether :meth:`gc` has anything to apply that this process knows of: a default,
        a task of this process with a policy, or a job it added with one."""
        return (
            self._stamped
            or self._default_retention() is not None
            or any(t.remove_on_complete is not None or t.remove_on_fail is not None
                   for t in self._tasks.values())
        )  # fmt: skip

    def on_remove(self, fn: Callable[[sqlite3.Connection, list[tuple]], None]) -> None:
        """Call ``fn(connection, [(id, task, data JSON), ...])`` in the transaction that
        removes jobs, so other layers remove what goes with them (agent activity, chat
        messages, an executed notebook copy)."""
        self._removers.append(fn)

    def gc(self, *, dry_run: bool = False, limit: int = 100_000) -> list[dict[str, Any]]:
        """Remove (up to ``limit``) finished jobs that their retention policies let go,
        with their events, dependency edges, schedule runs and what other layers keep of
        them; return ``[{"id", "task"}, ...]``. Never a job an unfinished job still waits
        for, nor a parent with unfinished children. ``dry_run``: only say which."""
        if dry_run:
            with self.store.lock:
                rows = retention.collect(
                    self.store.conn, time.time(), self._default_retention(), limit
                )
        else:
            with self.transaction() as tx:
                default = tx.c.execute(
                    "SELECT value FROM settings WHERE key = ?", (retention.DEFAULT_KEY,)
                ).fetchone()
                rows = retention.collect(tx.c, tx.now, default and default[0], limit)
                if rows:
                    for fn in self._removers:
                        fn(tx.c, rows)
                    retention.remove(tx.c, [r[0] for r in rows])
        return [{"id": r[0], "task": r[1]} for r in rows]

    # -- adding --------------------------------------------------------------------------------

    def add(
        self, task: str, data: dict[str, Any] | None = None, **options: Unpack[JobOptions]
    ) -> Job:
        """Add one job and return it.

        ``priority``: higher runs sooner. ``delay`` (seconds) or ``run_at``: not
        before then. ``attempts``: runs allowed in all; ``backoff`` spaces the
        retries: ``("fixed", s)`` or ``("exponential", base_s)``, with jitter.
        ``timeout`` (seconds) fails an attempt that runs longer. ``depends_on``:
        jobs that must complete first; if one fails, ``on_dep_failure="fail"``
        fails this job too and ``"ignore"`` runs it anyway. ``parent``: this job
        is a child; the parent completes only after all its children, and fails
        when a child fails unless ``fail_parent=False``. ``key``: adding again
        with the same key returns the job that has it. Task defaults from
        ``@ws.task(attempts=..., backoff=..., timeout=...)`` fill what is not given.
        ``notify=True``: when the job completes or fails, the front ends say so (a
        JupyterLab notification, see :meth:`notifications`).

        ::

            job = ws.jobs.add("fetch", {"url": u}, priority=5, attempts=3,
                              backoff=("exponential", 1.0))
        """
        spec = self.spec(task, data, **options)
        with self.transaction() as tx:
            return Job(self, self._insert(tx, [spec])[0])

    def add_notebook(
        self,
        path: Any,
        parameters: dict[str, Any] | None = None,
        *,
        kernel: str | None = None,
        cwd: Any = None,
        **options: Any,
    ) -> Job:
        """Run a notebook as a job: a copy executes in a fresh kernel, with ``parameters``
        injected after its cell tagged ``parameters`` (papermill's convention).

        ``kernel`` (default: the notebook's own) and ``cwd`` (default: its folder);
        every option of :meth:`add` applies (``timeout``, ``attempts``,
        ``depends_on``, ``priority``, ...). The job's result holds the executed
        copy's path (``result["notebook"]``, under ``ws.runs_dir``); a failing
        cell fails the job with that cell and its error.

        ::

            job = ws.jobs.add_notebook("clean.ipynb", {"day": "2026-11-24"}, timeout=600)
            report = ws.jobs.add_notebook("report.ipynb", depends_on=[job])
        """
        from .notebooks import TASK, Notebook

        nb = Notebook(path, parameters, kernel=kernel, cwd=cwd)
        return self.add(TASK, nb.job_data(), **options)

    def add_bulk(self, items: Iterable[Any]) -> list[Job]:
        """Add many jobs in one transaction; return them in order.

        Each item is ``(task, data)``, ``(task, data, {options})`` or a dict
        ``{"task": ..., "data": ..., **options}`` with the options of :meth:`add`.
        ``depends_on`` may name jobs added earlier in the same call.
        """
        specs = []
        plain: dict[str, JobSpec] = {}  # per task: the spec of a job added with no options
        for item in items:
            if type(item) is tuple and len(item) == 2 and type(item[1]) is dict:
                # the common shape, (task, data): validate the options once per task
                base = plain.get(item[0])
                if base is None:
                    base = plain[item[0]] = self.spec(item[0], {})
                specs.append(base.with_data(encode_data(item[1])))
                continue
            if isinstance(item, dict):
                opts = dict(item)
                task, data = opts.pop("task", None), opts.pop("data", None)
            elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
                task, data, opts = item[0], item[1], dict(item[2]) if len(item) == 3 else {}
            else:
                raise InvalidJob(
                    f"add_bulk items are (task, data[, options]) or dicts, not {item!r}"
                )
            specs.append(self.spec(task, data, **opts))
        if not specs:
            return []
        with self.transaction() as ch:
            rows = self._insert(ch, specs)
        seen = self.store.version()
        return [Job(self, r, seen) for r in rows]

    def spec(
        self, task: str, data: dict[str, Any] | None = None, **options: Unpack[JobOptions]
    ) -> JobSpec:
        """Check a job as :meth:`add` would, without adding it; the task's defaults
        registered in this process fill what is not given."""
        spec = job_spec(task, data, options, self._tasks.get(task))
        if spec.keep is not None:
            self._stamped = True
        return spec

    def insert_in(self, tx: Transaction, specs: Sequence[JobSpec]) -> list[Job]:
        """Add checked jobs inside a :meth:`transaction` that also changes other rows
        (a schedule firing): they commit, or not, together."""
        return [Job(self, row) for row in self._insert(tx, specs)]

    def _insert(self, ch: Transaction, specs: Sequence[JobSpec]) -> list[dict[str, Any]]:
        c, now = ch.c, ch.now
        out: list[dict[str, Any] | None] = [None] * len(specs)
        by_key: dict[str, int] = {}
        # Ids are given here (max + 1 under the write lock) so a bulk insert is one
        # executemany and dependencies within the batch can name earlier items.
        next_id = c.execute(_NEXT_ID).fetchone()[0]
        new_status: dict[int, str] = {}  # statuses of jobs created in this call
        rows, edges, finished = [], [], []
        batch: dict[int, tuple[int, int]] = {}  # id -> (its row, its place in out), this call
        added_payloads: dict[tuple[str, str], dict[str, Any]] = {}
        # the ranks of jobs with a group, when some have one
        ranks = groups.Ranks(c) if any(s.group is not None for s in specs) else None
        for i, s in enumerate(specs):
            if s.key is not None:
                if s.key in by_key:
                    out[i] = out[by_key[s.key]]
                    continue
                hit = c.execute(f"{SELECT_JOBS} WHERE key = ?", (s.key,)).fetchone()
                if hit is not None:
                    out[i] = dict(zip(COLUMNS, hit))
                    by_key[s.key] = i
                    continue
                by_key[s.key] = i
            next_id += 1
            jid = next_id
            status, error, reason = self._after_deps(c, jid, s, new_status, edges)
            finished_at = now if status == FAILED else None
            if s.parent is not None:
                p_status = new_status.get(s.parent) or self._status(c, s.parent, "parent")
                if p_status in TERMINAL:
                    raise InvalidJob(
                        f"parent {s.parent} is already {p_status}; add children before it finishes"
                    )
                edges.append((s.parent, jid, "fail" if s.fail_parent else "ignore"))
                if p_status in (WAITING, DELAYED):
                    at = batch.get(s.parent)
                    if at is None:
                        self._set_status(ch, s.parent, p_status, BLOCKED, {"reason": "children"})
                    else:  # the parent is in this batch: its row is not written yet
                        row_at, out_at = at
                        rows[row_at] = (
                            *rows[row_at][:_STATUS],
                            BLOCKED,
                            *rows[row_at][_STATUS + 1 :],
                        )
                        out[out_at]["status"] = BLOCKED  # type: ignore[index]
                        ch.event(s.parent, "job.blocked", {"reason": "children"})
                        ch.moved(p_status, BLOCKED)
                    new_status[s.parent] = BLOCKED
            if status == WAITING and s.run_at is not None and s.run_at > now:
                status = DELAYED
                ch.delayed(s.run_at)
            elif status == WAITING:
                ch.ready = True
            new_status[jid] = status
            ch.moved(None, status)
            row = (
                jid, s.task, s.agent, s.data, status, s.priority, s.run_at, s.attempts,
                s.backoff, s.timeout, s.parent, s.key, s.on_dep_failure, error, reason,
                now, finished_at, int(s.notify), s.keep,
            )  # fmt: skip
            if ranks is not None:
                row += (s.group, None if s.group is None else ranks.next(s.task, s.group))
            batch[jid] = (len(rows), i)
            rows.append(row)
            added = added_payloads.get((s.task, status))
            if added is None:  # one dict per (task, status): encoded once per transaction
                added = added_payloads[s.task, status] = {"task": s.task, "status": status}
            ch.event(jid, "job.added", added)
            if status == FAILED:
                ch.event(jid, "job.failed", {"task": s.task, "error": error, "reason": reason})
                finished.append((jid, FAILED))
            out[i] = {**NEW_ROW, **dict(zip(INSERT_COLUMNS, row))}
        self._write(c, rows, edges, ranks)
        if finished:
            self._settle(ch, finished)
        return out  # type: ignore[return-value]

    @staticmethod
    def _write(
        c: sqlite3.Connection, rows: list[tuple], edges: list[tuple], ranks: groups.Ranks | None
    ) -> None:
        """The new rows, their groups' ranks, their trace context and dependency edges."""
        c.executemany(INSERT_JOB if ranks is not None else INSERT_JOB_NO_GROUP, rows)
        if ranks is not None:
            ranks.save()
        origin = telemetry.trace_context()  # None without OpenTelemetry or outside a span
        if origin is not None and rows:
            c.executemany(_INSERT_TRACE, [(r[0], *origin) for r in rows])
        if edges:
            c.executemany("INSERT OR IGNORE INTO job_deps VALUES (?, ?, ?)", edges)

    def _after_deps(
        self,
        c: sqlite3.Connection,
        jid: int,
        s: JobSpec,
        new_status: dict[int, str],
        edges: list[tuple[int, int, str]],
    ) -> tuple[str, str | None, str | None]:
        """A new job's first status (waiting, blocked, or failed by a failed dependency),
        its error and fail reason; its dependency edges go into ``edges``."""
        status, error, reason = WAITING, None, None
        for dep in s.depends_on:
            dep_status = new_status.get(dep) or self._status(c, dep, "dependency")
            edges.append((jid, dep, s.on_dep_failure))
            if dep_status in (FAILED, CANCELLED) and s.on_dep_failure == "fail":
                status, error, reason = FAILED, f"dependency {dep} {dep_status}", "dependency"
            elif dep_status not in TERMINAL and status != FAILED:
                status = BLOCKED
        return status, error, reason

    @staticmethod
    def _status(c: sqlite3.Connection, jid: int, what: str) -> str:
        row = c.execute("SELECT status FROM jobs WHERE id = ?", (jid,)).fetchone()
        if row is None:
            raise InvalidJob(f"{what} {jid} does not exist")
        return row[0]

    # -- reading -------------------------------------------------------------------------------

    def _row(self, jid: int) -> dict[str, Any] | None:
        with self.store.lock:
            row = self.store.conn.execute(f"{SELECT_JOBS} WHERE id = ?", (jid,)).fetchone()
        return None if row is None else dict(zip(COLUMNS, row))

    def get(self, job_id: int) -> Job:
        """The job with this id; raises :class:`JobNotFound`."""
        seen = self.store.version()
        row = self._row(_job_id(job_id, "job_id"))
        if row is None:
            raise JobNotFound(f"no job {job_id} in this workspace")
        return Job(self, row, seen)

    def list(
        self,
        status: str | Iterable[str] | None = None,
        *,
        task: str | None = None,
        agent: str | None = None,
        parent: Job | int | None = None,
        group: str | None = None,
        text: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Job]:
        """Jobs matching every filter given (``group``: added with that group; ``text``:
        found, ignoring ASCII case, in the job's task, agent, group or id), oldest first unless
        ``newest_first``."""
        wanted: list[str] = []
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            unknown = set(wanted) - set(STATUSES)
            if unknown:
                raise InvalidJob(f"unknown status {sorted(unknown)}; choose from {STATUSES}")
        where, params = [], []
        for column, value in (("task", task), ("agent", agent), ('"group"', group)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if parent is not None:
            where.append("parent_id = ?")
            params.append(_job_id(parent, "parent"))
        if text:  # in SQL, so a page stops at its last match instead of loading every job
            where.append(_TEXT_MATCH)
            params.append(text.lower())
        order = " ORDER BY id DESC" if newest_first else " ORDER BY id"
        page: list[Any] = []
        if limit is not None or offset:
            page = [-1 if limit is None else int(limit), int(offset)]
        if wanted and limit is not None:
            sql, params = self._page_by_status(wanted, where, params, order, page)
        else:
            if wanted:
                where.insert(0, f"status IN ({','.join('?' * len(wanted))})")
                params[:0] = wanted
            sql = SELECT_JOBS + (" WHERE " + " AND ".join(where) if where else "") + order
            if page:
                sql += " LIMIT ? OFFSET ?"
                params += page
        seen = self.store.version()
        with self.store.lock:
            rows = self.store.conn.execute(sql, params).fetchall()
        return JobList(Job(self, dict(zip(COLUMNS, r)), seen) for r in rows)

    def _page_by_status(
        self, wanted: list[str], where: list[str], params: list[Any], order: str, page: list[Any]
    ) -> tuple[str, list[Any]]:
        """A page of jobs in ``wanted`` statuses (and ``where``), by id: one query per status,
        merged. The status index (jobs_queue: status, task, priority, id) gives a status'
        jobs by task, then priority, so SQLite would sort all of them for each page: 56 ms
        for a page of the completed ones at 100,000 jobs, on every change while the board or
        the sidebar shows them. A status with many jobs (its count is kept: counts()) is
        found instead by walking the ids from the page's end, which meets a page's worth in
        its first few hundred rows; a status with few is sorted, which is cheap then."""
        many = self.counts() if not where else {}
        parts, args = [], []
        for status in wanted:
            source = SELECT_JOBS
            if many.get(status, 0) > _WALK_FROM:
                source = SELECT_JOBS.replace(" FROM jobs", " FROM jobs NOT INDEXED")
            parts.append(f"{source} WHERE {' AND '.join(['status = ?', *where])}{order}")
            args += [status, *params]
        if len(parts) == 1:
            return f"{parts[0]} LIMIT ? OFFSET ?", args + page
        first = page[0] + page[1]  # enough of each status for the merged page
        sql = " UNION ALL ".join(f"SELECT * FROM ({p} LIMIT {first})" for p in parts)
        return f"{sql}{order} LIMIT ? OFFSET ?", args + page

    def counts(self) -> dict[str, int]:
        """``{"waiting": 3, "active": 1, ...}`` with every status, zeros included."""
        out = dict.fromkeys(STATUSES, 0)
        # a few rows, whatever the number of jobs held (jobs/store.py, migration 11)
        kept = self.store.read(_COUNTS)  # one statement: one snapshot
        issued = removed = 0
        for status, n in kept:
            if status == REMOVED:
                removed = n
            elif status == _ISSUED_ROW:
                issued = n
            else:
                out[status] = n
        out[WAITING] = issued - removed - sum(out.values())
        return out

    def events_of(self, job_id: int) -> list[dict[str, Any]]:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT event, payload, at FROM job_events WHERE job_id = ? ORDER BY id",
                (job_id,),
            ).fetchall()
        return [{"event": e, "data": loads(p) or {}, "at": at} for e, p, at in rows]

    async def wait(self, job_id: int, timeout: float | None = None) -> Any:
        """Wait for the job to finish (see :meth:`Job.wait`).

        Woken at once by a finish in this process; a finish by another process
        is seen within :attr:`poll_interval`. A job awaiting input is waited for too.
        """
        job = await self.settle(job_id, timeout, stop_at_input=False)
        return job._raise_if_failed()

    async def settle(
        self, job_id: int, timeout: float | None = None, *, stop_at_input: bool = True
    ) -> Job:
        """Wait until the job has finished or (``stop_at_input``) awaits a person's input;
        return it. What a magic waits on: a cell must not hang on a job that waits for
        the same person. Raises ``TimeoutError`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            job = self.get(job_id)
            status = job.snapshot["status"]
            if status in TERMINAL or (stop_at_input and status == AWAITING_INPUT):
                return job
            step = self.poll_interval
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} is still {status} after {timeout} s")
                step = min(step, left)
            fut = loop.create_future()
            self._waiters.setdefault(job_id, []).append(fut)
            try:
                await asyncio.wait({fut}, timeout=step)
            finally:
                futs = self._waiters.get(job_id)
                if futs and fut in futs:
                    futs.remove(fut)
                    if not futs:
                        del self._waiters[job_id]

    # -- acting on jobs ------------------------------------------------------------------------

    def cancel(self, job_id: int | Job) -> bool:
        """Cancel a job that has not finished (a running one is stopped too), and its
        unfinished children. Returns False if it had already finished."""
        jid = _job_id(job_id, "job_id")
        with self.transaction() as ch:
            status = self._status_or_404(ch.c, jid)
            if status in TERMINAL:
                return False
            self._cancel(ch, jid, status)
        return True

    def _cancel(self, ch: Transaction, jid: int, status: str) -> None:
        ch.c.execute(
            f"UPDATE jobs SET status = 'cancelled', error = 'cancelled', fail_reason = 'cancelled', "
            f"finished_at = ?, {_CLEAR_LEASE} WHERE id = ?",
            (ch.now, jid),
        )
        ch.event(jid, "job.cancelled", {"was": status})
        ch.moved(status, CANCELLED)
        if status == ACTIVE:
            ch.cancelled_active.append(jid)
        for child, child_status in ch.c.execute(
            f"SELECT id, status FROM jobs WHERE parent_id = ? AND {_NOT_TERMINAL}", (jid,)
        ).fetchall():
            self._cancel(ch, child, child_status)
        self._settle(ch, [(jid, CANCELLED)])

    def retry(self, job_id: int | Job) -> Job:
        """Run a failed or cancelled job again, with its attempts counted afresh.

        Jobs that failed only because this one failed (its dependents, its
        parent) are revived too and wait for it again.
        """
        jid = _job_id(job_id, "job_id")
        with self.transaction() as ch:
            status = self._status_or_404(ch.c, jid)
            if status not in (FAILED, CANCELLED):
                raise InvalidJob(
                    f"job {jid} is {status}; only failed or cancelled jobs can be retried"
                )
            self._requeue(ch, jid, status, reason="retry")
        return self.get(jid)

    def _requeue(self, ch: Transaction, jid: int, was: str, reason: str) -> None:
        c = ch.c
        blocked = c.execute(_UNRESOLVED, (jid,)).fetchone() is not None
        status = BLOCKED if blocked else WAITING
        c.execute(
            f"UPDATE jobs SET status = ?, attempts_made = 0, error = NULL, fail_reason = NULL, "
            f"result = NULL, progress = NULL, body_done = 0, finished_at = NULL, started_at = NULL, "
            f"run_at = NULL, {_CLEAR_LEASE} WHERE id = ?",
            (status, jid),
        )
        ch.event(jid, f"job.{status}", {"reason": reason})
        ch.moved(was, status)
        ch.ready = ch.ready or status == WAITING
        revive = c.execute(
            "SELECT d.job_id FROM job_deps d JOIN jobs j ON j.id = d.job_id "
            "WHERE d.dep_id = ? AND j.status = 'failed' AND j.fail_reason = 'dependency'",
            (jid,),
        ).fetchall()
        for (dependent,) in revive:
            self._requeue(ch, dependent, FAILED, reason=f"dependency {jid} retried")

    def set_priority(self, job_id: int | Job, priority: int) -> Job:
        """Change the priority of a job that has not finished (higher runs sooner)."""
        jid = _job_id(job_id, "job_id")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidJob(f"priority must be an integer, not {priority!r}")
        with self.transaction() as ch:
            status = self._status_or_404(ch.c, jid)
            if status in TERMINAL:
                raise InvalidJob(f"job {jid} is {status}; its priority no longer matters")
            ch.c.execute("UPDATE jobs SET priority = ? WHERE id = ?", (priority, jid))
            ch.event(jid, "job.priority", {"priority": priority})
        return self.get(jid)

    # -- people in the loop: approvals and questions ----------------------------------------

    def pending(self, *, agent: str | None = None) -> PendingList:
        """The jobs awaiting a person's input, oldest first: one dict each with ``job``
        (the id), ``task``, ``agent``, ``kind`` (``approval`` or ``question``), ``tool``
        and ``args`` (an approval; secrets already redacted), ``question``, ``since``.
        Shows as a table in a notebook (every value escaped).

        ::

            ws.jobs.pending()
            ws.jobs.approve(12); ws.jobs.deny(13, "not that file"); ws.jobs.answer(14, "yes")
        """
        return PendingList(
            {"job": j.id, "task": j.task, "agent": j.agent, "since": (j.input or {}).get("since"),
             **((j.input or {}).get("request") or {})}
            for j in self.list(AWAITING_INPUT, agent=agent)
        )  # fmt: skip

    def approve(self, job_id: int | Job) -> Job:
        """Approve the tool call a job awaits approval for: the job goes back to waiting,
        and when it runs the tool runs once and the agent goes on. Raises
        :class:`NotAwaitingInput` (one line) if the job is not awaiting input: a job
        that two processes approve at once runs the tool once."""
        return self._reply(job_id, {"approved": True}, ("approval",), "approved")

    def deny(self, job_id: int | Job, reason: str) -> Job:
        """Refuse a job's tool call (or decline its question): ``reason`` goes back to
        the model as the tool's result, and the agent goes on without it."""
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidJob(
                f"say why job {_job_id(job_id, 'job_id')} is denied: a reason is needed"
            )
        return self._reply(
            job_id,
            {"approved": False, "reason": reason.strip()},
            ("approval", "question"),
            "denied",
        )

    def answer(self, job_id: int | Job, text: str) -> Job:
        """Answer the question a job asked (an agent's ``ask_user``): the answer becomes
        the tool's result."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidJob(f"give job {_job_id(job_id, 'job_id')} an answer: the text is empty")
        return self._reply(job_id, {"answer": text}, ("question",), "answered")

    def _reply(
        self, job_id: int | Job, reply: dict[str, Any], kinds: tuple[str, ...], what: str
    ) -> Job:
        """The compare-and-set awaiting_input -> waiting, with the reply, in one write
        transaction: of two processes replying at once, the second finds it waiting."""
        jid = _job_id(job_id, "job_id")
        with self.transaction() as ch:
            status = self._status_or_404(ch.c, jid)
            if status != AWAITING_INPUT:
                raise NotAwaitingInput(f"job {jid} is not awaiting input (it is {status})")
            task, raw = ch.c.execute("SELECT task, input FROM jobs WHERE id = ?", (jid,)).fetchone()
            held = loads(raw) or {}
            kind = (held.get("request") or {}).get("kind")
            if kind not in kinds:
                raise NotAwaitingInput(
                    f"job {jid} asks a question, not for approval: answer it "
                    f"(ws.jobs.answer({jid}, text), %wiz answer {jid} TEXT) or deny it"
                    if kind == "question"
                    else f"job {jid} awaits approval of a tool call, not an answer: approve or deny it"
                )
            held["reply"] = {**reply, "at": ch.now}
            cur = ch.c.execute(
                "UPDATE jobs SET status = 'waiting', input = ? WHERE id = ? "
                "AND status = 'awaiting_input'",
                (dumps(held), jid),
            )
            if not cur.rowcount:  # cannot happen under the write lock; never reply twice
                raise NotAwaitingInput(f"job {jid} is not awaiting input")
            ch.event(jid, f"job.{what}", {"task": task, **reply})
            ch.event(jid, "job.waiting", {"task": task, "reason": what})
            ch.moved(AWAITING_INPUT, WAITING)
            ch.ready = True
        return self.get(jid)

    def pause(self) -> None:
        """Stop every runtime sharing this database from starting jobs (running ones finish)."""
        self._set_paused(True)

    def resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        with self.transaction() as ch:
            ch.c.execute(
                "INSERT OR REPLACE INTO settings VALUES ('queue.paused', ?)", (dumps(paused),)
            )
            ch.ready = not paused
        self._paused = (self.store.version()[1], paused)
        self.events.emit(Event("queue.paused" if paused else "queue.resumed"))

    @property
    def paused(self) -> bool:
        # read again only after another connection's commit: this queue's own pause and
        # resume set it (one Queue per Store), and its job commits cannot change it (a
        # read per runtime pass was 4% of a concurrency-1 cycle)
        seen = self.store.version()[1]
        if self._paused is None or self._paused[0] != seen:
            rows = self.store.read("SELECT value FROM settings WHERE key = 'queue.paused'")
            self._paused = (seen, bool(rows and loads(rows[0][0])))
        return self._paused[1]

    # -- notifications -------------------------------------------------------------------------

    @property
    def notifications_on(self) -> bool:
        """The workspace's switch for notifications (on unless turned off): while off,
        :meth:`notifications` announces nothing and ``%wiz`` background jobs do not ask
        to be announced."""
        rows = self.store.read("SELECT value FROM settings WHERE key = 'notify'")
        return not rows or bool(loads(rows[0][0]))

    def set_notifications(self, on: bool) -> None:
        """Turn the workspace's notifications on or off (``%wiz notify on|off``)."""
        with self.transaction() as ch:
            ch.c.execute("INSERT OR REPLACE INTO settings VALUES ('notify', ?)", (dumps(bool(on)),))

    def notifications(
        self, after: int | None = None, limit: int = 50
    ) -> tuple[int, list[dict[str, Any]]]:
        """The ends (completed or failed) of jobs added with ``notify=True``, after the
        cursor ``after``: returns ``(cursor, notes)``; pass the cursor back next time.

        ``after=None`` starts from now: the current cursor and no notes, so a front
        end that opens does not replay old news. Each note is ``{"cursor", "job_id",
        "status", "task", "agent", "error", "at"}``. Empty while notifications are off.
        """
        # the newest event first, then the notes up to it: an event committed between the
        # two reads is left for the next call, never skipped
        last = self.store.read("SELECT COALESCE(MAX(id), 0) FROM job_events")[0][0]
        if after is None:
            return last, []
        rows = self.store.read(
            "SELECT e.id, e.job_id, e.event, e.at, j.task, j.agent, j.error FROM job_events e "
            "JOIN jobs j ON j.id = e.job_id WHERE e.id > ? AND e.id <= ? AND j.notify = 1 "
            "AND e.event IN ('job.completed', 'job.failed') ORDER BY e.id LIMIT ?",
            (int(after), last, int(limit)),
        )
        cursor = rows[-1][0] if len(rows) == limit else max(int(after), last)
        if not rows:
            return cursor, []
        on = self.notifications_on
        notes = [
            {
                "cursor": r[0], "job_id": r[1], "status": r[2].split(".", 1)[1], "at": r[3],
                "task": r[4], "agent": r[5], "error": r[6] if r[2] == "job.failed" else None,
            }
            for r in rows
        ]  # fmt: skip
        return cursor, notes if on else []

    def progress(self, job_id: int, value: float | dict[str, Any]) -> None:
        """Record a job's progress (0-100, or a dict) and tell subscribers."""
        if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
            raise InvalidJob(f"progress is a number 0-100 or a dict, not {value!r}")
        with self.transaction() as ch:
            ch.c.execute("UPDATE jobs SET progress = ? WHERE id = ?", (dumps(value), job_id))
            ch.event(job_id, "job.progress", {"progress": value})

    def log(self, job_id: int, line: str) -> None:
        """Append a log line to a job's history."""
        with self.transaction() as ch:
            ch.event(job_id, "job.log", {"line": line})

    # -- runtime side --------------------------------------------------------------------------

    def claim(
        self, owner: str, slots: int, lease: float, tasks: dict[str, int | None]
    ) -> list[dict[str, Any]]:
        """Atomically take up to ``slots`` waiting jobs of ``tasks`` for ``owner``.

        ``tasks`` maps each task this process can run to its free slots (None:
        no limit of its own). Highest priority first, then oldest. One
        ``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE``: two processes can
        never take the same job. Tasks registered with a ``rate`` start only as many as
        their window shared by every process has room for (:meth:`_hold_over_rate`).
        """
        tasks = {t: n for t, n in tasks.items() if n is None or n > 0}
        if self._rate_full:
            tasks = self._rate_open(tasks)
        if slots <= 0 or not tasks:
            return []
        names = list(tasks)
        pick = _pick(len(names))
        params = [x for t, n in tasks.items() for x in (t, slots if n is None else min(n, slots))]
        params.append(slots)
        with self.transaction() as ch:
            now = ch.now
            claim = f"{_CLAIM} WHERE id IN ({{}}) {_CLAIMED}"
            head = [owner, now + lease, now]
            if self._grouped:  # grouped jobs waited at the last claim: are they still?
                self._grouped = groups.waiting(ch.c, names)
            rows = []
            if not self._grouped:
                rows = ch.c.execute(claim.format(pick), [*head, *params]).fetchall()
                if any(r[7] is not None for r in rows):
                    # grouped jobs came to the head (the first ones added, by any
                    # process): put these back, in this transaction, and claim by the
                    # groups' rules from now on. Asking first on every claim cost 5% of
                    # the queue's speed; until a grouped job is at the head, jobs
                    # without a group go in their usual order, as they would then.
                    self._give_back(ch, [r[0] for r in rows])
                    self._grouped = True
            if self._grouped:  # jobs with a group: rotate, and mind group limits
                ids = groups.pick(ch.c, tasks, slots, self._group_limits(names))
                rows = []
                if ids:
                    rows = ch.c.execute(claim.format(",".join("?" * len(ids))), [*head, *ids])
                    rows = rows.fetchall()
            if self._rates:  # rate limits: what the shared window has no room for goes back
                rows = self._hold_over_rate(ch, rows)
            for r in rows:
                ch.event(r[0], "job.active", {"task": r[1], "attempt": r[5]})
        rows.sort(key=lambda r: (-r[3], r[0]))
        keys = ("id", "task", "data", "priority", "attempts", "attempts_made", "timeout")
        return [dict(zip(keys, r)) for r in rows]

    def trace_origins(self, job_ids: Sequence[int]) -> dict[int, tuple[Any, Any, float]]:
        """For telemetry: per claimed job, ``(traceparent, tracestate, ready_at)``: the trace
        context stored when it was added (None, None without one) and when it could first
        run (added, or its ``run_at`` when later)."""
        marks = ",".join("?" * len(job_ids))
        rows = self.store.read(
            "SELECT j.id, t.traceparent, t.tracestate, MAX(j.created_at, COALESCE(j.run_at, 0)) "
            f"FROM jobs j LEFT JOIN job_trace t ON t.job_id = j.id WHERE j.id IN ({marks})",
            tuple(job_ids),
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def _rate_open(self, tasks: dict[str, int | None]) -> dict[str, int | None]:
        """``tasks`` without those whose rate window this process saw full (until it opens)."""
        now = time.time()
        for t, until in list(self._rate_full.items()):
            if until <= now:
                del self._rate_full[t]
        return {t: n for t, n in tasks.items() if t not in self._rate_full}

    def _hold_over_rate(self, ch: Transaction, rows: list[tuple]) -> list[tuple]:
        """Of the jobs just claimed, start those of rated tasks that their window (shared by
        every process, jobs/rates.py) has room for, and take that room; the others go back,
        ``delayed`` to when the window has room again, with their attempt given back: a
        rate never fails a job nor uses an attempt."""
        picked: dict[str, list[tuple]] = {}
        for r in rows:
            if r[1] in self._rates:
                picked.setdefault(r[1], []).append(r)
        held: set[int] = set()
        for task, mine in picked.items():
            rate, key = self._rates[task], f"task:{task}"
            mine.sort(key=lambda r: (-r[3], r[0]))  # the claim's order: the first ones start
            entries = rates.window(ch.c, key, ch.now, rate.per)
            go = max(0, min(len(mine), rates.room(entries, rate, ch.now)))
            if go:
                rates.take(ch.c, key, ch.now, go, longest=rate.per)
                entries.append(rates.Entry(ch.now, go, 0))
            back = [r[0] for r in mine[go:]]
            if not back:
                continue
            when = rates.opens(entries, rate, ch.now)
            self._give_back(ch, back, when)
            info = {"task": task, "reason": "rate", "rate": str(rate), "run_at": when}
            for jid in back:
                ch.event(jid, "job.delayed", info)
            ch.delayed(when)
            self._rate_full[task] = when
            held.update(back)
        return [r for r in rows if r[0] not in held] if held else rows

    @staticmethod
    def _give_back(ch: Transaction, ids: list[int], run_at: float | None = None) -> None:
        """Undo a claim of ``ids`` made in the same transaction (nothing else saw it): back
        to waiting, or delayed until ``run_at``, with the attempt given back."""
        ch.moved(ACTIVE, WAITING if run_at is None else DELAYED, len(ids))
        ch.c.execute(
            "UPDATE jobs SET status = ?, run_at = COALESCE(?, run_at), started_at = NULL, "
            f"attempts_made = attempts_made - 1, {_CLEAR_LEASE} "
            f"WHERE id IN ({','.join('?' * len(ids))})",
            (WAITING if run_at is None else DELAYED, run_at, *ids),
        )

    def _group_limits(self, names: list[str]) -> dict[str, int | None]:
        return {n: getattr(self._tasks.get(n), "group_concurrency", None) for n in names}

    def complete_many(self, owner: str, results: list[tuple[int, str, str]]) -> None:
        """Finish ``(job id, task, result JSON)`` for jobs this owner still holds.

        A job whose children are still running moves to ``blocked`` with its result
        kept; it completes when the last child finishes.
        """
        with self.transaction() as ch:
            c, now = ch.c, ch.now
            finished = []
            for jid, task, result in results:
                if c.execute(_UNRESOLVED, (jid,)).fetchone() is not None:
                    cur = c.execute(
                        f"UPDATE jobs SET status = 'blocked', body_done = 1, result = ?, "
                        f"{_CLEAR_LEASE} WHERE id = ? AND status = 'active' AND lease_owner = ?",
                        (result, jid, owner),
                    )
                    if cur.rowcount:
                        ch.event(jid, "job.blocked", {"task": task, "reason": "children"})
                        ch.moved(ACTIVE, BLOCKED)
                    continue
                cur = c.execute(
                    f"UPDATE jobs SET status = 'completed', result = ?, finished_at = ?, "
                    f"{_CLEAR_LEASE} WHERE id = ? AND status = 'active' AND lease_owner = ?",
                    (result, now, jid, owner),
                )
                if cur.rowcount:  # else: cancelled, or lost the lease meanwhile
                    ch.event(jid, "job.completed", {"task": task})
                    finished.append((jid, COMPLETED))
            if finished:
                ch.moved(ACTIVE, COMPLETED, len(finished))
                self._settle(ch, finished)

    def fail(
        self,
        owner: str,
        job_id: int,
        error: str,
        reason: str = "error",
        *,
        retryable: bool = True,
        details: dict[str, Any] | None = None,
    ) -> str | None:
        """Record a failed attempt; retry after the backoff if attempts remain.

        Returns the job's new status, or None if the owner no longer held it.
        """
        with self.transaction() as ch:
            row = ch.c.execute(
                "SELECT task, attempts, attempts_made, backoff FROM jobs "
                "WHERE id = ? AND status = 'active' AND lease_owner = ?",
                (job_id, owner),
            ).fetchone()
            if row is None:
                return None
            task, attempts, made, backoff = row
            info = {
                "task": task,
                "error": error,
                "reason": reason,
                "attempt": made,
                **(details or {}),
            }
            if retryable and made < attempts:
                return self._retry_later(ch, job_id, made, loads(backoff), info)
            self._finish_failed(ch, job_id, error, reason, info)
            return FAILED

    def _retry_later(
        self, ch: Transaction, jid: int, made: int, backoff: Backoff | None, info: dict[str, Any]
    ) -> str:
        delay = backoff_delay(backoff, made)
        status = DELAYED if delay > 0 else WAITING
        run_at = ch.now + delay if delay > 0 else None
        ch.c.execute(
            f"UPDATE jobs SET status = ?, run_at = ?, error = ?, fail_reason = ?, {_CLEAR_LEASE} "
            "WHERE id = ?",
            (status, run_at, info["error"], info["reason"], jid),
        )
        ch.event(jid, f"job.{status}", {**info, "retry_in": round(delay, 3)})
        ch.moved(ACTIVE, status)
        if run_at is not None:
            ch.delayed(run_at)
        else:
            ch.ready = True
        return status

    def _finish_failed(
        self, ch: Transaction, jid: int, error: str, reason: str, info: dict[str, Any]
    ) -> None:
        ch.c.execute(
            f"UPDATE jobs SET status = 'failed', error = ?, fail_reason = ?, finished_at = ?, "
            f"{_CLEAR_LEASE} WHERE id = ?",
            (error, reason, ch.now, jid),
        )
        ch.event(jid, "job.failed", info)
        ch.moved(ACTIVE, FAILED)
        self._settle(ch, [(jid, FAILED)])

    def await_input(self, owner: str, job_id: int, request: dict[str, Any]) -> bool:
        """Park a running job until a person replies: ``awaiting_input``, with no lease
        (so nothing recovers it as stalled) and no slot; the attempt does not count.
        Returns False if the owner no longer held it."""
        with self.transaction() as ch:
            row = ch.c.execute(
                f"UPDATE jobs SET status = 'awaiting_input', input = ?, "
                f"attempts_made = MAX(attempts_made - 1, 0), {_CLEAR_LEASE} "
                "WHERE id = ? AND status = 'active' AND lease_owner = ? RETURNING task",
                (dumps({"request": request, "reply": None, "since": ch.now}), job_id, owner),
            ).fetchone()
            if row is None:
                return False
            ch.event(job_id, "job.awaiting_input", {"task": row[0], **request})
            ch.moved(ACTIVE, AWAITING_INPUT)
            ch.finished.append(job_id)  # wakes whoever settles on it (a waiting magic)
        return True

    def renew(self, owner: str, job_ids: Iterable[int], lease: float) -> set[int]:
        """Extend the owner's leases; return the ids it no longer holds (cancelled, or
        taken over after its lease ran out) so the runtime can stop them."""
        with self.store.write() as c:
            held = {
                r[0]
                for r in c.execute(
                    "UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? AND status = 'active' "
                    "RETURNING id",
                    (time.time() + lease, owner),
                )
            }
        return set(job_ids) - held

    def release(self, owner: str, job_ids: Iterable[int]) -> None:
        """Give back running jobs on a graceful stop; the attempt does not count."""
        with self.transaction() as ch:
            for jid in job_ids:
                cur = ch.c.execute(
                    f"UPDATE jobs SET status = 'waiting', attempts_made = MAX(attempts_made - 1, 0), "
                    f"{_CLEAR_LEASE} WHERE id = ? AND status = 'active' AND lease_owner = ?",
                    (jid, owner),
                )
                if cur.rowcount:
                    ch.event(jid, "job.waiting", {"reason": "released"})
                    ch.ready = True

    def recover_stalled(self, owner: str, keep: Iterable[int] = ()) -> int:
        """Jobs whose lease ran out (their process died) go back to waiting, or fail
        when their attempts are used up. Returns how many were recovered.

        ``owner``'s own jobs are recovered too (a lease it lost track of), except those
        in ``keep``: the jobs it still runs or has an outcome to write for."""
        kept = set(keep)
        expired = self.store.read(  # a read first: the usual answer is "none", and needs no lock
            "SELECT id, lease_owner FROM jobs WHERE status = 'active' AND lease_expires < ?",
            (time.time(),),
        )
        if not any(o != owner or i not in kept for i, o in expired):
            return 0
        with self.transaction() as ch:
            rows = [
                r
                for r in ch.c.execute(
                    "SELECT id, task, attempts, attempts_made, backoff, lease_owner FROM jobs "
                    "WHERE status = 'active' AND lease_expires < ?",
                    (ch.now,),
                ).fetchall()
                if r[5] != owner or r[0] not in kept
            ]
            for jid, task, attempts, made, backoff, dead in rows:
                error = f"stalled: worker {dead} stopped renewing its lease (process ended?)"
                info = {"task": task, "error": error, "reason": "stalled", "attempt": made}
                if made < attempts:
                    self._retry_later(ch, jid, made, loads(backoff), info)
                else:
                    self._finish_failed(ch, jid, error, "stalled", info)
        return len(rows)

    def promote_due(self) -> float | None:
        """Delayed jobs whose time has come become waiting. Returns the next due time."""
        with self.transaction() as ch:
            due = ch.c.execute(_PROMOTE, (ch.now,)).fetchall()
            for jid, task in due:
                ch.event(jid, "job.waiting", {"task": task, "reason": "due"})
            if due:
                ch.moved(DELAYED, WAITING, len(due))
                ch.ready = True
            nxt = ch.c.execute(_NEXT_DUE).fetchone()
        return nxt[0]

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction (``BEGIN IMMEDIATE``) whose events are written with it
        and announced after the commit: the seam for other tables' changes that make
        jobs (schedules fire through it with :meth:`insert_in`)."""
        ch = Transaction(now=time.time())
        with self.store.write() as c:
            ch.c = c
            yield ch
            if ch.counted:
                c.executemany(_COUNT, [(n, st) for st, n in ch.counted.items() if n])
            if ch.events:
                now = ch.now
                encoded: dict[int, str] = {}  # by id(): a payload shared by many events
                rows = []
                for j, n, d in ch.events:
                    if d is None:
                        rows.append((j, n, None, now))
                        continue
                    text = encoded.get(id(d))
                    if text is None:
                        text = encoded[id(d)] = dumps(d)
                    rows.append((j, n, text, now))
                c.executemany(_INSERT_EVENT, rows)
        self._announce(ch)

    def _announce(self, ch: Transaction) -> None:
        bus = self.events
        for jid, name, data in ch.events:
            if bus.listeners(name):
                bus.emit(Event(name, jid, data or {}, ch.now))
        for jid in ch.finished:
            for fut in self._waiters.pop(jid, ()):
                fut.get_loop().call_soon_threadsafe(resolve, fut)
        if ch.cancelled_active:
            self.hooks.cancelled(ch.cancelled_active)
        if ch.due is not None:
            self.hooks.due(ch.due)
        if ch.ready:
            self.hooks.ready()

    def _status_or_404(self, c: sqlite3.Connection, jid: int) -> str:
        row = c.execute("SELECT status FROM jobs WHERE id = ?", (jid,)).fetchone()
        if row is None:
            raise JobNotFound(f"no job {jid} in this workspace")
        return row[0]

    def _set_status(
        self, ch: Transaction, jid: int, was: str, status: str, data: dict[str, Any]
    ) -> None:
        ch.c.execute("UPDATE jobs SET status = ? WHERE id = ?", (status, jid))
        ch.event(jid, f"job.{status}", data)
        ch.moved(was, status)

    def _settle(self, ch: Transaction, finished: list[tuple[int, str]]) -> None:
        """Propagate finished jobs to the jobs blocked on them: unblock those with
        nothing left to wait for, fail those whose dependency failed."""
        c, now = ch.c, ch.now
        work = list(finished)
        while work:
            jid, status = work.pop()
            ch.finished.append(jid)
            bad = status in (FAILED, CANCELLED)
            for dep, on_failure, task, body_done, run_at in c.execute(
                "SELECT d.job_id, d.on_failure, j.task, j.body_done, j.run_at FROM job_deps d "
                "JOIN jobs j ON j.id = d.job_id WHERE d.dep_id = ? AND j.status = 'blocked'",
                (jid,),
            ).fetchall():
                if bad and on_failure == "fail":
                    error = f"dependency {jid} {status}"
                    c.execute(
                        f"UPDATE jobs SET status = 'failed', error = ?, fail_reason = 'dependency', "
                        f"finished_at = ?, {_CLEAR_LEASE} WHERE id = ?",
                        (error, now, dep),
                    )
                    ch.event(
                        dep, "job.failed", {"task": task, "error": error, "reason": "dependency"}
                    )
                    ch.moved(BLOCKED, FAILED)
                    work.append((dep, FAILED))
                elif c.execute(_UNRESOLVED, (dep,)).fetchone() is None:
                    if body_done:  # a parent whose own work was done: its children are now too
                        c.execute(
                            "UPDATE jobs SET status = 'completed', finished_at = ? WHERE id = ?",
                            (now, dep),
                        )
                        ch.event(dep, "job.completed", {"task": task})
                        ch.moved(BLOCKED, COMPLETED)
                        work.append((dep, COMPLETED))
                    elif run_at is not None and run_at > now:
                        self._set_status(
                            ch, dep, BLOCKED, DELAYED, {"task": task, "reason": "unblocked"}
                        )
                        ch.delayed(run_at)
                    else:
                        self._set_status(
                            ch, dep, BLOCKED, WAITING, {"task": task, "reason": "unblocked"}
                        )
                        ch.ready = True
