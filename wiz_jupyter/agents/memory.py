"""An agent's long-term memory: facts, learnings and goals.

Ranked by SQLite FTS5 (BM25) by default; when the workspace has an embedding
model (:mod:`.embeddings`), by meaning: the cosine of the query's vector with
each memory's. On the labelled recall set (``tests/agents/data``, offline
model) recall@5 is 0.97 by meaning, 0.87 fused with full-text (``"hybrid"``,
reciprocal rank fusion) and 0.60 by words, so meaning alone is the default.

Vectors live in ``agent_memory_vec``. A memory is embedded on the first search
after it is saved (in id order, in batches), so memories saved before the
embedding model was chosen, or by another process, are embedded then too; a
new model re-embeds everything on its first search. Searching scans an
in-process numpy copy of the agent's vectors (kept in step with the table).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..jobs.store import Store
from . import embeddings

#: ranking modes of :meth:`Memory.search`
MODES = ("auto", "fts", "semantic", "hybrid")
#: reciprocal rank fusion constant (the usual 60) and how deep each ranking is read
RRF_K = 60
FUSE_DEPTH = 50
#: memories embedded per batch while catching up
EMBED_BATCH = 512
KINDS = ("fact", "learning", "goal")
#: near-duplicates: cosine at least this, and at least this share of terms in common
DUP_COSINE = 0.85
DUP_JACCARD = 0.6
_STOP = frozenset(
    "a an the is are was were be been being am of in on at to for from by with and or as it its "
    "this that these those there their they them we our you your i me my he she his her do does "
    "did has have had will would shall should can could may might must so than then also into "
    "about over under up down out if but which who whom what when where how all any each".split()
)
_NEGATION = frozenset({"not", "no", "never", "none", "nothing", "nobody", "without", "cannot"})


def _terms(text: str) -> frozenset[str]:
    """Content words, lower-cased, plural ``s`` dropped: what a duplicate must share."""
    text = re.sub(r"n't\b", " not", text.lower())
    out = set()
    for w in re.findall(r"\w+", text):
        if w in _STOP or (len(w) < 2 and not w.isdigit()):
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and not w.isdigit():
            w = w[:-1]
        out.add(w)
    return frozenset(out)


def _numbers(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\d+(?:[.,]\d+)*", text))


def near_duplicates(a: str, b: str, cosine: float | None = None) -> bool:
    """True when ``a`` and ``b`` say the same thing, so keeping one loses no fact.

    Never when their figures or their negations differ. Yes when one's content
    words include the other's (normalised text equal is the simplest case), or
    when their embeddings are close (``cosine >= DUP_COSINE``) and they share
    at least 60% of their content words.
    """
    if _numbers(a) != _numbers(b):
        return False
    ta, tb = _terms(a), _terms(b)
    if (ta & _NEGATION) != (tb & _NEGATION):
        return False
    if not ta or not tb:
        return a.strip().lower() == b.strip().lower()
    if ta <= tb or tb <= ta:
        return True
    if cosine is None or cosine < DUP_COSINE:
        return False
    return len(ta & tb) / len(ta | tb) >= DUP_JACCARD


@dataclass
class _Block:
    """One agent's vectors for one model, as loaded: ids and a unit-row matrix."""

    ids: Any  # numpy int64
    matrix: Any  # numpy float32, (n, dim)
    max_id: int
    count: int
    version: tuple[int, int]


