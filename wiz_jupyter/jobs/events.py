"""In-process delivery of events to sync and async subscribers.

Every job status change is both appended to the ``job_events`` table (the
audit trail, written in the same transaction as the change) and emitted here,
after the commit, to the callbacks registered with :meth:`EventBus.on`.
Events of other processes reach this bus only through the table.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("wiz_jupyter.events")


@dataclass(frozen=True, slots=True)
class Event:
    """One event: ``name`` such as ``"job.completed"``, the job it is about, a payload."""

    name: str
    job_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


Callback = Callable[[Event], Any]


class EventBus:
    """Subscribe with ``bus.on("job.completed", cb)``; patterns such as ``"job.*"``
    or ``"*"`` match several names. ``on`` returns a function that unsubscribes.

    Sync callbacks run in the emitting thread, async ones as tasks on the
    runtime's loop. A callback that raises is logged and never breaks the queue.
    """

    def __init__(self) -> None:
        self._subs: list[tuple[str, Callback]] = []
        self._match_cache: dict[str, list[Callback]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    def on(self, name: str, callback: Callback) -> Callable[[], None]:
        with self._lock:
            self._subs.append((name, callback))
            self._match_cache.clear()
        return lambda: self.off(name, callback)

    def off(self, name: str, callback: Callback) -> None:
        with self._lock:
            try:
                self._subs.remove((name, callback))
            except ValueError:
                return
            self._match_cache.clear()

    def listeners(self, name: str) -> list[Callback]:
        cbs = self._match_cache.get(name)
        if cbs is None:
            with self._lock:
                cbs = [
                    cb for pat, cb in self._subs if pat == name or fnmatch.fnmatchcase(name, pat)
                ]
                self._match_cache[name] = cbs
        return cbs

    def emit(self, event: Event) -> None:
        for cb in self.listeners(event.name):
            try:
                out = cb(event)
            except Exception:
                log.exception("event callback %r failed on %s", cb, event.name)
                continue
            if inspect.isawaitable(out):
                self._schedule(out, cb, event.name)

    def _schedule(self, awaitable: Any, cb: Callback, name: str) -> None:
        async def guarded() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("async event callback %r failed on %s", cb, name)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = self.loop
        if loop is None or loop.is_closed():
            log.warning("no running loop for async callback %r on %s; dropped", cb, name)
            return
        if loop.is_running() and _in_loop_thread(loop):
            self._keep(loop.create_task(guarded()))
        else:
            loop.call_soon_threadsafe(lambda: self._keep(loop.create_task(guarded())))

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def resolve(fut: asyncio.Future) -> None:
    """Wake whoever awaits ``fut``: its result becomes None, unless it is already done
    (so a wake-up may come twice, or after a cancel)."""
    if not fut.done():
        fut.set_result(None)
