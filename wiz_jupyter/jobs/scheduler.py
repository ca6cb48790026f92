"""The scheduler: fires schedules from timers and events on the running loop.

One pass (:meth:`Scheduler.tick`) reloads the schedules if any changed (in
this process or another), follows the ``job_events`` log for ``after``
triggers and run outcomes, and fires what is due. Between passes the
scheduler sleeps on a timer set for the next due time (through the clock, so
tests can move time by hand), on a wake-up from this process (a schedule
changed, a job finished), or for ``poll_interval`` to notice other
processes' changes. Folder watches run as their own tasks (inotify via
watchfiles, no polling).
"""

from __future__ import annotations

import asyncio
import atexit
import fnmatch
import hashlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .models import Job, loads
from .schedules import Schedule, Schedules, time_occasion
from .store import background
from .triggers import SYSTEM_TRIGGERS, TIME_KINDS, BaseTrigger, Fire, Trigger

log = logging.getLogger("wiz_jupyter.scheduler")
_TERMINAL_EVENTS = ("job.completed", "job.failed", "job.cancelled")


def in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _outcomes(event: str, payload: dict[str, Any]) -> set[str]:
    if event == "job.completed":
        return {"completed", "finished"}
    if event == "job.cancelled":
        return {"finished"}
    out = {"failed", "finished"}
    if payload.get("reason") == "timeout":
        out.add("timeout")
    return out


