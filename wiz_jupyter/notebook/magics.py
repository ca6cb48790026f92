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
        command("status", self.cmd_status, "the workspace, its runtime and its counts")
        c = command("board", self.cmd_board, "the live job board widget")
        c.add_argument("--limit", type=int, default=200, help="jobs shown (default 200)")
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

    def cmd_status(self, args: argparse.Namespace, cell: str | None) -> None:
        ws = self.ws
        counts = ", ".join(f"{k} {v}" for k, v in ws.jobs.counts().items() if v) or "no jobs"
        state = "running" if ws.runtime.running else "stopped"
        paused = " (queue paused)" if ws.jobs.paused else ""
        print(f"workspace {ws.path}")
        print(f"runtime {state}{paused}; tasks: {', '.join(sorted(ws.jobs.tasks)) or 'none'}")
        print(f"jobs: {counts}")
        print(f"schedules: {len(ws.schedules.list(status='active'))} active")


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
