"""The kernel's side of running job bodies on a Dask cluster: :class:`DaskExecutor`.

It submits ``run_remote(fn, kwargs, meta)`` (``dask_worker.py``) with an asynchronous
``distributed.Client`` on the runtime's loop and awaits the future; the worker sends
progress and log lines back as Dask events (worker ``log_event`` -> scheduler -> our
``subscribe_topic`` handler), which the executor records in the queue. The body's
result is JSON-encoded on the worker, so what comes back is exactly what the store
keeps, and an unencodable result is reported, not pickled.

``distributed`` is an optional extra: it is imported when a cluster is used, never
by importing this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
import uuid
import weakref
from typing import Any

from ..errors import InvalidJob, MissingExtra, WizError
from .dask_worker import Pickled, run_remote, warm
from .events import resolve

log = logging.getLogger("wiz_jupyter.dask")

DASK_EXTRA = "Dask support needs the dask extra: pip install 'wiz_jupyter[dask]'"


def require_dask() -> None:
    """Raise :class:`~wiz_jupyter.errors.MissingExtra` (one line naming the extra) unless
    ``distributed`` can be imported. Cheap: it looks for the package, imports nothing."""
    try:
        found = importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):  # a sys.modules None entry, a broken install
        found = False
    if not found:
        raise MissingExtra(DASK_EXTRA)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingExtra(DASK_EXTRA) from None
    return distributed


class UnserialisableResult(Exception):
    """The body's result cannot be stored as JSON (raised in the kernel, never retried)."""


class Encoded(str):
    """A result already encoded as JSON (by the worker that ran the body)."""


class WorkerLost(Exception):
    """The Dask worker running the body died or left: a failed attempt, retried by attempts."""