class VectorIndex:
    """The workspace's memory vectors: embedding the backlog, and a numpy copy per agent."""

    def __init__(self, store: Store):
        self.store = store
        self._blocks: dict[tuple[str, str], _Block] = {}
        self._lock = threading.Lock()

    def log(
        self,
        model: str,
        key: str,
        tokens_in: int,
        cost: float,
        latency: float,
        error: str | None,
    ) -> None:
        """Record a provider's embedding request in ``llm_calls`` (``ws.llm.usage()`` counts it)."""
        from .llm_store import LLMStore

        LLMStore(self.store).log(
            job_id=None, model=model, request_hash=key, tokens_in=tokens_in, cost=cost,
            latency=latency, error=error,
        )  # fmt: skip

    def model(self) -> str | None:
        """The workspace's embedding model (setting, else ``$WIZ_EMBEDDINGS``), or None."""
        rows = self.store.read("SELECT value FROM settings WHERE key = ?", (embeddings.SETTING,))
        return embeddings.configured(rows[0][0] if rows else None)

    def set_model(self, name: str | None) -> None:
        name = embeddings.canonical(name)
        with self.store.write() as c:
            if name is None:
                c.execute("DELETE FROM settings WHERE key = ?", (embeddings.SETTING,))
            else:
                c.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                    (embeddings.SETTING, name),
                )

    # -- embedding the backlog -----------------------------------------------------------------

    def backlog(self, agent: str, model: str, limit: int = EMBED_BATCH) -> list[tuple[int, str]]:
        """Memories of ``agent`` with no ``model`` vector yet, oldest first."""
        hi = self.store.read(
            "SELECT MAX(id) FROM agent_memory_vec WHERE agent = ? AND model = ?", (agent, model)
        )[0][0]
        if hi is None and self.store.read(
            "SELECT 1 FROM agent_memory_vec WHERE agent = ? AND model != ? LIMIT 1", (agent, model)
        ):
            with self.store.write() as c:  # another model's vectors: start again
                c.execute("DELETE FROM agent_memory_vec WHERE agent = ?", (agent,))
        rows = self.store.read(
            "SELECT id, content FROM agent_memory WHERE agent = ? AND id > ? ORDER BY id LIMIT ?",
            (agent, hi or 0, limit),
        )
        return [(r[0], r[1]) for r in rows]

    def put(self, agent: str, model: str, ids: list[int], vectors: Any) -> None:
        with self.store.write() as c:
            c.executemany(
                "INSERT OR REPLACE INTO agent_memory_vec (id, agent, model, vector) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM agent_memory WHERE id = ?)",
                [(i, agent, model, v.tobytes(), i) for i, v in zip(ids, vectors)],
            )

    def catch_up(self, agent: str, embedder: embeddings.Embedder) -> None:
        """Embed every memory of ``agent`` that has no vector yet (in this thread)."""
        while batch := self.backlog(agent, embedder.name):
            vectors = embedder.embed([t for _, t in batch], self.log)
            self.put(agent, embedder.name, [i for i, _ in batch], vectors)
            if len(batch) < EMBED_BATCH:
                return

    async def acatch_up(self, agent: str, embedder: embeddings.Embedder) -> None:
        """:meth:`catch_up` without blocking the event loop."""
        while batch := self.backlog(agent, embedder.name):
            vectors = await embedder.aembed([t for _, t in batch], self.log)
            self.put(agent, embedder.name, [i for i, _ in batch], vectors)
            if len(batch) < EMBED_BATCH:
                return

    # -- the numpy copy ------------------------------------------------------------------------

    def block(self, agent: str, model: str) -> _Block:
        """The agent's vectors, reloaded only as far as the table changed."""
        np = embeddings.numpy()
        key = (agent, model)
        with self._lock:
            b = self._blocks.get(key)
            version = self.store.version()
            if b is not None and b.version == version:
                return b
            hi, count = self.store.read(
                "SELECT MAX(id), COUNT(*) FROM agent_memory_vec WHERE agent = ? AND model = ?",
                (agent, model),
            )[0]
            hi = hi or 0
            if b is not None and (hi, count) == (b.max_id, b.count):
                b.version = version
                return b
            since = b.max_id if b is not None and hi >= b.max_id else None
            rows = self.store.read(
                "SELECT id, vector FROM agent_memory_vec WHERE agent = ? AND model = ? AND id > ? "
                "ORDER BY id",
                (agent, model, since or 0),
            )
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = (
                np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
                if rows
                else None
            )
            if b is not None and since is not None and b.count + len(rows) == count:
                if matrix is not None:  # only appended: add the new rows
                    ids = np.concatenate([b.ids, ids])
                    matrix = matrix if b.matrix is None else np.concatenate([b.matrix, matrix])
                else:
                    ids, matrix = b.ids, b.matrix
                # a new block, never a changed one: a search in another thread keeps a
                # consistent (ids, matrix) pair
                b = _Block(ids, matrix, hi, count, version)
                self._blocks[key] = b
                return b
            if since is not None:  # rows went away (forget, consolidation): load afresh
                rows = self.store.read(
                    "SELECT id, vector FROM agent_memory_vec WHERE agent = ? AND model = ? "
                    "ORDER BY id",
                    (agent, model),
                )
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                matrix = (
                    np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(
                        len(rows), -1
                    )
                    if rows
                    else None
                )
            b = _Block(ids, matrix, hi, count, version)
            self._blocks[key] = b
            return b

    def nearest(self, agent: str, model: str, query: Any, k: int) -> list[tuple[int, float]]:
        """The ``k`` memories of ``agent`` closest to the unit vector ``query``: (id, cosine)."""
        np = embeddings.numpy()
        b = self.block(agent, model)
        if b.matrix is None or not len(b.ids) or k <= 0:
            return []
        if b.matrix.shape[1] != query.shape[-1]:
            return []
        # einsum, not BLAS: one thread, so a busy machine (or the notebook's own numpy
        # work) does not make a multi-threaded product wait for its threads; measured
        # 0.8 ms against 22 ms for ``@`` at 10k on a loaded 2-core machine, even at 100k
        scores = np.einsum("ij,j->i", b.matrix, query.reshape(-1))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(b.ids[i]), float(scores[i])) for i in top]


