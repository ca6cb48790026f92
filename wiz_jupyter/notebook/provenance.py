"""Provenance: how each answer shown in a notebook was made.

An answer that ``%wiz ask``, ``%%wiz ask``, ``%wiz assign --wait`` or a chat
panel shows carries a small record: the job, the agent, the model, the hash of
the request that produced the answer (sha256 of the canonical model, messages,
tools and parameters: the same key the replay cache and cassettes use), tokens,
cost and, when the answer was replayed, the cassette key. Magics put it in the
output's metadata (``{"wiz": {...}}``), so a saved notebook keeps it; the chat
panel, a widget with no output of its own per message, sends it with the
message to the browser. Both add it to this kernel's session record.

``%wiz provenance`` lists the session record, plus the records found in the
saved notebook file when the kernel knows which one it is (see :func:`notebook_path`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..jobs.display import html_table, short, text_table, when

#: the key under an output's metadata
KEY = "wiz"
#: the fields every record has (a magic's adds ``kind`` and ``source``, a chat's ``chat``)
FIELDS = ("job_id", "agent", "model", "request_hash", "tokens_in", "tokens_out", "cost",
          "calls", "replayed", "cassette_key", "shown_at")  # fmt: skip

_session: list[dict[str, Any]] = []


def of_job(ws: Any, job_id: int, **extra: Any) -> dict[str, Any]:
    """The provenance record of ``job_id``'s answer, from the job row and its ``llm_calls``.

    The request hash and model are those of the job's last successful model call
    (the one whose reply became the answer); tokens and cost add up all its calls.
    """
    job = ws.jobs.get(job_id)
    calls = [c for c in ws.llm.history(job_id, limit=10_000) if c["error"] is None]
    last = calls[-1] if calls else None
    hits = [c for c in calls if c["cache_hit"]]
    record = {
        "job_id": job.id,
        "agent": job.agent,
        "model": last["model"] if last else None,
        "request_hash": last["request_hash"] if last else None,
        "tokens_in": sum(c["tokens_in"] for c in calls),
        "tokens_out": sum(c["tokens_out"] for c in calls),
        "cost": round(sum(c["cost"] for c in calls), 8),
        "calls": len(calls),
        "replayed": len(hits),  # how many of the calls were served by the replay cache
        # the key of the answer's reply in the cache (and a cassette) when it was replayed
        "cassette_key": last["request_hash"] if last and last["cache_hit"] else None,
        "shown_at": time.time(),
        **extra,
    }
    return record


class Answer(str):
    """An agent's answer: a ``str`` that knows how it was made (``answer.provenance``).

    ``%wiz ask ... -o answer`` and ``%wiz result ID`` (of an agent's job) give one; shown
    as a cell's result, its output's metadata carries the record, as a streamed answer's does.
    """

    provenance: dict[str, Any] | None

    def __new__(cls, text: str, provenance: dict[str, Any] | None = None) -> Answer:
        self = super().__new__(cls, text)
        self.provenance = provenance
        return self

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"text/plain": repr(str(self))}, {KEY: self.provenance} if self.provenance else {}


def record(entry: dict[str, Any]) -> dict[str, Any]:
    """Add ``entry`` to this kernel's session record (once per job and source: two chat
    panels on one conversation show the same answer); returns it."""
    for known in _session:
        if known["job_id"] == entry["job_id"] and known.get("source") == entry.get("source"):
            return known
    _session.append(entry)
    return entry


def session() -> list[dict[str, Any]]:
    """The answers shown in this kernel so far, oldest first."""
    return list(_session)


def notebook_path(user_ns: dict[str, Any] | None = None) -> Path | None:
    """The notebook file this kernel runs, when the front end said so, else None.

    VS Code sets ``__vsc_ipynb_file__``; Jupyter Server (2+) gives the kernel
    ``JPY_SESSION_NAME`` (ipykernel mirrors it as ``__session__``): the
    notebook's path, absolute or relative to the server's root, which is
    usually the kernel's working folder or one of its parents.
    """
    ns = user_ns or {}
    for raw in (
        ns.get("__vsc_ipynb_file__"),
        ns.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if not isinstance(raw, str) or not raw.endswith(".ipynb"):
            continue
        p = Path(raw)
        candidates = [p] if p.is_absolute() else [Path.cwd() / p, Path.cwd() / p.name]
        for c in candidates:
            if c.is_file():
                return c
    return None


def from_notebook(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The provenance records stored in a saved notebook's output metadata, in cell order.

    Each gets ``cell`` (the code cell's index among all cells). A file that is not
    a readable notebook gives [].
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    for i, cell in enumerate(nb.get("cells", []) if isinstance(nb, dict) else []):
        for output in cell.get("outputs", []) or []:
            meta = output.get("metadata") or {}
            entry = meta.get(KEY) if isinstance(meta, dict) else None
            if isinstance(entry, dict) and "job_id" in entry:
                out.append({**entry, "cell": i})
    return out


class ProvenanceList(list):
    """Provenance records that show as a table in a notebook (``%wiz provenance``)."""

    headers = ("job", "agent", "model", "request", "tokens", "cost", "replayed", "where", "shown")

    def _rows(self) -> list[list[str]]:
        return [
            [
                str(r.get("job_id", "")),
                str(r.get("agent") or ""),
                str(r.get("model") or ""),
                short(r.get("request_hash") or "", 14),
                f"{r.get('tokens_in', 0)}+{r.get('tokens_out', 0)}",
                f"${float(r.get('cost') or 0):.4f}",
                "yes" if r.get("cassette_key") else "no",
                str(r.get("where", "")),
                when(r.get("shown_at")),
            ]
            for r in self
        ]

    def __repr__(self) -> str:
        return text_table(self.headers, self._rows()) if self else "(no answers shown yet)"

    def _repr_html_(self) -> str:
        return (
            html_table(self.headers, self._rows(), status_col=None)
            if self
            else "<i>no answers shown yet</i>"
        )


def listing(user_ns: dict[str, Any] | None = None) -> ProvenanceList:
    """This session's records, then those of the saved notebook not shown in this session."""
    rows = [{**r, "where": "session"} for r in _session]
    # a saved answer this session showed again (same job, same request) is listed once
    seen = {(r["job_id"], r.get("request_hash")) for r in rows}
    path = notebook_path(user_ns)
    if path is not None:
        for r in from_notebook(path):
            if (r["job_id"], r.get("request_hash")) not in seen:
                seen.add((r["job_id"], r.get("request_hash")))
                rows.append({**r, "where": f"{path.name} cell {r['cell']}"})
    return ProvenanceList(rows)
