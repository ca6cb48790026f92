"""The server's side of one workspace database: opened lazily, read and acted on in threads.

The REST handlers never touch SQLite on the IOLoop's thread. The store
serialises every use of its one connection with a lock, and a write can wait
up to its busy timeout while another process holds the database, so each
call here runs in a small thread pool (:meth:`Backend.run`).

Rows become plain JSON-ready dicts here: the handlers only route, check
arguments and send. A webhook's secret never leaves this module.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import JobNotFound, ScheduleNotFound
from ..jobs.models import STATUSES, SUMMARY_COLUMNS, loads
from ..jobs.notebooks import TASK as NOTEBOOK_TASK
from ..jobs.notebooks import output_path
from ..workspace import Workspace

T = TypeVar("T")

#: activity columns stored as JSON text by the agents layer
_ACTIVITY_JSON = ("plan", "criteria", "messages", "tool_calls", "validation")
#: settings keys that look like credentials are never sent, whatever a persona stores
_SECRET_KEY = re.compile(r"key|token|secret|password|credential", re.IGNORECASE)


class Backend:
    """One workspace database as the server sees it.

    The file is opened on first use and only if it exists: a JupyterLab started
    in a folder without a workspace creates no ``.wiz/`` there. Until the file
    appears, reads answer empty and :meth:`token` says ``"absent"``.
    """

    def __init__(self, path: str, *, threads: int = 4, root_dir: str | None = None):
        self.path = path
        self.root_dir = root_dir  # the server's root: executed notebooks open relative to it
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wiz-server")
        self._ws: Workspace | None = None
        self._open_lock = threading.Lock()
        # tokens from an earlier server process never equal this one's
        self._nonce = uuid.uuid4().hex[:8]

    # -- threads -------------------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the backend's threads (SQLite may wait on a busy file)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def workspace(self) -> Workspace | None:
        """The workspace, opened now if its file exists; None while it does not.
        Raises :class:`~wiz_jupyter.StoreError` for a file that is not a wiz database."""
        if self._ws is None:
            with self._open_lock:
                if self._ws is None and os.path.exists(self.path):
                    self._ws = Workspace(self.path)
        return self._ws

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._open_lock:
            if self._ws is not None:
                self._ws.close()
                self._ws = None

    # -- the change counter --------------------------------------------------------------------

    def token(self) -> str:
        """A string that changes whenever the database does (any process's commit)."""
        ws = self.workspace()
        if ws is None:
            return f"{self._nonce}.absent"
        local, data_version = ws.store.version()
        return f"{self._nonce}.{local}.{data_version}"

    def summary(self) -> dict[str, Any]:
        """Counts by status, whether the queue is paused, and the change token."""
        ws = self.workspace()
        counts = ws.jobs.counts() if ws else dict.fromkeys(STATUSES, 0)
        return {
            "db": self.path,
            "exists": ws is not None,
            "counts": counts,
            "paused": ws.jobs.paused if ws else False,
            "token": self.token(),
        }

    # -- reads ---------------------------------------------------------------------------------

    def has_table(self, name: str) -> bool:
        ws = self.workspace()
        return ws is not None and bool(
            ws.store.read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        )

    def agents(self) -> list[dict[str, Any]]:
        """The ``agents`` table's personas with their job counts; [] until the agents
        layer has created the table."""
        if not self.has_table("agents"):
            return []
        ws = self.workspace()
        assert ws is not None
        counts: dict[str, dict[str, int]] = {}
        for agent, status, n in ws.store.read(
            "SELECT agent, status, COUNT(*) FROM jobs WHERE agent IS NOT NULL GROUP BY agent, status"
        ):
            counts.setdefault(agent, {})[status] = n
        out = []
        for row in ws.store.read("SELECT * FROM agents ORDER BY name"):
            a = dict(row)
            for column in ("tools", "settings"):
                if isinstance(a.get(column), str):
                    a[column] = _loads_or_text(a[column])
            if isinstance(a.get("settings"), dict):
                a["settings"] = {
                    k: v for k, v in a["settings"].items() if not _SECRET_KEY.search(str(k))
                }
            a["jobs"] = counts.get(a.get("name"), {})
            out.append(a)
        return out

    def jobs(
        self,
        status: list[str] | None,
        task: str | None,
        agent: str | None,
        limit: int,
        offset: int,
    ) -> dict[str, Any]:
        """A page of jobs, newest first; ``more`` says whether another page follows."""
        ws = self.workspace()
        if ws is None:
            return {"jobs": [], "limit": limit, "offset": offset, "more": False}
        page = ws.jobs.list(
            status, task=task, agent=agent, limit=limit + 1, offset=offset, newest_first=True
        )
        rows = [_pick(j.as_dict(), SUMMARY_COLUMNS) for j in page[:limit]]
        return {"jobs": rows, "limit": limit, "offset": offset, "more": len(page) > limit}

    def notifications(self, after: int | None) -> dict[str, Any]:
        """The ends of jobs that asked to be announced, after the cursor ``after``
        (``None``: start from now). ``cursor`` is None until the database exists."""
        ws = self.workspace()
        if ws is None:
            return {"cursor": None, "notifications": []}
        cursor, notes = ws.jobs.notifications(after)
        return {"cursor": cursor, "notifications": notes}

    def job(self, job_id: int) -> dict[str, Any]:
        """One job with its events and, when the agents layer keeps one, its activity.
        Raises :class:`~wiz_jupyter.JobNotFound`."""
        ws = self._require()
        job = ws.jobs.get(job_id)
        detail = job.as_dict()
        for private in ("lease_owner", "lease_expires"):
            detail.pop(private, None)
        return {
            "job": detail,
            "events": ws.jobs.events_of(job_id),
            "activity": self.activity(job_id),
            "notebook": self.executed_notebook(ws, detail),
        }

    def executed_notebook(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any] | None:
        """A notebook job's executed copy: ``path``, and ``rel`` (to the server's root,
        for JupyterLab to open) when it lies under the root and exists."""
        if job["task"] != NOTEBOOK_TASK or not job.get("started_at"):
            return None
        data = job.get("data") or {}
        copy = output_path(ws.runs_dir, job["id"], str(data.get("path", "")))
        rel = None
        if self.root_dir and copy.is_file():
            try:
                rel = copy.resolve().relative_to(Path(self.root_dir).resolve()).as_posix()
            except ValueError:
                rel = None
        return {"path": str(copy), "rel": rel}

    def activity(self, job_id: int) -> dict[str, Any] | None:
        if not self.has_table("activity"):
            return None
        ws = self.workspace()
        assert ws is not None
        rows = ws.store.read("SELECT * FROM activity WHERE job_id = ?", (job_id,))
        if not rows:
            return None
        a = dict(rows[0])
        for column in _ACTIVITY_JSON:
            if isinstance(a.get(column), str):
                a[column] = _loads_or_text(a[column])
        return a

    def schedules(self) -> list[dict[str, Any]]:
        ws = self.workspace()
        if ws is None:
            return []
        return [schedule_view(s) for s in ws.schedules.list()]

    def schedule(self, schedule_id: int) -> dict[str, Any]:
        """One schedule and its latest runs. Raises :class:`~wiz_jupyter.ScheduleNotFound`."""
        ws = self._require_schedule(schedule_id)
        s = ws.schedules.get(schedule_id)
        runs = ws.store.read(
            "SELECT r.job_id, r.reason, r.fired_at, j.status FROM schedule_runs r "
            "LEFT JOIN jobs j ON j.id = r.job_id WHERE r.schedule_id = ? "
            "ORDER BY r.job_id DESC LIMIT 20",
            (s.id,),
        )
        return {**schedule_view(s), "runs": [dict(r) for r in runs]}

    # -- actions -------------------------------------------------------------------------------

    def cancel(self, job_id: int) -> dict[str, Any]:
        ws = self._require()
        cancelled = ws.jobs.cancel(job_id)
        return {
            "cancelled": cancelled,
            "job": _pick(ws.jobs.get(job_id).as_dict(), SUMMARY_COLUMNS),
        }

    def retry(self, job_id: int) -> dict[str, Any]:
        ws = self._require()
        return {"job": _pick(ws.jobs.retry(job_id).as_dict(), SUMMARY_COLUMNS)}

    def set_priority(self, job_id: int, priority: int) -> dict[str, Any]:
        ws = self._require()
        return {"job": _pick(ws.jobs.set_priority(job_id, priority).as_dict(), SUMMARY_COLUMNS)}

    def approve(self, job_id: int) -> dict[str, Any]:
        """Approve the tool call a job awaits (raises NotAwaitingInput, a 409)."""
        return {"job": _pick(self._require().jobs.approve(job_id).as_dict(), SUMMARY_COLUMNS)}

    def deny(self, job_id: int, reason: str) -> dict[str, Any]:
        return {"job": _pick(self._require().jobs.deny(job_id, reason).as_dict(), SUMMARY_COLUMNS)}

    def answer(self, job_id: int, text: str) -> dict[str, Any]:
        return {"job": _pick(self._require().jobs.answer(job_id, text).as_dict(), SUMMARY_COLUMNS)}

    def pause_schedule(self, schedule_id: int) -> dict[str, Any]:
        ws = self._require_schedule(schedule_id)
        return schedule_view(ws.schedules.pause(schedule_id))

    def resume_schedule(self, schedule_id: int) -> dict[str, Any]:
        ws = self._require_schedule(schedule_id)
        return schedule_view(ws.schedules.resume(schedule_id))

    # -- webhooks ------------------------------------------------------------------------------

    def webhook_secrets(self, name: str) -> list[str | None]:
        """The secrets of the active webhook schedules called ``name`` (None: unsigned);
        [] when there is none."""
        ws = self.workspace()
        if ws is None:
            return []
        return [
            s.trigger.get("secret")
            for s in ws.schedules.list(status="active")
            if s.kind == "webhook" and s.trigger.get("name") == name
        ]

    def fire_webhook(
        self, name: str, payload: Any, body: bytes, signature: str | None, delivery: str | None
    ) -> list[int]:
        ws = self._require_schedule(name)
        jobs = ws.schedules.fire_webhook(
            name, payload, body=body, signature=signature, delivery=delivery
        )
        return [j.id for j in jobs]

    # -- helpers -------------------------------------------------------------------------------

    def _require(self) -> Workspace:
        ws = self.workspace()
        if ws is None:
            raise JobNotFound(f"no workspace database at {self.path} yet")
        return ws

    def _require_schedule(self, schedule: int | str) -> Workspace:
        ws = self.workspace()
        if ws is None:
            raise ScheduleNotFound(f"no schedule {schedule!r}: no workspace database yet")
        return ws


def schedule_view(s: Any) -> dict[str, Any]:
    """A schedule as JSON. A webhook's secret is replaced by ``"signed": true``."""
    trigger = {k: v for k, v in s.trigger.items() if k != "secret"}
    if s.kind == "webhook":
        trigger["signed"] = bool(s.trigger.get("secret"))
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "description": s.description,
        "task": s.task,
        "trigger": trigger,
        "template": s.template,
        "status": s.status,
        "next_run": s.next_run,
        "last_run": s.last_run,
        "run_count": s.run_count,
        "fail_count": s.fail_count,
        "last_result": s.last_result,
        "created_at": s.created_at,
        "overlap": s.overlap,
        "skip_count": s.skip_count,
        "last_skipped": s.last_skipped,
        "buffered": s.pending is not None,  # buffer_one holds an occasion for when the run ends
    }


def _pick(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: row.get(c) for c in columns}


def _loads_or_text(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        return text


def to_json(value: Any) -> str:
    """JSON a browser's ``JSON.parse`` accepts: NaN and infinities (which Python's
    json writes and results may hold) become strings."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), default=str)
    except ValueError:
        return json.dumps(_finite(value), separators=(",", ":"), default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
