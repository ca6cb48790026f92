"""A person's reply to a job awaiting input, from a widget's button: what the board's and
the chat panel's *Approve*, *Deny* and *Answer* do. The queue does the work
(``ws.jobs.approve/deny/answer``); this is only the table from a front end's request
to those calls, and what a widget shows of a request and of its reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..workspace import Workspace

#: ``{"action": ..., "id": N, "reason": R, "text": T}`` -> the queue's call
REPLIES: dict[str, Callable[[Workspace, int, dict[str, Any]], Any]] = {
    "approve": lambda ws, jid, _msg: ws.jobs.approve(jid),
    "deny": lambda ws, jid, msg: ws.jobs.deny(jid, str(msg.get("reason") or "")),
    "answer": lambda ws, jid, msg: ws.jobs.answer(jid, str(msg.get("text") or "")),
}


def reply(ws: Workspace, msg: dict[str, Any]) -> None:
    """Send a front end's reply (``msg["action"]`` one of :data:`REPLIES`) to the queue.
    Raises what the queue raises (``NotAwaitingInput``, ``InvalidJob``: one line each)
    and ``KeyError`` for an action that is not a reply."""
    REPLIES[msg["action"]](ws, int(msg["id"]), msg)


def request_view(held: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a job awaiting input asks, for a front end that shows it as text:
    ``{"kind": "approval", "tool": ..., "args": {...}}`` or ``{"kind": "question",
    "question": ...}``; None when there is no request."""
    request = (held or {}).get("request")
    if not request:
        return None
    if request.get("kind") == "question":
        return {"kind": "question", "question": str(request.get("question", ""))}
    return {"kind": "approval", "tool": str(request.get("tool", "?")), "args": request.get("args")}


def reply_text(held: dict[str, Any] | None) -> str:
    """A person's reply in a few words: ``approved``, ``denied: not that file``,
    ``answered: 2024``, or ``replied`` when the reply is not (or no longer) kept."""
    r = (held or {}).get("reply") or {}
    if "answer" in r:
        return f"answered: {r['answer']}"
    if r.get("approved") is True:
        return "approved"
    if r.get("approved") is False:
        return f"denied: {r.get('reason', '')}"
    return "replied"
