"""The chat panel: an anywidget conversation with the workspace's agents.

Replies stream in: the agent runtime emits ``agent.delta`` events while a
panel listens, and the panel coalesces them, sending at most one update per
``interval`` (20 a second by default) instead of one message per token.
Messages are rendered as markdown in the browser by marked (raw HTML shown as
text, so a model's ``<script>`` shows as text), code highlighted by highlight.js,
and the HTML sanitized by DOMPurify (only http(s), mailto and relative links kept).
The three are vendored in ``static/vendor/`` (its README says which versions) and
inlined into the widget's module here: anywidget loads ``_esm`` from a string, where
the module could not import files beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import anywidget
import traitlets
from anywidget.experimental import command

from ..errors import JobNotFound, WizError
from ..jobs.events import Event
from ..jobs.models import AWAITING_INPUT, TERMINAL
from ..workspace import Workspace
from . import provenance
from .board import STATIC
from .replies import REPLIES, reply, reply_text, request_view

VENDOR = STATIC / "vendor"
#: The vendored ES modules chat.js imports, by the name it asks for.
VENDOR_MODULES = {
    "marked": "marked.esm.js",
    "dompurify": "purify.es.min.mjs",
    "highlight": "highlight-core.min.js",
    "python": "highlight-python.min.js",
}


def chat_esm() -> str:
    """chat.js with the vendored libraries' sources ahead of it, as ``WIZ_VENDOR``."""
    sources = {name: (VENDOR / file).read_text("utf-8") for name, file in VENDOR_MODULES.items()}
    # "<" as \u003c: the module may be saved in a notebook's widget state, inside a <script>
    vendor = json.dumps(sources).replace("<", "\\u003c")
    return f"const WIZ_VENDOR = {vendor};\n" + (STATIC / "chat.js").read_text("utf-8")


#: messages a panel keeps in its widget state (what a saved notebook shows)
KEEP = 200
#: seconds between the panel's own looks at its reply jobs while it is busy
RECHECK = 1.0
#: the events after which a reply job no longer makes the panel busy
ENDS = ("job.completed", "job.failed", "job.cancelled")
#: the events of a job that no longer waits for a person (a priority change, a log line
#: are not): a reply in this process, or the claim of a job replied to elsewhere
LEFT_WAITING = ("job.approved", "job.denied", "job.answered", "job.waiting", "job.active", *ENDS)


def _entry(message: dict[str, Any]) -> dict[str, Any]:
    return {k: message.get(k) for k in ("role", "author", "content", "job_id")}


