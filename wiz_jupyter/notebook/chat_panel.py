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
import json
from typing import Any

import anywidget
import traitlets

from ..jobs.events import Event
from ..workspace import Workspace
from . import provenance
from .board import STATIC

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


def _entry(message: dict[str, Any]) -> dict[str, Any]:
    return {k: message.get(k) for k in ("role", "author", "content", "job_id")}


class ChatPanel(anywidget.AnyWidget):
    """``analyst.chat()``, ``ws.chat_panel("analyst")`` or ``%wiz chat analyst``."""

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
        self._timer: asyncio.TimerHandle | None = None
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
        if event.data.get("role") == "agent" and event.job_id is not None:
            # how the answer was made: sent with it (the bubble's tooltip), and kept in
            # this kernel's record for `%wiz provenance` (a widget has no output metadata)
            message[provenance.KEY] = provenance.record(
                provenance.of_job(self.ws, event.job_id, source="chat", chat=self.chat.id)
            )
        self.send({"type": "message", "message": message})
        self.transcript = [*self.transcript, _entry(message)][-KEEP:]

    def _on_job(self, event: Event) -> None:
        if event.job_id in self._jobs and event.name in (
            "job.completed",
            "job.failed",
            "job.cancelled",
        ):
            self._jobs.discard(event.job_id)
            self.busy = bool(self._jobs)

    # -- from the front end --------------------------------------------------------------------

    def _on_front_end(self, _widget: Any, msg: dict[str, Any], _buffers: Any) -> None:
        kind = msg.get("type")
        try:
            if kind == "ready":
                self.send({"type": "history", "messages": self._history(200)})
            elif kind == "send":
                job = self.chat.send(str(msg.get("text", "")), agent=msg.get("agent") or self.agent)
                self._jobs.add(job.id)
                self.busy = True
        except Exception as e:  # shown in the panel, never raised into a cell
            self.send({"type": "error", "message": str(e)})

    def _history(self, limit: int) -> list[dict[str, Any]]:
        """The conversation so far; each agent answer with its provenance (not added to
        the session record: it was shown before, maybe in another kernel)."""
        messages = self.chat.messages(limit)
        for m in messages:
            if m["role"] == "agent" and m.get("job_id") is not None:
                m[provenance.KEY] = provenance.of_job(
                    self.ws, m["job_id"], source="chat", chat=self.chat.id
                )
        return messages

    def close(self) -> None:
        for off in self._offs:
            off()
        if self._timer is not None:
            self._timer.cancel()
        super().close()
