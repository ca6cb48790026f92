"""Notifications outside Jupyter: when a job ends, tell a webhook or a mailbox.

``ws.notifications`` keeps the targets (in the ``settings`` table, so every process on
the file sees the same ones). Whichever process runs the workspace's runtime (a kernel
working jobs, or ``wiz worker`` with no lab open) follows ``job_events`` from a durable
cursor (setting ``notifications.cursor``) and turns each end that a target wants into a
**delivery job** of the built-in task ``wiz.notify``: durable, retried with its backoff,
visible on the board like any job. Its key is ``wiz.notify:<target>:<job>:<event>``, and
the cursor moves in the same transaction, so a crash or two processes on one file never
make a second delivery of one end. The sending itself is in ``jobs/deliver.py``.

Deliveries never follow deliveries: the ends of ``wiz.notify`` jobs are skipped, so a
target that fails cannot feed itself. Retention keeps a job whose end is past the
cursor (``jobs/retention.py``), so gc never removes an end before it is announced.

::

    ws.notifications.add_webhook("https://hooks.example.org/wiz", secret="s3cret")
    ws.notifications.add_email("me@example.org", smtp="smtp.example.org:587", starttls=True,
                               username="me", password_env="WIZ_SMTP_PASSWORD",
                               on=("failed", "cancelled"), tasks=["nightly"])
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidNotification
from .models import STATUSES, TERMINAL, dumps, loads
from .queue import Queue
from .retention import NOTIFY_CURSOR_KEY

#: the built-in task whose jobs deliver notifications
TASK = "wiz.notify"
TARGET_PREFIX = "notifications.target."
NEXT_ID_KEY = "notifications.next_id"
END_EVENTS = ("job.completed", "job.failed", "job.cancelled")
_ENDS = ", ".join(s for s in STATUSES if s in TERMINAL)
#: delivery jobs: attempts and backoff unless the target says; completed ones are kept
#: up to this many (failed ones stay, to be looked at)
ATTEMPTS, BACKOFF, TIMEOUT, KEEP_DELIVERED = 5, ("exponential", 10.0), 120.0, 1000
FEED_BATCH = 500
PREVIEW, ERROR_CHARS = 200, 1000
_FEED = (
    "SELECT e.id, e.job_id, e.event, e.payload, e.at, j.task, j.agent, j.error, j.fail_reason, "
    "j.attempts, j.attempts_made, j.created_at, j.started_at, j.finished_at, j.result "
    "FROM job_events e LEFT JOIN jobs j ON j.id = e.job_id "
    f"WHERE e.id > ? AND e.event IN {END_EVENTS!r} ORDER BY e.id LIMIT ?"
)
# the targets' settings: a range on the primary key (LIKE would read every setting)
_TARGETS = "SELECT key, value FROM settings WHERE key > ? AND key < ?"
_TARGET_RANGE = (TARGET_PREFIX, TARGET_PREFIX[:-1] + "/")
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")

Redact = Callable[[str, Iterable[str | None]], str]


@dataclasses.dataclass(frozen=True)
class Target:
    """Where notifications go: ``kind`` ``"webhook"`` or ``"email"``, the job ends it
    wants (``on``), the tasks it follows (``tasks``; None: all), how it is reached
    (``config``: ``url`` and ``secret``, or ``to``, ``smtp``, ``sender``, ``username``,
    ``password_env``, ``starttls``) and its delivery jobs' ``attempts`` and ``backoff``."""

    id: int
    kind: str
    on: tuple[str, ...]
    tasks: tuple[str, ...] | None
    config: dict[str, Any]
    attempts: int = ATTEMPTS
    backoff: Any = BACKOFF
    created_at: float = 0.0

    def wants(self, task: str | None, status: str) -> bool:
        return status in self.on and (self.tasks is None or task in self.tasks)

    @property
    def where(self) -> str:
        """The address, as it may be shown (a webhook's path often holds a token)."""
        if self.kind == "webhook":
            parts = urlsplit(self.config["url"])  # no user:password@, no path or query
            host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
            rest = "/..." if parts.path.strip("/") or parts.query else ""
            return f"{parts.scheme}://{host}{rest}"
        return f"{', '.join(self.config['to'])} via {self.config['smtp']}"

    def __repr__(self) -> str:
        tasks = "all tasks" if self.tasks is None else ", ".join(self.tasks)
        signed = ", signed" if self.config.get("secret") else ""
        return (
            f"<wiz notification {self.id}: {self.kind} {self.where}{signed}; "
            f"on {', '.join(self.on)} of {tasks}>"
        )


