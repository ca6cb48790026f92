"""Notebooks as jobs: ``ws.jobs.add_notebook(path, parameters={...})``.

A notebook job executes a *copy* of the notebook in a fresh kernel (the named
kernel, else the notebook's own), with the parameters injected after the cell
tagged ``parameters`` (at the top when no cell has the tag), exactly as
papermill does: existing papermill notebooks run unchanged, and the copy
carries papermill's metadata. The source file is only ever read.

The copy is kept under the workspace (``ws.runs_dir``, beside the database) as
``<stem>-<job id>.ipynb``, with the job id, parameters and timings in its
``wiz`` metadata and per-cell timings in ``papermill`` metadata. Progress is
code cells done out of code cells in all; the failing cell and its error are
the job's error; cancel and timeout shut the kernel down.

Why papermill prepares and nbclient executes: papermill does the parameter
injection and the metadata (``load_notebook_node``, ``parameterize_notebook``,
``prepare_notebook_metadata``), but its engine runs nbclient synchronously,
inside nbclient's ``setup_kernel`` context, which installs SIGINT and SIGTERM
handlers on the running event loop and never removes them. In a kernel those
would take over "interrupt kernel"; in the headless worker, the graceful
shutdown. So the runner drives nbclient's async API cell by cell on the
runtime's loop, which also gives progress per cell, and cancel and timeout
that stop the kernel at once.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

from ..errors import InvalidJob, NotebookFailed

TASK = "notebook"
# registered by the workspace itself, not listed as the user's (wiz.notify: jobs/outbound.py)
BUILTIN_TASKS = frozenset({TASK, "wiz.notify"})
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def parse_value(text: str) -> Any:
    """A ``-p name value`` value: a Python literal (``3``, ``2.5``, ``True``, ``None``,
    ``[1, 2]``, ``'text'``) when it parses as one, else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def add_notebook_options(parser: Any) -> None:
    """The options of a notebook run, shared by ``%wiz run``/``schedule`` and ``wiz run``:
    ``-p NAME VALUE`` (repeatable; see :func:`parse_parameters`), ``--kernel``, ``--cwd``."""
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], dest="parameters",
        metavar=("NAME", "VALUE"),
        help="a notebook parameter (repeatable); VALUE is a Python literal or plain text",
    )  # fmt: skip
    parser.add_argument("--kernel", help="the kernel to run in (default: the notebook's own)")
    parser.add_argument("--cwd", help="the folder to run in (default: the notebook's)")


def parse_parameters(pairs: list[list[str]] | list[tuple[str, str]]) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs (of ``%wiz run`` and ``wiz run``) as parameters; each value
    through :func:`parse_value`. A name that is not an identifier is a one-line error."""
    out = {}
    for name, value in pairs:
        if not name.isidentifier():
            raise InvalidJob(f"-p needs a parameter name, not {name!r}")
        out[name] = parse_value(value)
    return out


class Notebook:
    """A notebook to run as a job, for ``ws.schedules.add`` and chains.

    ``parameters`` are injected after the cell tagged ``parameters``; ``kernel``
    names the kernel (default: the notebook's own); ``cwd`` is where it runs
    (default: the notebook's folder). ::

        ws.schedules.add(wiz.Notebook("report.ipynb", {"region": "eu"}), cron="0 6 * * *")

    A schedule's ``data`` adds to the parameters, and so does what its trigger
    brings (``payload`` of a webhook, ``changes`` of a watch, ``upstream`` of an
    ``after``): give the notebook a parameter of that name to use it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        parameters: dict[str, Any] | None = None,
        *,
        kernel: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ):
        p = Path(path).expanduser()
        if p.suffix != ".ipynb":
            raise InvalidJob(f"a notebook job needs an .ipynb file, not {str(path)!r}")
        if not p.is_file():
            raise InvalidJob(f"notebook not found: {p}")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidJob(f"parameters must be a dict, not {type(parameters).__name__}")
        self.path = str(p.resolve())
        self.parameters = dict(parameters or {})
        self.kernel = kernel
        self.cwd = str(Path(cwd).expanduser().resolve()) if cwd is not None else None

    def job_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "parameters": self.parameters}
        if self.kernel:
            data["kernel"] = self.kernel
        if self.cwd:
            data["cwd"] = self.cwd
        return data

    def schedule_template(self) -> dict[str, Any]:
        return {"task": TASK}

    def schedule_data(self, data: dict[str, Any] | None) -> dict[str, Any]:
        out = self.job_data()
        out["parameters"] = {**self.parameters, **(data or {})}
        return out

    def __repr__(self) -> str:
        return f"<Notebook {self.path} parameters={self.parameters!r}>"


def output_path(runs_dir: str | os.PathLike[str], job_id: int, source: str) -> Path:
    """Where the executed copy of job ``job_id``'s notebook is kept."""
    return Path(runs_dir) / f"{Path(source).stem}-{job_id}.ipynb"


def _libraries() -> tuple[Any, Any, Any, Any]:
    # imported on the first notebook job only, in a thread (nbformat's schema checks
    # take a while to import): loading wiz_jupyter stays light, the loop stays free
    import nbclient
    import nbformat
    import papermill.execute
    import papermill.iorw
    import papermill.parameterize

    return nbformat, nbclient, papermill.iorw, papermill


