"""Chats: conversations between the user and agents, stored message by message.

The seeds' flow: a user message creates a reply job for the agent addressed
(``@name`` when several are in the chat, else the first); when the job
completes, its answer becomes the agent's message; when it fails, a short
error message goes into the chat instead. Listeners (chat panels) hear of
every new message through the event bus (``chat.message``).
"""

from __future__ import annotations

import html
import re
import time
from typing import TYPE_CHECKING, Any

from ..errors import WizError
from ..jobs.events import Event
from ..jobs.models import Job, dumps, loads

if TYPE_CHECKING:
    from .deps import AgentDeps


class Chat:
    """One conversation: ``ws.chat("analyst")`` or ``ws.chat(["analyst", "writer"])``.

    ::

        chat = ws.chat("analyst")
        job = chat.send("What is in data/?")
        await job.wait()
        chat.messages()[-1]["content"]
    """

    def __init__(self, chats: Chats, chat_id: int, title: str, agents: list[str]):
        self._chats = chats
        self.id = chat_id
        self.title = title
        self.agents = agents

    def send(self, text: str, *, author: str = "you", agent: str | None = None) -> Job:
        """Post a user message and return the reply job of the agent addressed:
        ``agent``, else the first ``@name`` in the text, else the chat's first agent."""
        text = str(text).strip()
        if not text:
            raise WizError("an empty message has nothing to answer")
        named = [a for a in re.findall(r"@(\w+)", text) if a in self.agents]
        if agent is not None and agent not in self.agents:
            raise WizError(f"{agent} is not in this chat ({', '.join(self.agents)})")
        agent = self._chats.deps.agents.get(agent or (named[0] if named else self.agents[0]))
        self.post(author, text, role="user")
        return agent.submit("chat", text, chat_id=self.id)

    async def ask(self, text: str, *, timeout: float | None = None) -> str:
        """Send and wait for the answer."""
        await self._chats.deps.ensure_running()
        return await self.send(text).wait(timeout=timeout)

    def post(
        self, author: str, content: str, *, role: str = "agent", job_id: int | None = None
    ) -> int:
        """Append a message (agents' answers and errors arrive this way)."""
        deps = self._chats.deps
        now = time.time()
        with deps.store.write() as c:
            mid = c.execute(
                "INSERT INTO messages (chat_id, role, author, content, job_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (self.id, role, author, content, job_id, now),
            ).lastrowid
        deps.events.emit(Event("chat.message", job_id, {"chat": self.id, "id": mid, "role": role, "author": author,
                                                      "content": content}, now))  # fmt: skip
        return mid

    def messages(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The conversation, oldest first (the last ``limit`` messages)."""
        rows = self._chats.deps.store.read(
            "SELECT * FROM (SELECT id, role, author, content, job_id, created_at FROM messages "
            "WHERE chat_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (self.id, -1 if limit is None else limit),
        )
        return [dict(r) for r in rows]

    def context(self, agent: str, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` messages as model messages, seen by ``agent``."""
        out = []
        for m in self.messages(limit):
            if m["role"] in ("error", "input"):  # the panel's notes, not the conversation
                continue
            if m["role"] == "agent" and m["author"] == agent:
                out.append({"role": "assistant", "content": m["content"]})
            elif m["role"] == "agent":
                out.append({"role": "user", "content": f"{m['author']} said: {m['content']}"})
            else:
                out.append({"role": "user", "content": m["content"]})
        return out

    def __repr__(self) -> str:
        lines = [f"<Chat {self.id} {self.title!r} with {', '.join(self.agents)}>"]
        lines += [f"{m['author']}: {m['content']}" for m in self.messages(10)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<div class='wiz-msg wiz-msg-{e(m['role'])}'><b>{e(m['author'] or m['role'])}</b>: {e(m['content'])}</div>"
            for m in self.messages(20)
        )
        return f"<div class='wiz-chat'><i>{e(self.title)}</i>{rows}</div>"


class Chats:
    """``ws.chats``: the workspace's conversations."""

    def __init__(self, deps: AgentDeps):
        self.deps = deps
        for name in ("job.failed", "job.cancelled"):
            deps.events.on(name, self._job_failed)
        deps.events.on("job.awaiting_input", self._job_parked)

    def open(self, agents: str | list[str], *, title: str | None = None) -> Chat:
        """A new chat with these agents (by name)."""
        names = [agents] if isinstance(agents, str) else list(agents)
        if not names:
            raise WizError("a chat needs at least one agent")
        for n in names:
            self.deps.agents.get(n)  # a clear error for a missing agent
        title = title or f"chat with {', '.join(names)}"
        with self.deps.store.write() as c:
            cid = c.execute(
                "INSERT INTO chats (title, agents, created_at) VALUES (?, ?, ?)",
                (title, dumps(names), time.time()),
            ).lastrowid
        return Chat(self, cid, title, names)

    def get(self, chat_id: int) -> Chat:
        rows = self.deps.store.read("SELECT id, title, agents FROM chats WHERE id = ?", (chat_id,))
        if not rows:
            raise WizError(f"no chat {chat_id} in this workspace")
        return Chat(self, rows[0][0], rows[0][1], loads(rows[0][2]))

    def list(self) -> list[Chat]:
        return [
            Chat(self, r[0], r[1], loads(r[2]))
            for r in self.deps.store.read("SELECT id, title, agents FROM chats ORDER BY id")
        ]

    def _job_parked(self, event: Event) -> None:
        """A chat's reply job waits for a person: say so in the chat (role ``input``, its
        ``job_id`` the job to approve, deny or answer), in words and as text."""
        if event.job_id is None or not str(event.data.get("task", "")).startswith("agent:"):
            return
        job = self.deps.jobs.get(event.job_id)
        chat_id = job.data.get("chat_id")
        if chat_id is None:
            return
        from ..jobs.display import request_text

        if event.data.get("kind") == "question":
            text = f"{event.data.get('question', '')}\n(reply: %wiz answer {job.id} TEXT)"
        else:
            text = (f"May I {request_text(event.data, 300)[len('approve '):]}?\n"
                    f"(reply: %wiz approve {job.id}, or %wiz deny {job.id} REASON)")  # fmt: skip
        self.get(chat_id).post(job.agent or "wiz", text, role="input", job_id=job.id)

    def _job_failed(self, event: Event) -> None:
        if event.job_id is None or not str(event.data.get("task", "agent:")).startswith("agent:"):
            return
        job = self.deps.jobs.get(event.job_id)
        chat_id = job.data.get("chat_id")
        if chat_id is None:
            return
        reason = job.error or event.data.get("error") or "no reason given"
        short = reason if len(reason) <= 300 else reason[:299] + "…"
        self.get(chat_id).post(
            job.agent or "wiz", f"Sorry, I could not answer: {short}", role="error", job_id=job.id
        )