class Notifications:
    """``ws.notifications``: where the ends of jobs are sent outside Jupyter.

    ::

        ws.notifications.add_webhook("https://ci.example.org/hook", secret="s3cret")
        ws.notifications.list()
        ws.notifications.remove(1)
    """

    def __init__(self, queue: Queue, redact: Redact | None = None):
        self.queue = queue
        self.redact: Redact = redact or (lambda text, extra=(): text)
        self._targets: tuple[tuple[int, int], list[Target]] | None = None
        self._scanned = 0  # the log was read up to this event id and held no end past it

    # -- targets -------------------------------------------------------------------------------

    def add_webhook(
        self,
        url: str,
        secret: str | None = None,
        *,
        on: str | Iterable[str] = ("failed",),
        tasks: str | Iterable[str] | None = None,
        attempts: int = ATTEMPTS,
        backoff: Any = BACKOFF,
    ) -> Target:
        """POST a JSON description of each job that ends with a status in ``on`` (of
        ``tasks``, default all) to ``url``. With a ``secret``, the body is signed as
        incoming webhooks are: ``X-Wiz-Signature: sha256=<HMAC-SHA256 of the body>``
        (``wiz.verify_webhook(secret, body, header)`` checks it). ``X-Wiz-Delivery`` names
        the delivery, the same on every retry. ``attempts`` and ``backoff`` are the
        delivery jobs' options. The secret is kept in the workspace database, like a
        webhook schedule's.

        ::

            ws.notifications.add_webhook("https://hooks.example.org/wiz", secret="s3cret",
                                         on=("failed", "cancelled"), tasks=["nightly"])
        """
        if not isinstance(url, str):
            raise InvalidNotification(f"a webhook URL is a string, not {type(url).__name__}")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidNotification(f"a webhook URL must be http:// or https://, not {url!r:.80}")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise InvalidNotification("a webhook secret is a non-empty string (or None: unsigned)")
        config = {"url": url.strip(), "secret": secret}
        return self._add("webhook", config, on, tasks, attempts, backoff)

    def add_email(
        self,
        to: str | Iterable[str],
        smtp: str,
        *,
        on: str | Iterable[str] = ("failed",),
        tasks: str | Iterable[str] | None = None,
        sender: str | None = None,
        username: str | None = None,
        password_env: str | None = None,
        starttls: bool = False,
        attempts: int = ATTEMPTS,
        backoff: Any = BACKOFF,
        password: None = None,
    ) -> Target:
        """Mail ``to`` (an address or several) about each job that ends with a status in
        ``on`` (of ``tasks``, default all), through the SMTP server ``smtp="host:port"``.
        ``sender`` defaults to ``wiz@<this host>``; ``starttls=True`` upgrades the
        connection first. To log in, give ``username`` and ``password_env``: the **name**
        of an environment variable holding the password, read when a mail is sent (in
        the process that sends it: the kernel or ``wiz worker``). The password itself is
        never stored in the database, so ``password=`` is refused.

        ::

            ws.notifications.add_email("me@example.org", smtp="smtp.example.org:587",
                                       starttls=True, username="me",
                                       password_env="WIZ_SMTP_PASSWORD")
        """
        if password is not None:
            raise InvalidNotification(
                "add_email takes password_env='VARIABLE' (read when a mail is sent), never "
                "the password itself: it would be stored in the workspace database"
            )
        config = {
            "to": _addresses(to),
            "smtp": _smtp_address(smtp),
            "sender": _sender(sender),
            "username": username,
            "password_env": password_env,
            "starttls": bool(starttls),
        }
        if (username is None) != (password_env is None):
            raise InvalidNotification("username and password_env go together (or neither)")
        if password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
            raise InvalidNotification(
                f"password_env is the name of an environment variable, not {password_env!r:.40}"
            )
        return self._add("email", config, on, tasks, attempts, backoff)

    def list(self) -> list[Target]:
        """The targets, oldest first."""
        return list(self._read_targets())

    def get(self, target: Target | int) -> Target:
        """One target by id; a one-line :class:`~wiz_jupyter.errors.InvalidNotification`
        if there is none."""
        tid = _target_id(target)
        for t in self._read_targets():
            if t.id == tid:
                return t
        raise InvalidNotification(
            f"no notification target {tid}; ws.notifications.list() shows them"
        )

    def remove(self, target: Target | int) -> None:
        """Stop sending to a target. Its deliveries not yet made fail (the target is gone);
        removing the last target stops following job ends (adding one starts from then)."""
        tid = _target_id(target)
        with self.queue.transaction() as tx:
            cur = tx.c.execute("DELETE FROM settings WHERE key = ?", (f"{TARGET_PREFIX}{tid}",))
            if not cur.rowcount:
                raise InvalidNotification(
                    f"no notification target {tid}; ws.notifications.list() shows them"
                )
            if not tx.c.execute(_TARGETS, _TARGET_RANGE).fetchone():
                tx.c.execute("DELETE FROM settings WHERE key = ?", (NOTIFY_CURSOR_KEY,))

    def _add(
        self, kind: str, config: dict[str, Any], on: Any, tasks: Any, attempts: Any, backoff: Any
    ) -> Target:
        statuses, names = _statuses(on), _tasks(tasks)
        # the delivery jobs' options, checked as any job's are
        spec = self.queue.spec(TASK, {}, attempts=attempts, backoff=backoff)
        entry = {
            "kind": kind, "on": list(statuses), "tasks": None if names is None else list(names),
            "config": config, "attempts": spec.attempts, "backoff": loads(spec.backoff),
            "created_at": time.time(),
        }  # fmt: skip
        with self.queue.transaction() as tx:
            c = tx.c
            row = c.execute("SELECT value FROM settings WHERE key = ?", (NEXT_ID_KEY,)).fetchone()
            tid = int(row[0]) if row else 1
            c.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (NEXT_ID_KEY, str(tid + 1)))
            c.execute("INSERT INTO settings VALUES (?, ?)", (f"{TARGET_PREFIX}{tid}", dumps(entry)))
            # the first target starts following job ends from now, not from the beginning
            c.execute(
                "INSERT OR IGNORE INTO settings SELECT ?, COALESCE(MAX(id), 0) FROM job_events",
                (NOTIFY_CURSOR_KEY,),
            )
        return _target(tid, entry)

    def _read_targets(self) -> list[Target]:
        seen = self.queue.store.version()
        if self._targets is None or self._targets[0] != seen:
            found = _targets_from(self.queue.store.read(_TARGETS, _TARGET_RANGE))
            self._targets = (seen, found)
        return self._targets[1]

    # -- turning job ends into deliveries ------------------------------------------------------

    def cursor(self) -> int | None:
        """The id of the last job event turned into deliveries (None: no target)."""
        rows = self.queue.store.read(
            "SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?", (NOTIFY_CURSOR_KEY,)
        )
        return rows[0][0] if rows else None

    def pending(self) -> bool:
        """Whether a job end past the cursor waits to be turned into deliveries (a read,
        no lock: the runtime asks before it takes the write lock to :meth:`feed`)."""
        cursor = self.cursor()
        if cursor is None:
            return False
        # Events up to ``_scanned`` were read and held no end: ids only rise, so no end can
        # appear among them later, and a log busy with progress and log lines is read once.
        top = self.queue.store.read("SELECT COALESCE(MAX(id), 0) FROM job_events")[0][0]
        start = max(cursor, self._scanned)
        marks = ",".join("?" * len(END_EVENTS))
        found = self.queue.store.read(
            f"SELECT 1 FROM job_events WHERE id > ? AND id <= ? AND event IN ({marks}) LIMIT 1",
            (start, top, *END_EVENTS),
        )
        if not found:
            self._scanned = max(self._scanned, top)
        return bool(found)

    def feed(self, limit: int = FEED_BATCH) -> list[int]:
        """Turn the job ends past the cursor (up to ``limit``) into delivery jobs, and move
        the cursor past them, in one transaction; return the new jobs' ids. Called by the
        runtime (see :class:`Feeder`); safe in any number of processes at once."""
        made: list[int] = []
        with self.queue.transaction() as tx:
            c = tx.c
            row = c.execute(
                "SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?", (NOTIFY_CURSOR_KEY,)
            ).fetchone()
            if row is None:  # no target
                return made
            ends = c.execute(_FEED, (row[0], limit)).fetchall()
            if not ends:
                return made
            targets = _targets_from(c.execute(_TARGETS, _TARGET_RANGE).fetchall())
            secrets = _secrets(targets)
            specs = []
            for end in ends:
                specs.extend(self._deliveries(end, targets, secrets))
            if specs:
                made = [j.id for j in self.queue.insert_in(tx, specs)]
            c.execute(
                "UPDATE settings SET value = ? WHERE key = ?", (str(ends[-1][0]), NOTIFY_CURSOR_KEY)
            )
        return made

    def _deliveries(self, end: tuple, targets: list[Target], secrets: list[Any]) -> list[Any]:
        event_id, job_id, event, payload = end[0], end[1], end[2], loads(end[3]) or {}
        task = end[5] or payload.get("task")
        status = event.split(".", 1)[1]
        if task == TASK:  # a delivery's own end: never a delivery about a delivery
            return []
        wanted = [t for t in targets if t.wants(task, status)]
        if not wanted:
            return []
        job = self.describe(end, task, status, payload, secrets)
        specs = []
        for t in wanted:
            data = {"target": t.id, "event": event_id, "ended": job}
            key = f"{TASK}:{t.id}:{job_id}:{event_id}"
            options = {"attempts": t.attempts, "backoff": t.backoff, "timeout": TIMEOUT}
            spec = self.queue.spec(
                TASK, data, key=key, remove_on_complete=KEEP_DELIVERED, **options
            )
            specs.append(spec)
        return specs

    def describe(
        self, end: tuple, task: str | None, status: str, payload: dict[str, Any], secrets: list
    ) -> dict[str, Any]:
        """What a delivery says about a job's end: no job data (it may hold anything), the
        error and a short preview of the result with secret values masked."""
        (_, job_id, _, _, at, _, agent, error, reason, attempts, made, created, started,
         finished, result) = end  # fmt: skip
        if status == "failed":
            error = payload.get("error") or error
            reason = payload.get("reason") or reason
        else:
            error = reason = None
        preview = None
        if status == "completed" and result is not None:
            preview = self.redact(result[: PREVIEW + 1], secrets)
            if len(preview) > PREVIEW:
                preview = preview[:PREVIEW] + "..."
        return {
            "id": job_id, "task": task, "agent": agent, "status": status,
            "error": self.redact(error[:ERROR_CHARS], secrets) if error else None,
            "reason": reason, "attempts": attempts, "attempts_made": made,
            "created_at": _iso(created), "started_at": _iso(started),
            "finished_at": _iso(finished if finished is not None else at),
            "duration": round(finished - started, 3) if finished and started else None,
            "result_preview": preview,
        }  # fmt: skip


