"""The LLM layer's tables: ``llm_calls`` (one row per attempt) and ``llm_cache`` (replay).

``llm_calls`` is the audit trail and the meter: model, tokens, cost, latency,
cache hit, error, and the job that made the call. ``llm_cache`` maps a request's
hash to the reply it got, which is what replay serves and what a cassette file
carries beside a notebook. Neither ever holds an API key: the hashed request
material is the model, the messages, the tools and the parameters that change a
reply (:data:`SEMANTIC_PARAMS`), nothing about transport or credentials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from ..jobs.store import Migration, Store

#: Parameters that change what a model answers, so they are part of a request's hash.
#: Anything else (api_base, api_key, timeout, stream, headers, ...) is transport.
SEMANTIC_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "seed",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "logprobs",
        "top_logprobs",
        "modalities",
        "thinking",
    }
)
CASSETTE_VERSION = 1
#: set_setting calls in this process (see LLMStore.settings_version)
_settings_writes = [0]


def _llm_v1(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY,
            job_id INTEGER,
            model TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            latency REAL NOT NULL DEFAULT 0,   -- seconds, this attempt
            cache_hit INTEGER NOT NULL DEFAULT 0,
            attempt INTEGER NOT NULL DEFAULT 1,
            stream INTEGER NOT NULL DEFAULT 0,
            error TEXT,                        -- one line, keys redacted; NULL on success
            created_at REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX llm_calls_job ON llm_calls (job_id) WHERE job_id IS NOT NULL")
    db.execute(
        """CREATE TABLE llm_cache (
            request_hash TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            request TEXT NOT NULL,    -- JSON: exactly what was hashed
            response TEXT NOT NULL,   -- JSON: text, tool_calls, finish_reason, tokens
            created_at REAL NOT NULL
        )"""
    )


LLM_MIGRATIONS: list[Migration] = [(1, "llm_calls, llm_cache", _llm_v1)]


def canonical(material: dict[str, Any]) -> str:
    return json.dumps(
        material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def request_hash(material: dict[str, Any]) -> str:
    """A stable hash of a request's material (see the module doc)."""
    return hashlib.sha256(canonical(material).encode()).hexdigest()


@dataclasses.dataclass
class Usage:
    """Totals over ``llm_calls``: for one job, or the whole workspace.

    ``calls`` counts successful calls (cache hits included), ``errors`` failed
    attempts (retried ones included); tokens and cost add up every row.
    """

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency: float = 0.0
    cache_hits: int = 0
    errors: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


class LLMStore:
    """SQL for the LLM layer, on the workspace's :class:`~wiz_jupyter.jobs.store.Store`."""

    def __init__(self, store: Store):
        self.store = store
        store.migrate("llm", LLM_MIGRATIONS)

    # -- the call log --------------------------------------------------------------------------

    def log(
        self,
        *,
        job_id: int | None,
        model: str,
        request_hash: str,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost: float = 0.0,
        latency: float = 0.0,
        cache_hit: bool = False,
        attempt: int = 1,
        stream: bool = False,
        error: str | None = None,
    ) -> int:
        with self.store.write() as c:
            cur = c.execute(
                "INSERT INTO llm_calls (job_id, model, request_hash, tokens_in, tokens_out, cost, "
                "latency, cache_hit, attempt, stream, error, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    model,
                    request_hash,
                    tokens_in,
                    tokens_out,
                    cost,
                    latency,
                    int(cache_hit),
                    attempt,
                    int(stream),
                    error,
                    time.time(),
                ),
            )
            return cur.lastrowid or 0

    def usage(self, job_id: int | None = None) -> Usage:
        where, params = ("WHERE job_id = ?", (job_id,)) if job_id is not None else ("", ())
        row = self.store.read(
            "SELECT COALESCE(SUM(error IS NULL), 0), COALESCE(SUM(tokens_in), 0), "
            "COALESCE(SUM(tokens_out), 0), COALESCE(SUM(cost), 0.0), "
            "COALESCE(SUM(latency), 0.0), COALESCE(SUM(cache_hit), 0), "
            f"COALESCE(SUM(error IS NOT NULL), 0) FROM llm_calls {where}",
            params,
        )[0]
        return Usage(*row)

    def history(self, job_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE job_id = ?", (job_id,)) if job_id is not None else ("", ())
        rows = self.store.read(
            f"SELECT * FROM llm_calls {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [dict(r) for r in reversed(rows)]

    # -- the replay cache ----------------------------------------------------------------------

    def lookup(self, key: str) -> dict[str, Any] | None:
        rows = self.store.read("SELECT response FROM llm_cache WHERE request_hash = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def save(
        self, key: str, model: str, material: dict[str, Any], response: dict[str, Any]
    ) -> None:
        with self.store.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?, ?, ?)",
                (key, model, canonical(material), json.dumps(response), time.time()),
            )

    def entries(
        self, *, hashes: Iterable[str] | None = None, models: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        rows = self.store.read("SELECT * FROM llm_cache ORDER BY request_hash")
        wanted = set(hashes) if hashes is not None else None
        model_set = set(models) if models is not None else None
        return [
            {
                "request_hash": r["request_hash"],
                "model": r["model"],
                "request": json.loads(r["request"]),
                "response": json.loads(r["response"]),
            }
            for r in rows
            if (wanted is None or r["request_hash"] in wanted)
            and (model_set is None or r["model"] in model_set)
        ]

    # -- cassettes -----------------------------------------------------------------------------

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        hashes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
    ) -> int:
        """Write cache entries to a JSON cassette file (sorted, so re-records diff well)."""
        entries = self.entries(hashes=hashes, models=models)
        data = {"wiz_cassette": CASSETTE_VERSION, "entries": entries}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, path)  # a reader never sees half a cassette
        return len(entries)

    def import_(self, path: str | os.PathLike[str]) -> list[str]:
        """Load a cassette's entries into the cache; returns their hashes.

        Each hash is computed afresh from the entry's request, so a cassette
        edited by hand (a prompt reworded) still matches what the notebook sends.
        """
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or "entries" not in data:
            raise ValueError(f"{path} is not a wiz cassette (no 'entries')")
        if data.get("wiz_cassette", 1) > CASSETTE_VERSION:
            raise ValueError(f"{path} was written by a newer wiz_jupyter; upgrade to read it")
        keys = []
        now = time.time()
        with self.store.write() as c:
            for e in data["entries"]:
                key = request_hash(e["request"])
                c.execute(
                    "INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?, ?, ?)",
                    (key, e["model"], canonical(e["request"]), json.dumps(e["response"]), now),
                )
                keys.append(key)
        return keys

    # -- settings ------------------------------------------------------------------------------

    def setting(self, key: str) -> Any:
        rows = self.store.read("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def settings_version(self) -> tuple[int, int]:
        """Changes to the settings this layer keeps (models, endpoints, budgets): its own
        writes in this process, and any commit of another connection. Caches of settings
        read on every call key on it: unlike ``store.version()`` it does not move with
        every job, activity or call row this process writes."""
        return _settings_writes[0], self.store.version()[1]

    def set_setting(self, key: str, value: Any) -> None:
        _settings_writes[0] += 1
        with self.store.write() as c:
            if value is None:
                c.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                c.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                    (key, json.dumps(value)),
                )