class Scheduler:
    """Fires the workspace's schedules while it runs (``await ws.start()``)."""

    def __init__(self, schedules: Schedules, *, owner: str, poll_interval: float = 0.5):
        self.schedules = schedules
        self.queue = schedules.queue
        self.clock = schedules.clock
        self.owner = owner
        self.poll_interval = poll_interval
        self.in_kernel = in_kernel()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Future | None = None
        self._active: dict[int, Schedule] = {}
        self._seen: tuple[Any, ...] | None = None
        self._schedules_version = -1
        self._next: float | None = None  # the next due time, as of the last full pass
        self._polled = False  # any idle or custom trigger (checked on every pass)
        self._cursor = 0
        self._tailed_at: tuple[int, int] | None = None
        self._watchers: dict[int, tuple[asyncio.Task, asyncio.Event, str]] = {}
        self._custom: dict[int, tuple[Trigger, float, str]] = {}
        self._unsubscribe: list[Any] = []
        self._exit_fired = False
        self._shutdown_fired = False
        self._started_at: float | None = None
        self._idle_since: dict[int, float] = {}
        self.fired: list[int] = []  # ids of the jobs this scheduler made, oldest first

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        rows = self.queue.store.read("SELECT COALESCE(MAX(id), 0) FROM job_events")
        self._cursor = rows[0][0]
        self.schedules.changed = self.wake
        for name in _TERMINAL_EVENTS:
            self._unsubscribe.append(self.queue.events.on(name, self._job_finished))
        self._exit_fired = self._shutdown_fired = False
        self._started_at = time.time()
        self.tick()
        if self.in_kernel:
            self._fire_kernel("start")
            atexit.register(self._at_exit)
        self._task = self._loop.create_task(self._run(), name="wiz-scheduler")

    async def stop(self) -> None:
        if self._task is None:
            return
        if self.in_kernel:
            self._fire_kernel("exit")
            atexit.unregister(self._at_exit)
        self.fire_shutdown()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        for sid in list(self._watchers):
            await self._stop_watch(sid)
        for sid in list(self._custom):
            self._stop_custom(sid)
        for off in self._unsubscribe:
            off()
        self._unsubscribe.clear()
        self.schedules.changed = lambda: None
        self._seen = None

    def wake(self) -> None:
        """Run a pass soon (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._resolve_wake()
        else:
            loop.call_soon_threadsafe(self._resolve_wake)

    def _resolve_wake(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _job_finished(self, event: Any) -> None:
        self.wake()

    async def _run(self) -> None:
        background()  # its writes never wait for another process's lock on the loop
        loop = asyncio.get_running_loop()
        while True:
            self._wake = loop.create_future()
            nxt = None
            try:
                nxt = self.tick()
            except StoreError as e:  # locked by another process, a full disk: next pass
                log.debug("wiz scheduler: %s; trying again", e)
            except Exception:
                log.exception("wiz scheduler: a pass failed; trying again")
            handles = [loop.call_later(self.poll_interval, self._resolve_wake)]
            if nxt is not None:
                handles.append(self.clock.call_at(loop, nxt, self._resolve_wake))
            try:
                await self._wake
            finally:
                for h in handles:
                    h.cancel()

    def _fire(self, sid: int, **how: Any) -> Job | None:
        job = self.schedules._fire(sid, **how)
        if job is not None:
            self.fired.append(job.id)
        return job

    # -- one pass ------------------------------------------------------------------------------

    def tick(self) -> float | None:
        """Fire everything due now; return when the next time trigger is due."""
        changed = self._reload()
        changed = self._tail() or changed
        self._release()
        now = self.clock.now()
        # Nothing changed and nothing due yet: the answer is the one from last time.
        # (Idle and custom triggers are checked on every pass.)
        if not changed and not self._polled and (self._next is None or now < self._next):
            return self._next
        nxt: float | None = None
        for s in list(self._active.values()):
            try:
                due = self._check(s, now)
            except StoreError as e:  # it fires on a later pass, once the database allows
                log.debug("wiz scheduler: schedule %r could not fire yet: %s", s.name, e)
                due = now + self.poll_interval
            except Exception:
                log.exception("wiz scheduler: schedule %r failed to fire", s.name)
                continue
            if due is not None and (nxt is None or due < nxt):
                nxt = due
        self._next = nxt
        return nxt

    def _check(self, s: Schedule, now: float) -> float | None:
        kind = s.kind
        if kind in TIME_KINDS:
            if s.next_run is None:
                return None
            if s.next_run > now:
                return s.next_run
            self._fire_time(s, now)
            fresh = self._active.get(s.id)
            return fresh.next_run if fresh is not None else None
        if kind == "idle":
            return self._check_idle(s, now)
        if kind == "custom":
            return self._check_custom(s, now)
        return None

    def _fire_time(self, s: Schedule, now: float) -> None:
        spec, due = s.trigger, s.next_run
        assert due is not None
        one_shot = s.kind == "at"
        nxt = BaseTrigger.from_spec(spec).next_after(due, now)
        late = now - due > spec.get("grace", 60.0)
        if late and spec.get("misfire") == "skip":
            self.schedules._advance(s.id, due, nxt, expire=one_shot)
        else:
            reason = "misfire" if late else s.kind
            self._fire(
                s.id, occasion=time_occasion(due), reason=reason, expect_next=due, next_run=nxt,
                expire=one_shot,
            )  # fmt: skip
        self._reload(force=True)

    def _check_idle(self, s: Schedule, now: float) -> float | None:
        # Idleness is timed on the scheduler's clock from the first pass that saw no
        # work; the occasion is the agent's last job, so each idle period fires once
        # (in whichever process sees it first).
        agent, seconds = s.trigger["agent"], s.trigger["seconds"]
        busy = self.queue.store.read(
            "SELECT 1 FROM jobs WHERE agent = ? AND status IN "
            "('waiting', 'delayed', 'blocked', 'active') LIMIT 1",
            (agent,),
        )
        if busy:
            self._idle_since.pop(s.id, None)
            return None  # a finishing job wakes us
        since = self._idle_since.setdefault(s.id, now)
        if now < since + seconds:
            return since + seconds
        last = self.queue.store.read("SELECT MAX(id) FROM jobs WHERE agent = ?", (agent,))[0][0]
        self._fire(s.id, occasion=f"idle:{last or 0}", reason="idle")
        return None

    def _check_custom(self, s: Schedule, now: float) -> float | None:
        entry = self._custom.get(s.id)
        if entry is None:
            return None
        trig, next_check, _ = entry
        if now < next_check:
            return next_check
        every = max(float(trig.check_every), 0.01)
        self._custom[s.id] = (trig, now + every, entry[2])
        try:
            out = trig.evaluate(now)
        except Exception:
            log.exception("wiz scheduler: custom trigger %r raised in evaluate", s.name)
            out = None
        if out:
            fire = out if isinstance(out, Fire) else Fire(out if isinstance(out, dict) else None)
            self._fire(
                s.id, occasion=fire.occasion or f"custom:{int(now // every)}",
                reason=s.trigger["name"] if s.trigger["name"] in SYSTEM_TRIGGERS else "custom",
                extra=fire.data, not_since=fire.not_since,
            )  # fmt: skip
        return now + every

    def _fire_kernel(self, which: str) -> None:
        if which == "exit":
            if self._exit_fired:
                return
            self._exit_fired = True
        for s in self.schedules.list(status="active"):
            if s.kind == "kernel" and s.trigger["on"] == which:
                self._fire(s.id, occasion=f"kernel-{which}:{self.owner}", reason=f"kernel {which}")

    def fire_shutdown(self) -> list[tuple[Job, float]]:
        """Fire the active ``shutdown`` schedules, once per run of this scheduler;
        returns the jobs made, each with its schedule's grace (seconds)."""
        if self._shutdown_fired or self._started_at is None:
            return []
        self._shutdown_fired = True
        fired = []
        for s in self.schedules.list(status="active"):
            if s.kind == "custom" and s.trigger["name"] == "shutdown":
                job = self._fire(
                    s.id, occasion=f"shutdown:{self.owner}:{self._started_at!r}", reason="shutdown"
                )
                if job is not None:
                    fired.append((job, float(s.trigger["params"].get("grace", 10.0))))
        return fired

    def _at_exit(self) -> None:
        try:
            self._fire_kernel("exit")
            self.fire_shutdown()  # no loop left to work it: the next runtime will
        except Exception:  # the interpreter is going away; nothing to tell
            pass

    def run_due(self) -> float | None:
        """One pass outside the loop (``wiz run-due``): fire what is due, misfires included."""
        return self.tick()

    # -- reloading -----------------------------------------------------------------------------

    def _reload(self, force: bool = False) -> bool:
        # Cheap checks first: any commit at all, then the schedules' own change counter.
        seen = (self.queue.store.version(), tuple(sorted(self.schedules.trigger_classes)))
        if not force and seen == self._seen:
            return False
        version = self.schedules.version()
        same_classes = self._seen is not None and seen[1] == self._seen[1]
        self._seen = seen
        if not force and same_classes and version == self._schedules_version:
            return False
        self._schedules_version = version
        active = {s.id: s for s in self.schedules.list(status="active")}
        self._active = active
        self._polled = any(s.kind in ("idle", "custom") for s in active.values())
        self._sync_watchers(active)
        self._sync_custom(active)
        for s in active.values():  # `after` a job that finished while nobody watched
            if s.kind == "after" and s.trigger.get("job") is not None:
                job = self.queue.get(s.trigger["job"])
                if job.done:
                    reason = job.fail_reason
                    event = {"completed": "job.completed", "cancelled": "job.cancelled"}.get(
                        job.status, "job.failed"
                    )
                    self._after_job(s, job.id, _outcomes(event, {"reason": reason}))
        return True

    def _release(self) -> None:
        """Start the occasions buffer_one kept, where the run that held them back ended
        (here, in another process, or while no scheduler ran). Reads only, until one can."""
        for s in list(self._active.values()):
            if s.pending is None:
                continue
            try:
                job = self.schedules._release(s.id)
            except StoreError as e:  # the next pass tries again
                log.debug("wiz scheduler: %r could not start its kept occasion: %s", s.name, e)
                continue
            if job is not None:
                self.fired.append(job.id)

    # -- following the event log ---------------------------------------------------------------

    def _tail(self) -> bool:
        store = self.queue.store
        version = store.version()
        if version == self._tailed_at:
            return False
        self._tailed_at = version
        rows = store.read(
            "SELECT id, job_id, event, payload FROM job_events WHERE id > ? AND event IN "
            "('job.completed', 'job.failed', 'job.cancelled') ORDER BY id",
            (self._cursor,),
        )
        top = store.read("SELECT COALESCE(MAX(id), 0) FROM job_events")[0][0]
        self._cursor = max(self._cursor, top)
        if not rows:
            return False
        finished = {}
        for _, job_id, event, payload in rows:
            finished[job_id] = _outcomes(event, loads(payload) or {})
        made_by = {
            r[0]: r[1]
            for r in store.read(
                f"SELECT job_id, schedule_id FROM schedule_runs WHERE job_id IN ({','.join('?' * len(finished))})",
                tuple(finished),
            )
        }
        if made_by:
            self.schedules._record_outcomes(made_by)
        for s in list(self._active.values()):
            if s.kind != "after":
                continue
            if s.trigger.get("job") is not None:
                if s.trigger["job"] in finished:
                    self._after_job(s, s.trigger["job"], finished[s.trigger["job"]])
            else:
                for job_id, outcomes in finished.items():
                    if made_by.get(job_id) == s.trigger["schedule"]:
                        self._after_job(s, job_id, outcomes)
        return True

    def _after_job(self, s: Schedule, job_id: int, outcomes: set[str]) -> None:
        if not outcomes & set(s.trigger["on"]):
            if s.trigger.get("job") is not None:  # its one chance has passed
                self.schedules._advance(s.id, s.next_run, None, expire=True)
                self._reload(force=True)
            return
        job = self.queue.get(job_id)
        upstream = {
            "job": job.id,
            "task": job.task,
            "status": job.status,
            "result": job.result,
            "error": job.error,
        }
        self._fire(
            s.id, occasion=f"after:{job_id}", reason="after", extra={"upstream": upstream},
            expire=s.trigger.get("job") is not None,
        )  # fmt: skip
        if s.trigger.get("job") is not None:
            self._reload(force=True)

    # -- watches and custom triggers -----------------------------------------------------------

    def _sync_watchers(self, active: dict[int, Schedule]) -> None:
        wanted = {sid: s.trigger for sid, s in active.items() if s.kind == "watch"}
        for sid, (task, stop, key) in list(self._watchers.items()):
            if sid not in wanted or key != repr(wanted[sid]):
                stop.set()
                task.cancel()
                del self._watchers[sid]
        if self._loop is None:  # run_due outside a loop: nothing to watch with
            return
        for sid, spec in wanted.items():
            if sid not in self._watchers:
                stop = asyncio.Event()
                task = self._loop.create_task(self._watch(sid, spec, stop), name=f"wiz-watch-{sid}")
                self._watchers[sid] = (task, stop, repr(spec))

    async def _stop_watch(self, sid: int) -> None:
        task, stop, _ = self._watchers.pop(sid)
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _watch(self, sid: int, spec: dict[str, Any], stop: asyncio.Event) -> None:
        from watchfiles import awatch

        root = Path(spec["path"])
        patterns = spec["patterns"]

        def wanted(_change: Any, path: str) -> bool:
            name = os.path.relpath(path, root)
            return any(
                fnmatch.fnmatch(name, p) or fnmatch.fnmatch(os.path.basename(path), p)
                for p in patterns
            )

        try:
            async for changes in awatch(
                root, watch_filter=wanted, debounce=int(spec["debounce"] * 1000), step=20,
                stop_event=stop, recursive=True,
            ):  # fmt: skip
                self._fire_watch(sid, root, changes)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wiz scheduler: watching %s failed", root)

    def _fire_watch(self, sid: int, root: Path, changes: set[tuple[Any, str]]) -> None:
        # The occasion is the set of changes with the files' modification times, so
        # two processes watching one folder create one job, and a later edit another.
        listed = sorted((c.name, os.path.relpath(p, root)) for c, p in changes)
        stamp = hashlib.sha1()
        for change, rel in listed:
            try:
                mtime = os.stat(root / rel).st_mtime_ns
            except OSError:
                mtime = -1
            stamp.update(f"{change}:{rel}:{mtime};".encode())
        self._fire(
            sid, occasion=f"watch:{stamp.hexdigest()}", reason="watch",
            extra={"changes": [{"change": c, "path": p} for c, p in listed]},
        )  # fmt: skip

    def _sync_custom(self, active: dict[int, Schedule]) -> None:
        wanted = {sid: s for sid, s in active.items() if s.kind == "custom"}
        for sid, (_, _, key) in list(self._custom.items()):
            if sid not in wanted or key != repr(wanted[sid].trigger):
                self._stop_custom(sid)
        for sid, s in wanted.items():
            if sid in self._custom:
                continue
            cls = self.schedules.trigger_classes.get(s.trigger["name"])
            if cls is None:
                log.info(
                    "wiz scheduler: trigger %r is not registered here; %r waits",
                    s.trigger["name"],
                    s.name,
                )
                continue
            try:
                trig = cls(**s.trigger["params"])
                trig.setup()
            except Exception:
                log.exception("wiz scheduler: custom trigger %r failed to set up", s.name)
                continue
            self._custom[sid] = (trig, self.clock.now(), repr(s.trigger))

    def _stop_custom(self, sid: int) -> None:
        trig, _, _ = self._custom.pop(sid)
        try:
            trig.teardown()
        except Exception:
            log.exception("wiz scheduler: custom trigger teardown failed")
