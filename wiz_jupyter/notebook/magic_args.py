"""The arguments of each ``%wiz`` subcommand: one small function a subcommand, and the
table (:data:`SUBCOMMANDS`) that names them in the order ``%wiz --help`` lists them.

The handler of subcommand ``NAME`` is ``WizMagics.cmd_NAME`` (notebook/magics.py).
Number and time options use the shared types of :mod:`wiz_jupyter.argtypes`, so a value
SQLite cannot hold, NaN or a negative timeout is a one-line usage error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..argtypes import count, dollars, integer, positive_seconds, seconds
from ..jobs.models import STATUSES
from ..jobs.notebooks import add_notebook_options
from ..jobs.schedules import OVERLAPS

Parser = argparse.ArgumentParser


def _output(c: Parser, what: str) -> None:
    c.add_argument("-o", "--output", metavar="VAR", help=what)


def _notify(c: Parser) -> None:
    c.add_argument(
        "--notify", dest="notify", action="store_true", default=None,
        help="say when the job finishes (default: for background jobs, see %%wiz notify)",
    )  # fmt: skip
    c.add_argument(
        "--no-notify", dest="notify", action="store_false", help="do not say when it finishes"
    )


def _none(c: Parser) -> None:
    """A subcommand without arguments."""


def _job_id(c: Parser) -> None:
    c.add_argument("id", type=count)


def jobs(c: Parser) -> None:
    c.add_argument("--status", choices=STATUSES)
    c.add_argument("--task")
    c.add_argument("--agent")
    c.add_argument("--group", help="only jobs added with this group")
    c.add_argument("--limit", type=count, default=20)


def result(c: Parser) -> None:
    _job_id(c)
    c.add_argument("--wait", action="store_true", help="wait until the job finishes")
    c.add_argument("--timeout", type=positive_seconds, default=None)
    _output(c, "store the result in this variable")


def priority(c: Parser) -> None:
    _job_id(c)
    c.add_argument("priority", type=integer)


def run(c: Parser) -> None:
    c.add_argument("notebook", help="the .ipynb file (never modified)")
    add_notebook_options(c)
    c.add_argument(
        "--timeout", type=positive_seconds, default=None, help="seconds for the whole run"
    )
    c.add_argument("--attempts", type=count, default=None)
    c.add_argument("--after", type=count, action="append", metavar="JOB", help="wait for this job")
    c.add_argument("--background", action="store_true", help="return the job at once")
    _output(c, "store the result (with --background the job)")


def schedule(c: Parser) -> None:
    c.add_argument("task", nargs="?", help="a task name (or --notebook)")
    c.add_argument(
        "data", nargs="?", default=None, help="the job's data (a notebook's parameters) as JSON"
    )
    c.add_argument("--notebook", metavar="NOTEBOOK", help="schedule runs of this notebook")
    add_notebook_options(c)
    when = c.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="a cron expression, e.g. '0 9 * * 1-5'")
    when.add_argument("--every", type=positive_seconds, help="seconds between runs")
    when.add_argument("--at", help="an ISO date-time, once")
    when.add_argument("--after", help="a job id, or a schedule name")
    when.add_argument(
        "--trigger",
        help="a named trigger: boot, system_idle, shutdown, network_available (or a registered one)",
    )
    c.add_argument(
        "--on", default="completed", choices=["completed", "failed", "timeout", "finished"]
    )
    c.add_argument("--tz", help="time zone for --cron, e.g. Europe/Paris")
    c.add_argument("--name")
    c.add_argument(
        "--overlap", choices=OVERLAPS,
        help="while a run is unfinished: skip the occasion (default), buffer_one, or allow",
    )  # fmt: skip


def agent(c: Parser) -> None:
    c.add_argument("name", nargs="?", help="the agent (none: list the agents)")
    for field in ("--role", "--goal", "--backstory", "--instructions", "--model"):
        c.add_argument(field)
    c.add_argument("--tools", help="comma-separated built-in tool names, e.g. read_file,list_dir")
    c.add_argument("--max-steps", type=count, dest="max_steps")
    c.add_argument(
        "--auto-approve", dest="auto_approve", action="store_true", default=None,
        help="its tool calls (write_file, run_python, MCP ...) go ahead without approval",
    )  # fmt: skip
    c.add_argument(
        "--ask-first", dest="auto_approve", action="store_false",
        help="its tool calls that need approval wait for it (the default)",
    )  # fmt: skip
    c.add_argument(
        "--from", dest="from_file", metavar="FILE",
        help="load the persona from a YAML or JSON persona file (NAME: load it as NAME)",
    )  # fmt: skip
    c.add_argument(
        "--export", metavar="FILE", help="write the agent's persona to a YAML or JSON file"
    )
    c.add_argument(
        "--notebook", action="store_true",
        help="let it see this notebook's variables (list_variables, describe_variable)",
    )  # fmt: skip


def _budget(c: Parser) -> None:
    c.add_argument(
        "--max-cost", type=dollars, dest="max_cost", metavar="DOLLARS",
        help="fail the job rather than spend more on model calls",
    )  # fmt: skip
    c.add_argument(
        "--max-tokens", type=count, dest="max_tokens", metavar="N",
        help="fail the job rather than use more tokens (in and out)",
    )  # fmt: skip


def ask(c: Parser) -> None:
    c.add_argument("name")
    c.add_argument("prompt", nargs="*")
    _output(c, "store the answer in this variable")
    c.add_argument("--background", action="store_true", help="return the job at once")
    c.add_argument("--timeout", type=positive_seconds, default=None)
    c.add_argument(
        "--code", action="store_true",
        help="put the answer's code in a new cell below (not run)",
    )  # fmt: skip
    _budget(c)
    _notify(c)


def fix(c: Parser) -> None:
    c.add_argument("name", nargs="?", help="the agent (default: the only one)")
    _output(c, "store the answer in this variable")
    c.add_argument("--timeout", type=positive_seconds, default=None)


def assign(c: Parser) -> None:
    c.add_argument("name")
    c.add_argument("task", nargs="*")
    c.add_argument("--priority", type=integer, default=0)
    c.add_argument("--delay", type=seconds, default=0)
    c.add_argument(
        "--after", type=count, action="append", metavar="JOB",
        help="wait for this job (repeatable)",
    )  # fmt: skip
    c.add_argument("--attempts", type=count, default=None)
    c.add_argument("--timeout", type=positive_seconds, default=None)
    c.add_argument(
        "--validate", action="append", metavar="CRITERION",
        help="a check the answer must pass (repeatable)",
    )  # fmt: skip
    c.add_argument("--wait", action="store_true", help="wait for the answer")
    _budget(c)
    _output(c, "store the job (or with --wait the answer)")
    _notify(c)


def _reply(c: Parser, words: str | None, what: str) -> None:
    _job_id(c)
    if words:
        c.add_argument(words, nargs="*", help=what)
    c.add_argument("--background", action="store_true", help="do not wait for the job again")
    c.add_argument("--timeout", type=positive_seconds, default=None)
    _output(c, "store the answer in this variable")


def approve(c: Parser) -> None:
    _reply(c, None, "")


def deny(c: Parser) -> None:
    _reply(c, "reason", "why (it goes back to the model)")


def answer(c: Parser) -> None:
    _reply(c, "text", "the answer (%%wiz answer N: the cell)")


def chat(c: Parser) -> None:
    c.add_argument("names", nargs="*")


def model(c: Parser) -> None:
    c.add_argument("name", nargs="?")
    c.add_argument(
        "--api-base", dest="api_base", metavar="URL",
        help="where the model is served (Ollama, vLLM, llama.cpp, LM Studio, a proxy)",
    )  # fmt: skip


def notify(c: Parser) -> None:
    c.add_argument("state", nargs="?", choices=["on", "off"])


def provenance(c: Parser) -> None:
    _output(c, "store the records (a list of dicts)")


def dask(c: Parser) -> None:
    c.add_argument(
        "target", nargs="?", metavar="ADDRESS|local",
        help="a scheduler address (tcp://host:8786), or 'local' for a LocalCluster",
    )  # fmt: skip
    c.add_argument(
        "--workers", type=count, default=None, help="worker processes of 'local' (default: cores)"
    )
    c.add_argument(
        "--timeout", type=positive_seconds, default=60.0,
        help="seconds to wait for the connection",
    )  # fmt: skip


def board(c: Parser) -> None:
    c.add_argument("--limit", type=count, default=200, help="jobs shown (default 200)")


#: (name, what it does, its arguments), in the order of ``%wiz --help``.
SUBCOMMANDS: list[tuple[str, str, Callable[[Parser], None]]] = [
    ("jobs", "list jobs, newest first", jobs),
    ("result", "show a job's result (--wait for it)", result),
    ("cancel", "cancel a job (a running one too)", _job_id),
    ("retry", "run a failed or cancelled job again", _job_id),
    ("priority", "change a waiting job's priority", priority),
    ("pause", "stop starting jobs (running ones finish)", _none),
    ("resume", "start jobs again", _none),
    ("run", "run a notebook as a job (a copy, in a fresh kernel)", run),
    ("schedule", "add a schedule for a task or a notebook", schedule),
    ("schedules", "list schedules", _none),
    ("agent", "create or update an agent, show one, or list them", agent),
    (
        "ask",
        "ask an agent; the answer streams into this cell (%%wiz ask NAME: the cell is the prompt)",
        ask,
    ),
    (
        "fix",
        "ask an agent to explain the last error and put its corrected cell below (not run)",
        fix,
    ),
    ("assign", "give an agent a job (planned, checked, retried)", assign),
    ("approve", "approve the tool call job N awaits, and follow the job again", approve),
    ("deny", "refuse job N's tool call; the reason goes back to the model", deny),
    ("answer", "answer the question job N asked (ask_user)", answer),
    ("chat", "a chat panel with an agent (or all agents)", chat),
    ("model", "show the workspace's default model, or set it", model),
    ("models", "the models in use, their endpoints, and whether their keys are set", _none),
    ("status", "the workspace, its runtime and its counts", _none),
    (
        "notify",
        "turn notifications of finished background jobs on or off (no argument: show)",
        notify,
    ),
    (
        "provenance",
        "how each answer shown in this notebook was made (job, model, request hash, cost)",
        provenance,
    ),
    ("dask", "run executor='dask' tasks on a Dask cluster (no argument: show the cluster)", dask),
    ("board", "the live job board widget", board),
]
