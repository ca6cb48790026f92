"""A one-line widget in the cell that submitted a background job: it says when the job ends.

This is the notification where the JupyterLab extension is absent (Jupyter
Notebook without it, VS Code, any front end with widgets): ``%wiz ask --background``
and ``%wiz assign`` (without ``--wait``) show it when the job notifies. It follows
the job's events in this kernel, so a job another process finishes is seen when
this kernel next hears of it (its ``job.*`` events are this process's only).
Its text form is the job's own, so a terminal or a saved notebook shows the job.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from ..jobs.display import short
from ..jobs.events import Event
from ..workspace import Workspace
from .board import STATIC

_ENDS = ("job.completed", "job.failed", "job.cancelled")


class JobNote(anywidget.AnyWidget):
    """``JobNote(ws, job)``: "job 7 (helper) waiting", then "job 7 completed: ..."."""

    _esm = STATIC / "job_note.js"
    _css = STATIC / "job_note.css"
    job_id = traitlets.Int(0).tag(sync=True)
    label = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    detail = traitlets.Unicode("").tag(sync=True)

    def __init__(self, ws: Workspace, job: Any, **kwargs: Any):
        label = f"job {job.id}" + (f" ({job.agent})" if job.agent else f" ({job.task})")
        super().__init__(job_id=job.id, label=label, status=job.status, **kwargs)
        self.ws = ws
        self.job = job
        self._off = ws.events.on("job.*", self._on_event)
        if job.done:
            self._finish()

    def _on_event(self, event: Event) -> None:
        if event.job_id != self.job_id:
            return
        if event.name in _ENDS:
            self._finish()
        elif event.name == "job.active":
            self.status = "active"

    def _finish(self) -> None:
        job = self.job.refresh()
        self.detail = short(job.error if job.status != "completed" else job.result, 120)
        self.status = job.status
        self._off()

    def __repr__(self) -> str:
        return repr(self.job)

    def close(self) -> None:
        self._off()
        super().close()
