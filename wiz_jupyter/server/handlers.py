"""The REST API under ``/wiz/api/``: workspaces, agents, jobs, schedules, counts, changes,
actions.

Every endpoint but ``/workspaces`` serves one workspace, named by the query argument
``?workspace=ID`` (or its path exactly as ``GET /wiz/api/workspaces`` lists it);
without it, the server's default workspace. A value that names no known workspace is
refused with 403: the API opens only databases the server knows (see
:mod:`wiz_jupyter.server.workspaces`).

Every handler is a jupyter_server ``APIHandler`` behind ``@web.authenticated``
and ``@authorized`` (resource ``"wiz"``): a request needs the server's token
or login cookie, and a cookie-authenticated POST needs the XSRF token, like
the rest of Jupyter's API. Errors are JSON ``{"message": ...}``: 400 for bad
arguments, 403 without credentials, 404 for an unknown job or schedule, 409
for an action the job's state does not allow, 503 when the database cannot
be opened.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..argtypes import INT_MAX
from ..errors import InvalidJob, InvalidSchedule, JobNotFound, ScheduleNotFound, StoreError
from ..jobs.models import STATUSES
from .backend import Backend, to_json
from .changes import ChangeFeed
from .workspaces import Served, UnknownWorkspace, Workspaces

#: the longest a client may ask ``/changes`` to wait, in seconds
MAX_WAIT = 60.0
MAX_LIMIT = 500


class WizHandler(APIHandler):
    """Base: the request's workspace, JSON replies, the backend's threads, errors mapped
    to status codes."""

    auth_resource = "wiz"

    def initialize(self, workspaces: Workspaces) -> None:
        self.workspaces = workspaces
        self._served: Served | None = None

    @property
    def served(self) -> Served:
        """The workspace of ``?workspace=`` (default: the server's), held open until the
        request ends. 403 for a value that names no known workspace."""
        if self._served is None:
            ref = self.get_argument("workspace", None, strip=False)
            try:
                known = self.workspaces.find(ref)
            except UnknownWorkspace as e:
                raise web.HTTPError(403, str(e)) from None
            self._served = self.workspaces.acquire(known)
        return self._served

    @property
    def backend(self) -> Backend:
        return self.served.backend

    @property
    def feed(self) -> ChangeFeed:
        return self.served.feed

    def on_finish(self) -> None:
        served, self._served = self._served, None
        if served is not None:
            self.workspaces.release(served)
        super().on_finish()

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(to_json(value))

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the backend's threads; wiz errors become HTTP errors."""
        try:
            return await self.backend.run(fn, *args)
        except (JobNotFound, ScheduleNotFound) as e:
            raise web.HTTPError(404, str(e)) from None
        except (InvalidJob, InvalidSchedule) as e:
            raise web.HTTPError(409, str(e)) from None
        except StoreError as e:
            raise web.HTTPError(503, str(e)) from None

    def int_argument(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be an integer, not {raw!r}") from None
        if not lo <= value <= hi:
            raise web.HTTPError(400, f"{name} must be between {lo} and {hi}, not {value}")
        return value

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise web.HTTPError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object")
        return body


class CountsHandler(WizHandler):
    """``GET /wiz/api/counts``: jobs by status, queue paused, the change token, the db path."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        summary = await self.call(self.backend.summary)
        self.reply({"workspace": self.served.known.id, **summary})


class ChangesHandler(WizHandler):
    """``GET /wiz/api/changes?since=TOKEN&timeout=25``: answers as soon as the database
    changes (``changed: true``, the new token and the fresh counts), or after
    ``timeout`` seconds with ``changed: false``. Without ``since`` it answers at once.

    Waiting here is not user activity: an open sidebar must not keep an idle
    server from being culled.
    """

    _track_activity = False

    def initialize(self, workspaces: Workspaces) -> None:
        super().initialize(workspaces)
        self._closed = asyncio.Event()

    def on_connection_close(self) -> None:
        self._closed.set()

    @web.authenticated
    @authorized
    async def get(self) -> None:
        since = self.get_argument("since", None)
        raw = self.get_argument("timeout", "25")
        try:
            timeout = float(raw)
        except ValueError:
            timeout = math.nan
        if not math.isfinite(timeout):
            raise web.HTTPError(400, f"timeout must be a number of seconds, not {raw!r}")
        timeout = min(max(timeout, 0.0), MAX_WAIT)
        try:
            await self.feed.wait(since, timeout, self._closed)
        except StoreError as e:
            raise web.HTTPError(503, str(e)) from None
        if self._closed.is_set():
            return
        summary = await self.call(self.backend.summary)
        changed = summary["token"] != since
        self.reply({"changed": changed, "workspace": self.served.known.id, **summary})


class WorkspacesHandler(WizHandler):
    """``GET /wiz/api/workspaces``: every workspace the server knows (the default first),
    which of them each running kernel uses (``kernels``: kernel id -> workspace id), and
    the notebooks whose kernels use each one."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        ws = self.workspaces
        notebooks = await self._notebooks()
        views = []
        for k in ws.known():
            view = k.view(ws.default.id)
            view["notebooks"] = sorted({p for kid in k.kernels for p in notebooks.get(kid, ())})
            views.append(view)
        self.reply(
            {"default": ws.default.id, "workspaces": views, "kernels": ws.kernel_workspaces()}
        )

    async def _notebooks(self) -> dict[str, list[str]]:
        """``{kernel id: [notebook paths]}`` from the server's sessions."""
        sessions = self.settings.get("session_manager")
        if sessions is None:
            return {}
        out: dict[str, list[str]] = {}
        try:
            for s in await sessions.list_sessions():
                kernel = (s.get("kernel") or {}).get("id")
                if kernel and s.get("path"):
                    out.setdefault(kernel, []).append(s["path"])
        except Exception:  # a session that vanished mid-listing: names are a nicety
            return out
        return out


class AgentsHandler(WizHandler):
    """``GET /wiz/api/agents``: the personas and their job counts ([] before the agents
    layer has made its table)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"agents": await self.call(self.backend.agents)})


class JobsHandler(WizHandler):
    """``GET /wiz/api/jobs?status=a,b&task=&agent=&limit=50&offset=0``: newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        statuses = [s for arg in self.get_arguments("status") for s in arg.split(",") if s]
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise web.HTTPError(
                400, f"unknown status {', '.join(unknown)}; choose from {', '.join(STATUSES)}"
            )
        task = self.get_argument("task", None) or None
        agent = self.get_argument("agent", None) or None
        limit = self.int_argument("limit", 50, 1, MAX_LIMIT)
        offset = self.int_argument("offset", 0, 0, 2**62)
        page = await self.call(self.backend.jobs, statuses or None, task, agent, limit, offset)
        self.reply(page)


class NotificationsHandler(WizHandler):
    """``GET /wiz/api/notifications?after=CURSOR``: the jobs added with ``notify=True``
    that completed or failed since ``CURSOR``, and the cursor to pass next time. Without
    ``after`` it answers the current cursor and nothing else (news starts from now).
    The lab extension asks after each change the long-poll reports."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        raw = self.get_argument("after", None)
        after = None if raw in (None, "") else self.int_argument("after", 0, 0, 2**62)
        self.reply(await self.call(self.backend.notifications, after))


class JobHandler(WizHandler):
    """``GET /wiz/api/jobs/ID``: the job, its events and the agent's activity (or null)."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.reply(await self.call(self.backend.job, int(job_id)))


class JobActionHandler(WizHandler):
    """``POST /wiz/api/jobs/ID/cancel``, ``.../retry``, ``.../priority`` (``{"priority": 5}``),
    and for a job awaiting input ``.../approve``, ``.../deny`` (``{"reason": "..."}``) and
    ``.../answer`` (``{"text": "..."}``): 409 when it is not awaiting input."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str, action: str) -> None:
        jid = int(job_id)
        if action == "cancel":
            out = await self.call(self.backend.cancel, jid)
        elif action == "retry":
            out = await self.call(self.backend.retry, jid)
        elif action == "approve":
            out = await self.call(self.backend.approve, jid)
        elif action in ("deny", "answer"):
            key = "reason" if action == "deny" else "text"
            value = self.json_body().get(key)
            if not isinstance(value, str) or not value.strip():
                raise web.HTTPError(400, f"{action} needs a non-empty {key!r} (a string)")
            out = await self.call(getattr(self.backend, action), jid, value)
        else:
            priority = self.json_body().get("priority")
            if not isinstance(priority, int) or isinstance(priority, bool):
                raise web.HTTPError(400, f"priority must be an integer, not {priority!r:.50}")
            if not -INT_MAX <= priority <= INT_MAX:
                raise web.HTTPError(400, f"priority must be between {-INT_MAX} and {INT_MAX}")
            out = await self.call(self.backend.set_priority, jid, priority)
        self.feed.poke()
        self.reply(out)


class SchedulesHandler(WizHandler):
    """``GET /wiz/api/schedules``: every schedule; webhook secrets are never sent."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"schedules": await self.call(self.backend.schedules)})


class ScheduleHandler(WizHandler):
    """``GET /wiz/api/schedules/ID``: one schedule and its latest runs."""

    @web.authenticated
    @authorized
    async def get(self, schedule_id: str) -> None:
        self.reply(await self.call(self.backend.schedule, int(schedule_id)))


class ScheduleActionHandler(WizHandler):
    """``POST /wiz/api/schedules/ID/pause`` and ``.../resume``."""

    @web.authenticated
    @authorized
    async def post(self, schedule_id: str, action: str) -> None:
        fn = self.backend.pause_schedule if action == "pause" else self.backend.resume_schedule
        out = await self.call(fn, int(schedule_id))
        self.feed.poke()
        self.reply({"schedule": out})


def api_handlers(workspaces: Workspaces) -> list[tuple[str, type, dict[str, Any]]]:
    """The API's routes, relative to the server's base URL."""
    kw = {"workspaces": workspaces}
    return [
        (r"/wiz/api/workspaces", WorkspacesHandler, kw),
        (r"/wiz/api/counts", CountsHandler, kw),
        (r"/wiz/api/changes", ChangesHandler, kw),
        (r"/wiz/api/agents", AgentsHandler, kw),
        (r"/wiz/api/jobs", JobsHandler, kw),
        (r"/wiz/api/notifications", NotificationsHandler, kw),
        (r"/wiz/api/jobs/(\d{1,18})", JobHandler, kw),
        (
            r"/wiz/api/jobs/(\d{1,18})/(cancel|retry|priority|approve|deny|answer)",
            JobActionHandler,
            kw,
        ),
        (r"/wiz/api/schedules", SchedulesHandler, kw),
        (r"/wiz/api/schedules/(\d{1,18})", ScheduleHandler, kw),
        (r"/wiz/api/schedules/(\d{1,18})/(pause|resume)", ScheduleActionHandler, kw),
    ]
