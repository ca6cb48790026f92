"""Groups: fairness between the users (or tenants, notebooks, ...) of one task.

``ws.jobs.add(task, data, group="alice")`` puts a job in a group, and
``@ws.task(group_concurrency=n)`` lets at most ``n`` jobs of one group of the task be
active at once, in every process on the file. Claims rotate between groups, so a group
that added 10,000 jobs does not starve one that adds 10 after it.

Rotation is fair queuing by rank. Each grouped job gets a rank (``jobs.group_seq``) when it
is added: one more than the last rank of its group, but never below the task's *round*,
the rank of the task's last claimed grouped job (both kept in ``job_groups``). So group
a's 1,000th job ranks 1,000, while group b's first job, added later, ranks just after the
job being claimed now: the two groups then take turns. Waiting jobs are claimed by
priority, then rank, then age.

A claim with groups in use (:func:`pick`) reads, per task, its first few grouped jobs in
claim order (index ``jobs_rank``), skipping groups at their cap; that is enough unless a
few groups, soon at their caps, fill the scan. Then it reads the head of each group that
has waiting jobs instead (a seek per group in index ``jobs_groups``), and fills the free
slots from a heap of heads, reading a group's next job only when it takes one. Neither
reads the whole backlog. Jobs without a group, of a task that
has grouped jobs waiting, take turns with its groups as if they were one more group with
no limit, in their order (priority, then age) among the task's first :data:`WINDOW`
waiting jobs; jobs of a task with no grouped job waiting come in the usual order. Without
grouped jobs waiting, the claim is the queue's usual single statement (:func:`waiting` is
one probe of an index that is then empty).
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Mapping

#: how many of the first waiting jobs (by priority, then age) a claim with groups in use
#: looks at for jobs without a group
WINDOW = 256
_ROUND = ""  # job_groups' row for a task's round (a group's name is never empty)
# what a candidate is; at equal priority and rank, the lower goes first
_PLAIN_JOB, _UNGROUPED_JOB, _GROUPED_JOB = 0, 1, 2
#: a candidate: (-priority, rank, kind, id, task, group)
_Head = tuple[int, int, int, int, str, "str | None"]

_PROBE = (
    "SELECT 1 FROM jobs INDEXED BY jobs_groups WHERE task IN ({}) AND status = 'waiting' "
    'AND "group" IS NOT NULL LIMIT 1'
)
# the groups of a task that have waiting jobs, one index seek each (a loose index scan)
_HEADS = """
WITH RECURSIVE g(grp) AS (
    SELECT MIN("group") FROM jobs
    WHERE task = :task AND status = 'waiting' AND "group" IS NOT NULL
  UNION ALL
    SELECT (SELECT MIN("group") FROM jobs
            WHERE task = :task AND status = 'waiting' AND "group" IS NOT NULL
            AND "group" > g.grp)
    FROM g WHERE g.grp IS NOT NULL
)
SELECT j.priority, j.group_seq, j.id, j."group" FROM g JOIN jobs j ON j.id = (
    SELECT id FROM jobs WHERE task = :task AND status = 'waiting' AND "group" = g.grp
    ORDER BY priority DESC, group_seq, id LIMIT 1
) WHERE g.grp IS NOT NULL
"""
# the task's waiting grouped jobs in claim order (groups at their cap are skipped while
# reading: excluding them in SQL would read past all their jobs)
_RANKED = (
    "SELECT priority, group_seq, id, \"group\" FROM jobs WHERE task = ? AND status = 'waiting' "
    'AND "group" IS NOT NULL ORDER BY priority DESC, group_seq, id LIMIT ?'
)
_NEXT = (
    "SELECT priority, group_seq, id FROM jobs WHERE task = ? AND status = 'waiting' "
    'AND "group" = ? ORDER BY priority DESC, group_seq, id LIMIT 1 OFFSET ?'
)
# jobs without a group: of a task that has grouped jobs waiting, among its first WINDOW
# waiting jobs (so a large grouped backlog is not scanned on every claim); of another task,
# in the queue's usual order
_UNGROUPED = (
    'SELECT priority, id FROM (SELECT priority, id, "group" FROM jobs '
    "WHERE status = 'waiting' AND task = ? ORDER BY priority DESC, id LIMIT ?) "
    'WHERE "group" IS NULL'
)
_PLAIN = (
    "SELECT priority, id FROM jobs WHERE status = 'waiting' AND task = ? "
    "ORDER BY priority DESC, id LIMIT ?"
)
_ACTIVE = (
    "SELECT \"group\", COUNT(*) FROM jobs WHERE status = 'active' AND task = ? "
    'AND "group" IS NOT NULL GROUP BY "group"'
)


class Ranks:
    """The ranks of grouped jobs added in one transaction (see the module's docstring);
    :meth:`save` records the last rank of each group before the transaction ends."""

    def __init__(self, c: sqlite3.Connection):
        self.c = c
        self.last: dict[tuple[str, str], int] = {}

    def next(self, task: str, group: str) -> int:
        last = self.last.get((task, group))
        if last is None:
            rows = dict(
                self.c.execute(
                    "SELECT grp, seq FROM job_groups WHERE task = ? AND grp IN (?, ?)",
                    (task, group, _ROUND),
                ).fetchall()
            )
            last = max(rows.get(group, 0), rows.get(_ROUND, 0))
        self.last[task, group] = last + 1
        return last + 1

    def save(self) -> None:
        if not self.last:
            return
        self.c.executemany(
            "INSERT INTO job_groups VALUES (?, ?, ?) "
            "ON CONFLICT (task, grp) DO UPDATE SET seq = excluded.seq",
            [(t, g, s) for (t, g), s in self.last.items()],
        )


def waiting(c: sqlite3.Connection, tasks: list[str]) -> bool:
    """Whether jobs of ``tasks`` that have a group are waiting (one probe of a partial
    index that holds only those: empty, and so free, while groups are not in use)."""
    return c.execute(_PROBE.format(",".join("?" * len(tasks))), tasks).fetchone() is not None


def pick(
    c: sqlite3.Connection,
    tasks: Mapping[str, int | None],
    slots: int,
    limits: Mapping[str, int | None],
) -> list[int]:
    """The ids of up to ``slots`` waiting jobs to claim, in the claim's transaction:
    ``tasks`` maps each task to its free slots (None: no limit of its own), ``limits``
    each task to its ``group_concurrency`` (None: no limit per group)."""
    free = dict(tasks)
    rounds = dict(
        c.execute(
            f"SELECT task, seq FROM job_groups WHERE grp = '' AND task IN ({','.join('?' * len(free))})",
            list(free),
        ).fetchall()
    )
    room: dict[tuple[str, str], int | None] = {}  # per group: how many more may start
    heap: list[_Head] = []
    for task, n in free.items():
        want = slots if n is None else min(n, slots)
        if not waiting(c, [task]):  # no group waiting: its jobs in the usual order
            rows = c.execute(_PLAIN, (task, want)).fetchall()
            heap += [(-p, 0, _PLAIN_JOB, jid, task, None) for p, jid in rows]
            continue
        heap += _grouped(c, task, want, limits.get(task), room)
        # jobs without a group take turns with the groups, in their order, from the round
        first = rounds.get(task, 0)
        rows = c.execute(_UNGROUPED, (task, max(WINDOW, want))).fetchall()
        heap += [(-p, first + k, _UNGROUPED_JOB, j, task, None) for k, (p, j) in enumerate(rows, 1)]
    heapq.heapify(heap)
    return _take(c, heap, free, room, slots)


def _grouped(
    c: sqlite3.Connection, task: str, want: int, limit: int | None, room: dict
) -> list[_Head]:
    """A task's grouped candidates. Usually the first ``want`` that the caps allow, from one
    scan in claim order (exact: the claim takes a prefix of them). When the scan's budget
    runs out first (a few groups, each soon at its cap), the head of each group instead,
    with its ``room``; :func:`_take` reads a group's next job as it takes one."""
    active = dict(c.execute(_ACTIVE, (task,)).fetchall()) if limit is not None else {}
    left = {g: limit - n for g, n in active.items()} if limit is not None else {}
    budget = 4 * want + 64
    rows = c.execute(_RANKED, (task, budget)).fetchall()
    out: list[_Head] = []
    taken: dict[str, int] = {}
    for priority, seq, jid, group in rows:
        n = taken.get(group, 0)
        if limit is not None and n >= left.get(group, limit):
            continue
        taken[group] = n + 1
        out.append((-priority, seq, _GROUPED_JOB, jid, task, group))
        if len(out) == want:
            return out
    if len(rows) < budget:  # every waiting job of the task was seen
        return out
    out = []
    for priority, seq, jid, group in c.execute(_HEADS, {"task": task}).fetchall():
        n = None if limit is None else left.get(group, limit)
        if n is None or n > 0:
            room[task, group] = n
            out.append((-priority, seq, _GROUPED_JOB, jid, task, group))
    return out


def _take(
    c: sqlite3.Connection,
    heap: list[_Head],
    free: dict[str, int | None],
    room: dict[tuple[str, str], int | None],
    slots: int,
) -> list[int]:
    """Pop the best heads until the slots are full, reading a group's next job when one
    of it is taken; move each task's round on to the highest rank taken."""
    picked: list[int] = []
    taken: dict[tuple[str, str], int] = {}
    claimed_rank: dict[str, int] = {}
    while heap and len(picked) < slots:
        _, seq, kind, jid, task, group = heapq.heappop(heap)
        n_free = free[task]
        if n_free is not None:
            if n_free <= 0:
                continue
            free[task] = n_free - 1
        picked.append(jid)
        if kind == _PLAIN_JOB:
            continue
        claimed_rank[task] = max(claimed_rank.get(task, 0), seq)
        if group is None:
            continue
        n = taken[task, group] = taken.get((task, group), 0) + 1
        left = room.get((task, group), 0)  # none: its candidates are all in the heap
        if left is None or n < left:  # the group may start another: read its next job
            nxt = c.execute(_NEXT, (task, group, n)).fetchone()
            if nxt is not None:
                heapq.heappush(heap, (-nxt[0], nxt[1], _GROUPED_JOB, nxt[2], task, group))
    # groups added from now on start at the round: the rank just claimed
    c.executemany(
        "INSERT INTO job_groups VALUES (?, '', ?) "
        "ON CONFLICT (task, grp) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        list(claimed_rank.items()),
    )
    return picked
