"""Retention: which finished jobs to remove, so a workspace that runs for months does not
only grow. BullMQ's ``removeOnComplete`` / ``removeOnFail``, kept in SQL.

A policy is ``True`` (remove the job once it ends), an int N (keep the newest N
finished jobs of its task), or ``{"age": seconds, "count": n}`` (either or both);
``False`` / ``None`` keep everything. Each job carries its own policy (column ``keep``,
JSON ``{"completed": {...}, "failed": {...}}``), stamped when it is added from its
options or its task's, so every process on the file applies the same one. What a job
does not say (no policy, or none for that outcome) follows the workspace's default
(``set_retention``); ``False`` keeps the job whatever the default. Cancelled
jobs follow the ``failed`` policy.

:func:`collect` removes what the policies allow, in one transaction, never a job that an
unfinished job still waits for (a dependency, or a child whose parent has not finished)
nor a parent with unfinished children. Other layers register what goes with a job
(agent activity, chat messages, an executed notebook copy) through ``Queue.on_remove``.
Ids are never reused: the highest id removed is remembered (setting ``jobs.max_id``).

Outbound notifications (``jobs/outbound.py``) turn job ends into deliveries by following
``job_events`` with a durable cursor (setting ``notifications.cursor``, present while a
target exists): a job with an end event past that cursor is not removed yet, and event
ids never go back (when the newest events go, a ``gc.mark`` row keeps the highest id),
so no cursor on the log (theirs, the scheduler's, the front ends') skips a new event.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from typing import Any

from ..errors import InvalidJob

Policy = dict[str, float]
#: the setting that holds the workspace's default, ``{"completed": policy, "failed": policy}``
DEFAULT_KEY = "retention"
MAX_ID_KEY = "jobs.max_id"
#: the event id up to which job ends have been turned into deliveries (jobs/outbound.py)
NOTIFY_CURSOR_KEY = "notifications.cursor"
_END_EVENTS = "('job.completed', 'job.failed', 'job.cancelled')"

# The jobs the policies let go: ranked newest first within (task, outcome), each
# against its own policy, or the default for jobs without one. The parent/dependency
# rules are two NOT EXISTS on job_deps (indexed by its primary key and dep_id).
_COLLECT = """
WITH finished AS (
  SELECT id, task, data, finished_at, keep, status = 'completed' AS ok,
         ROW_NUMBER() OVER (
           PARTITION BY task, status = 'completed' ORDER BY finished_at DESC, id DESC
         ) AS rank
  FROM jobs {only_kept}
  WHERE status IN ('completed', 'failed', 'cancelled') {and_kept}
), ruled AS (
  SELECT id, task, data, finished_at, rank, COALESCE(
    json_extract(keep, CASE WHEN ok THEN '$.completed' ELSE '$.failed' END),
    json_extract(:default, CASE WHEN ok THEN '$.completed' ELSE '$.failed' END)
  ) AS rule
  FROM finished
)
SELECT id, task, data FROM ruled
WHERE rule IS NOT NULL
  AND (rank > json_extract(rule, '$.count')
       OR finished_at < :now - json_extract(rule, '$.age'))
  AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs w ON w.id = d.job_id
                  WHERE d.dep_id = ruled.id
                    AND w.status NOT IN ('completed', 'failed', 'cancelled'))
  AND NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs c ON c.id = d.dep_id
                  WHERE d.job_id = ruled.id
                    AND c.status NOT IN ('completed', 'failed', 'cancelled'))
  {and_announced}