class Memory:
    """``agent.memory``: what an agent keeps between jobs.

    ::

        analyst.memory.save("The sales data is in data/sales.csv")
        analyst.memory.search("where is the sales data")
        await analyst.memory.asearch("where do the sales figures live")   # never blocks the loop
        analyst.memory.consolidate()   # merge near-duplicates, keep every fact
    """

    def __init__(self, store: Store, agent: str, index: VectorIndex | None = None):
        self.store = store
        self.agent = agent
        self.index = index if index is not None else VectorIndex(store)

    def save(self, content: str, *, kind: str = "fact", job_id: int | None = None) -> int:
        """Keep ``content``; returns its id (the existing one if the same text is kept)."""
        if kind not in KINDS:
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

    # -- searching -----------------------------------------------------------------------------

    def _mode(self, mode: str | None, model: str | None) -> str:
        mode = mode or "auto"
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "auto":
            return "semantic" if model else "fts"
        if mode != "fts" and not model:
            raise embeddings.EmbeddingsError(
                f"{mode} search needs an embedding model: Workspace(embeddings='wordllama') "
                "or ws.agents.set_embeddings('wordllama')"
            )
        return mode

    def search(
        self, query: str, limit: int = 5, *, mode: str | None = None
    ) -> list[dict[str, Any]]:
        """The memories that best match ``query``, best first.

        ``mode``: ``"auto"`` (default: ``"semantic"`` with an embedding model, else
        ``"fts"``), ``"fts"`` (words, BM25), ``"semantic"`` (embeddings only) or
        ``"hybrid"`` (both, fused by rank). Memories not embedded yet are embedded
        first, in this thread; in a notebook or an async handler prefer
        :meth:`asearch`, which does that without blocking the event loop.
        """
        model = self.index.model()
        mode = self._mode(mode, model)
        if mode == "fts" or not re.search(r"\w", query) or limit < 1:
            return self._rows(self._fts(query, limit))
        embedder = embeddings.get(model)  # type: ignore[arg-type]
        self.index.catch_up(self.agent, embedder)
        return self._ranked(query, embedder.embed([query], self.index.log)[0], mode, limit)

    async def asearch(
        self, query: str, limit: int = 5, *, mode: str | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`search` as a coroutine: embedding (the backlog, the query) runs in a
        thread for the offline model and as ``litellm.aembedding`` requests for a provider's."""
        model = self.index.model()
        mode = self._mode(mode, model)
        if mode == "fts" or not re.search(r"\w", query) or limit < 1:
            return self._rows(self._fts(query, limit))
        embedder = embeddings.get(model)  # type: ignore[arg-type]
        if embedder.local:
            return await asyncio.to_thread(self.search, query, limit, mode=mode)
        await self.index.acatch_up(self.agent, embedder)
        vector = (await embedder.aembed([query], self.index.log))[0]
        return self._ranked(query, vector, mode, limit)

    def _ranked(self, query: str, vector: Any, mode: str, limit: int) -> list[dict[str, Any]]:
        model = self.index.model() or ""
        if mode == "semantic":
            return self._rows(self.index.nearest(self.agent, model, vector, limit))
        depth = max(FUSE_DEPTH, limit)
        fused: dict[int, float] = {}
        for ranking in (
            self.index.nearest(self.agent, model, vector, depth),
            self._fts(query, depth),
        ):
            for rank, (mid, _) in enumerate(ranking):
                fused[mid] = fused.get(mid, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:limit]
        return self._rows(best)

    def _fts(self, query: str, limit: int) -> list[tuple[int, float]]:
        words = re.findall(r"\w+", query.lower())
        if not words or limit < 1:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        rows = self.store.read(
            "SELECT m.id, bm25(agent_memory_fts) FROM agent_memory_fts f "
            "JOIN agent_memory m ON m.id = f.rowid WHERE agent_memory_fts MATCH ? AND m.agent = ? "
            "ORDER BY bm25(agent_memory_fts) LIMIT ?",
            (match, self.agent, limit),
        )
        return [(r[0], -r[1]) for r in rows]

    def _rows(self, ranked: list[tuple[int, float]]) -> list[dict[str, Any]]:
        if not ranked:
            return []
        ids = [i for i, _ in ranked]
        rows = self.store.read(
            f"SELECT id, kind, content, created_at FROM agent_memory WHERE id IN ({', '.join('?' * len(ids))})",
            tuple(ids),
        )
        by_id = {r[0]: dict(r) for r in rows}
        out = []
        for mid, score in ranked:
            if mid in by_id:
                out.append({**by_id[mid], "score": round(score, 6)})
        return out

    # -- consolidation -------------------------------------------------------------------------

    @property
    def _watermark_key(self) -> str:
        return f"memory.consolidated.{self.agent}"

    def consolidate(self, *, all: bool = False) -> dict[str, Any]:
        """Merge near-duplicate memories into one; every distinct fact is kept.

        Looks at the memories saved since the last consolidation (``all=True``:
        every memory), each against its closest memories (full-text, and by
        embedding when the workspace has a model). Of two near-duplicates
        (:func:`near_duplicates`) the one that says more stays, with the
        stronger kind (goal > learning > fact); the other is deleted.
        Deterministic: no model call. Returns ``{"checked", "merged", "kept"}``,
        ``merged`` listing ``(kept id, removed id)`` pairs.
        """
        model = self.index.model()
        embedder = embeddings.get(model) if model else None
        if embedder is not None:
            self.index.catch_up(self.agent, embedder)
        rows = self.store.read("SELECT value FROM settings WHERE key = ?", (self._watermark_key,))
        since = 0 if all or not rows else int(rows[0][0])
        recent = self.store.read(
            "SELECT id FROM agent_memory WHERE agent = ? AND id > ? ORDER BY id",
            (self.agent, since),
        )
        merged: list[tuple[int, int]] = []
        gone: set[int] = set()
        top = since
        for (mid,) in recent:
            top = max(top, mid)
            if mid in gone:
                continue
            me = self._get(mid)
            if me is None:
                continue
            for other_id, cosine in self._neighbours(me, embedder):
                if other_id in gone or other_id == mid:
                    continue
                other = self._get(other_id)
                if other is None or not near_duplicates(me["content"], other["content"], cosine):
                    continue
                keep, drop = self._survivor(me, other)
                self._merge(keep, drop)
                merged.append((keep["id"], drop["id"]))
                gone.add(drop["id"])
                if drop["id"] == mid:
                    break
                me = self._get(mid) or me
        with self.store.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                (self._watermark_key, str(top)),
            )
        return {"checked": len(recent), "merged": merged, "kept": len(self)}

    def _get(self, mid: int) -> dict[str, Any] | None:
        rows = self.store.read(
            "SELECT id, kind, content, created_at FROM agent_memory WHERE id = ? AND agent = ?",
            (mid, self.agent),
        )
        return dict(rows[0]) if rows else None

    def _neighbours(
        self, me: dict[str, Any], embedder: embeddings.Embedder | None
    ) -> list[tuple[int, float | None]]:
        found: dict[int, float | None] = {i: None for i, _ in self._fts(me["content"], 20)}
        if embedder is not None:
            vec = self.store.read("SELECT vector FROM agent_memory_vec WHERE id = ?", (me["id"],))
            if vec:
                np = embeddings.numpy()
                query = np.frombuffer(vec[0][0], dtype=np.float32)
                for i, cosine in self.index.nearest(self.agent, embedder.name, query, 20):
                    found[i] = cosine
        return sorted(found.items(), key=lambda x: x[0])

    @staticmethod
    def _survivor(a: dict[str, Any], b: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        ta, tb = _terms(a["content"]), _terms(b["content"])
        # more content words, then longer ones, then the older memory
        key_a = (len(ta), sum(map(len, ta)), -a["id"])
        key_b = (len(tb), sum(map(len, tb)), -b["id"])
        return (a, b) if key_a >= key_b else (b, a)

    def _merge(self, keep: dict[str, Any], drop: dict[str, Any]) -> None:
        kind = max(keep["kind"], drop["kind"], key=KINDS.index)
        with self.store.write() as c:
            c.execute("DELETE FROM agent_memory WHERE id = ?", (drop["id"],))
            if kind != keep["kind"]:
                c.execute("UPDATE agent_memory SET kind = ? WHERE id = ?", (kind, keep["id"]))
                keep["kind"] = kind

    # -- the rest ------------------------------------------------------------------------------

    def all(self) -> list[dict[str, Any]]:
        """Every memory of the agent, oldest first."""
        rows = self.store.read(
            "SELECT id, kind, content, created_at FROM agent_memory WHERE agent = ? ORDER BY id",
            (self.agent,),
        )
        return [dict(r) for r in rows]

    def forget(self, memory_id: int) -> None:
        """Delete one memory (and its vector)."""
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