_libs: tuple[Any, Any, Any, Any] | None = None


async def _load() -> tuple[Any, Any, Any, Any]:
    global _libs
    if _libs is None:
        _libs = await asyncio.to_thread(_libraries)
    return _libs


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


class NotebookRunner:
    """The handler of the built-in ``notebook`` task (registered in every workspace,
    so a headless ``wiz worker`` runs notebook jobs too)."""

    def __init__(self, runs_dir: Any):
        self._runs_dir = runs_dir  # a callable, so ws.runs_dir can change after start

    @property
    def runs_dir(self) -> Path:
        d = Path(self._runs_dir() if callable(self._runs_dir) else self._runs_dir)
        d.mkdir(parents=True, exist_ok=True)
        return d

    async def __call__(
        self,
        path: str,
        parameters: dict[str, Any] | None = None,
        kernel: str | None = None,
        cwd: str | None = None,
        job: Any = None,
        **trigger_data: Any,
    ) -> dict[str, Any]:
        nbformat, nbclient, iorw, papermill = await _load()
        source = Path(path)
        params = {**(parameters or {}), **trigger_data}
        job_id = job.id if job is not None else 0
        out = output_path(self.runs_dir, job_id, str(source))
        nb, kernel_name = _prepare(iorw, papermill, source, params, kernel, out)
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        started = time.time()
        nb.metadata["wiz"] = {
            "job_id": job_id,
            "attempt": job.attempt if job is not None else 1,
            "source": str(source),
            "parameters": params,
            "kernel": kernel_name,
            "started_at": _now(),
            "status": "running",
        }
        meta = nb.metadata["wiz"]  # the notebook holds a converted copy: update that one
        client = _client(nbclient, nb, kernel_name, cwd or str(source.parent), job)
        if job is not None:
            job.log(f"running a copy of {source.name} in kernel {kernel_name}: {out}")
            job.progress({"done": 0, "of": len(code)})
        run = _Run(code)
        status = "failed"
        try:
            await _start_kernel(client, nb, out)
            await run.cells(client, nb, job, lambda: nbformat.write(nb, str(out)), nbclient)
            if run.failed is None:
                status = "completed"
                if run.exited is not None:
                    meta["exited"] = {"cell": run.exited}
        except asyncio.CancelledError:
            status = "stopped"  # cancelled or timed out: the job's status says which
            raise
        except Exception as e:
            at = run.at
            where = f"cell {at + 1}" if at is not None else f"kernel {kernel_name!r} start"
            meta["error"] = {"cell": at, "ename": type(e).__name__, "evalue": str(e)}
            raise NotebookFailed(
                f"{source.name} {where}: {type(e).__name__}: {e}; executed copy: {out}",
                cell=at,
                output=str(out),
            ) from None
        finally:
            meta.update(status=status, finished_at=_now(), duration=time.time() - started)
            if run.failed is not None:
                meta["error"] = {"cell": run.failed[0], "ename": run.failed[1].ename,
                                 "evalue": run.failed[1].evalue}  # fmt: skip
            nbformat.write(nb, str(out))  # before the kernel stops: the copy is there when it has
            await asyncio.shield(_stop_kernel(client))

        if run.failed is not None:
            raise _cell_failed(source, out, nb.cells[run.failed[0]], *run.failed, job)
        result = {
            "notebook": str(out),
            "source": str(source),
            "parameters": params,
            "cells": len(code),
            "duration": round(time.time() - started, 3),
        }
        if run.exited is not None:
            result["exited_at_cell"] = run.exited + 1
            if job is not None:
                job.log(
                    f"cell {run.exited + 1} exited with sys.exit(); the cells after it did not run"
                )
        return result


def _client(nbclient: Any, nb: Any, kernel_name: str, cwd: str, job: Any) -> Any:
    return nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=None,  # the job's timeout bounds the whole run
        # a loaded machine can be slow to send a cell's last output: wait for it
        iopub_timeout=IOPUB_TIMEOUT,
        record_timing=True,
        resources={"metadata": {"path": cwd}},
        # nbclient's warnings belong to the job, not on the stderr of whoever runs it
        # (in a notebook, that is the output of whatever cell is running)
        log=_client_log(job),
    )


#: Seconds nbclient waits for a cell's outputs after its reply (its default is 4).
IOPUB_TIMEOUT = 30


def _client_log(job: Any) -> logging.Logger:
    """A logger for nbclient whose records go to the job's log lines, and nowhere else."""
    # a Logger of its own, not registered with logging (no logger per job kept for ever)
    log = logging.Logger("wiz_jupyter.notebooks.client", logging.INFO)
    log.addHandler(_JobLog(job))
    return log


class _JobLog(logging.Handler):
    def __init__(self, job: Any):
        super().__init__(logging.INFO)
        self.job = job

    def emit(self, record: logging.LogRecord) -> None:
        if self.job is not None:
            try:
                self.job.log(f"nbclient: {record.getMessage()}")
            except Exception:  # a log line is never worth failing the run
                pass


