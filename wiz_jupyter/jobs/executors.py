"""Where a claimed job's body runs. The queue's semantics (claims, leases,
attempts, events, results) stay in the runtime whatever the executor; an
executor only turns ``fn(**kwargs)`` into an awaitable result.

- ``loop``: async handlers, awaited on the runtime's event loop;
- ``thread``: blocking handlers, in a thread pool so the kernel stays responsive.
  Python cannot kill a thread: on cancel or timeout the job is finished at once
  and the thread's eventual result is dropped; long loops should call
  ``job.check_cancelled()``.

A Dask executor plugs into the same seam (``ws.use_dask``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol


class Executor(Protocol):
    async def run(self, fn: Any, kwargs: dict[str, Any]) -> Any: ...
    def close(self) -> None: ...


class LoopExecutor:
    async def run(self, fn: Any, kwargs: dict[str, Any]) -> Any:
        out = fn(**kwargs)
        if inspect.isawaitable(out):
            out = await out
        return out

    def close(self) -> None:
        pass


class ThreadExecutor:
    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wiz-job")

    async def run(self, fn: Any, kwargs: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # so wiz.current_job() works in the thread
        out = await loop.run_in_executor(self.pool, functools.partial(ctx.run, fn, **kwargs))
        if inspect.isawaitable(out):  # a sync function that returned a coroutine
            out = await out
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