class Feeder:
    """The runtime's chore (``runtime.chores``) that calls :meth:`Notifications.feed`:
    every ``interval`` seconds while a target exists; with none, it looks again at most
    once a second, so a workspace without notifications pays one read a second."""

    interval = 0.2

    def __init__(self, notifications: Notifications):
        self.notifications = notifications
        self._quiet_until = 0.0

    def run(self) -> None:
        now = time.monotonic()
        if now < self._quiet_until:
            return
        if self.notifications.cursor() is None:
            self._quiet_until = now + 1.0
            return
        # only then the write lock: an empty transaction would wake every process's runtime
        if self.notifications.pending():
            self.notifications.feed()

    def pending(self) -> bool:
        return self.notifications.pending()

    def __repr__(self) -> str:
        return "<wiz notifications feeder>"


# -- checks ---------------------------------------------------------------------------------------


def _statuses(on: Any) -> tuple[str, ...]:
    items = (on,) if isinstance(on, str) else on
    try:
        items = tuple(dict.fromkeys(items))
    except TypeError:
        raise InvalidNotification(f"on= takes end statuses ({_ENDS}), not {on!r:.60}") from None
    if not items:
        raise InvalidNotification(f"on= needs at least one end status: {_ENDS}")
    for s in items:
        if s not in STATUSES:
            raise InvalidNotification(f"unknown status {s!r} in on=; a job ends {_ENDS}")
        if s not in TERMINAL:
            raise InvalidNotification(f"{s!r} is not an end status; on= takes {_ENDS}")
    return items


