"""The ``wiz`` command line: a thin layer over the Python API.

::

    wiz jobs [--status failed] [--task T] [--group G] [--limit 20] [--json]
    wiz schedules [--json]
    wiz backfill NAME 2026-11-01 2026-11-08   # the runs a time schedule would have made
    wiz worker --tasks my_tasks.py          # a headless runtime: fires schedules, works jobs
    wiz worker --tasks t.py --dask tcp://scheduler:8786   # executor="dask" bodies on a cluster
    wiz run-due --tasks my_tasks.py         # fire what is due, work it, exit (for an OS cron)
    wiz run report.ipynb -p region eu       # a notebook as a job: wait for it (--background: queue it)
    wiz gc [--dry-run] [--vacuum]           # apply the retention policies now
    wiz approve 12 | wiz deny 12 "why" | wiz answer 13 "text"   # jobs awaiting input
    wiz autowake install|remove|status      # a crontab entry that calls run-due
                                            # (--at-boot: and a worker started at boot)

Every subcommand takes ``--db PATH`` (default: the default workspace's
database, ``$WIZ_HOME/wiz.db`` or ``.wiz/wiz.db``). ``--tasks`` names Python
files or modules that register handlers on ``wiz.workspace()``, which the
command points at ``--db`` before importing them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from .argtypes import count, positive_seconds, seconds
from .errors import ScheduleNotFound, WizError
from .jobs.display import request_text, task_cell, when
from .jobs.models import STATUSES
from .jobs.notebooks import add_notebook_options
from .jobs.store import default_path
from .workspace import Workspace, set_default

AUTOWAKE_TAG = "# wiz-autowake"
AUTOWAKE_BOOT_TAG = "# wiz-autowake-boot"


def _open(args: argparse.Namespace, **kwargs: Any) -> Workspace:
    ws = Workspace(args.db, **kwargs)
    set_default(ws)
    for spec in args.tasks or ():
        _load_tasks(spec)
    return ws


def _load_tasks(spec: str) -> None:
    """Import a file or module that registers tasks on ``wiz.workspace()``."""
    path = Path(spec)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise WizError(f"no tasks file {spec}")
        name = f"wiz_tasks_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.resolve().parent))
        run = lambda: module_spec.loader.exec_module(module)  # noqa: E731
    else:
        run = lambda: importlib.import_module(spec)  # noqa: E731
    try:
        run()
    except ModuleNotFoundError as e:
        if e.name and spec.split(".")[0] == e.name.split(".")[0]:
            raise WizError(f"no tasks module {spec!r} (nor a file of that name)") from None
        raise WizError(f"tasks {spec}: {e}") from None
    except Exception as e:  # the tasks file's own error, in one line with where it was raised
        where = traceback.extract_tb(e.__traceback__)[-1]
        raise WizError(
            f"tasks {spec} raised {type(e).__name__}: {e} ({where.filename}:{where.lineno})"
        ) from None


# -- subcommands ---------------------------------------------------------------------------------


def cmd_jobs(args: argparse.Namespace) -> int:
    ws = _open(args)
    jobs = ws.jobs.list(
        status=args.status, task=args.task, group=args.group, limit=args.limit, newest_first=True
    )
    if args.json:
        print(json.dumps([j.as_dict() for j in jobs], default=str))
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in ws.jobs.counts().items() if v)
    print(f"{ws.path}: {counts or 'no jobs'}")
    for j in jobs:
        line = f"{j.id:>6}  {j.status:<9}  {task_cell(j.snapshot):<20}  {when(j.created_at, '-')}"
        if j.status == "awaiting_input":
            line += f"  {request_text((j.input or {}).get('request'), 120)}"
        elif j.error:
            line += f"  {j.error[:60]}"
        print(line)
    return 0


def cmd_reply(args: argparse.Namespace) -> int:
    """approve / deny / answer: the job goes back to waiting, for whichever process runs
    its agent (a kernel, ``wiz worker``) to resume it."""
    ws = _open(args)
    if args.command == "approve":
        job = ws.jobs.approve(args.id)
    elif args.command == "deny":
        job = ws.jobs.deny(args.id, " ".join(args.words))
    else:
        job = ws.jobs.answer(args.id, " ".join(args.words))
    verb = {"approve": "approved", "deny": "denied", "answer": "answered"}[args.command]
    print(f"job {job.id} {verb}; it is {job.status} until a process running its agent resumes it")
    ws.close()
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    ws = _open(args)
    before = ws.store.size()
    out = ws.gc(dry_run=args.dry_run, vacuum=args.vacuum)
    tasks = ", ".join(f"{t} {n}" for t, n in sorted(out["by_task"].items())) or "nothing"
    verb = "would remove" if args.dry_run else "removed"
    print(f"wiz gc: {verb} {out['removed']} jobs ({tasks}); {ws.path}: "
          f"{before / 1e6:.1f} MB -> {out['bytes'] / 1e6:.1f} MB")  # fmt: skip
    ws.close()
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    ws = _open(args)
    schedules = ws.schedules.list()
    if args.json:
        print(json.dumps([_schedule_dict(s) for s in schedules], default=str))
        return 0
    if not schedules:
        print(f"{ws.path}: no schedules")
    for s in schedules:
        print(
            f"{s.id:>4}  {s.status:<7}  {s.name:<30}  {s.task:<16}  next {when(s.next_run, '-')}  "
            f"runs {s.run_count}  failed {s.fail_count}  overlap {s.overlap}  "
            f"skipped {s.skip_count}"
            + (f" (last {when(s.last_skipped)})" if s.last_skipped else "")
        )
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    ws = _open(args)
    try:
        schedule = ws.schedules.get(args.schedule)
    except ScheduleNotFound:
        if not args.schedule.isdigit():
            raise
        schedule = ws.schedules.get(int(args.schedule))  # an id
    jobs = ws.schedules.backfill(schedule, args.start, args.end, limit=args.limit)
    print(f"wiz backfill: {len(jobs)} runs of {schedule.name!r} added"
          + "".join(f"\n{j.id:>6}  {j.data['scheduled_for']}" for j in jobs))  # fmt: skip
    ws.close()
    return 0


def _schedule_dict(s: Any) -> dict[str, Any]:
    trigger = {k: v for k, v in s.trigger.items() if k != "secret"}  # never print a secret
    return {
        "id": s.id, "name": s.name, "task": s.task, "status": s.status, "trigger": trigger,
        "description": s.description, "next_run": s.next_run, "last_run": s.last_run,
        "run_count": s.run_count, "fail_count": s.fail_count, "last_result": s.last_result,
        "overlap": s.overlap, "skip_count": s.skip_count, "last_skipped": s.last_skipped,
    }  # fmt: skip


def cmd_worker(args: argparse.Namespace) -> int:
    async def main() -> None:
        ws = _open(args, concurrency=args.concurrency)
        if args.dask:
            ws.use_dask(args.dask)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await ws.start()
        tasks = ", ".join(sorted(ws.jobs.tasks)) or "none"
        active = len(ws.schedules.list(status="active"))
        if ws.dask is not None:
            try:
                await ws.dask
            except Exception as e:
                await ws.stop(grace=0)
                ws.close()
                raise WizError(ws.dask.error or f"could not connect to Dask: {e}") from None
            print(f"wiz worker {ws.dask.summary()}", flush=True)
        targets = len(ws.notifications.list())  # job ends it sends out (webhooks, mail)
        print(f"wiz worker on {ws.path}: tasks {tasks}; {active} active schedules; "
              f"{targets} notification targets. Ctrl-C to stop.", flush=True)  # fmt: skip
        await stop.wait()
        print("wiz worker: stopping (running jobs get a grace period)", flush=True)
        await ws.stop(grace=args.grace)
        ws.close()

    asyncio.run(main())
    return 0


def cmd_run_due(args: argparse.Namespace) -> int:
    async def main() -> int:
        ws = _open(args)
        ws.scheduler.run_due()
        await ws.run_until_idle(timeout=args.timeout)
        # What this process fired: another process may fire the same schedules at the
        # same time (each occasion fires once), so new rows in the table are not ours.
        new = [ws.jobs.get(i) for i in ws.scheduler.fired]
        failed = [j for j in new if j.status == "failed"]
        print(f"wiz run-due: {len(new)} jobs fired, {len(failed)} failed")
        ws.close()
        return 1 if failed else 0

    return asyncio.run(main())


def cmd_run(args: argparse.Namespace) -> int:
    from .jobs.notebooks import parse_parameters

    params = parse_parameters(args.parameters)

    async def main() -> int:
        # concurrency 1 and a high priority: this notebook first, one kernel at a time
        ws = _open(args, concurrency=1)
        job = ws.jobs.add_notebook(
            args.notebook, params, kernel=args.kernel, cwd=args.cwd, timeout=args.timeout,
            attempts=args.attempts, priority=1_000_000,
        )  # fmt: skip
        if args.background:
            print(f"job {job.id}: {Path(args.notebook).name} waits for a worker")
            ws.close()
            return 0
        await ws.start()
        try:
            result = await job.wait()
        except WizError as e:
            print(f"wiz: {e}", file=sys.stderr)
            return 1
        finally:
            await ws.stop(grace=1.0)
            ws.close()
        print(
            f"job {job.id}: {result['cells']} cells in {result['duration']:.1f} s -> {result['notebook']}"
        )
        return 0

    return asyncio.run(main())


def cmd_autowake(args: argparse.Namespace) -> int:
    crontab = os.environ.get("WIZ_CRONTAB", "crontab")
    db = str(Path(args.db).resolve())
    tag = f"{AUTOWAKE_TAG} {db}"
    boot_tag = f"{AUTOWAKE_BOOT_TAG} {db}"
    listed = subprocess.run([crontab, "-l"], capture_output=True, text=True)
    lines = listed.stdout.splitlines() if listed.returncode == 0 else []
    mine = [line for line in lines if line.endswith((tag, boot_tag))]
    if args.action == "status":
        print("\n".join(mine) if mine else f"autowake is off for {db}")
        return 0
    keep = [line for line in lines if not line.endswith((tag, boot_tag))]
    if args.action == "install":
        tasks: list[str] = []
        for spec in args.tasks or ():
            tasks += ["--tasks", str(Path(spec).resolve()) if Path(spec).exists() else spec]
        log = shlex.quote(str(Path(db).with_name("autowake.log")))
        cwd = shlex.quote(str(Path.cwd()))
        run_due = [sys.executable, "-m", "wiz_jupyter", "run-due", "--db", db, *tasks]
        keep.append(f"*/{args.every} * * * * cd {cwd} && {shlex.join(run_due)} >> {log} 2>&1 {tag}")
        if args.at_boot:  # a headless worker from boot on: boot schedules fire at once
            worker = [sys.executable, "-m", "wiz_jupyter", "worker", "--db", db, *tasks]
            keep.append(f"@reboot cd {cwd} && {shlex.join(worker)} >> {log} 2>&1 {boot_tag}")
    result = subprocess.run(
        [crontab, "-"], input="\n".join(keep) + "\n", text=True, capture_output=True
    )
    if result.returncode != 0:
        raise WizError(f"crontab refused the change: {result.stderr.strip()}")
    print(f"autowake {'installed' if args.action == 'install' else 'removed'} for {db}")
    return 0


# -- the parser ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # NoReturn
        # one line, not argparse's usage block: what is wrong, and where the usage is
        message = " ".join(message.split())  # an argument may hold a newline
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="wiz", description="wiz_jupyter's jobs and schedules.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, fn: Any, help: str, tasks: bool = False) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument(
            "--db", default=default_path(), help="workspace database (default: %(default)s)"
        )
        if tasks:
            c.add_argument("--tasks", action="append", metavar="FILE_OR_MODULE",
                           help="Python file or module registering task handlers (repeatable)")  # fmt: skip
        c.set_defaults(fn=fn)
        return c

    c = command("jobs", cmd_jobs, "list jobs, newest first")
    c.add_argument(
        "--status",
        choices=STATUSES,
    )
    c.add_argument("--task")
    c.add_argument("--group", help="only jobs added with this group")
    c.add_argument("--limit", type=count, default=50)
    c.add_argument("--json", action="store_true")
    c.set_defaults(tasks=None)
    for name, words, help in (
        ("approve", None, "approve the tool call a job awaits"),
        ("deny", "reason", "refuse a job's tool call; the reason goes back to the model"),
        ("answer", "text", "answer the question a job asked (ask_user)"),
    ):
        c = command(name, cmd_reply, help)
        c.add_argument("id", type=count)
        if words:
            c.add_argument("words", nargs="*", metavar=words.upper())
        c.set_defaults(tasks=None, words=[])
    c = command("schedules", cmd_schedules, "list schedules")
    c.add_argument("--json", action="store_true")
    c.set_defaults(tasks=None)
    c = command(
        "backfill", cmd_backfill, "add the runs a time schedule would have made in [START, END)"
    )
    c.add_argument("schedule", metavar="NAME", help="the schedule's name (or id)")
    c.add_argument("start", help="an ISO date-time, e.g. 2026-11-01T00:00")
    c.add_argument("end", help="an ISO date-time (not included)")
    c.add_argument("--limit", type=count, default=10_000, help="refuse more runs than this")
    c.set_defaults(tasks=None)
    c = command("gc", cmd_gc, "remove the finished jobs the retention policies let go")
    c.add_argument("--dry-run", action="store_true", help="only say what would go")
    c.add_argument("--vacuum", action="store_true", help="then give the freed space to the disk")
    c.set_defaults(tasks=None)
    c = command("worker", cmd_worker, "run a headless worker until SIGINT/SIGTERM", tasks=True)
    c.add_argument("--concurrency", type=count, default=16)
    c.add_argument("--grace", type=seconds, default=10.0, help="seconds running jobs get on stop")
    c.add_argument("--dask", metavar="ADDRESS|local",
                   help="run executor='dask' task bodies on this Dask scheduler (needs the dask extra)")  # fmt: skip
    c = command("run-due", cmd_run_due, "fire what is due, work it until idle, exit", tasks=True)
    c.add_argument("--timeout", type=positive_seconds, default=3600.0)
    c = command("run", cmd_run, "run a notebook as a job (a copy, in a fresh kernel) and wait")
    c.add_argument("notebook", help="the .ipynb file (never modified)")
    add_notebook_options(c)
    c.add_argument(
        "--timeout", type=positive_seconds, default=None, help="seconds for the whole run"
    )
    c.add_argument("--attempts", type=count, default=None)
    c.add_argument(
        "--background", action="store_true", help="add the job and exit (a worker runs it)"
    )
    c.set_defaults(tasks=None)
    c = command("autowake", cmd_autowake, "a crontab entry that calls `wiz run-due`", tasks=True)
    c.add_argument("action", choices=["install", "remove", "status"])
    c.add_argument(
        "--every", type=minutes, default=5, help="minutes between wake-ups, 1-59 (default 5)"
    )
    c.add_argument(
        "--at-boot",
        action="store_true",
        help="also start a headless worker at boot (an @reboot entry), for boot schedules",
    )
    return p


def minutes(text: str) -> int:
    """Minutes between crontab wake-ups: ``*/N`` in the minute field means 1 to 59."""
    value = count(text)
    if value > 59:
        raise argparse.ArgumentTypeError(f"expected 1 to 59 minutes, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except WizError as e:
        print(f"wiz: {e}", file=sys.stderr)
    except (OSError, ValueError, OverflowError) as e:
        print(
            f"wiz: {args.command}: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr
        )
    return 2
