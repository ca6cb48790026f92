"""Where a claimed job's body runs. The queue's semantics (claims, leases,
attempts, events, results) stay in the runtime whatever the executor; an
executor only turns ``fn(**kwargs)`` into an awaitable result.

- ``loop``: async handlers, awaited on the runtime's event loop;
- ``thread``: blocking handlers, in a thread pool so the kernel stays responsive.
  Python cannot kill a thread: on cancel or timeout the job is finished at once
  and the thread's eventual result is dropped; long loops should call
  ``job.check_cancelled()``.

- ``dask``: the body travels to a Dask cluster (``ws.use_dask(...)``, then
  ``@ws.task(executor="dask")``); see :class:`DaskExecutor`. Only the body
  travels: the claim, lease, attempts, events and result stay with the runtime
  and its SQLite file, which the cluster never sees. The kernel's side of it is
  ``dask_client.py``, the workers' side ``dask_worker.py``; both import
  ``distributed`` only when a cluster is used.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from .dask_client import (
    DASK_EXTRA,
    DaskExecutor,
    Encoded,
    UnserialisableResult,
    WorkerLost,
    require_dask,
)
from .dask_worker import RemoteJobContext

__all__ = [
    "DASK_EXTRA",
    "DaskExecutor",
    "Encoded",
    "Executor",
    "LoopExecutor",
    "RemoteJobContext",
    "ThreadExecutor",
    "UnserialisableResult",
    "WorkerLost",
    "require_dask",
]


class Executor(Protocol):
    async def run(self, fn: Any, kwargs: dict[str, Any], job: Any = None, spec: Any = None) -> Any:
        """Run ``fn(**kwargs)`` for ``job`` (a JobContext) of task ``spec`` (a TaskSpec)."""
        ...

    def close(self) -> None: ...


class LoopExecutor:
    async def run(self, fn: Any, kwargs: dict[str, Any], job: Any = None, spec: Any = None) -> Any:
        out = fn(**kwargs)
        if inspect.isawaitable(out):
            out = await out
        return out

    def close(self) -> None:
        pass


class ThreadExecutor:
    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wiz-job")

    async def run(self, fn: Any, kwargs: dict[str, Any], job: Any = None, spec: Any = None) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # so wiz.current_job() works in the thread
        out = await loop.run_in_executor(self.pool, functools.partial(ctx.run, fn, **kwargs))
        if inspect.isawaitable(out):  # a sync function that returned a coroutine
            out = await out
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
