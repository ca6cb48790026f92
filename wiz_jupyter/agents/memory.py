"""An agent's long-term memory: facts, learnings and goals, searched with SQLite FTS5."""

from __future__ import annotations

import re
import time
from typing import Any

from ..jobs.store import Store


class Memory:
    """``agent.memory``: what an agent keeps between jobs.

    ::

        analyst.memory.save("The sales data is in data/sales.csv")
        analyst.memory.search("where is the sales data")
    """

    def __init__(self, store: Store, agent: str):
        self.store = store
        self.agent = agent

    def save(self, content: str, *, kind: str = "fact", job_id: int | None = None) -> int:
        if kind not in ("fact", "learning", "goal"):
            raise ValueError(f"kind must be fact, learning or goal, not {kind!r}")
        content = str(content).strip()
        if not content:
            raise ValueError("an empty memory is not worth keeping")
        with self.store.write() as c:
            dup = c.execute(
                "SELECT id FROM agent_memory WHERE agent = ? AND content = ?", (self.agent, content)
            ).fetchone()
            if dup:  # the same thing learnt twice is kept once
                return dup[0]
            return c.execute(
                "INSERT INTO agent_memory (agent, kind, content, job_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (self.agent, kind, content, job_id, time.time()),
            ).lastrowid

    def search(self, query: str, limit: int = 5) -> list[dict[str, Any]]:
        """Memories matching any word of ``query``, best first (BM25)."""
        words = re.findall(r"\w+", query.lower())
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        rows = self.store.read(
            "SELECT m.id, m.kind, m.content, m.created_at FROM agent_memory_fts f "
            "JOIN agent_memory m ON m.id = f.rowid WHERE agent_memory_fts MATCH ? AND m.agent = ? "
            "ORDER BY bm25(agent_memory_fts) LIMIT ?",
            (match, self.agent, limit),
        )
        return [dict(r) for r in rows]

    def all(self) -> list[dict[str, Any]]:
        rows = self.store.read(
            "SELECT id, kind, content, created_at FROM agent_memory WHERE agent = ? ORDER BY id",
            (self.agent,),
        )
        return [dict(r) for r in rows]

    def forget(self, memory_id: int) -> None:
        with self.store.write() as c:
            c.execute(
                "DELETE FROM agent_memory WHERE id = ? AND agent = ?", (memory_id, self.agent)
            )

    def __len__(self) -> int:
        return self.store.read("SELECT COUNT(*) FROM agent_memory WHERE agent = ?", (self.agent,))[
            0
        ][0]

    def __repr__(self) -> str:
        return f"<Memory of {self.agent}: {len(self)} items>"
