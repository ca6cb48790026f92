"""Readable reprs for notebooks: lists of jobs and schedules as text and HTML tables.

Every value is escaped; nothing here runs script or loads anything.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Sequence
from typing import Any

STATUS_COLOURS = {
    "waiting": "#6b7280", "delayed": "#a16207", "blocked": "#7c3aed", "active": "#2563eb",
    "awaiting_input": "#c2410c", "completed": "#15803d", "failed": "#b91c1c", "cancelled": "#6b7280",
    "paused": "#a16207", "expired": "#6b7280",
}  # fmt: skip


def when(t: float | None, missing: str = "") -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; ``missing`` for None."""
    return missing if t is None else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def short(value: Any, width: int = 60) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def progress_text(p: Any) -> str:
    """``{"done": 3, "of": 10}`` as ``3/10``; anything else as it is, shortened. ``p`` is
    the value or, from a row, its JSON text."""
    if isinstance(p, str) and p.startswith("{"):
        try:
            p = json.loads(p)
        except ValueError:
            pass
    if isinstance(p, dict) and isinstance(p.get("done"), int) and isinstance(p.get("of"), int):
        return f"{p['done']}/{p['of']}"
    return short(p, 12)


def status_badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#374151")
    return (
        f"<span class='wiz-status wiz-status-{html.escape(status)}' style='color:{colour};"
        f"font-weight:600'>{html.escape(status)}</span>"
    )


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], status_col: int | None
) -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = [status_badge(c) if i == status_col else html.escape(c) for i, c in enumerate(r)]
        body.append(
            "<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>"
        )
    return f"<table class='wiz-table'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def task_cell(row: dict[str, Any]) -> str:
    """A job's task, with its group if it has one: ``fetch [alice]``."""
    group = row.get("group")
    return row["task"] if group is None else f"{row['task']} [{group}]"


def why_failed(row: dict[str, Any]) -> str:
    """Why a failed job gave up, in a few words: an unrecoverable error, its attempts
    used up, a timeout, a failed dependency."""
    reason = row.get("fail_reason")
    if reason == "unrecoverable":
        return "unrecoverable"
    if reason == "dependency":
        return "dependency failed"
    made, allowed = row.get("attempts_made") or 0, row.get("attempts") or 1
    used = (
        f"{made}/{allowed} attempts used" if made >= allowed else f"after {made}/{allowed} attempts"
    )
    return f"timed out, {used}" if reason == "timeout" else used


def request_text(request: dict[str, Any] | None, width: int = 60) -> str:
    """What a job awaiting input asks, in one line: ``approve write_file(path='a.txt', ...)``
    or ``asks: which year?`` (arguments as stored: secrets were redacted before)."""
    request = request or {}
    if request.get("kind") == "question":
        return short(f"asks: {request.get('question', '')}", width)
    args = request.get("args") or {}
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items()) if isinstance(args, dict) else args
    return short(f"approve {request.get('tool', '?')}({shown})", width)


class JobList(list):
    """A list of jobs that shows as a table in a notebook."""

    headers = ("id", "status", "task", "agent", "progress", "attempts", "created", "result / error")

    def _rows(self) -> list[list[str]]:
        rows = []
        for j in self:
            r = j.snapshot  # the snapshot the list was built from: no query per cell
            outcome = r["error"] if r["status"] in ("failed", "cancelled") else r["result"]
            if r["status"] == "failed":
                outcome = f"{why_failed(r)}: {outcome}"
            elif r["status"] == "awaiting_input":
                held = json.loads(r["input"]) if r.get("input") else {}
                outcome = request_text(held.get("request"), 200)
            rows.append([
                str(r["id"]), r["status"], task_cell(r), r["agent"] or "", progress_text(r["progress"]),
                f"{r['attempts_made']}/{r['attempts']}", when(r["created_at"]), short(outcome),
            ])  # fmt: skip
        return rows

    def __repr__(self) -> str:
        return text_table(self.headers, self._rows()) if self else "(no jobs)"

    def _repr_html_(self) -> str:
        return html_table(self.headers, self._rows(), status_col=1) if self else "<i>no jobs</i>"


class PendingList(list):
    """The jobs awaiting input (``ws.jobs.pending()``): dicts that show as a table."""

    headers = ("job", "agent", "asks", "since", "reply with")

    def _rows(self) -> list[list[str]]:
        rows = []
        for p in self:
            if p.get("kind") == "question":
                how = f"%wiz answer {p['job']} TEXT"
            else:
                how = f"%wiz approve {p['job']} / %wiz deny {p['job']} REASON"
            rows.append([str(p["job"]), p.get("agent") or p["task"], request_text(p, 200),
                         when(p.get("since")), how])  # fmt: skip
        return rows

    def __repr__(self) -> str:
        return text_table(self.headers, self._rows()) if self else "(nothing awaits input)"

    def _repr_html_(self) -> str:
        return (
            html_table(self.headers, self._rows(), status_col=None)
            if self
            else "<i>nothing awaits input</i>"
        )


class ScheduleList(list):
    """A list of schedules that shows as a table in a notebook."""

    headers = (
        "id", "name", "task", "trigger", "status", "next run", "runs", "failed", "overlap",
        "skipped",
    )  # fmt: skip

    def _rows(self) -> list[list[str]]:
        return [
            [
                str(s.id),
                s.name,
                s.task,
                s.description,
                s.status,
                when(s.next_run),
                str(s.run_count),
                str(s.fail_count),
                s.overlap,
                str(s.skip_count),
            ]
            for s in self
        ]

    def __repr__(self) -> str:
        return text_table(self.headers, self._rows()) if self else "(no schedules)"

    def _repr_html_(self) -> str:
        return (
            html_table(self.headers, self._rows(), status_col=4) if self else "<i>no schedules</i>"
        )