def _prepare(
    iorw: Any, papermill: Any, source: Path, params: dict[str, Any], kernel: str | None, out: Path
) -> tuple[Any, str]:
    """The notebook to run (read from ``source``, never written) with its parameters
    injected as papermill does, and the name of the kernel to run it in."""
    try:
        nb = iorw.load_notebook_node(str(source))
    except FileNotFoundError:
        raise NotebookFailed(f"notebook not found (moved or deleted?): {source}") from None
    if params:
        nb = papermill.parameterize.parameterize_notebook(nb, params, kernel_name=kernel)
    nb = papermill.execute.prepare_notebook_metadata(nb, str(source), str(out))
    nb = papermill.execute.remove_error_markers(nb)
    return nb, kernel or papermill.engines.papermill_engines.nb_kernel_name(None, nb, None)


async def _start_kernel(client: Any, nb: Any, out: Path) -> None:
    """Start the notebook's kernel; its own stderr (start-up warnings, a crash's last
    words) goes to a log beside the copy, not into the cell that started the job."""
    client.km = client.create_kernel_manager()
    client.km.log = client.log  # the kernel manager's warnings, too, go to the job's log
    with open(out.with_suffix(".log"), "wb") as kernel_log:  # noqa: ASYNC230 - instant
        await client.async_start_new_kernel(stdout=DEVNULL, stderr=kernel_log)
    await client.async_start_new_kernel_client()
    reply = await client.async_wait_for_reply(client.kc.kernel_info())
    if reply and "language_info" in reply.get("content", {}):
        nb.metadata["language_info"] = reply["content"]["language_info"]


class _Run:
    """The code cells of one run, executed in order: where it is (``at``), the cell that
    failed (``failed``: its index and the CellExecutionError), or the one that called
    ``sys.exit()`` (``exited``)."""

    def __init__(self, code: list[int]):
        self.code = code
        self.at: int | None = None
        self.failed: tuple[int, Any] | None = None
        self.exited: int | None = None

    async def cells(
        self, client: Any, nb: Any, job: Any, save: Callable[[], None], nbclient: Any
    ) -> None:
        saved = time.monotonic()
        for done, index in enumerate(self.code, 1):
            self.at, cell = index, nb.cells[index]
            pm = cell.metadata.setdefault("papermill", {})
            pm.update(start_time=_now(), status="running", exception=False)
            t0 = time.monotonic()
            run = asyncio.ensure_future(
                client.async_execute_cell(
                    cell, index, execution_count=client.code_cells_executed + 1
                )
            )
            run.add_done_callback(_retrieve)
            try:
                # shielded: nbclient turns a cancel into DeadKernelError, which would
                # make a cancel or timeout look like a crash; ours must stay a cancel
                await asyncio.shield(run)
            except asyncio.CancelledError:
                run.cancel()
                raise
            except nbclient.exceptions.CellExecutionError as e:
                pm["duration"] = time.monotonic() - t0
                if _clean_exit(e):  # sys.exit(), sys.exit(0): papermill ends the run here
                    pm.update(status="completed", exception=False, end_time=_now())
                    self.exited = index
                    for later in self.code[done:]:  # the cells not run, marked so
                        nb.cells[later].metadata.setdefault("papermill", {})["status"] = (
                            "not run: an earlier cell exited"
                        )
                    return
                pm.update(status="failed", exception=True, end_time=_now())
                self.failed = (index, e)
                return
            pm.update(status="completed", end_time=_now(), duration=time.monotonic() - t0)
            if job is not None:
                job.progress({"done": done, "of": len(self.code)})
            if time.monotonic() - saved > 1.0:  # keep the copy current on long runs
                save()
                saved = time.monotonic()


def _cell_failed(
    source: Path, out: Path, cell: Any, index: int, e: Any, job: Any
) -> NotebookFailed:
    """The error of a job whose cell ``index`` raised ``e``; its traceback goes to the job's log."""
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    if job is not None:
        job.log(_ANSI.sub("", e.traceback or "").strip()[-4000:])
    return NotebookFailed(
        f"{source.name} cell {index + 1} ({first!r}) raised {e.ename}: {e.evalue}; "
        f"executed copy: {out}",
        cell=index,
        output=str(out),
    )


def _clean_exit(error: Any) -> bool:
    """A cell that raised SystemExit with no code or code 0, which papermill counts as the
    notebook ending successfully (its raise_for_execution_errors)."""
    return getattr(error, "ename", None) == "SystemExit" and getattr(error, "evalue", None) in (
        "",
        "0",
    )


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # a cell abandoned on cancel: its DeadKernelError is expected


async def _stop_kernel(client: Any) -> None:
    """Shut the notebook's kernel down now; no kernel process outlives its job."""
    kc, km = client.kc, client.km
    if kc is not None:
        try:
            kc.stop_channels()
        except Exception:
            pass
    if km is not None:
        try:
            if await km.is_alive():
                await km.shutdown_kernel(now=True)
            else:
                await km.cleanup_resources()
        except Exception:
            pass