def _tasks(tasks: Any) -> tuple[str, ...] | None:
    if tasks is None:
        return None
    items = (tasks,) if isinstance(tasks, str) else tasks
    try:
        items = tuple(dict.fromkeys(items))
    except TypeError:
        raise InvalidNotification(f"tasks= takes task names, not {tasks!r:.60}") from None
    if not items or not all(isinstance(t, str) and t for t in items):
        raise InvalidNotification(f"tasks= takes task names (or None: all), not {tasks!r:.60}")
    if TASK in items:
        raise InvalidNotification(f"notifications never follow their own deliveries ({TASK})")
    return items


def _smtp_address(smtp: Any) -> str:
    host, _, port = smtp.rpartition(":") if isinstance(smtp, str) else ("", "", "")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidNotification(
            f"smtp= is 'host:port' (such as 'smtp.example.org:587'), not {smtp!r:.60}"
        )
    return smtp


def _addresses(to: Any) -> list[str]:
    items = [to] if isinstance(to, str) else to
    try:
        items = list(dict.fromkeys(items))
    except TypeError:
        items = []
    if not items or not all(isinstance(a, str) and _EMAIL.match(a.strip()) for a in items):
        raise InvalidNotification(f"to= takes e-mail addresses, not {to!r:.60}")
    return [a.strip() for a in items]