class DaskExecutor:
    """Runs job bodies on a Dask cluster: ``ws.use_dask(target)`` returns one.

    ``target``: ``"local"`` (a LocalCluster of worker processes, one per core, one
    thread each), a scheduler address (``"tcp://host:8786"``), a
    ``distributed.Client``, or a cluster object with a ``scheduler_address``
    (dask-jobqueue, dask-gateway). The executor keeps its own asynchronous client
    on the runtime's loop, so the kernel never blocks on the cluster; it connects
    when the runtime starts (or at once if it is running) and disconnects when
    it stops, closing a LocalCluster it made. ``await`` it to wait for the
    connection::

        cluster = await ws.use_dask("local")
        cluster.dashboard_link

    Dask's own retries stay off (``retries=0``; a LocalCluster made here also has
    ``allowed-failures`` 0), so a lost worker is one failed attempt of the job,
    which the queue retries by the job's ``attempts``.

    A body may wait in Dask's queue before a worker takes it: a job's ``timeout``
    counts from its start on the worker (which reports it), not from the claim.
    """

    #: the runtime's cue to count a job's timeout from the body's start (``job._began``)
    announces_start = True

    def __init__(self, target: Any, *, events: Any = None, n_workers: int | None = None):
        require_dask()
        if n_workers is not None and (target != "local" or n_workers < 1):
            raise InvalidJob("n_workers is for use_dask('local'): a positive number of processes")
        if not (
            target == "local"
            or (isinstance(target, str) and target)
            or hasattr(target, "scheduler")
            or hasattr(target, "scheduler_address")
        ):
            raise InvalidJob(
                "use_dask takes 'local', a scheduler address such as 'tcp://host:8786', "
                f"a distributed.Client or a cluster object, not {target!r}"
            )
        self.target = target
        self.n_workers = n_workers
        self.topic = f"wiz-{uuid.uuid4().hex[:12]}"
        self.client: Any = None
        self.cluster: Any = None  # the LocalCluster made here, closed with the client
        self.error: str | None = None
        self._events = events
        self._owns_client = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task | None = None
        self._warming: asyncio.Task | None = None
        self._running: dict[str, _Remote] = {}

    # -- connection ----------------------------------------------------------------------------

    def connect(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task:
        """Start connecting on ``loop`` (the runtime's) unless already connecting there."""
        if self._connecting is None or self._loop is not loop:
            self._loop = loop
            self.error = None
            self._connecting = loop.create_task(self._connect(), name="wiz-dask-connect")
            self._connecting.add_done_callback(self._connected)
        return self._connecting

    def __await__(self) -> Any:
        return self._wait().__await__()

    async def _wait(self) -> DaskExecutor:
        await self.ready()
        return self

    async def ready(self) -> Any:
        """The connected client (connecting on the running loop if need be)."""
        loop = asyncio.get_running_loop()
        task = self._connecting if self._loop is loop else None
        if task is None:
            task = self.connect(loop)
        return await asyncio.shield(task)

    async def _connect(self) -> Any:
        distributed = _import_distributed()
        import dask

        Client = distributed.Client
        t = self.target
        if isinstance(t, Client) and t.asynchronous:
            if getattr(t.loop, "asyncio_loop", None) is self._loop:
                self._owns_client = False
                t.subscribe_topic(self.topic, self._on_remote_event)
                self.client = t
                return t
        options: dict[str, Any] = {"asynchronous": True, "set_as_default": False}
        if isinstance(t, Client):  # a sync client has a loop of its own: ours joins its scheduler
            address, options["security"] = t.scheduler.address, t.security
        elif t == "local":
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = await distributed.LocalCluster(
                    n_workers=self.n_workers or os.cpu_count() or 1, threads_per_worker=1,
                    processes=True, asynchronous=True, dashboard_address=":0",
                    silence_logs=logging.ERROR,
                )  # fmt: skip
            address = self.cluster
        else:
            address = getattr(t, "scheduler_address", t)
            options["security"] = getattr(t, "security", None)
        client = Client(address, **options)
        try:
            await client
        except BaseException:
            with contextlib.suppress(Exception):  # else its __del__ warns of an unawaited close
                await client.close()
            if self.cluster is not None:
                with contextlib.suppress(Exception):
                    await self.cluster.close()
                self.cluster = None
            raise
        if self.cluster is not None:  # a cluster made here is ready once all its workers are
            with contextlib.suppress(Exception):  # slow workers: it works with fewer meanwhile
                await client.wait_for_workers(len(self.cluster.workers), timeout=60)
        client.subscribe_topic(self.topic, self._on_remote_event)
        self.client = client
        return client

    async def _warm(self, client: Any) -> None:
        """Have the workers import what runs a body (this package: about 0.15 s in a
        fresh worker process, more on a busy machine) now, in the background, rather than
        on the first job each one takes. Workers joining later import it on their first
        job; one that cannot import it fails that job, not the connection."""
        try:
            await asyncio.wait_for(client.run(warm, on_error="return"), 60)
        except Exception as e:  # slow or odd workers: they import on their first job
            log.debug("wiz: warming the Dask workers: %s", e)

    def _connected(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        e = task.exception()
        if e is not None:
            self.error = f"could not connect to Dask at {self.describe_target()}: {e}"
            log.info("wiz: %s", self.error)  # shown by the board, %wiz status and ready()
        elif self._loop is not None and self.client is not None:
            self._warming = self._loop.create_task(self._warm(self.client), name="wiz-dask-warm")
        self._emit("dask.connected" if e is None else "dask.failed")

    def close(self) -> None:
        """Nothing to free at once: the runtime awaits :meth:`disconnect` when it stops."""

    async def disconnect(self) -> None:
        """Disconnect; close the LocalCluster if it was made here. Running bodies are
        the runtime's business (it cancels or releases their jobs first)."""
        task, self._connecting = self._connecting, None
        for t in (task, self._warming):
            if t is not None and not t.done():
                t.cancel()
                await asyncio.gather(t, return_exceptions=True)
        self._warming = None
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        try:
            if client is not None:
                client.unsubscribe_topic(self.topic)
                if self._owns_client:
                    await client.close()
            if cluster is not None:
                await cluster.close()
        except Exception as e:  # already gone
            log.debug("wiz: closing the Dask client: %s", e)
        self._emit("dask.closed")

    # -- what the board and %wiz status show ---------------------------------------------------

    def describe_target(self) -> str:
        t = self.target
        if t == "local":
            return "a LocalCluster"
        if isinstance(t, str):
            return t
        return getattr(t, "scheduler_address", None) or repr(t)

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.status == "running"

    @property
    def address(self) -> str | None:
        """The scheduler's address, once connected."""
        return self.client.scheduler.address if self.client is not None else None

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's URL, once connected (None if the scheduler serves none)."""
        if self.client is None:
            return None
        try:
            return self.client.dashboard_link
        except Exception:
            return None

    @property
    def workers(self) -> int:
        """How many workers the scheduler had when the client last asked (it asks every
        few seconds; :meth:`wait_for_workers` asks at once)."""
        if self.client is None:
            return 0
        try:  # the client's cached identity (refreshed every few seconds): never blocks
            info = self.client.scheduler_info()
            return int(info.get("n_workers", len(info.get("workers", ()))))
        except Exception:
            return 0

    async def wait_for_workers(self, n: int, timeout: float = 60.0) -> int:
        """Wait until the scheduler has ``n`` running workers (asked directly: the
        client's cached view may still count a worker that died) and :attr:`workers`,
        the client's view that ``%wiz status`` shows, has caught up; returns it. After a
        worker dies its nanny starts another: ``await ws.dask.wait_for_workers(2)``.

        (Not distributed's ``Client.wait_for_workers``: for a cluster object it asks the
        cluster's own view and leaves the client's cached one behind.)"""
        client = await self.ready()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            info = await client.scheduler.identity(n_workers=-1)
            running = sum(w.get("status") == "running" for w in info["workers"].values())
            if running >= n and self.workers >= n:
                return self.workers
            if loop.time() > end:
                raise WizError(f"dask: {running} of {n} workers running after {timeout:g} s")
            await asyncio.sleep(0.1)

    def info(self) -> dict[str, Any]:
        """``{"state", "address", "workers", "dashboard", "kind", "error"}`` for displays."""
        if self.connected:
            state = "connected"
        elif self.error:
            state = "failed"
        else:
            state = "connecting" if self._connecting is not None else "not connected"
        return {
            "state": state,
            "kind": "LocalCluster" if self.target == "local" else "scheduler",
            "address": self.address or self.describe_target(),
            "workers": self.workers,
            "dashboard": self.dashboard_link,
            "error": self.error,
        }

    def summary(self) -> str:
        """One line: ``dask: connected to LocalCluster tcp://... (2 workers); dashboard ...``."""
        i = self.info()
        if i["state"] != "connected":
            return f"dask: {i['state']} ({i['error'] or i['address']})"
        n = i["workers"]
        line = f"dask: connected to {i['kind']} {i['address']} ({n} worker{'' if n == 1 else 's'})"
        if i["dashboard"]:
            line += f"; dashboard {i['dashboard']}"
        return line

    def _emit(self, name: str) -> None:
        if self._events is not None:
            from .events import Event

            self._events.emit(Event(name, None, {"address": self.address}))

    def __repr__(self) -> str:
        return f"<wiz DaskExecutor {self.summary()}>"

    # -- running a body ------------------------------------------------------------------------

    async def run(self, fn: Any, kwargs: dict[str, Any], job: Any = None, spec: Any = None) -> Any:
        if self.error:
            raise ConnectionError(self.error)
        client = await self.ready()
        distributed = _import_distributed()
        name = getattr(spec, "name", None) or getattr(fn, "__name__", "body")
        key = f"wiz-{name}-job{job.id}-attempt{job.attempt}-{uuid.uuid4().hex[:8]}"
        meta = {
            "key": key, "topic": self.topic, "id": job.id, "task": job.task,
            "attempt": job.attempt, "attempts": job.attempts, "data": job.data,
            "wants_job": bool(getattr(spec, "wants_job", False)),
            "announce": getattr(job, "_began", None) is not None,
        }  # fmt: skip
        if meta["wants_job"]:  # the worker gives the body a context of its own
            kwargs = {k: v for k, v in kwargs.items() if k != "job"}
        remote = self._running[key] = _Remote(job, getattr(job, "_began", None))
        try:
            future = client.submit(
                run_remote, _travel_by_value(fn), kwargs, meta, key=key, pure=False, retries=0,
                resources=getattr(spec, "resources", None) or None,
            )  # fmt: skip
            try:
                out = await self._outcome(future, remote)
            except asyncio.CancelledError:  # cancel, timeout or stop: the remote future too
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.cancel([future], force=True), 5)
                raise
            except distributed.KilledWorker as e:
                worker = getattr(getattr(e, "last_worker", None), "address", "?")
                raise WorkerLost(f"the Dask worker {worker} died while running it") from None
            except distributed.client.FutureCancelledError as e:
                raise WorkerLost(f"Dask dropped the task ({e.reason or 'cancelled'})") from None
            for task, data, options in out["children"]:
                job.add_child(task, data, **options)
            if "unserialisable" in out:
                raise UnserialisableResult(out["unserialisable"])
            return Encoded(out["result"])
        finally:
            del self._running[key]

    async def _outcome(self, future: Any, remote: _Remote) -> dict[str, Any]:
        """The body's reply. A small one comes as the last event of its topic, after its
        progress and log lines (one stream, in order), so no round trip fetches it; a
        large one is fetched from the worker as a Dask result, once every line sent
        before it has arrived. An error, a cancel or a lost worker raises."""
        settled = asyncio.ensure_future(_settled(future))
        try:
            await asyncio.wait({settled, remote.reply}, return_when=asyncio.FIRST_COMPLETED)
            if remote.reply.done():
                return remote.reply.result()
            if future.status != "finished":
                await future  # raises what happened
            out = await future
            if out.get("by_event"):  # the reply event is an instant behind the future's state
                return await asyncio.wait_for(remote.reply, 30)
            if remote.received < out["sent"]:  # lines still on their way
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(remote.caught_up(out["sent"]), 5)
            return out
        finally:
            settled.cancel()

    def _on_remote_event(self, event: Any) -> None:
        """A progress or log line, or a body's reply, from a worker (on the runtime's loop)."""
        _, msg = event
        remote = self._running.get(msg.get("key")) if isinstance(msg, dict) else None
        if remote is None:  # a late line from an attempt that was cancelled or timed out
            return
        if "reply" in msg:
            remote.start()
            if not remote.reply.done():
                remote.reply.set_result(msg["reply"])
            return
        try:
            if "started" in msg:  # the job's timeout counts from now
                remote.start()
            elif "progress" in msg:
                remote.job._queue.progress(remote.job.id, msg["progress"])
            elif "log" in msg:
                remote.job._queue.log(remote.job.id, str(msg["log"]))
        except Exception as e:  # a busy database, a bad value: never break the client
            log.warning("wiz: could not record a line from a Dask worker: %s", e)
        remote.received += 1
        remote.wake()


def _travel_by_value(fn: Any) -> Any:
    """Functions of a ``wiz worker --tasks FILE`` file live in a module the workers
    cannot import (``wiz_tasks_NAME``): they travel pickled by value, as a notebook's
    do (distributed pickles a task's function by reference otherwise)."""
    if not (getattr(fn, "__module__", None) or "").startswith("wiz_tasks_"):
        return fn
    blob = _BY_VALUE.get(fn)
    if blob is None:
        import cloudpickle

        module = sys.modules[fn.__module__]
        cloudpickle.register_pickle_by_value(module)
        try:
            blob = _BY_VALUE[fn] = Pickled(cloudpickle.dumps(fn))
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    return blob


_BY_VALUE: weakref.WeakKeyDictionary[Any, Pickled] = weakref.WeakKeyDictionary()


async def _settled(future: Any) -> None:
    """Until a Dask future is finished, erred or cancelled, without fetching its result
    (which would be a round trip to the scheduler and the worker for each job)."""
    state = getattr(future, "_state", None)
    if state is not None and hasattr(state, "wait"):  # distributed's FutureState
        await state.wait()
        return
    loop = asyncio.get_running_loop()  # the public way: a callback on Dask's callback thread
    done = loop.create_future()
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(resolve, done))
    await done


class _Remote:
    """A body running on the cluster: its job, its reply, and how many lines arrived."""

    __slots__ = ("_waiter", "began", "job", "received", "reply")

    def __init__(self, job: Any, began: asyncio.Future | None = None):
        self.job = job
        self.began = began
        self.received = 0
        self.reply: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Future | None = None

    def start(self) -> None:
        if self.began is not None:
            resolve(self.began)

    async def caught_up(self, n: int) -> None:
        while self.received < n:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
