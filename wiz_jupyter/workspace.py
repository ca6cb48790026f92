"""The facade: one store, queue, event bus and runtime wired together."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import announce
from .jobs.deliver import Deliverer
from .jobs.events import EventBus
from .jobs.notebooks import BUILTIN_TASKS, Notebook, NotebookRunner, output_path
from .jobs.notebooks import TASK as NOTEBOOK_TASK
from .jobs.options import TaskSpec
from .jobs.outbound import TASK as NOTIFY_TASK
from .jobs.outbound import Feeder, Notifications
from .jobs.queue import Queue
from .jobs.runtime import Runtime
from .jobs.scheduler import Scheduler
from .jobs.schedules import Schedules
from .jobs.store import Store, default_path

if TYPE_CHECKING:
    from .agents.chat import Chat, Chats
    from .agents.llm import LLM
    from .agents.personas import Agent, Agents

F = TypeVar("F", bound=Callable[..., Any])
#: seconds running jobs get when the kernel is asked to shut down
KERNEL_STOP_GRACE = 2.0
TASK_OPTIONS = frozenset(
    (
        "name",
        "attempts",
        "backoff",
        "timeout",
        "concurrency",
        "executor",
        "resources",
        "remove_on_complete",
        "remove_on_fail",
        "rate",
        "group_concurrency",
    )
)


class Workspace:
    """Everything wiz_jupyter keeps for one project, in one SQLite file.

    ``path``: the database file; default ``$WIZ_HOME/wiz.db`` or
    ``.wiz/wiz.db`` under the notebook's folder; ``":memory:"`` for a
    throw-away workspace. ``concurrency``: jobs running at once in this
    process. ``lease``: seconds a claimed job stays this process's without
    renewal (a killed kernel's jobs are taken over after that). ``clock``: a
    :class:`~wiz_jupyter.ManualClock` makes schedules fire when you move it.
    ``embeddings``: rank agents' memories by meaning with this model
    (``"wordllama"``: offline, built in; or a litellm embedding model), stored
    as the workspace's setting (see ``ws.agents.set_embeddings``).

    Made in a kernel, a workspace announces its database file to the Jupyter server,
    so the Wiz sidebar can show it (:mod:`wiz_jupyter.announce`); :meth:`close`
    withdraws it.

    ::

        ws = wiz.Workspace()

        @ws.task
        async def fetch(url: str) -> dict: ...

        job = ws.jobs.add("fetch", {"url": "https://example.org"})
        await ws.run_until_idle()
        job.result
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        concurrency: int = 16,
        lease: float = 30.0,
        poll_interval: float = 0.1,
        clock: Any = None,
        embeddings: str | None = None,
    ):
        self.path = str(path) if path is not None else default_path()
        self.store = Store(self.path)
        self.events = EventBus()
        self.jobs = Queue(self.store, self.events)
        self.runtime = Runtime(
            self.jobs, concurrency=concurrency, lease=lease, poll_interval=poll_interval
        )
        self.schedules = Schedules(self.jobs, clock)
        self.scheduler = Scheduler(self.schedules, owner=self.runtime.owner)
        self.runs_dir = _runs_dir(self.path)  #: executed notebooks (settable)
        # the built-in notebook task, in every workspace: a headless worker runs notebooks too
        self.jobs.register(TaskSpec(name=NOTEBOOK_TASK, fn=NotebookRunner(lambda: self.runs_dir)))
        self.jobs.on_remove(self._remove_with_jobs)  # retention: what goes with a job
        #: where job ends are sent outside Jupyter (webhooks, mail): delivered as jobs of the
        #: built-in task wiz.notify by whichever process runs the runtime (a kernel, wiz worker)
        self.notifications = Notifications(self.jobs, redact=_redact)
        self.jobs.register(
            TaskSpec(
                name=NOTIFY_TASK, fn=Deliverer(self.notifications, self.path), executor="thread"
            )
        )
        self.runtime.chores.append(Feeder(self.notifications))
        self._kernel_hooked = False
        if embeddings is not None:  # kept in the database: every process ranks alike
            self.agents.set_embeddings(embeddings)
        # in a kernel, tell the Jupyter server (its sidebar) which database this notebook uses
        announce.announce(self.path)

    # -- tasks ---------------------------------------------------------------------------------

    @overload
    def task(self, fn: F, /) -> F: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        attempts: int | None = None,
        backoff: Any = None,
        timeout: float | None = None,
        concurrency: int | None = None,
        executor: str = "auto",
        resources: dict[str, float] | None = None,
        rate: tuple[int, float] | None = None,
        group_concurrency: int | None = None,
    ) -> Callable[[F], F]: ...

    def task(self, fn: Any = None, /, **options: Any) -> Any:
        """Register a handler for jobs of a task (its function name unless ``name=``).

        Handlers get the job's data as keyword arguments, and the running job as
        a parameter named ``job`` if they declare one. Sync functions run in a
        thread, async ones on the loop (``executor="loop"|"thread"`` to choose);
        ``executor="dask"`` runs the body on the cluster of :meth:`use_dask`, with
        Dask ``resources`` such as ``{"GPU": 1}``.
        ``attempts``, ``backoff`` and ``timeout`` are defaults for new jobs of
        the task; ``concurrency`` bounds how many run at once in this process;
        ``group_concurrency`` how many of one group (``ws.jobs.add(..., group="alice")``)
        run at once, in every process on the file.
        ``rate=(10, 1.0)``: at most 10 jobs of the task start in any second, counted
        across every process on the file; the others wait, ``delayed``, no attempt used.

        ::

            @ws.task(attempts=3, backoff=("exponential", 1.0), concurrency=2)
            def crunch(n: int, job) -> int:
                job.progress(50)
                return n * n
        """
        if fn is None:
            return lambda f: self.task(f, **options)
        unknown = set(options) - TASK_OPTIONS
        if unknown:
            raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        name = options.pop("name", None) or fn.__name__
        # TaskSpec checks the options; register wakes a running runtime, so jobs
        # already waiting for this task can run now
        self.jobs.register(TaskSpec(name=name, fn=fn, **options))
        return fn

    def notebook(
        self,
        path: str | os.PathLike[str],
        parameters: dict[str, Any] | None = None,
        *,
        kernel: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Notebook:
        """A notebook to schedule or chain: ``ws.schedules.add(ws.notebook("r.ipynb",
        {"region": "eu"}, kernel="python3"), cron="0 6 * * *")`` (see ``ws.jobs.add_notebook``)."""
        return Notebook(path, parameters, kernel=kernel, cwd=cwd)

    def use_dask(self, target: Any = "local", *, n_workers: int | None = None) -> Any:
        """Run the bodies of ``@ws.task(executor="dask")`` tasks on a Dask cluster.

        ``target``: ``"local"`` (a LocalCluster, one worker process per core, or
        ``n_workers``), a scheduler address (``"tcp://host:8786"``), a
        ``distributed.Client``, or a dask-jobqueue / dask-gateway cluster object.
        The queue, its SQLite file and the leases stay in this process; only job
        bodies travel. The client is asynchronous on the runtime's loop, so the
        kernel never blocks on it; ``await`` the returned executor to wait for the
        connection. Jobs of Dask tasks wait, unclaimed, until this is called.
        Without the ``dask`` extra this raises a one-line
        :class:`~wiz_jupyter.errors.MissingExtra`.

        ::

            cluster = await ws.use_dask("local")

            @ws.task(executor="dask", resources={"GPU": 1})
            def train(seed: int) -> float: ...
        """
        return self.runtime.use_dask(target, n_workers=n_workers)

    @property
    def dask(self) -> Any:
        """The Dask executor of :meth:`use_dask` (``.summary()``, ``.dashboard_link``), or None."""
        return self.runtime.dask

    # -- the runtime ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start working jobs and firing schedules on the running event loop (the
        kernel's, in a notebook)."""
        self._load_agents()
        await self.runtime.start()
        await self.scheduler.start()
        if self.scheduler.in_kernel:
            self._hook_kernel_shutdown()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop gracefully: schedules stop firing; running jobs get ``grace`` seconds,
        then go back to the queue. ``shutdown`` schedules fire first, and the jobs
        they make (of tasks this process runs) get their trigger's grace to finish."""
        fired = self.scheduler.fire_shutdown() if self.scheduler.running else []
        await self.scheduler.stop()
        mine = [(j, g) for j, g in fired if j.task in self.jobs.tasks]
        if mine and self.runtime.running:
            started = time.monotonic()
            waits = [asyncio.ensure_future(j.wait()) for j, _ in mine]
            await asyncio.wait(waits, timeout=max(g for _, g in mine))
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            grace = max(0.0, grace - (time.monotonic() - started))
        await self.runtime.stop(grace)
        if "agents" in self.__dict__:  # agents' MCP servers stop too (they start again on use)
            await self.agents.mcp.aclose()

    def _hook_kernel_shutdown(self) -> None:
        """Stop gracefully (firing ``shutdown`` schedules) when the kernel is asked to
        shut down, before it exits. ipykernel handles the request on its control
        thread; the runtime lives on the shell's loop."""
        if self._kernel_hooked:
            return
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        if kernel is None:
            return
        self._kernel_hooked = True
        loop = asyncio.get_running_loop()
        original = kernel.do_shutdown

        async def do_shutdown(restart: bool) -> Any:
            if self.runtime.running:
                try:
                    here = asyncio.get_running_loop()
                except RuntimeError:
                    here = None
                # Running jobs get a short grace (jupyter_client kills a kernel that takes
                # more than a few seconds), then go back to the queue instead of stalling.
                try:
                    if here is loop:
                        await self.stop(grace=KERNEL_STOP_GRACE)
                    else:
                        stop = self.stop(grace=KERNEL_STOP_GRACE)
                        done = asyncio.run_coroutine_threadsafe(stop, loop)
                        await asyncio.wait_for(asyncio.wrap_future(done), timeout=30)
                except Exception:  # never keep a kernel from shutting down
                    pass
            out = original(restart)
            return await out if inspect.isawaitable(out) else out

        kernel.do_shutdown = do_shutdown

    async def run_until_idle(self, timeout: float | None = None) -> None:
        """Work jobs until none of this process's tasks is waiting, delayed or running."""
        await self.runtime.run_until_idle(timeout)

    # -- agents (the agents layer loads on first use: importing wiz_jupyter stays light) -------

    @functools.cached_property
    def llm(self) -> LLM:
        """Model calls for this workspace (litellm is imported on the first call)."""
        from .agents.llm import LLM

        return LLM(self.store)

    @functools.cached_property
    def agents(self) -> Agents:
        """The personas of this workspace: ``get``, ``list``, ``remove``, ``memory``."""
        from .agents.chat import Chats
        from .agents.deps import AgentDeps
        from .agents.personas import Agents
        from .agents.runtime import AgentRuntime
        from .agents.schema import MIGRATIONS

        self.store.migrate("agents", MIGRATIONS)
        deps = AgentDeps(
            store=self.store, jobs=self.jobs, events=self.events, schedules=self.schedules,
            llm=self.llm, path=self.path, start=self.start,
            running=lambda: self.runtime.running, chat_panel=self.chat_panel,
        )  # fmt: skip
        deps.agents = registry = Agents(deps)
        registry.handler = AgentRuntime(deps)
        # chats follow agent jobs from the start
        deps.chats = self.__dict__["chats"] = Chats(deps)
        return registry

    @functools.cached_property
    def chats(self) -> Chats:
        """The workspace's conversations (``ws.chat`` opens one)."""
        self.agents  # noqa: B018 - creates the chats with the agents
        return self.__dict__["chats"]

    def agent(self, name: str, **persona: Any) -> Agent:
        """Create the agent ``name``, or update the persona fields given; return it.

        Fields: ``role``, ``goal``, ``backstory``, ``instructions`` (else built from
        the others), ``model`` (a name or a ``wiz.ScriptedModel``; else the
        workspace's), ``settings`` (``{"temperature": 0}``, ...), ``tools``
        (functions, or built-in names such as ``"read_file"``), ``max_steps``,
        ``concurrency``, ``folder`` (where its file tools may read and write;
        default ``agents/NAME`` beside the database), ``api_base`` (where its model is
        served, e.g. a local Ollama or vLLM server; kept in ``settings``), ``approve``
        (tool names whose calls wait for a person, beside ``write_file``, ``run_python``
        and MCP tools, which ask by default) and ``auto_approve`` (``True``, or tool
        names: those calls go ahead without asking).

        ::

            analyst = ws.agent("analyst", role="data analyst", goal="answer questions about data/",
                               tools=["read_file", "list_dir", summarise])
        """
        if not persona:
            return self.agents.get(name)
        return self.agents.define(name, **persona)

    def chat(self, agents: str | list[str], *, title: str | None = None) -> Chat:
        """Open a conversation with one or more agents (``@name`` addresses one)."""
        return self.chats.open(agents, title=title)

    def _load_agents(self) -> None:
        """Make the stored agents runnable here (a headless worker runs them too)."""
        if self.store.read("SELECT 1 FROM sqlite_master WHERE name = 'agents'"):
            for a in self.agents.list():
                try:
                    self.agents.get(a.name)
                except Exception:  # one broken persona must not stop the others
                    continue

    # -- widgets (imported on first use: loading the package stays light) ---------------------

    def board(self, **options: Any) -> Any:
        """The live job board widget (``limit=200`` jobs shown, ``interval=0.25`` s
        between updates)."""
        from .notebook.board import JobBoard

        return JobBoard(self, **options)

    def chat_panel(self, agents: str | list[str] | None = None, **options: Any) -> Any:
        """A chat panel widget: a new conversation with these agents (default: all)."""
        from .notebook.chat_panel import ChatPanel

        return ChatPanel(self, agents, **options)

    def gc(self, *, dry_run: bool = False, vacuum: bool = False) -> dict[str, Any]:
        """Apply the retention policies now (a running runtime does it every second):
        remove the finished jobs they let go, with their events, agent activity, chat
        messages they posted, model-call metering and executed notebook copies. Returns
        ``{"removed": n, "by_task": {task: n}, "bytes": file size}``; ``dry_run`` only
        counts; ``vacuum`` then rewrites the file to give the freed space back.

        ::

            ws.jobs.set_retention(completed=1000, failed={"age": 30 * 86400})
            ws.gc(dry_run=True)
        """
        removed: list[dict[str, Any]] = []
        while True:  # in batches: one transaction each, so other writers get their turn
            batch = self.jobs.gc(dry_run=dry_run, limit=10_000)
            removed += batch
            if dry_run or len(batch) < 10_000:
                break
        if vacuum and not dry_run:
            self.store.vacuum()
        by_task: dict[str, int] = {}
        for r in removed:
            by_task[r["task"]] = by_task.get(r["task"], 0) + 1
        return {"removed": len(removed), "by_task": by_task, "bytes": self.store.size()}

    def _remove_with_jobs(self, c: Any, rows: list[tuple]) -> None:
        from .agents.schema import remove_job_rows

        remove_job_rows(c, [r[0] for r in rows])
        for jid, task, data in rows:
            if task == NOTEBOOK_TASK:  # its executed copy goes with it
                source = (json.loads(data) or {}).get("path", "")
                output_path(self.runs_dir, jid, source).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the database and stop the agents' MCP servers (stop the runtime first)."""
        if "agents" in self.__dict__:
            self.agents.mcp.close()
        self.store.close()
        announce.withdraw(self.path)

    def __repr__(self) -> str:
        state = "running" if self.runtime.running else "stopped"
        mine = [t for t in self.jobs.tasks if t not in BUILTIN_TASKS]
        return f"<wiz Workspace {self.path} ({state}, {len(mine)} tasks)>"


def _redact(text: str, extra: Any = ()) -> str:
    """Secret values (API keys in the environment, ``extra``) masked, as the LLM layer masks
    them (imported when a notification is first described: the agents layer stays unloaded)."""
    from .agents.keys import redact

    return redact(text, extra)


def _runs_dir(db_path: str) -> str:
    """Where executed notebook copies are kept: ``runs/`` beside the database, but when the
    database is in a hidden folder (the default ``.wiz/``), ``wiz-runs/`` beside that
    folder, because JupyterLab does not open files in hidden folders. A temporary folder
    for ``:memory:``."""
    if db_path == ":memory:" or db_path.startswith("file::memory:"):
        import tempfile

        return os.path.join(tempfile.gettempdir(), f"wiz-runs-{os.getpid()}")
    folder = os.path.dirname(os.path.abspath(db_path))
    if os.path.basename(folder).startswith("."):
        return os.path.join(os.path.dirname(folder), "wiz-runs")
    return os.path.join(folder, "runs")


_default: Workspace | None = None


def workspace() -> Workspace:
    """The default workspace of this process, created on first use at the default path."""
    global _default
    if _default is None:
        _default = Workspace()
    # again on every call: after %unload_ext / %load_ext the kernel announces it anew
    announce.announce(_default.path, current=True)
    return _default


def set_default(ws: Workspace) -> None:
    """Make ``ws`` what :func:`workspace` returns (the CLI points it at ``--db``)."""
    global _default
    _default = ws
    announce.announce(ws.path, current=True)
