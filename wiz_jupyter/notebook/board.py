"""The live job board: an anywidget whose JavaScript and CSS ship in the package.

The board follows the queue's events, but never sends one message per event:
changed job ids are gathered and, at most ``1 / interval`` times a second,
their fresh rows and the exact counts go to the front end as one patch. The
front end keeps only the newest ``limit`` jobs that match its filter, so a
queue of 10,000 jobs costs one small message per interval, not 10,000.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
from typing import Any

import anywidget
import traitlets
from anywidget.experimental import command

from ..jobs.display import request_text, why_failed
from ..jobs.events import Event
from ..jobs.models import COLUMNS, SELECT_JOBS, SUMMARY_COLUMNS, loads
from ..jobs.notebooks import TASK as NOTEBOOK_TASK
from ..jobs.notebooks import output_path
from ..workspace import Workspace
from .replies import REPLIES, reply

STATIC = pathlib.Path(__file__).parent / "static"
#: seconds between copies of the shown rows into the widget state (``JobBoard.saved``)
SAVE_EVERY = 1.0


def _row(r: dict[str, Any], runs_dir: str) -> dict[str, Any]:
    out = {k: r[k] for k in SUMMARY_COLUMNS}
    out["progress"] = loads(r["progress"])
    held = loads(out.pop("input", None)) or {}
    if r["status"] == "awaiting_input":  # what it asks, as text the front end shows as text
        out["asks"] = request_text(held.get("request"), 300)
        out["ask_kind"] = (held.get("request") or {}).get("kind")
    if r["status"] == "failed":  # unrecoverable, or its attempts used up, ...
        out["why"] = why_failed(r)
    if r["task"] == NOTEBOOK_TASK:  # a notebook job: its name, and its executed copy to open
        source = (loads(r["data"]) or {}).get("path", "")
        out["notebook_source"] = os.path.basename(source)
        if r["started_at"]:
            copy = str(output_path(runs_dir, r["id"], source))
            out["notebook"] = copy
            home = os.path.expanduser("~")
            if copy.startswith(home + os.sep):  # JupyterLab may give its root as ~/...
                out["notebook_home"] = "~" + copy[len(home) :]
    return out


class JobBoard(anywidget.AnyWidget):
    """``ws.board()`` or ``%wiz board``: the workspace's jobs, live.

    Filter by status or text, cancel, retry or re-prioritise from the board.
    """

    _esm = STATIC / "board.js"
    _css = STATIC / "board.css"
    counts = traitlets.Dict().tag(sync=True)
    status_filter = traitlets.Unicode("").tag(sync=True)
    text_filter = traitlets.Unicode("").tag(sync=True)
    limit = traitlets.Int(200).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    cluster = traitlets.Dict().tag(sync=True)  # the Dask cluster of ws.use_dask, if any
    #: the rows last shown, newest first, kept in the widget's state (at most every
    #: SAVE_EVERY seconds), so a saved notebook and its HTML show the board as it was
    saved = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(self, ws: Workspace, *, limit: int = 200, interval: float = 0.25, **kwargs: Any):
        super().__init__(limit=limit, title=str(ws.path), **kwargs)
        self.ws = ws
        self.interval = interval
        self._dirty: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._shown: dict[int, dict[str, Any]] = {}
        self._save_timer: asyncio.TimerHandle | None = None
        self._off = ws.events.on("job.*", self._on_event)
        self._off_dask = ws.events.on("dask.*", lambda _e: self._show_cluster())
        self._show_cluster()
        self.observe(
            lambda _: self.send_snapshot(), names=["status_filter", "text_filter", "limit"]
        )
        self.counts = ws.jobs.counts()
        self._remember(self._matching(), replace=True)

    # -- from the queue ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.job_id is None:
            return
        self._dirty.add(event.job_id)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = self.ws.events.loop
            if loop is None:
                return
            self._timer = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Send the gathered changes now (the timer calls this)."""
        self._timer = None
        ids, self._dirty = sorted(self._dirty), set()
        if not ids:
            return
        rows = []
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            rows += self.ws.store.read(
                f"{SELECT_JOBS} WHERE id IN ({','.join('?' * len(part))})", tuple(part)
            )
        self.counts = self.ws.jobs.counts()
        self._show_cluster()
        patch = [_row(dict(zip(COLUMNS, r)), self.ws.runs_dir) for r in rows]
        self.send({"type": "patch", "jobs": patch})
        self._remember(patch, replace=False)

    def _remember(self, rows: list[dict[str, Any]], *, replace: bool) -> None:
        """Note what the front end shows; put it in the widget state soon (not on every
        update: the state travels whole)."""
        if replace:
            self._shown = {}
        self._shown.update((r["id"], r) for r in rows)
        if self._save_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.save_state()
                return
            self._save_timer = loop.call_later(SAVE_EVERY, self.save_state)

    def save_state(self) -> None:
        """Put the rows shown now (changes not yet sent included) in the widget's state
        (``saved``)."""
        if self._dirty:
            if self._timer is not None:
                self._timer.cancel()
            self.flush()
        if self._save_timer is not None:
            self._save_timer.cancel()
        self._save_timer = None
        newest = sorted(self._shown, reverse=True)[: self.limit]
        self._shown = {i: self._shown[i] for i in newest}
        self.saved = [self._shown[i] for i in newest]

    def send_snapshot(self) -> None:
        """The newest ``limit`` jobs matching the filters, replacing what is shown."""
        rows = self._matching()
        self.counts = self.ws.jobs.counts()
        self.send({"type": "snapshot", "jobs": rows})
        self._remember(rows, replace=True)

    def _matching(self) -> list[dict[str, Any]]:
        """The rows of the newest ``limit`` jobs that match the filters."""
        status = self.status_filter or None
        jobs = self.ws.jobs.list(
            status=status, text=self.text_filter or None, newest_first=True, limit=self.limit
        )
        return [_row(j.snapshot, self.ws.runs_dir) for j in jobs]

    def _show_cluster(self) -> None:
        dask = self.ws.dask
        self.cluster = {} if dask is None else dask.info()

    # -- from the front end --------------------------------------------------------------------

    # anywidget commands (``model.experimental.invoke`` in board.js): each request gets
    # its own answer, so the board shows the error of the click that caused it.

    @command
    def _ready(self, _msg: Any, _buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """The front end is drawn: send it the jobs."""
        self.send_snapshot()
        return {"ok": True}, []

    @command
    def _act(self, msg: Any, _buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """A button: ``{"action": "cancel" | "retry" | "priority" | "approve" | "deny" |
        "answer", "id": N[, "priority": P][, "reason": R][, "text": T]}``. What the queue
        refuses comes back as ``{"error": ...}``, never raised into a cell."""
        try:
            action, jid = msg["action"], int(msg["id"])
            if action == "cancel":
                self.ws.jobs.cancel(jid)
            elif action == "retry":
                self.ws.jobs.retry(jid)
            elif action == "priority":
                self.ws.jobs.set_priority(jid, int(msg["priority"]))
            elif action in REPLIES:
                reply(self.ws, msg)
            else:
                return {"error": f"unknown action {action!r}"}, []
        except Exception as e:
            return {"error": str(e) or type(e).__name__}, []
        return {"ok": True}, []

    def close(self) -> None:
        self._off()
        self._off_dask()
        for timer in (self._timer, self._save_timer):
            if timer is not None:
                timer.cancel()
        super().close()
