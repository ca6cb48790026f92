"""``%wiz`` and ``%%wiz``: the workspace from notebook cells.

Each subcommand has a real argparse parser (``%wiz SUBCOMMAND --help``). Bad
arguments print a short usage line, never a traceback; wiz errors print one
line. ``{name}`` in a line is the notebook variable (IPython expands it).

Waiting (``%wiz result ID --wait``) goes through the one synchronous bridge:
``nest_asyncio2`` is applied on first need and the magic runs the kernel's
loop with ``run_until_complete``, so the runtime keeps working meanwhile and a
notebook run top to bottom sees each cell's result before the next cell.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..errors import WizError
from ..workspace import Workspace
from ..workspace import workspace as default_workspace


class UsageError(Exception):
    """Bad magic arguments: the message is the usage text."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit()
        raise UsageError(f"{self.format_usage().rstrip()}\n{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> None:
        raise _Exit(message)


class _Exit(Exception):
    """``--help`` was printed."""


def run_sync(awaitable: Any) -> Any:
    """Wait for ``awaitable`` from synchronous cell code on the kernel's running loop.

    The one bridge (DESIGN.md): ``nest_asyncio2`` lets ``run_until_complete``
    re-enter the running loop, and the runtime's tasks progress meanwhile.
    Applied on first use only, never at ``%load_ext``.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    return loop.run_until_complete(awaitable)


@magics_class
class WizMagics(Magics):
    """``%wiz SUBCOMMAND ...``; ``%wiz --help`` lists the subcommands."""

    def __init__(self, shell: Any, ws: Workspace | None = None):
        super().__init__(shell)
        self._ws = ws
        self._lifecycle: asyncio.Task | None = None  # the start (or stop) task, kept alive
        self.subparsers: dict[str, _Parser] = {}
        self.parser, self.handlers = self._build()

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = default_workspace()
        return self._ws

    # -- parsing -------------------------------------------------------------------------------

    def _build(self) -> tuple[_Parser, dict[str, Callable[[argparse.Namespace, str | None], Any]]]:
        p = _Parser(prog="%wiz", description="wiz_jupyter: agents, jobs and schedules.")
        sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="SUBCOMMAND")
        handlers: dict[str, Callable[[argparse.Namespace, str | None], Any]] = {}

        def command(name: str, fn: Any, help: str) -> _Parser:
            c = sub.add_parser(name, help=help, description=help)
            handlers[name] = fn
            self.subparsers[name] = c
            return c

        c = command("jobs", self.cmd_jobs, "list jobs, newest first")
        c.add_argument(
            "--status",
            choices=["waiting", "delayed", "blocked", "active", "completed", "failed", "cancelled"],
        )
        c.add_argument("--task")
        c.add_argument("--agent")
        c.add_argument("--limit", type=int, default=20)
        c = command("result", self.cmd_result, "show a job's result (--wait for it)")
        c.add_argument("id", type=int)
        c.add_argument("--wait", action="store_true", help="wait until the job finishes")
        c.add_argument("--timeout", type=float, default=None)
        c.add_argument("-o", "--output", metavar="VAR", help="store the result in this variable")
        for name, fn, what in (
            ("cancel", self.cmd_cancel, "cancel a job (a running one too)"),
            ("retry", self.cmd_retry, "run a failed or cancelled job again"),
        ):
            c = command(name, fn, what)
            c.add_argument("id", type=int)
        c = command("priority", self.cmd_priority, "change a waiting job's priority")
        c.add_argument("id", type=int)
        c.add_argument("priority", type=int)
        command("pause", self.cmd_pause, "stop starting jobs (running ones finish)")
        command("resume", self.cmd_resume, "start jobs again")
        c = command("schedule", self.cmd_schedule, "add a schedule for a task")
        c.add_argument("task")
        c.add_argument("data", nargs="?", default=None, help="the job's data as JSON")
        when = c.add_mutually_exclusive_group(required=True)
        when.add_argument("--cron", help="a cron expression, e.g. '0 9 * * 1-5'")
        when.add_argument("--every", type=float, help="seconds between runs")
        when.add_argument("--at", help="an ISO date-time, once")
        when.add_argument("--after", help="a job id, or a schedule name")
        c.add_argument(
            "--on", default="completed", choices=["completed", "failed", "timeout", "finished"]
        )
        c.add_argument("--tz", help="time zone for --cron, e.g. Europe/Paris")
        c.add_argument("--name")
        command("schedules", self.cmd_schedules, "list schedules")
        c = command("agent", self.cmd_agent, "create or update an agent, show one, or list them")
        c.add_argument("name", nargs="?", help="the agent (none: list the agents)")
        c.add_argument("--role")
        c.add_argument("--goal")
        c.add_argument("--backstory")
        c.add_argument("--instructions")
        c.add_argument("--model")
        c.add_argument(
            "--tools", help="comma-separated built-in tool names, e.g. read_file,list_dir"
        )
        c.add_argument("--max-steps", type=int, dest="max_steps")
        c = command(
            "ask",
            self.cmd_ask,
            "ask an agent; the answer streams into this cell (%%wiz ask NAME: the cell is the prompt)",
        )
        c.add_argument("name")
        c.add_argument("prompt", nargs="*")
        c.add_argument("-o", "--output", metavar="VAR", help="store the answer in this variable")
        c.add_argument("--background", action="store_true", help="return the job at once")
        c.add_argument("--timeout", type=float, default=None)
        c = command("assign", self.cmd_assign, "give an agent a job (planned, checked, retried)")
        c.add_argument("name")
        c.add_argument("task", nargs="*")
        c.add_argument("--priority", type=int, default=0)
        c.add_argument("--delay", type=float, default=0)
        c.add_argument(
            "--after",
            type=int,
            action="append",
            metavar="JOB",
            help="wait for this job (repeatable)",
        )
        c.add_argument("--attempts", type=int, default=None)
        c.add_argument("--timeout", type=float, default=None)
        c.add_argument(
            "--validate",
            action="append",
            metavar="CRITERION",
            help="a check the answer must pass (repeatable)",
        )
        c.add_argument("--wait", action="store_true", help="wait for the answer")
        c.add_argument(
            "-o", "--output", metavar="VAR", help="store the job (or with --wait the answer)"
        )
        c = command("chat", self.cmd_chat, "a chat panel with an agent (or all agents)")
        c.add_argument("names", nargs="*")
        c = command("model", self.cmd_model, "show the workspace's default model, or set it")
        c.add_argument("name", nargs="?")
        command("status", self.cmd_status, "the workspace, its runtime and its counts")
        c = command(
            "dask",
            self.cmd_dask,
            "run executor='dask' tasks on a Dask cluster (no argument: show the cluster)",
        )
        c.add_argument(
            "target", nargs="?", metavar="ADDRESS|local",
            help="a scheduler address (tcp://host:8786), or 'local' for a LocalCluster",
        )  # fmt: skip
        c.add_argument(
            "--workers", type=int, default=None, help="worker processes of 'local' (default: cores)"
        )
        c.add_argument(
            "--timeout", type=float, default=60.0, help="seconds to wait for the connection"
        )
        c = command("board", self.cmd_board, "the live job board widget")
        c.add_argument("--limit", type=int, default=200, help="jobs shown (default 200)")
        for c in self.subparsers.values():
            # argparse %-formats usage with the prog, and our prog starts with '%'
            c.usage = c.format_usage()[len("usage: ") :].rstrip().replace("%", "%%")
        return p, handlers

    # -- dispatch ------------------------------------------------------------------------------

    @line_cell_magic
    def wiz(self, line: str, cell: str | None = None) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as e:
            print(f"wiz: {e}", file=sys.stderr)
            return None
        try:
            if argv and argv[0] in self.subparsers:
                # intermixed: options may come after the words of a prompt
                args = self.subparsers[argv[0]].parse_intermixed_args(argv[1:])
                args.command = argv[0]
            else:
                args = self.parser.parse_args(argv)
        except UsageError as e:
            print(str(e), file=sys.stderr)
            return None
        except _Exit:
            return None
        if args.command is None:
            self.parser.print_help()
            return None
        try:
            return self.handlers[args.command](args, cell)
        except WizError as e:
            print(f"wiz: {e}", file=sys.stderr)
            return None

    def _store(self, name: str | None, value: Any) -> None:
        if name:
            if not name.isidentifier():
                raise WizError(f"-o needs a variable name, not {name!r}")
            self.shell.user_ns[name] = value

    # -- subcommands ---------------------------------------------------------------------------

    def cmd_jobs(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self.ws.jobs.list(
            status=args.status,
            task=args.task,
            agent=args.agent,
            limit=args.limit,
            newest_first=True,
        )

    def cmd_result(self, args: argparse.Namespace, cell: str | None) -> Any:
        job = self.ws.jobs.get(args.id)
        if args.wait and not job.done:
            value = run_sync(job.wait(timeout=args.timeout))
        elif job.status == "completed":
            value = job.result
        elif job.done:
            raise WizError(f"job {job.id} {job.status}: {job.error}")
        else:
            print(f"job {job.id} is {job.status}; `%wiz result {job.id} --wait` waits for it")
            return None
        self._store(args.output, value)
        return value

    def cmd_cancel(self, args: argparse.Namespace, cell: str | None) -> None:
        done = self.ws.jobs.cancel(args.id)
        print(f"job {args.id} cancelled" if done else f"job {args.id} had already finished")

    def cmd_retry(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self.ws.jobs.retry(args.id)

    def cmd_priority(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self.ws.jobs.set_priority(args.id, args.priority)

    def cmd_pause(self, args: argparse.Namespace, cell: str | None) -> None:
        self.ws.jobs.pause()
        print("queue paused: no new jobs start until `%wiz resume`")

    def cmd_resume(self, args: argparse.Namespace, cell: str | None) -> None:
        self.ws.jobs.resume()
        print("queue resumed")

    def cmd_schedule(self, args: argparse.Namespace, cell: str | None) -> Any:
        try:
            data = json.loads(args.data) if args.data else None
        except json.JSONDecodeError as e:
            raise WizError(f'data must be JSON, e.g. \'{{"day": "monday"}}\' ({e.msg})') from None
        after: Any = None
        if args.after is not None:
            after = int(args.after) if args.after.isdigit() else args.after
        return self.ws.schedules.add(
            args.task, data, name=args.name, cron=args.cron, tz=args.tz, every=args.every,
            at=args.at, after=after, on=args.on,
        )  # fmt: skip

    def cmd_schedules(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self.ws.schedules.list()

    def cmd_board(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self.ws.board(limit=args.limit)

    def cmd_agent(self, args: argparse.Namespace, cell: str | None) -> Any:
        if args.name is None:
            agents = self.ws.agents.list()
            if not agents:
                print("no agents yet: %wiz agent NAME --role ... --goal ...")
            for a in agents:
                print(repr(a))
            return None
        fields = {
            k: getattr(args, k)
            for k in ("role", "goal", "backstory", "instructions", "model", "max_steps")
        }
        if args.tools:
            fields["tools"] = [t.strip() for t in args.tools.split(",") if t.strip()]
        if cell and cell.strip():
            fields["instructions"] = cell.strip()
        fields = {k: v for k, v in fields.items() if v is not None}
        return self.ws.agent(args.name, **fields)

    def _prompt(self, words: list[str], cell: str | None) -> str:
        text = " ".join(words)
        if cell and cell.strip():
            body = self.shell.var_expand(cell) if self.shell is not None else cell
            text = f"{text}\n{body}".strip()
        if not text:
            raise WizError(
                "give a prompt: %wiz ask NAME your question, or %%wiz ask NAME with the cell"
            )
        return text

    def cmd_ask(self, args: argparse.Namespace, cell: str | None) -> Any:
        agent = self.ws.agents.get(args.name)
        prompt = self._prompt(args.prompt, cell)
        self._ensure_running()
        job = agent.submit("ask", prompt)
        if args.background:
            self._store(args.output, job)
            return job
        answer = self._stream(job, args.timeout)
        self._store(args.output, answer)
        return None

    def cmd_assign(self, args: argparse.Namespace, cell: str | None) -> Any:
        agent = self.ws.agents.get(args.name)
        task = self._prompt(args.task, cell)
        self._ensure_running()
        job = agent.assign(
            task, validation=args.validate or (), priority=args.priority, delay=args.delay,
            depends_on=args.after or (), attempts=args.attempts, timeout=args.timeout,
        )  # fmt: skip
        if not args.wait:
            self._store(args.output, job)
            return job
        answer = self._stream(job, None)
        self._store(args.output, answer)
        return None

    def _ensure_running(self) -> None:
        if not self.ws.runtime.running:
            run_sync(self.ws.start())

    def _stream(self, job: Any, timeout: float | None) -> Any:
        """Wait for ``job``; its words print into this cell as they come (the one bridge
        runs the loop meanwhile), so a notebook run top to bottom stays in order.

        The printing happens in a task started from this cell, not in the event
        callback: ipykernel routes output by the context a task was created in,
        and the runtime's tasks were created by an earlier cell.
        """
        pieces: asyncio.Queue[str] = asyncio.Queue()

        def on_delta(event: Any) -> None:
            if event.job_id == job.id:
                pieces.put_nowait(event.data["text"])

        async def follow() -> Any:
            waiter = asyncio.ensure_future(job.wait(timeout=timeout))
            printed = ""
            while True:
                getter = asyncio.ensure_future(pieces.get())
                await asyncio.wait({waiter, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    printed += getter.result()
                    print(getter.result(), end="", flush=True)
                    continue
                getter.cancel()
                while not pieces.empty():
                    piece = pieces.get_nowait()
                    printed += piece
                    print(piece, end="", flush=True)
                answer = waiter.result()  # raises JobFailed for a failed job
                text = str(answer)
                print(
                    text[len(printed) :]
                    if printed and text.startswith(printed)
                    else ("\n" if printed else "") + text
                )
                return answer

        off = self.ws.events.on("agent.delta", on_delta)
        try:
            return run_sync(follow())
        finally:
            off()

    def cmd_chat(self, args: argparse.Namespace, cell: str | None) -> Any:
        names = args.names or None
        if names:
            for n in names:
                self.ws.agents.get(n)
        elif not self.ws.agents.list():
            raise WizError("no agents yet: %wiz agent NAME --role ... first")
        return self.ws.chat_panel(names)

    def cmd_model(self, args: argparse.Namespace, cell: str | None) -> None:
        if args.name:
            self.ws.llm.set_default_model(args.name)
        print(f"default model: {self.ws.llm.resolve()}")

    def cmd_status(self, args: argparse.Namespace, cell: str | None) -> None:
        ws = self.ws
        counts = ", ".join(f"{k} {v}" for k, v in ws.jobs.counts().items() if v) or "no jobs"
        state = "running" if ws.runtime.running else "stopped"
        paused = " (queue paused)" if ws.jobs.paused else ""
        print(f"workspace {ws.path}")
        print(f"runtime {state}{paused}; tasks: {', '.join(sorted(ws.jobs.tasks)) or 'none'}")
        print(f"jobs: {counts}")
        print(f"schedules: {len(ws.schedules.list(status='active'))} active")
        if ws.dask is not None:
            print(ws.dask.summary())

    def cmd_dask(self, args: argparse.Namespace, cell: str | None) -> None:
        ws = self.ws
        if args.target is None:
            print(ws.dask.summary() if ws.dask is not None else "dask: off (%wiz dask local)")
            return
        if args.workers is not None and args.workers < 1:
            raise WizError("--workers must be at least 1")
        self._ensure_running()
        cluster = ws.use_dask(args.target, n_workers=args.workers)
        try:
            run_sync(asyncio.wait_for(cluster.ready(), args.timeout))
        except asyncio.TimeoutError:
            raise WizError(
                f"no answer from Dask at {cluster.describe_target()} within {args.timeout:g} s"
            ) from None
        except WizError:
            raise
        except Exception as e:
            raise WizError(cluster.error or f"could not connect to Dask: {e}") from None
        print(cluster.summary())


_loaded: dict[int, WizMagics] = {}


def load(ipython: Any) -> None:
    """``%load_ext wiz_jupyter``: register the magics and start the runtime on the
    kernel's loop. Loading twice is harmless."""
    if id(ipython) in _loaded:
        return
    magics = WizMagics(ipython)
    ipython.register_magics(magics)
    _loaded[id(ipython)] = magics
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # a plain IPython terminal: start with `await ws.start()`
    magics._lifecycle = loop.create_task(magics.ws.start())


def unload(ipython: Any) -> None:
    """``%unload_ext wiz_jupyter``: stop the runtime gracefully."""
    magics = _loaded.pop(id(ipython), None)
    if magics is None or magics._ws is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    magics._lifecycle = loop.create_task(magics._ws.stop())