class ChatPanel(anywidget.AnyWidget):
    """``analyst.chat()``, ``ws.chat_panel("analyst")`` or ``%wiz chat analyst``.

    A reply job that waits for a person (a tool call to approve, an ``ask_user``
    question) shows in the conversation with *Approve* / *Deny* and the tool's
    arguments, or a reply box; they call ``ws.jobs.approve/deny/answer``.
    """

    _esm = chat_esm()
    _css = STATIC / "chat.css"
    agents = traitlets.List(traitlets.Unicode()).tag(sync=True)
    agent = traitlets.Unicode("").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    #: the conversation's last :data:`KEEP` messages (role, author, content), kept in the
    #: widget's state, so a saved notebook, its nbconvert HTML and nbviewer show it (as
    #: sanitized markdown, never live HTML) where no kernel answers
    transcript = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(self, ws: Workspace, agents: str | list[str] | None = None, *, chat: Any = None,
                 interval: float = 0.05, **kwargs: Any):  # fmt: skip
        names = (
            [agents]
            if isinstance(agents, str)
            else list(agents or [a.name for a in ws.agents.list()])
        )
        if chat is None:
            chat = ws.chat(names)
        super().__init__(
            agents=chat.agents, agent=chat.agents[0], title=chat.title,
            transcript=[_entry(m) for m in chat.messages(KEEP)], **kwargs,
        )  # fmt: skip
        self.ws = ws
        self.chat = chat
        self.interval = interval
        self._pending: dict[int, str] = {}
        self._jobs: set[int] = set()
        self._asking: set[int] = set()  # jobs whose input note the front end shows live
        self._timer: asyncio.TimerHandle | None = None
        self._recheck: asyncio.TimerHandle | None = None
        self._offs = [
            ws.events.on("agent.delta", self._on_delta),
            ws.events.on("chat.message", self._on_message),
            ws.events.on("job.*", self._on_job),
        ]
        self.on_msg(self._on_front_end)

    # -- from the workspace --------------------------------------------------------------------

    def _on_delta(self, event: Event) -> None:
        if event.data.get("chat") != self.chat.id or event.job_id is None:
            return
        self._pending[event.job_id] = self._pending.get(event.job_id, "") + event.data["text"]
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Send the text gathered since the last update (the timer calls this)."""
        self._timer = None
        pending, self._pending = self._pending, {}
        for job_id, text in pending.items():
            agent = self.ws.jobs.get(job_id).agent or ""
            self.send({"type": "delta", "job": job_id, "author": agent, "text": text})

    def _on_message(self, event: Event) -> None:
        if event.data.get("chat") != self.chat.id:
            return
        if event.job_id in self._pending:  # the whole message supersedes what is still queued
            self._pending.pop(event.job_id)
        message = {**event.data, "job_id": event.job_id}
        if event.data.get("role") == "input" and event.job_id is not None:
            message["asks"] = self._asks(event.job_id)
        if event.data.get("role") == "agent" and event.job_id is not None:
            # how the answer was made: sent with it (the bubble's tooltip), and kept in
            # this kernel's record for `%wiz provenance` (a widget has no output metadata)
            message[provenance.KEY] = provenance.record(
                provenance.of_job(self.ws, event.job_id, source="chat", chat=self.chat.id)
            )
        self.send({"type": "message", "message": message})
        self.transcript = [*self.transcript, _entry(message)][-KEEP:]

    def _on_job(self, event: Event) -> None:
        jid = event.job_id
        if jid in self._asking and event.name in LEFT_WAITING:
            # replied (here, by %wiz approve, or by another process whose reply this
            # kernel's runtime picked up): the note's buttons go, the job works again
            self._asking.discard(jid)
            self.send({"type": "replied", "job": jid, "reply": self._reply_text(jid)})
            if event.name not in ENDS:
                self._thinking(jid)
        elif jid in self._jobs and (event.name == "job.awaiting_input" or event.name in ENDS):
            self._jobs.discard(jid)  # a job waiting for a person is not "thinking"
            self.busy = bool(self._jobs)

    def _thinking(self, job_id: int) -> None:
        """The panel is busy while ``job_id`` works. Its end comes as an event; while busy
        the panel also looks at its jobs every :data:`RECHECK` seconds, so that no missed
        event (a job ended by another process, which this kernel does not hear of) leaves
        it "thinking" for ever."""
        self._jobs.add(job_id)
        self.busy = True
        if self._recheck is None:
            with contextlib.suppress(RuntimeError):  # no loop: events alone it is
                self._recheck = asyncio.get_running_loop().call_later(RECHECK, self._look)

    def _look(self) -> None:
        self._recheck = None
        for jid in list(self._jobs):
            try:
                status = self.ws.jobs.get(jid).status
            except JobNotFound:  # removed since (retention): not working any more
                status = None
            except Exception:  # the workspace was closed under the panel: stop looking
                return
            if status is None or status in TERMINAL or status == AWAITING_INPUT:
                self._jobs.discard(jid)
        self.busy = bool(self._jobs)
        if self._jobs:
            self._recheck = asyncio.get_running_loop().call_later(RECHECK, self._look)

    def _asks(self, job_id: int, *, latest: bool = True) -> dict[str, Any]:
        """What the job of an ``input`` note asks (``request_view``), with ``live`` while
        it still waits for it; once replied, ``reply`` says how. Only a job's ``latest``
        note can be live (a job may ask again after a reply)."""
        if not latest:
            return {"live": False, "reply": "replied"}
        try:
            job = self.ws.jobs.get(job_id)
            held = job.input
        except JobNotFound:  # removed since (retention): the note stays, as text
            return {"live": False, "reply": "replied"}
        if job.status == AWAITING_INPUT:
            self._asking.add(job_id)
            return {**(request_view(held) or {}), "live": True}
        return {**(request_view(held) or {}), "live": False, "reply": reply_text(held)}

    def _reply_text(self, job_id: int) -> str:
        try:
            return reply_text(self.ws.jobs.get(job_id).input)
        except JobNotFound:
            return "replied"

    # -- from the front end --------------------------------------------------------------------

    def _on_front_end(self, _widget: Any, msg: dict[str, Any], _buffers: Any) -> None:
        kind = msg.get("type")
        try:
            if kind == "ready":
                self.send({"type": "history", "messages": self._history(200)})
            elif kind == "send":
                job = self.chat.send(str(msg.get("text", "")), agent=msg.get("agent") or self.agent)
                self._thinking(job.id)
        except Exception as e:  # shown in the panel, never raised into a cell
            self.send({"type": "error", "message": str(e)})

    def _history(self, limit: int) -> list[dict[str, Any]]:
        """The conversation so far; each agent answer with its provenance (not added to
        the session record: it was shown before, maybe in another kernel), each input
        note with what it asks (live if its job still waits)."""
        messages = self.chat.messages(limit)
        last_note = {m["job_id"]: i for i, m in enumerate(messages) if m["role"] == "input"}
        for i, m in enumerate(messages):
            if m.get("job_id") is None:
                continue
            if m["role"] == "agent":
                m[provenance.KEY] = provenance.of_job(
                    self.ws, m["job_id"], source="chat", chat=self.chat.id
                )
            elif m["role"] == "input":
                m["asks"] = self._asks(m["job_id"], latest=last_note[m["job_id"]] == i)
        return messages

    @command
    def _reply(self, msg: Any, _buffers: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """*Approve*, *Deny* or *Answer* on an input note: ``{"action": "approve" | "deny"
        | "answer", "id": N[, "reason": R][, "text": T]}``, for a job of this chat. What
        the queue refuses comes back as ``{"error": ...}``, shown by the note."""
        try:
            if msg.get("action") not in REPLIES:
                raise WizError(f"unknown reply {msg.get('action')!r}")
            jid = int(msg["id"])
            if (self.ws.jobs.get(jid).data or {}).get("chat_id") != self.chat.id:
                raise WizError(f"job {jid} is not a reply in this chat")
            reply(self.ws, msg)
        except Exception as e:
            return {"error": str(e) or type(e).__name__}, []
        return {"ok": True, "reply": self._reply_text(jid)}, []

    def close(self) -> None:
        for off in self._offs:
            off()
        for timer in (self._timer, self._recheck):
            if timer is not None:
                timer.cancel()
        super().close()
