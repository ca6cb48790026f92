"""The workers' side of running job bodies on a Dask cluster: the task Dask runs
(:func:`run_remote`) and what the body sees of its job (:class:`RemoteJobContext`).

Dask workers import this module by its path (``wiz_jupyter.jobs.dask_worker``) to
unpickle the task, so it imports only what a worker needs: no kernel, no SQLite
file, and ``distributed`` only inside the calls that run on a worker.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..errors import InvalidJob, JobCancelled
from .models import current_job, dumps


class Pickled(bytes):
    """A function pickled by value (by the kernel), unpickled on the worker."""


class RemoteJobContext:
    """What a body running on a Dask worker sees of its job: ``wiz.current_job()``, or a
    parameter named ``job``. Progress and log lines travel to the kernel as Dask
    events; the queue's SQLite file is never opened on the worker.

    ``add_child`` records the child, and the runtime adds it when the body returns
    (before the parent's completion, so the parent waits for it).
    """

    def __init__(self, meta: dict[str, Any]):
        self._key: str = meta["key"]
        self._topic: str = meta["topic"]
        self.id: int = meta["id"]
        self.task: str = meta["task"]
        self.attempt: int = meta["attempt"]
        self.attempts: int = meta["attempts"]
        self.data: dict[str, Any] = meta["data"]
        self._sent = 0
        self._children: list[tuple[str, Any, dict[str, Any]]] = []

    def _send(self, msg: dict[str, Any]) -> None:
        from distributed import get_worker

        msg["key"] = self._key
        get_worker().log_event(self._topic, msg)
        self._sent += 1

    def progress(self, value: float | dict[str, Any]) -> None:
        """Report progress: a number 0-100 or a dict (``{"done": 3, "of": 10}``)."""
        if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
            raise InvalidJob(f"progress is a number 0-100 or a dict, not {value!r}")
        self._send({"progress": value})

    def log(self, line: str) -> None:
        """Append a log line to the job's history."""
        self._send({"log": str(line)})

    @property
    def cancelled(self) -> bool:
        """True once the kernel cancelled this body (cancel, timeout, stop)."""
        from distributed import get_worker

        try:
            ts = get_worker().state.tasks.get(self._key)
        except Exception:
            return False
        return ts is None or ts.state in ("cancelled", "released", "forgotten")

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled (for long loops)."""
        if self.cancelled:
            raise JobCancelled(f"job {self.id} was cancelled")

    def add_child(self, task: str, data: dict[str, Any] | None = None, **options: Any) -> None:
        """Add a child job when this body returns; the parent completes after its children."""
        self._children.append((task, data, options))

    def __repr__(self) -> str:
        return f"<RemoteJobContext {self.id} {self.task} attempt {self.attempt}/{self.attempts}>"


def run_remote(fn: Any, kwargs: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The task Dask runs: the body, with ``wiz.current_job()`` set; its result as JSON."""
    if isinstance(fn, Pickled):
        import cloudpickle

        fn = cloudpickle.loads(fn)
    ctx = RemoteJobContext(meta)
    if meta.get("announce"):  # the job has a timeout, which counts from now
        ctx._send({"started": True})
    if meta["wants_job"]:
        kwargs = {**kwargs, "job": ctx}
    token = current_job.set(ctx)  # type: ignore[arg-type]
    try:
        out = fn(**kwargs)
        if inspect.isawaitable(out):  # an async body: its own loop, in this worker thread
            out = asyncio.run(_awaited(out))
    finally:
        current_job.reset(token)
    reply: dict[str, Any] = {"sent": ctx._sent, "children": ctx._children}
    try:
        reply["result"] = dumps(out)
    except (TypeError, ValueError) as e:
        reply["unserialisable"] = str(e)
    if len(reply.get("result", "")) <= _REPLY_BY_EVENT:
        try:  # after the body's lines, on the same stream
            ctx._send({"reply": reply})
            return {"by_event": True}
        except (TypeError, ValueError):  # children options msgpack cannot carry
            pass
    return reply


def warm() -> None:
    """Run on each worker when the kernel connects: unpickling this call imports this
    module (and so the package) there, ahead of the first body. Nothing else to do."""


# Replies up to this size (JSON characters) travel as an event; the scheduler keeps the
# last 1,000 events of a topic, so this bounds what it holds for us.
_REPLY_BY_EVENT = 8_000


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
