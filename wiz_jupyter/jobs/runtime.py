"""The in-kernel runtime: an asyncio worker on the running loop (the kernel's).

It sleeps until something can change what is runnable: a job added or
finished in this process, the timer of the next delayed job, the next stalled
lease check, or the short poll for work added by other processes (SQLite has
no cross-process notification; the poll reads ``PRAGMA data_version`` and
claims only when the database changed). There is no once-a-second loop.

Leases are renewed from a small maintenance thread, not from the loop: a
notebook cell that runs blocking code stops the loop, and its jobs must not
look dead to another process meanwhile. When the process dies, the thread dies
with it and the leases run out. The same thread checkpoints the WAL, so that
work never lands inside a commit on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import threading
import time
import traceback
import uuid
from collections import Counter
from typing import Any, Protocol

from .. import telemetry
from ..errors import AwaitInput, StoreError, Unrecoverable
from .events import resolve
from .executors import (
    DaskExecutor,
    Encoded,
    Executor,
    LoopExecutor,
    ThreadExecutor,
    UnserialisableResult,
)
from .models import JobContext, current_job, dumps
from .options import TaskSpec
from .queue import Queue, RuntimeHooks
from .store import background

#: What a write the database refused right now raises: SQLite's own errors, and the
#: store's WorkspaceBusy / WorkspaceFull. The runtime keeps such writes and retries them.
UNWRITTEN = (sqlite3.Error, StoreError)
#: Seconds the database may refuse writes before the runtime says so (a warning).
REFUSAL_QUIET = 2.0
#: retention: how often a running runtime removes what the policies let go, and how many
#: jobs at most in one pass (one transaction; the next pass takes the rest)
GC_INTERVAL = 1.0
GC_BATCH = 5000

log = logging.getLogger("wiz_jupyter.runtime")


class Chore(Protocol):
    """Work a runtime does beside jobs, on its loop, every ``interval`` seconds: quick
    database work kept in step with the queue (outbound notifications turn job ends into
    delivery jobs). A write the database refuses is simply tried again next time."""

    interval: float

    def run(self) -> None:
        """Do what is due now (on the loop: quick, never waiting on the database's lock)."""

    def pending(self) -> bool:
        """Whether there is work left for :meth:`run` (``run_until_idle`` waits for it)."""


class Runtime(RuntimeHooks):
    """Works the queue's jobs for the tasks registered in this process.

    ``concurrency`` bounds running jobs in all; ``@ws.task(concurrency=n)``
    bounds one task. ``lease`` is how long a claimed job stays ours without a
    renewal (renewed every third of it). ``poll_interval`` is how soon work
    added by another process is noticed.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        concurrency: int = 16,
        lease: float = 30.0,
        poll_interval: float = 0.1,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.queue = queue
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.executors: dict[str, Executor] = {}
        self.dask: DaskExecutor | None = None  # set by use_dask; survives stop and start
        self._closing: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._worker: asyncio.Task | None = None
        self._wake_fut: asyncio.Future | None = None
        self._tick_futs: list[asyncio.Future] = []
        self._active: dict[int, tuple[asyncio.Task, JobContext, str]] = {}
        self._by_task: Counter[str] = Counter()
        self._stopped_ids: set[int] = set()  # cancelled, lost or released: record nothing
        self._pending: list[tuple[int, str, str]] = []
        # failures (and timeouts) the database could not take yet: (job id, fn, args, kwargs)
        self._unwritten: list[tuple[int, Any, tuple, dict]] = []
        self._flush_scheduled = False
        # since when the database has refused writes (None: it takes them), and whether that
        # was said: a refusal shorter than REFUSAL_QUIET is routine contention, not news
        self._refusing_since: float | None = None
        self._refusal_said = False
        self._next_due: float | None = None
        self._quiet_at: tuple[int, int] | None = None  # db version when a claim found no more
        self._stopping = False
        self._beat_stop = threading.Event()
        self._beat: threading.Thread | None = None
        #: what the worker loop also does, each at its own interval (see :class:`Chore`)
        self.chores: list[Chore] = []
        self._chores_due: dict[int, float] = {}

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    @property
    def active_ids(self) -> list[int]:
        return list(self._active)

    def use_dask(self, target: Any, *, n_workers: int | None = None) -> DaskExecutor:
        """Run the bodies of ``executor="dask"`` tasks on this cluster (see
        :class:`~wiz_jupyter.jobs.executors.DaskExecutor`). Connects on the runtime's
        loop: now if it is running, else when it starts."""
        old = self.dask
        self.dask = DaskExecutor(target, events=self.queue.events, n_workers=n_workers)
        if self.running:
            self.executors["dask"] = self.dask
            self._call(self._switch_dask, old, self.dask)
        return self.dask

    def _switch_dask(self, old: DaskExecutor | None, new: DaskExecutor) -> None:
        assert self._loop is not None
        if old is not None:  # bodies still running there lose it: failed attempts, retried
            task = self._loop.create_task(old.disconnect())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        new.connect(self._loop)
        self._rescan()

    def _runnable(self, spec: TaskSpec) -> bool:
        """Dask tasks wait (unclaimed) until ``use_dask`` gives them a cluster that
        did not refuse the connection."""
        return spec.executor != "dask" or (self.dask is not None and self.dask.error is None)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        loop = asyncio.get_running_loop()
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._stopping = False
        self.queue.events.loop = loop
        self.queue.hooks = self
        self.executors = {"loop": LoopExecutor(), "thread": ThreadExecutor(self.concurrency)}
        if self.dask is not None:
            self.executors["dask"] = self.dask
            self.dask.connect(loop)
        self._next_due = time.time()  # promote anything already due on the first pass
        self._worker = loop.create_task(self._work(), name="wiz-runtime")
        self._beat_stop.clear()
        self._beat = threading.Thread(target=self._maintain, name="wiz-maintenance", daemon=True)
        self._beat.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; give running jobs ``grace`` seconds to finish, then cancel
        them and release them back to the queue (their attempt does not count)."""
        if self._worker is None:
            return
        self._stopping = True
        self._wake_up()
        await asyncio.gather(self._worker, return_exceptions=True)
        if self._active:
            tasks = [t for t, _, _ in self._active.values()]
            await asyncio.wait(tasks, timeout=grace)
            left = list(self._active)
            if left:
                self._stopped_ids.update(left)
                for t, ctx, _ in list(self._active.values()):
                    ctx.stop()
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.queue.release(self.owner, left)
        self._flush()
        self._beat_stop.set()
        if self._beat is not None:
            await asyncio.to_thread(self._beat.join)
        for ex in self.executors.values():
            ex.close()
        if self.dask is not None:
            await self.dask.disconnect()
        self._worker = None
        self.queue.hooks = RuntimeHooks()

    async def run_until_idle(self, timeout: float | None = None) -> None:
        """Work until no job of this process's tasks is waiting, delayed or running.

        Starts the runtime for the duration if it is not running (and on a timeout
        then releases the jobs still running back to the queue at once). Jobs
        blocked on work of other processes, and a paused queue, count as idle.
        """
        started_here = not self.running
        timed_out = False
        if started_here:
            await self.start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while not self._idle():
                step = self.poll_interval
                if deadline is not None:
                    left = deadline - loop.time()
                    if left <= 0:
                        timed_out = True
                        raise TimeoutError(f"still busy after {timeout} s: {self.queue.counts()}")
                    step = min(step, left)
                fut = loop.create_future()
                self._tick_futs.append(fut)
                handle = loop.call_later(step, resolve, fut)
                try:
                    await fut
                finally:
                    handle.cancel()
        finally:
            if started_here:
                await self.stop(grace=0 if timed_out else 10.0)

    def _held(self) -> set[int]:
        """Jobs this process still answers for: running, or with an outcome to write."""
        return {*self._active, *(j for j, _, _ in self._pending), *(u[0] for u in self._unwritten)}

    def _idle(self) -> bool:
        if self._active or self._pending or self._unwritten:
            return False
        if self.chores and any(c.pending() for c in self.chores):
            return False
        names = [n for n, spec in self.queue.tasks.items() if self._runnable(spec)]
        if self.queue.paused or not names:
            return True
        rows = self.queue.store.read(
            f"SELECT 1 FROM jobs WHERE status IN ('waiting', 'delayed') AND task IN "
            f"({','.join('?' * len(names))}) LIMIT 1",
            tuple(names),
        )
        return not rows

    # -- hooks from the queue (any thread) -----------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def ready(self) -> None:
        self._call(self._rescan)

    def _rescan(self) -> None:
        """Claim again even if the database has not changed: what this process can run
        has (a task registered, a Dask cluster given)."""
        self._quiet_at = None
        self._wake_up()

    def due(self, when: float) -> None:
        self._call(self._set_due, when)

    def cancelled(self, job_ids: list[int]) -> None:
        self._call(self._stop_jobs, job_ids)

    def _set_due(self, when: float) -> None:
        if self._next_due is None or when < self._next_due:
            self._next_due = when
            self._wake_up()

    def _stop_jobs(self, job_ids: Any) -> None:
        for jid in job_ids:
            entry = self._active.get(jid)
            if entry is not None:
                self._stopped_ids.add(jid)
                entry[1].stop()
                entry[0].cancel()

    def _wake_up(self) -> None:
        if self._wake_fut is not None:
            resolve(self._wake_fut)
        if self._tick_futs:
            futs, self._tick_futs = self._tick_futs, []
            for f in futs:
                resolve(f)

    # -- the worker ----------------------------------------------------------------------------

    async def _work(self) -> None:
        background()  # our writes (and those of the jobs started here) never wait on the loop
        loop = asyncio.get_running_loop()
        q = self.queue
        next_stall_check = next_gc = 0.0
        self._quiet_at = None  # claim on the first pass
        while not self._stopping:
            self._wake_fut = loop.create_future()
            try:
                now = time.time()
                if self._next_due is not None and self._next_due <= now:
                    self._next_due = None
                    nxt = q.promote_due()
                    if nxt is not None:
                        self._set_due(nxt)
                if self.chores:
                    self._run_chores(now)
                if now >= next_stall_check:
                    next_stall_check = now + self.lease / 2
                    q.recover_stalled(self.owner, keep=self._held())
                if now >= next_gc:  # retention: what the policies let go, a batch at a time
                    next_gc = now + GC_INTERVAL
                    # a full batch means more are due: go again on the next pass, so that
                    # removal keeps up with a queue working faster than a batch a second
                    if q.retention_active() and len(q.gc(limit=GC_BATCH)) == GC_BATCH:
                        next_gc = now
                free = self.concurrency - len(self._active)
                if free > 0 and q.tasks and q.store.version() != self._quiet_at and not q.paused:
                    slots = {
                        name: None
                        if spec.concurrency is None
                        else spec.concurrency - self._by_task[name]
                        for name, spec in q.tasks.items()
                        if self._runnable(spec)
                    }
                    rows = q.claim(self.owner, free, self.lease, slots)
                    if rows and telemetry.enabled():  # OpenTelemetry: a span per attempt
                        origins = q.trace_origins([r["id"] for r in rows])
                        for row in rows:
                            self._start_job(row, origins.get(row["id"]))
                    else:
                        for row in rows:
                            self._start_job(row)
                    self._quiet_at = None if len(rows) == free else q.store.version()
            except UNWRITTEN as e:  # a locked or full database: try again shortly
                self._refused(e)
            except Exception:
                log.exception("wiz runtime: unexpected error")
            wait = self.poll_interval
            if self._next_due is not None:
                wait = min(wait, self._next_due - time.time())
            if self._chores_due:
                wait = min(wait, min(self._chores_due.values()) - time.time())
            wait = max(0.0, min(wait, next_stall_check - time.time()))
            handle = loop.call_later(wait, resolve, self._wake_fut)
            try:
                await self._wake_fut
            finally:
                handle.cancel()

    def _run_chores(self, now: float) -> None:
        for chore in self.chores:
            if now < self._chores_due.get(id(chore), 0.0):
                continue
            self._chores_due[id(chore)] = now + chore.interval
            try:
                chore.run()
            except UNWRITTEN as e:  # locked or full: its next turn tries again
                self._refused(e)
            except Exception:
                log.exception("wiz runtime: %r failed", chore)

    def _start_job(self, row: dict[str, Any], origin: tuple | None = None) -> None:
        spec = self.queue.tasks.get(row["task"])
        loop = self._loop
        assert loop is not None
        ctx = JobContext(self.queue, row, loop)
        run: Any = self._run_job(row, spec, ctx)
        if origin is not None:  # OpenTelemetry: the attempt runs in its span
            run = telemetry.job_attempt(run, row, origin)
        task = loop.create_task(run, name=f"wiz-job-{row['id']}")
        self._active[row["id"]] = (task, ctx, row["task"])
        self._by_task[row["task"]] += 1

    async def _run_job(
        self, row: dict[str, Any], spec: TaskSpec | None, ctx: JobContext
    ) -> tuple[str, BaseException | None]:
        """Run one attempt and record its outcome; return what became of it (completed,
        retry, failed or cancelled) and the exception that failed it, for telemetry."""
        jid, name = row["id"], row["task"]
        current_job.set(ctx)
        timeout = row["timeout"]
        try:
            if spec is None:  # unregistered between claim and start
                raise LookupError(f"no handler for task {name!r} in this process")
            kwargs = spec.arguments(ctx.data)
            if spec.wants_job:
                kwargs = {**kwargs, "job": ctx}
            executor = self.executors[spec.executor]
            began = None
            if timeout and getattr(executor, "announces_start", False):
                began = ctx._began = asyncio.get_running_loop().create_future()
            body = executor.run(spec.fn, kwargs, ctx, spec)
            if timeout:
                try:
                    result = await _timed(body, timeout, began)
                except _TimedOut:
                    ctx.stop()
                    error = f"timed out after {timeout:g} s"
                    return self._failed(row, error, "timeout"), TimeoutError(error)
            else:
                result = await body
        except asyncio.CancelledError:
            ctx.stop()
            if jid not in self._stopped_ids:
                raise
            return "cancelled", None
        except AwaitInput as e:  # parked until a person replies: its slot is free at once
            self._outcome(jid, self.queue.await_input, self.owner, jid, e.request)
            return "awaiting_input", None
        except UnserialisableResult as e:
            error = f"result is not JSON-serialisable: {e}"
            return self._failed(row, error, "error", retryable=False), e
        except Exception as e:
            final = isinstance(e, Unrecoverable)  # no retry will fix it: fail now
            details = {"traceback": traceback.format_exc(limit=-8)}
            reason = "unrecoverable" if final else "error"
            error = f"{type(e).__name__}: {e}"
            return self._failed(row, error, reason, retryable=not final, details=details), e
        else:
            try:
                encoded = str(result) if isinstance(result, Encoded) else dumps(result)
            except (TypeError, ValueError) as e:
                error = f"result is not JSON-serialisable: {e}"
                return self._failed(row, error, "error", retryable=False), e
            self._pending.append((jid, name, encoded))
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
            return "completed", None
        finally:
            self._active.pop(jid, None)
            self._by_task[name] -= 1
            self._stopped_ids.discard(jid)
            self._wake_up()

    def _failed(
        self,
        row: dict[str, Any],
        error: str,
        reason: str,
        *,
        retryable: bool = True,
        details: dict[str, Any] | None = None,
    ) -> str:
        """Record a failed attempt (now, or later: :meth:`_outcome`); return ``retry`` if
        the job runs again, else ``failed`` (as :meth:`Queue.fail` decides)."""
        jid = row["id"]
        self._outcome(
            jid, self.queue.fail, self.owner, jid, error, reason,
            retryable=retryable, details=details,
        )  # fmt: skip
        again = retryable and row["attempts_made"] < row["attempts"]
        return "retry" if again else "failed"

    def _flush(self) -> None:
        """Commit the completions gathered since the last flush in one transaction, and
        the failures the database could not take before. What it still refuses (locked
        by another process, a full disk) is kept, and tried again shortly: an outcome is
        never dropped, and its job's lease is renewed meanwhile."""
        self._flush_scheduled = False
        if not self._pending and not self._unwritten:
            return
        batch, self._pending = self._pending, []
        failures, self._unwritten = self._unwritten, []
        written = False
        if batch:
            try:
                self.queue.complete_many(self.owner, batch)
                written = True
            except UNWRITTEN as e:
                self._refused(e)
                self._pending[:0] = batch
        for i, (_jid, fn, args, kwargs) in enumerate(failures):
            try:
                fn(*args, **kwargs)
                written = True
            except UNWRITTEN:
                self._unwritten.extend(failures[i:])
                break
        if self._pending or self._unwritten:
            self._retry_flush()
        elif self._refusing_since is not None:
            self._refusing_since = None
            if self._refusal_said:
                self._refusal_said = False
                log.warning(
                    "wiz runtime: the database takes writes again; every kept outcome is written"
                )
        if written:
            self._wake_up()

    def _refused(self, error: BaseException) -> None:
        """Note that the database refuses writes; say so once, and only when it lasts.

        A kernel has no logging set up, so a warning lands on stderr, in whatever cell is
        running: a moment's contention (another connection's checkpoint, a second
        process's commit) is retried quietly."""
        now = time.monotonic()
        if self._refusing_since is None:
            self._refusing_since = now
        log.debug("wiz runtime: a write was refused, kept for later: %s", error)
        if not self._refusal_said and now - self._refusing_since >= REFUSAL_QUIET:
            self._refusal_said = True
            log.warning("wiz runtime: %s; outcomes are kept and written when it allows", error)

    def _retry_flush(self) -> None:
        if self._loop is not None and not self._loop.is_closed() and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_later(0.05, self._flush)

    def _outcome(self, jid: int, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Record a job's failure now, or keep it for :meth:`_flush` to write later."""
        try:
            fn(*args, **kwargs)
        except UNWRITTEN as e:
            self._refused(e)
            self._unwritten.append((jid, fn, args, kwargs))
            self._retry_flush()

    def _maintain(self) -> None:
        """The maintenance thread: renew leases every third of a lease, checkpoint the WAL."""
        store = self.queue.store
        conn = None if store.in_memory else store.connect()
        if conn is not None:
            store.checkpoint_in_background(True)
        next_renewal = time.monotonic() + self.lease / 3
        checkpointed_at = -1
        try:
            while not self._beat_stop.wait(min(0.2, self.lease / 3)):
                if conn is not None and store._local_version != checkpointed_at:
                    checkpointed_at = store._local_version
                    try:
                        store.checkpoint(conn)
                    except sqlite3.Error as e:  # busy: the next tick tries again
                        log.debug("wiz runtime: checkpoint skipped: %s", e)
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + self.lease / 3
                    self._renew()
        finally:
            if conn is not None:
                conn.close()
                try:
                    store.checkpoint_in_background(False)
                except sqlite3.Error:  # the workspace was closed under us
                    pass

    def _renew(self) -> None:
        try:
            ids = list(self._held())
        except RuntimeError:  # resized while copied; next time
            return
        if not ids:
            return
        try:
            lost = self.queue.renew(self.owner, ids, self.lease)
        except UNWRITTEN as e:
            log.warning("wiz runtime: lease renewal failed: %s", e)
            return
        if lost:
            self.cancelled(sorted(lost))


class _TimedOut(Exception):
    """A body's ``timeout`` ran out (not the body's own ``TimeoutError``)."""


async def _timed(body: Any, timeout: float, began: asyncio.Future | None) -> Any:
    """``await body`` for at most ``timeout`` seconds from its start: now, or, for a body
    that may first wait in a cluster's queue (Dask), when ``began`` resolves. Raises
    :class:`_TimedOut` when the time is up (the body is cancelled); the body's own
    ``TimeoutError`` passes through."""
    if began is None:
        started = time.monotonic()
        try:
            return await asyncio.wait_for(body, timeout)
        except asyncio.TimeoutError:
            if time.monotonic() - started < timeout * 0.99:
                raise  # the handler's own TimeoutError, not ours
            raise _TimedOut() from None
    task = asyncio.ensure_future(body)
    try:
        await asyncio.wait({task, began}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # cancel or stop while queued: the body goes too
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    return await _timed(task, timeout, None)