ORDER BY id
LIMIT :limit
"""


def policy(value: Any, what: str) -> Policy | None:
    """A policy in its stored form (``{"count": n}``, ``{"age": s}`` or both; ``{}`` for
    ``False``: keep everything, whatever the default), or None when not given (the
    default applies); a one-line :class:`InvalidJob` for anything else."""
    if value is None:
        return None
    if value is False:
        return {}
    if value is True:
        return {"count": 0}
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidJob(
                f"{what} must be True, a count >= 0 or {{'age':, 'count':}}, not {value}"
            )
        return {"count": value}
    if isinstance(value, dict) and value and set(value) <= {"age", "count"}:
        out: Policy = {}
        count, age = value.get("count"), value.get("age")
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise InvalidJob(f"{what}: count must be an integer >= 0, not {count!r}")
            out["count"] = count
        if age is not None:
            if (
                not isinstance(age, (int, float))
                or isinstance(age, bool)
                or not math.isfinite(age)
                or age < 0
            ):
                raise InvalidJob(f"{what}: age must be a number of seconds >= 0, not {age!r}")
            out["age"] = float(age)
        return out
    raise InvalidJob(
        f"{what} must be True, a number of jobs to keep, or {{'age': seconds, 'count': n}}, "
        f"not {value!r:.60}"
    )


def stamp(completed: Any, failed: Any) -> str | None:
    """The ``keep`` column of a new job: its two policies as JSON, or None (the default)."""
    c = policy(completed, "remove_on_complete")
    f = policy(failed, "remove_on_fail")
    if c is None and f is None:
        return None
    return json.dumps({k: v for k, v in (("completed", c), ("failed", f)) if v is not None})


def query(default: str | None, announcing: bool = False) -> str:
    """The collecting query. With no default, only jobs with a policy of their own can go:
    the partial index ``jobs_keep`` finds them without reading the other finished jobs.
    ``announcing``: notification targets exist, so a job whose end is past the cursor
    ``:cursor`` stays until it has been turned into deliveries."""
    announced = (
        "AND NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = ruled.id "
        f"AND e.id > :cursor AND e.event IN {_END_EVENTS})"
        if announcing
        else ""
    )
    if default:
        return _COLLECT.format(only_kept="", and_kept="", and_announced=announced)
    return _COLLECT.format(
        only_kept="INDEXED BY jobs_keep", and_kept="AND keep IS NOT NULL", and_announced=announced
    )


def collect(c: sqlite3.Connection, now: float, default: str | None, limit: int) -> list[tuple]:
    """``(id, task, data)`` of up to ``limit`` jobs the policies let go, oldest first."""
    cursor = c.execute(
        "SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?", (NOTIFY_CURSOR_KEY,)
    ).fetchone()
    params = {"default": default, "now": now, "limit": limit}
    if cursor is not None:
        params["cursor"] = cursor[0]
    return c.execute(query(default, cursor is not None), params).fetchall()


def remove(c: sqlite3.Connection, ids: list[int]) -> None:
    """Delete the jobs' rows and what the jobs layer keeps of them."""
    top = max(ids)
    c.execute(
        "INSERT INTO settings VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
        "MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        (MAX_ID_KEY, str(top)),
    )
    newest = c.execute("SELECT MAX(id) FROM job_events").fetchone()[0]
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        c.execute(f"DELETE FROM job_events WHERE job_id IN ({marks})", part)
        c.execute(f"DELETE FROM job_deps WHERE job_id IN ({marks})", part)
        c.execute(f"DELETE FROM job_deps WHERE dep_id IN ({marks})", part)
        c.execute(f"DELETE FROM schedule_runs WHERE job_id IN ({marks})", part)
        c.execute(f"DELETE FROM job_trace WHERE job_id IN ({marks})", part)
        c.execute(f"DELETE FROM jobs WHERE id IN ({marks})", part)
    _keep_event_ids_rising(c, newest)


def _keep_event_ids_rising(c: sqlite3.Connection, newest: int | None) -> None:
    """SQLite gives a new event the highest id + 1: had the newest events gone, the next
    ones would reuse ids that cursors on the log have already passed. One ``gc.mark`` row
    (no job) holds the highest id instead; an older mark is no longer needed."""
    if newest is None or c.execute("SELECT MAX(id) FROM job_events").fetchone()[0] == newest:
        return
    c.execute("DELETE FROM job_events WHERE job_id IS NULL AND event = 'gc.mark'")
    c.execute(
        "INSERT INTO job_events (id, job_id, event, payload, at) VALUES (?, NULL, 'gc.mark', "
        "NULL, ?)",
        (newest, time.time()),
    )
