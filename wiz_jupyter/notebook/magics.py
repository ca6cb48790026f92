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
import re
import shlex
import sys
from collections.abc import Callable
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from ..agents import _litellm
from ..agents.budgets import budget_line
from ..announce import withdraw as withdraw_workspaces
from ..errors import WizError
from ..jobs.display import request_text, text_table
from ..jobs.models import AWAITING_INPUT
from ..jobs.notebooks import BUILTIN_TASKS, parse_parameters
from ..workspace import Workspace
from ..workspace import workspace as default_workspace
from . import provenance, safe_html
from .cells import Errors
from .magic_args import SUBCOMMANDS

#: what ``_stream`` gets for a job that now awaits a person's input
_PARKED = object()


def awaiting_text(job: Any) -> str:
    """What a cell says of a job that awaits input: what it asks and how to reply."""
    request = (job.input or {}).get("request") or {}
    if request.get("kind") == "question":
        how = f"%wiz answer {job.id} TEXT"
    else:
        how = f"%wiz approve {job.id}  or  %wiz deny {job.id} REASON"
    return f"job {job.id} awaits your input: {request_text(request, 300)}\n  reply: {how}"


class UsageError(Exception):
    """Bad magic arguments: the message is the usage text."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit()
        # one line: what is wrong, and where the full usage is
        message = " ".join(message.split())  # an argument may hold a newline
        raise UsageError(f"{self.prog}: {message}; see {self.prog} --help")

    def exit(self, status: int = 0, message: str | None = None) -> None:
        raise _Exit(message)


class _Exit(Exception):
    """``--help`` was printed."""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def run_sync(awaitable: Any) -> Any:
    """Wait for ``awaitable`` from synchronous cell code on the kernel's running loop.

    The one bridge from synchronous code to the kernel's loop: ``nest_asyncio2`` lets
    ``run_until_complete`` re-enter the running loop, and the runtime's tasks progress
    meanwhile.
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
        self.errors: Errors | None = None  # set by %load_ext
        self.subparsers: dict[str, _Parser] = {}
        self.parser, self.handlers = self._build()

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = default_workspace()
        return self._ws

    # -- parsing -------------------------------------------------------------------------------

    def _build(self) -> tuple[_Parser, dict[str, Callable[[argparse.Namespace, str | None], Any]]]:
        """The %wiz parser: one subparser per row of :data:`magic_args.SUBCOMMANDS`, whose
        handler is the ``cmd_NAME`` method."""
        p = _Parser(prog="%wiz", description="wiz_jupyter: agents, jobs and schedules.")
        sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="SUBCOMMAND")
        handlers: dict[str, Callable[[argparse.Namespace, str | None], Any]] = {}
        for name, help, add_arguments in SUBCOMMANDS:
            c = sub.add_parser(name, help=help, description=help)
            add_arguments(c)
            # argparse %-formats usage with the prog, and our prog starts with '%'
            c.usage = c.format_usage()[len("usage: ") :].rstrip().replace("%", "%%")
            handlers[name] = getattr(self, f"cmd_{name}")
            self.subparsers[name] = c
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
        except (TimeoutError, asyncio.TimeoutError):
            print(f"wiz: {args.command}: no answer within its timeout", file=sys.stderr)
        except (OSError, ValueError, OverflowError) as e:
            # a file that cannot be written, a name too long for a folder, a value the
            # database cannot hold: what went wrong, in one line, and nothing changed
            print(f"wiz: {args.command}: {_one_line(e)}", file=sys.stderr)
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
            group=args.group,
            limit=args.limit,
            newest_first=True,
        )

    def cmd_result(self, args: argparse.Namespace, cell: str | None) -> Any:
        job = self.ws.jobs.get(args.id)
        if args.wait and not job.done:  # not past a person's reply: that is for a later cell
            job = run_sync(self.ws.jobs.settle(job.id, args.timeout))
        if job.status == AWAITING_INPUT:
            print(awaiting_text(job))
            return None
        if args.wait and job.done:
            value = job._raise_if_failed()
        elif job.status == "completed":
            value = job.result
        elif job.done:
            raise WizError(f"job {job.id} {job.status}: {job.error}")
        else:
            print(f"job {job.id} is {job.status}; `%wiz result {job.id} --wait` waits for it")
            return None
        if job.agent is not None and isinstance(value, str):  # an answer: with its provenance
            value = provenance.Answer(
                value,
                provenance.record(
                    provenance.of_job(self.ws, job.id, source="magic", kind=job.data.get("kind"))
                ),
            )
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

    def cmd_run(self, args: argparse.Namespace, cell: str | None) -> Any:
        job = self.ws.jobs.add_notebook(
            args.notebook, parse_parameters(args.parameters), kernel=args.kernel, cwd=args.cwd,
            timeout=args.timeout, attempts=args.attempts, depends_on=args.after or (),
        )  # fmt: skip
        self._ensure_running()
        if args.background:
            self._store(args.output, job)
            return job
        result = run_sync(job.wait())  # a failed cell raises JobFailed: one line, below
        print(
            f"job {job.id}: {result['cells']} cells in {result['duration']:.1f} s -> {result['notebook']}"
        )
        self._store(args.output, result)
        return None

    def cmd_schedule(self, args: argparse.Namespace, cell: str | None) -> Any:
        try:
            data = json.loads(args.data) if args.data else None
        except json.JSONDecodeError as e:
            raise WizError(f'data must be JSON, e.g. \'{{"day": "monday"}}\' ({e.msg})') from None
        after: Any = None
        if args.after is not None:
            after = int(args.after) if args.after.isdigit() else args.after
        target: Any = args.task
        if args.notebook:
            if args.task is not None and args.data is None:  # `--notebook NB '{"a": 1}'`
                try:
                    data = json.loads(args.task)
                except json.JSONDecodeError:
                    raise WizError("give a task or --notebook, not both") from None
            elif args.task is not None:
                raise WizError("give a task or --notebook, not both")
            params = {**(data or {}), **parse_parameters(args.parameters)}
            target = self.ws.notebook(args.notebook, kernel=args.kernel, cwd=args.cwd)
            data = params
        elif args.task is None:
            raise WizError("schedule what? give a task name, or --notebook NOTEBOOK")
        elif args.parameters or args.kernel or args.cwd:
            raise WizError("-p, --kernel and --cwd go with --notebook")
        return self.ws.schedules.add(
            target, data, name=args.name, cron=args.cron, tz=args.tz, every=args.every,
            at=args.at, after=after, on=args.on, trigger=args.trigger, overlap=args.overlap,
        )  # fmt: skip

    def cmd_schedules(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self.ws.schedules.list()

    def cmd_board(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self.ws.board(limit=args.limit)

    def cmd_agent(self, args: argparse.Namespace, cell: str | None) -> Any:
        if args.export and args.name is None:
            raise WizError("--export needs the agent: %wiz agent NAME --export FILE")
        if args.from_file is not None:
            agent = self.ws.agents.load(args.from_file, name=args.name)
            args.name = agent.name  # the fields given as well override the file's
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
        if args.auto_approve is not None:
            fields["auto_approve"] = args.auto_approve
        if args.notebook:
            from ..agents.tools import BUILTIN

            current = [] if args.tools else self._tools_of(args.name)
            if any(t not in BUILTIN and t not in self.ws.agents.tools for t in current):
                # a function or an MCP server cannot be given back by name from here
                raise WizError(
                    f"{args.name} has tools defined in Python; add the notebook tools there: "
                    f"ws.agent({args.name!r}, tools=[..., 'notebook'])"
                )
            fields["tools"] = list(dict.fromkeys([*fields.get("tools", current), "notebook"]))
        if cell and cell.strip():
            fields["instructions"] = cell.strip()
        fields = {k: v for k, v in fields.items() if v is not None}
        agent = self.ws.agent(args.name, **fields)
        if args.export:
            print(f"wrote {self.ws.agents.export(agent.name, args.export)}")
        return agent

    def _tools_of(self, name: str) -> list[str]:
        found = [a for a in self.ws.agents.list() if a.name == name]
        return found[0].tool_names if found else []

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
        notify = self._notify(args, background=args.background)
        job = agent.submit(
            "ask", prompt, notify=notify, max_cost=args.max_cost, max_tokens=args.max_tokens
        )
        if args.background:
            self._store(args.output, job)
            return self._note(job) if notify else job
        answer = self._stream(job, args.timeout)
        self._store(args.output, answer)
        if args.code and answer is not None:
            self._offer_code(answer)
        return None

    def cmd_fix(self, args: argparse.Namespace, cell: str | None) -> Any:
        """Send the last failing cell, its error and traceback to an agent; its answer
        streams here and its corrected cell goes in a new cell below, not run."""
        from .cells import fix_prompt

        err = self.errors.last if self.errors is not None else None
        if err is None:
            raise WizError("no error to fix: %wiz fix works on the last cell that raised")
        agent = self._fixer(args.name)
        prompt = fix_prompt(err, self.shell.user_ns, with_values=agent.notebook_tools)
        self._ensure_running()
        answer = self._stream(agent.submit("ask", prompt, notify=False), args.timeout)
        self._store(args.output, answer)
        if answer is not None:
            self._offer_code(answer)
        return None

    def _fixer(self, name: str | None) -> Any:
        if name is not None:
            return self.ws.agents.get(name)
        agents = self.ws.agents.list()
        if len(agents) != 1:
            names = ", ".join(a.name for a in agents)
            raise WizError(
                f"name the agent: %wiz fix NAME (agents: {names})"
                if agents
                else "no agents yet: %wiz agent NAME --role ... first"
            )
        return agents[0]

    def _offer_code(self, answer: Any) -> None:
        from .cells import code_of, offer

        code = code_of(str(answer))
        if code is None:
            print("(the answer has no code block: no cell added)")
        else:
            offer(self.shell, code)

    def cmd_assign(self, args: argparse.Namespace, cell: str | None) -> Any:
        agent = self.ws.agents.get(args.name)
        task = self._prompt(args.task, cell)
        self._ensure_running()
        notify = self._notify(args, background=not args.wait)
        job = agent.assign(
            task, validation=args.validate or (), priority=args.priority, delay=args.delay,
            depends_on=args.after or (), attempts=args.attempts, timeout=args.timeout,
            notify=notify, max_cost=args.max_cost, max_tokens=args.max_tokens,
        )  # fmt: skip
        if not args.wait:
            self._store(args.output, job)
            return self._note(job) if notify else job
        answer = self._stream(job, None)
        self._store(args.output, answer)
        return None

    def _notify(self, args: argparse.Namespace, *, background: bool) -> bool:
        """``--notify`` / ``--no-notify`` if given; else a background job notifies while the
        workspace's notifications are on, and a waited-for one does not (its answer
        appears in the cell)."""
        if args.notify is not None:
            return args.notify
        return background and self.ws.jobs.notifications_on

    def _note(self, job: Any) -> Any:
        """The widget that says in this cell when ``job`` finishes (the fallback of the
        JupyterLab notification; it works wherever widgets do)."""
        from .job_note import JobNote

        return JobNote(self.ws, job)

    def _ensure_running(self) -> None:
        if not self.ws.runtime.running:
            run_sync(self.ws.start())

    def _stream(self, job: Any, timeout: float | None) -> Any:
        """Wait for ``job``; its words appear in this cell as they come (the one bridge
        runs the loop meanwhile), so a notebook run top to bottom stays in order.

        In a kernel the words go to a display that is updated (20 times a second at
        most); then it is emptied and the finished answer follows as one ``display_data`` whose
        metadata carries the answer's provenance (``{"wiz": {...}}``, see
        :mod:`.provenance`): the output a saved notebook keeps. The live display
        ends empty, so a re-run shows what the saved notebook holds (nbval). A
        plain terminal gets the words printed.

        The updates happen in a task started from this cell, not in the event
        callback: ipykernel routes output by the context a task was created in,
        and the runtime's tasks were created by an earlier cell.
        """
        in_kernel = getattr(self.shell, "kernel", None) is not None
        pieces: asyncio.Queue[str] = asyncio.Queue()
        words = _Words(
            display({"text/plain": ""}, raw=True, display_id=True) if in_kernel else None
        )

        def on_delta(event: Any) -> None:
            if event.job_id == job.id:
                pieces.put_nowait(event.data["text"])

        async def follow() -> Any:
            # settles when the job ends or parks for a person: this cell must not wait for
            # the person who would answer in the next one
            waiter = asyncio.ensure_future(self.ws.jobs.settle(job.id, timeout))
            while True:
                getter = asyncio.ensure_future(pieces.get())
                await asyncio.wait({waiter, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    words.add(getter.result())  # from this task: its output goes to this cell
                    continue
                getter.cancel()
                while not pieces.empty():
                    words.add(pieces.get_nowait())
                settled = waiter.result()
                if settled.snapshot["status"] == AWAITING_INPUT:
                    return _PARKED
                answer = settled._raise_if_failed()  # raises JobFailed for a failed job
                words.finish(str(answer))
                return answer

        off = self.ws.events.on("agent.delta", on_delta)
        try:
            answer = run_sync(follow())
        finally:
            off()
            words.close()
        if answer is _PARKED:
            print(awaiting_text(job.refresh()))
            return None
        entry = provenance.record(
            provenance.of_job(self.ws, job.id, source="magic", kind=job.data.get("kind"))
        )
        if words.live is not None:
            text = str(answer)
            display(  # as safe HTML, never markdown: a trusted output would run its raw HTML
                safe_html.answer_bundle(text),
                raw=True,
                metadata={provenance.KEY: entry},
            )
        return provenance.Answer(answer, entry) if isinstance(answer, str) else answer

    def cmd_approve(self, args: argparse.Namespace, cell: str | None) -> Any:
        """Approve the tool call job N awaits; then its answer streams here (or it parks
        again, for the next call)."""
        return self._replied(self.ws.jobs.approve(args.id), args, "approved")

    def cmd_deny(self, args: argparse.Namespace, cell: str | None) -> Any:
        """Refuse job N's tool call; the reason goes back to the model."""
        reason = self._text(args.reason, cell)
        return self._replied(self.ws.jobs.deny(args.id, reason), args, "denied")

    def cmd_answer(self, args: argparse.Namespace, cell: str | None) -> Any:
        """Answer the question job N asked (``%%wiz answer N``: the cell is the answer)."""
        return self._replied(
            self.ws.jobs.answer(args.id, self._text(args.text, cell)), args, "answered"
        )

    def _text(self, words: list[str], cell: str | None) -> str:
        """The words of the line, then the cell's text (variables interpolated); may be
        empty (the queue says what is missing)."""
        if cell and cell.strip():
            body = self.shell.var_expand(cell) if self.shell is not None else cell
            return f"{' '.join(words)}\n{body}".strip()
        return " ".join(words)

    def _replied(self, job: Any, args: argparse.Namespace, verb: str) -> Any:
        print(f"job {job.id} {verb}")
        if args.background or job.agent is None:
            return None
        self._ensure_running()
        answer = self._stream(job, args.timeout)
        self._store(args.output, answer)
        return None

    def cmd_chat(self, args: argparse.Namespace, cell: str | None) -> Any:
        names = args.names or None
        if names:
            for n in names:
                self.ws.agents.get(n)
        elif not self.ws.agents.list():
            raise WizError("no agents yet: %wiz agent NAME --role ... first")
        return self.ws.chat_panel(names)

    def cmd_model(self, args: argparse.Namespace, cell: str | None) -> None:
        if args.api_base is not None and not args.name:
            raise WizError("name the model: %wiz model NAME --api-base URL")
        if args.name:
            self.ws.llm.set_default_model(args.name, api_base=args.api_base)
        model = self.ws.llm.resolve()
        base = self.ws.llm.api_bases.get(model)
        print(f"default model: {model}" + (f" at {base}" if base else ""))

    def cmd_models(self, args: argparse.Namespace, cell: str | None) -> None:
        rows = [
            [r["model"], ", ".join(r["used_by"]), r["api_base"] or "-", r["key"]]
            for r in self.ws.agents.models()
        ]
        print(text_table(["model", "used by", "api_base", "key"], rows))

    def cmd_notify(self, args: argparse.Namespace, cell: str | None) -> None:
        if args.state is not None:
            self.ws.jobs.set_notifications(args.state == "on")
        on = self.ws.jobs.notifications_on
        print(
            "notifications on: background jobs from %wiz say when they finish"
            if on
            else "notifications off: `%wiz notify on` turns them back on"
        )

    def cmd_provenance(self, args: argparse.Namespace, cell: str | None) -> Any:
        records = provenance.listing(self.shell.user_ns if self.shell is not None else None)
        self._store(args.output, [dict(r) for r in records])
        return records

    def cmd_status(self, args: argparse.Namespace, cell: str | None) -> None:
        ws = self.ws
        counts = ", ".join(f"{k} {v}" for k, v in ws.jobs.counts().items() if v) or "no jobs"
        state = "running" if ws.runtime.running else "stopped"
        paused = " (queue paused)" if ws.jobs.paused else ""
        print(f"workspace {ws.path}")
        mine = sorted(t for t in ws.jobs.tasks if t not in BUILTIN_TASKS)  # not `notebook`
        print(f"runtime {state}{paused}; tasks: {', '.join(mine) or 'none'}")
        print(f"jobs: {counts}")
        print(f"schedules: {len(ws.schedules.list(status='active'))} active")
        for b in ws.llm.budgets.report():
            print(budget_line(b))
        if ws.dask is not None:
            print(ws.dask.summary())

    def cmd_dask(self, args: argparse.Namespace, cell: str | None) -> None:
        ws = self.ws
        if args.target is None:
            print(ws.dask.summary() if ws.dask is not None else "dask: off (%wiz dask local)")
            return
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


_QUESTION_LINE = re.compile(r"^(?P<indent>[ \t]*)%wiz[ \t]+(?P<args>.*\?)[ \t]*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    """An input transformer: IPython reads a line ending in ``?`` as a help request, so
    ``%wiz ask analyst what is in df?`` would show help on ``df`` instead of asking. Such
    ``%wiz`` lines go to the magic as written (``run_line_magic`` still expands
    ``{var}``). A ``%%`` cell is left alone: its body is the magic's to read."""
    first = next((ln for ln in lines if ln.strip()), "")
    if first.lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        m = _QUESTION_LINE.match(line.rstrip("\n"))
        if m:
            end = "\n" if line.endswith("\n") else ""
            line = f"{m['indent']}get_ipython().run_line_magic('wiz', {m['args']!r}){end}"
        out.append(line)
    return out


#: Seconds after ``%load_ext`` at which litellm's import starts in the background.
PRELOAD_AFTER = 0.25


def load(ipython: Any) -> None:
    """``%load_ext wiz_jupyter``: register the magics and start the runtime on the
    kernel's loop. Loading twice is harmless."""
    if id(ipython) in _loaded:
        return
    magics = WizMagics(ipython)
    ipython.register_magics(magics)
    magics.errors = Errors(ipython)  # the cells that raise from now on, for %wiz fix
    magics.errors.attach()
    if keep_question_marks not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(keep_question_marks)
    _loaded[id(ipython)] = magics
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _litellm.preload()
        return  # a plain IPython terminal: start with `await ws.start()`
    magics._lifecycle = loop.create_task(magics.ws.start())
    # litellm's import (seconds) in a daemon thread, so the first answer does not wait for
    # it; started once this cell has answered, so %load_ext itself does not share the CPU
    loop.call_later(PRELOAD_AFTER, _litellm.preload)


def unload(ipython: Any) -> None:
    """``%unload_ext wiz_jupyter``: stop the runtime gracefully."""
    if keep_question_marks in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(keep_question_marks)
    magics = _loaded.pop(id(ipython), None)
    if magics is not None and magics.errors is not None:
        magics.errors.detach()
    withdraw_workspaces()  # the Jupyter server's sidebar stops listing this kernel's workspaces
    if magics is None or magics._ws is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    magics._lifecycle = loop.create_task(magics._ws.stop())


class _Words:
    """The words of an answer as they stream: printed in a terminal, or shown in the
    cell's ``live`` display, updated 20 times a second at most. Closed, the display is
    emptied and stays so (the finished answer follows as its own output)."""

    def __init__(self, live: Any):
        self.live = live
        self.printed = ""
        self._closed = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, piece: str) -> None:
        """Call it from the task of the cell: the update it schedules shows there."""
        self.printed += piece
        if self.live is None:
            print(piece, end="", flush=True)
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, self._last + 0.05 - loop.time()), self._show)

    def _show(self) -> None:
        self._timer = None
        if not self._closed:
            self.live.update({"text/plain": self.printed}, raw=True)
            self._last = asyncio.get_running_loop().time()

    def finish(self, text: str) -> None:
        """The answer is complete: a terminal gets what the stream did not print."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.live is None:
            printed = self.printed
            print(
                text[len(printed) :]
                if printed and text.startswith(printed)
                else ("\n" if printed else "") + text
            )

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.live is not None:
            self.live.update({"text/plain": ""}, raw=True)