def _sender(sender: str | None) -> str | None:
    if sender is not None and not (isinstance(sender, str) and _EMAIL.match(sender.strip())):
        raise InvalidNotification(f"sender= is an e-mail address, not {sender!r:.60}")
    return sender.strip() if sender else None


def _secrets(targets: list[Target]) -> list[str | None]:
    """Values no delivery may show: the targets' webhook secrets and SMTP passwords (the
    redaction also masks every key-like environment variable)."""
    out = [t.config.get("secret") for t in targets]
    out += [
        os.environ.get(t.config["password_env"]) for t in targets if t.config.get("password_env")
    ]
    return out


def _target_id(target: Any) -> int:
    if isinstance(target, Target):
        return target.id
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    raise InvalidNotification(f"a notification target or its id, not {target!r:.60}")


def _target(tid: int, entry: dict[str, Any]) -> Target:
    tasks = entry.get("tasks")
    return Target(
        id=tid, kind=entry["kind"], on=tuple(entry["on"]),
        tasks=None if tasks is None else tuple(tasks), config=entry["config"],
        attempts=entry.get("attempts", ATTEMPTS), backoff=entry.get("backoff", BACKOFF),
        created_at=entry.get("created_at", 0.0),
    )  # fmt: skip


def _targets_from(rows: Iterable[Any]) -> list[Target]:
    found = [_target(int(k[len(TARGET_PREFIX) :]), loads(v)) for k, v in rows]
    return sorted(found, key=lambda t: t.id)


def stored_target(queue: Queue, tid: int) -> Target | None:
    """Target ``tid`` as stored now (None once removed), for the delivery task."""
    rows = queue.store.read("SELECT value FROM settings WHERE key = ?", (f"{TARGET_PREFIX}{tid}",))
    return _target(tid, loads(rows[0][0])) if rows else None


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
