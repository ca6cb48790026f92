"""The workspace database: one SQLite file in WAL mode, with numbered migrations.

The store owns the connection, its pragmas, the write lock and the schema.
Hot paths (add, claim, complete) run hand-written SQL through
:meth:`Store.write`; sqlite-utils (:attr:`Store.db`) serves migrations and
convenient reads.

One connection per process is shared by the loop and by handler threads, so
every use goes through a re-entrant lock. Transactions are short (well under
a millisecond), so holding the lock on the event loop does not stall it.

Another process may hold SQLite's write lock for long (a worker, a second
notebook, a backup). A write never waits for it while holding our lock: each
try waits at most :data:`LOCK_POLL` (SQLite's busy timeout), then the lock is
released and the try repeated after a pause. Work of the in-kernel runtime
(marked with :func:`background`) tries once and gets :class:`WorkspaceBusy`,
which the runtime keeps and retries later (and for :data:`BUSY_BACKOFF` after
such a failure, its other writes give up without trying), so the kernel's loop
never stalls for more than one try; a synchronous call from a person waits up to the store's
``busy_timeout`` and then raises :class:`WorkspaceBusy`, one line. A full disk
is :class:`WorkspaceFull`, naming the file and the space left.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError, WorkspaceBusy, WorkspaceFull

#: How long one try of a write may wait for another process's write lock, holding our
#: connection meanwhile (SQLite's busy timeout). Longer waits happen between tries.
LOCK_POLL = 0.01
#: After a background try found the lock held, other background tries give up at once for
#: this long, without touching SQLite: the loop stalls for one try, not one per write.
BUSY_BACKOFF = 0.1

_background: contextvars.ContextVar[bool] = contextvars.ContextVar("wiz_background", default=False)


def background() -> None:
    """Mark the current context (the runtime's tasks) as background work: its writes made
    on the event loop try once and raise :class:`WorkspaceBusy` instead of waiting for the
    lock. Tasks created from it inherit the mark; handler threads may still wait."""
    _background.set(True)


def _on_a_loop() -> bool:
    """Whether this thread is running an event loop (a handler thread is not: it may wait)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _import_sqlite_utils():  # type: ignore[no-untyped-def]
    """sqlite-utils without the pandas and numpy it imports when they are installed.

    It imports both eagerly, only to map their scalar types to column types, which
    the store never needs (it writes JSON text and plain Python values); that import
    was half a second of every ``%load_ext``. Where the process already has them,
    nothing changes.
    """
    masked = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in masked:
        sys.modules[name] = None  # type: ignore[assignment]  # `import` raises ImportError
    try:
        import sqlite_utils
    finally:
        for name in masked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

#: Written to ``PRAGMA application_id`` so a wiz database is recognisable ("WIZ1").
APPLICATION_ID = 0x57495A31
SQLITE_HEADER = b"SQLite format 3\x00"
#: Files larger than this skip the integrity check on open (it reads every page).
QUICK_CHECK_MAX_BYTES = 256 * 1024 * 1024

Migration = tuple[int, str, Callable[[sqlite_utils.Database], None]]


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def default_path() -> str:
    """``$WIZ_HOME/wiz.db`` if ``WIZ_HOME`` is set, else ``.wiz/wiz.db`` under the cwd."""
    home = os.environ.get("WIZ_HOME")
    return str(Path(home) / "wiz.db") if home else str(Path.cwd() / ".wiz" / "wiz.db")


class Store:
    """A wiz workspace database. ``Store(":memory:")`` works for tests.

    Raises :class:`StoreError` for a file that is not a SQLite database, a
    SQLite database that belongs to something else, a corrupt one, or one
    written by a newer wiz_jupyter. Such a file is never modified.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0):
        self.path = str(path)
        self.busy_timeout = busy_timeout  # the longest a synchronous write waits for the lock
        self._busy_until = 0.0  # background writes fail at once until then (BUSY_BACKOFF)
        self.lock = threading.RLock()
        self._local_version = 0  # bumped on every commit made through this store
        self.conn = self._open(busy_timeout)
        # no sqlite-utils plugins on our connection: scanning every installed package's
        # entry points for them cost 80 ms per open, and none has a say in our schema
        self.db = sqlite_utils.Database(self.conn, execute_plugins=False)
        self.migrate("jobs", JOBS_MIGRATIONS)

    # -- opening -------------------------------------------------------------------------------

    def _open(self, busy_timeout: float) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < (3, 35):  # UPDATE ... RETURNING
            raise StoreError(
                f"wiz_jupyter needs SQLite >= 3.35; this Python has {sqlite3.sqlite_version}"
            )
        memory = self.in_memory
        if not memory:
            p = Path(self.path)
            if p.is_dir():
                raise StoreError(f"{p} is a folder; give the path of a database file")
            if p.exists() and p.stat().st_size > 0:
                with p.open("rb") as f:
                    if f.read(16) != SQLITE_HEADER:
                        raise StoreError(
                            f"{p} is not a SQLite database; wiz_jupyter will not touch it. "
                            "Move it away or choose another workspace path."
                        )
            p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        try:
            self._check(conn, memory)
            conn.execute(f"PRAGMA busy_timeout = {int(LOCK_POLL * 1000)}")  # one try's wait
            if not memory:
                conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a killed process (a committed job is never
            # lost to SIGKILL); only a power cut may drop the last transactions.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreError(
                f"{self.path} is corrupt or unreadable ({e}); wiz_jupyter left it as it is. "
                "Restore a backup or choose another workspace path."
            ) from None
        except StoreError:
            conn.close()
            raise
        return conn

    def _check(self, conn: sqlite3.Connection, memory: bool) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id not in (0, APPLICATION_ID) or (
            app_id == 0 and tables and "wiz_migrations" not in tables
        ):
            raise StoreError(
                f"{self.path} is a SQLite database of another application; wiz_jupyter will "
                "not touch it. Choose another workspace path."
            )
        if not memory and os.path.getsize(self.path) <= QUICK_CHECK_MAX_BYTES and tables:
            problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(problem)

    # -- migrations ----------------------------------------------------------------------------

    def migrate(self, component: str, migrations: list[Migration]) -> None:
        """Apply the numbered ``migrations`` of ``component`` that are not yet applied.

        Each layer owns its tables and registers its own list, so the jobs layer
        needs to know nothing of the layers above it. Migrations run inside one
        ``BEGIN IMMEDIATE`` transaction so two processes opening a fresh file at
        once do not both apply them.
        """
        known = max((v for v, _, _ in migrations), default=0)
        with self.write() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS wiz_migrations (component TEXT NOT NULL, "
                "version INTEGER NOT NULL, name TEXT NOT NULL, applied_at REAL NOT NULL, "
                "PRIMARY KEY (component, version))"
            )
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            done = {
                r[0]
                for r in c.execute(
                    "SELECT version FROM wiz_migrations WHERE component = ?", (component,)
                )
            }
            if done and max(done) > known:
                raise StoreError(
                    f"{self.path} was written by a newer wiz_jupyter ({component} schema "
                    f"v{max(done)}, this one knows v{known}); upgrade wiz_jupyter to open it."
                )
            for version, name, apply in sorted(migrations, key=lambda m: m[0]):
                if version in done:
                    continue
                apply(self.db)
                c.execute(
                    "INSERT INTO wiz_migrations VALUES (?, ?, ?, ?)",
                    (component, version, name, time.time()),
                )

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so the
        reads inside it (a claim's ``SELECT``) cannot race another process."""
        quick = _background.get() and _on_a_loop()
        if quick and time.monotonic() < self._busy_until and not self.conn.in_transaction:
            raise self._busy()
        wait = 0.0 if quick else self.busy_timeout
        deadline = time.monotonic() + wait
        pause = 0.002
        while True:
            with self.lock:
                conn = self.conn
                if conn.in_transaction:  # nested use joins the outer transaction
                    yield conn
                    return
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    if not _is_busy(e):
                        raise self._translate(e) from None
                else:
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException as e:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        if isinstance(e, sqlite3.OperationalError):
                            raise self._translate(e) from None
                        raise
                    self._local_version += 1
                    return
            # busy: wait outside our lock, so that reads (and the loop) go on meanwhile
            left = deadline - time.monotonic()
            if left <= 0:
                if quick:
                    self._busy_until = time.monotonic() + BUSY_BACKOFF
                raise self._busy()
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.1)

    def _busy(self) -> WorkspaceBusy:
        return WorkspaceBusy(
            f"{self.path} is locked by another process (a worker, another notebook?); "
            "nothing was written, try again"
        )

    def _translate(self, error: sqlite3.OperationalError) -> Exception:
        """The one-line wiz error for a failed write, or the error itself."""
        if _is_busy(error):
            return self._busy()
        if "full" in str(error).lower():
            try:
                free = shutil.disk_usage(Path(self.path).parent).free
                left = f"{free / 2**20:.1f} MiB free"
            except OSError:
                left = "free space unknown"
            return WorkspaceFull(
                f"no space left for {self.path} ({left}); nothing was written: free some "
                "space and try again"
            )
        return error

    def read(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self.lock:
            cur = self.conn.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

    def version(self) -> tuple[int, int]:
        """Changes since open: (this store's commits, other connections' commits).

        Cheap enough to call on every attribute read of a live :class:`Job`.
        """
        with self.lock:
            return self._local_version, self.conn.execute("PRAGMA data_version").fetchone()[0]

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint_in_background(self, on: bool) -> None:
        """Turn the main connection's automatic WAL checkpoints off (``on=True``) while a
        background thread calls :meth:`checkpoint`, or back on.

        An automatic checkpoint runs inside whichever commit crosses the threshold, on
        the event loop: a few milliseconds every few hundred jobs, which was the whole
        p99 of enqueue-to-start latency. A passive checkpoint from another connection
        does the same work without holding the write lock.
        """
        with self.lock:
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {0 if on else 1000}")

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """A passive checkpoint on ``conn``, a connection of the calling thread's own, and a
        truncating one when the log has grown past :data:`WAL_TRUNCATE_FRAMES`.

        A passive checkpoint never waits, so under a steady stream of commits it never
        catches up with the log's end, and SQLite only starts the log over once a
        checkpoint has caught up: the ``-wal`` file then grows without bound (180 MB
        after 20,000 jobs added in bulk, bench/retention.py). The truncating checkpoint
        holds writers off for the few frames the passive one left, waiting at most
        :data:`WAL_TRUNCATE_WAIT` for readers; writers on the event loop are refused,
        not blocked, meanwhile, and retry.
        """
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames > WAL_TRUNCATE_FRAMES:
            conn.execute(f"PRAGMA busy_timeout = {int(WAL_TRUNCATE_WAIT * 1000)}")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute("PRAGMA busy_timeout = 1000")

    def size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        if self.in_memory:
            return 0
        return sum(os.path.getsize(f) for f in (self.path, f"{self.path}-wal") if os.path.exists(f))

    def vacuum(self) -> None:
        """Rewrite the file without its free pages (``VACUUM``), giving the space that removed
        rows left back to the disk. It needs the write lock for the whole rewrite. Without
        it, SQLite reuses free pages for new rows, so the file stops growing anyway."""
        with self.lock:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            try:
                self.conn.execute("VACUUM")
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as e:
                raise WorkspaceBusy(f"{self.path}: could not vacuum ({e}); try again") from None
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {int(LOCK_POLL * 1000)}")

    def connect(self) -> sqlite3.Connection:
        """A second connection to the same file (for a background thread)."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 1000")
        return conn

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:" or self.path.startswith("file::memory:")

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass


# a log of 65,536 frames (256 MB at 4 KiB pages) is truncated at the next checkpoint tick,
# waiting at most 0.1 s for readers: a safety valve, not a routine. Each truncation stalls
# the runtime's writes for a retry (50 ms); a queue working flat out writes ~50,000 frames a
# second, and truncating at 4,000 frames cost the queue bench's cycle 40% of its rate.
WAL_TRUNCATE_FRAMES = 65536
WAL_TRUNCATE_WAIT = 0.1


# -- the jobs layer's schema ---------------------------------------------------------------------


def _jobs_v1(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,  -- max + 1 (and above any removed job's: jobs/retention.py)
            task TEXT NOT NULL,
            agent TEXT,
            data TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            run_at REAL,
            attempts INTEGER NOT NULL DEFAULT 1,
            attempts_made INTEGER NOT NULL DEFAULT 0,
            backoff TEXT,
            timeout REAL,
            parent_id INTEGER,
            key TEXT,
            on_dep_failure TEXT NOT NULL DEFAULT 'fail',
            lease_owner TEXT,
            lease_expires REAL,
            progress TEXT,
            result TEXT,
            error TEXT,
            fail_reason TEXT,
            body_done INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        )"""
    )
    # jobs_queue serves the claim (status = 'waiting' in priority order) and counts
    # (migration 13 puts the task after the status);
    # the partial indexes touch only the rows in their state, so inserts stay cheap.
    db.execute("CREATE INDEX jobs_queue ON jobs (status, priority DESC, id)")
    db.execute("CREATE INDEX jobs_due ON jobs (run_at) WHERE status = 'delayed'")
    db.execute("CREATE INDEX jobs_leases ON jobs (lease_expires) WHERE status = 'active'")
    db.execute("CREATE UNIQUE INDEX jobs_key ON jobs (key) WHERE key IS NOT NULL")
    db.execute("CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL")
    db["job_deps"].create(
        {"job_id": int, "dep_id": int, "on_failure": str},
        pk=("job_id", "dep_id"),
        not_null={"job_id", "dep_id", "on_failure"},
    )
    db["job_deps"].create_index(["dep_id"])
    db["job_events"].create(
        {"id": int, "job_id": int, "event": str, "payload": str, "at": float},
        pk="id",
        not_null={"event", "at"},
    )
    db["job_events"].create_index(["job_id"])
    db["schedules"].create(
        {
            "id": int,
            "name": str,
            "trigger": str,  # JSON: {"kind": "cron", "expr": ..., "tz": ...}
            "template": str,  # JSON: the job it creates (task or agent, data, options)
            "status": str,  # active / paused / expired
            "next_run": float,
            "last_run": float,
            "run_count": int,
            "fail_count": int,
            "last_result": str,
            "created_at": float,
        },
        pk="id",
        not_null={"name", "trigger", "template", "status", "created_at"},
        defaults={"status": "active", "run_count": 0, "fail_count": 0},
    )
    db["schedules"].create_index(["name"], unique=True)
    db["settings"].create({"key": str, "value": str}, pk="key")


def _jobs_v2(db: sqlite_utils.Database) -> None:
    # which job each schedule firing created: run history, outcomes, `after` chaining
    db["schedule_runs"].create(
        {"schedule_id": int, "job_id": int, "reason": str, "fired_at": float},
        pk=("schedule_id", "job_id"),
        not_null={"schedule_id", "job_id", "fired_at"},
    )
    db["schedule_runs"].create_index(["job_id"])
    db.execute("CREATE INDEX jobs_agent ON jobs (agent, status) WHERE agent IS NOT NULL")


def _jobs_v3(db: sqlite_utils.Database) -> None:
    # jobs whose end the front ends announce (JupyterLab notifications, a cell's note)
    db.execute("ALTER TABLE jobs ADD COLUMN notify INTEGER NOT NULL DEFAULT 0")


def _jobs_v4(db: sqlite_utils.Database) -> None:
    # each job's retention policy (jobs/retention.py); the partial index finds the jobs
    # that have one without reading the others
    db.execute("ALTER TABLE jobs ADD COLUMN keep TEXT")
    db.execute("CREATE INDEX jobs_keep ON jobs (task, finished_at) WHERE keep IS NOT NULL")


def _jobs_v5(db: sqlite_utils.Database) -> None:
    # overlap policies (jobs/schedules.py). Schedules that exist already keep "allow",
    # what they did before; schedules.add writes "skip" for new ones.
    db.execute("ALTER TABLE schedules ADD COLUMN overlap TEXT NOT NULL DEFAULT 'allow'")
    db.execute("ALTER TABLE schedules ADD COLUMN skip_count INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE schedules ADD COLUMN last_skipped REAL")
    db.execute("ALTER TABLE schedules ADD COLUMN pending TEXT")  # buffer_one's kept occasion
    # the occasion last skipped: one that comes again (an idle period seen on every pass)
    # is one skip, not one per pass
    db.execute("ALTER TABLE schedules ADD COLUMN skipped_occasion TEXT")
    # "does this schedule have a run still going?" in one index probe, however many runs
    # it made: only unfinished jobs with a key (schedule runs have one) are in it
    db.execute(
        "CREATE INDEX jobs_open_keys ON jobs (key) WHERE key IS NOT NULL AND status IN "
        "('waiting', 'delayed', 'blocked', 'active', 'awaiting_input')"
    )


def _jobs_v6(db: sqlite_utils.Database) -> None:
    # the W3C trace context that was current when a job was added (wiz_jupyter/telemetry.py):
    # its attempts' spans join that trace in whatever process runs them. A table, not a
    # column: only jobs added under a span have a row, so the usual insert is unchanged.
    db.execute(
        "CREATE TABLE job_trace (job_id INTEGER PRIMARY KEY, traceparent TEXT NOT NULL, "
        "tracestate TEXT)"
    )


def _jobs_v7(db: sqlite_utils.Database) -> None:
    # rate limits shared by every process on the file (jobs/rates.py): what each key took
    # (a sliding window's log), and what a key shares beyond it
    db.execute(
        "CREATE TABLE rate_log (id INTEGER PRIMARY KEY, key TEXT NOT NULL, at REAL NOT NULL, "
        "n INTEGER NOT NULL DEFAULT 1, tokens INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("CREATE INDEX rate_log_key ON rate_log (key, at)")
    db.execute("CREATE TABLE rate_limits (key TEXT PRIMARY KEY, spec TEXT, blocked_until REAL)")


def _jobs_v9(db: sqlite_utils.Database) -> None:
    # groups (jobs/groups.py): a job's group and its rank in the rotation between groups.
    # The partial index holds only waiting jobs that have a group, so adding, claiming and
    # finishing jobs without one never touch it; claims with groups seek through it.
    db.execute('ALTER TABLE jobs ADD COLUMN "group" TEXT')
    db.execute("ALTER TABLE jobs ADD COLUMN group_seq INTEGER")
    db.execute(
        'CREATE INDEX jobs_groups ON jobs (task, "group", priority DESC, group_seq, id) '
        "WHERE status = 'waiting' AND \"group\" IS NOT NULL"
    )
    # claim order within a task, for claims that need only its first few grouped jobs
    db.execute(
        "CREATE INDEX jobs_rank ON jobs (task, priority DESC, group_seq, id) "
        "WHERE status = 'waiting' AND \"group\" IS NOT NULL"
    )
    # per task and group: the last rank given; the row with group '' holds the task's
    # current round (the rank of its last claimed grouped job), where new groups start
    db["job_groups"].create(
        {"task": str, "grp": str, "seq": int}, pk=("task", "grp"), not_null={"task", "grp", "seq"}
    )


#: job_counts' row that counts removed jobs (a status name is never this)
REMOVED = "-removed"


def _jobs_v11(db: sqlite_utils.Database) -> None:
    # counts of jobs by status, so that ws.jobs.counts() (the board, the sidebar and
    # `%wiz status` ask it on every change) reads a few rows, not every job: at 1,000,000
    # jobs counting them took 36-58 ms. Kept so that the queue's hot path writes little
    # more (two statements per change of status cost a cycle 10-15%):
    # - waiting is not kept: it is the jobs there are (ids are given in order and never
    #   reused: the highest id given, less the removed ones) less the others;
    # - active is not kept: at most the concurrency of the processes, counted by index;
    # - the others change with each transaction that changes a job's status, one
    #   statement per status (Transaction.moved in jobs/queue.py; migration 12 says why
    #   not triggers); removals (retention, a DELETE) count by trigger, in REMOVED.
    db.execute(
        "CREATE TABLE job_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID"
    )
    kept = ("delayed", "blocked", "awaiting_input", "completed", "failed", "cancelled")
    db.execute(
        "INSERT INTO job_counts SELECT k.value, (SELECT COUNT(*) FROM jobs WHERE status = k.value) "
        "FROM json_each(?) k",
        (json.dumps(kept),),
    )
    db.execute(
        "INSERT INTO job_counts SELECT ?, MAX(COALESCE(MAX(id), 0), COALESCE((SELECT CAST(value "
        "AS INTEGER) FROM settings WHERE key = 'jobs.max_id'), 0)) - COUNT(*) FROM jobs",
        (REMOVED,),
    )
    db.execute(
        "CREATE TRIGGER job_counts_removed AFTER DELETE ON jobs BEGIN "
        "UPDATE job_counts SET n = n - 1 WHERE status = old.status; "
        f"UPDATE job_counts SET n = n + 1 WHERE status = '{REMOVED}'; END"
    )


def _jobs_v12(db: sqlite_utils.Database) -> None:
    # job_counts as migration 11 first kept it, by triggers on every change of status:
    # SQLite runs a trigger's program for each row an UPDATE OF status touches, even when
    # its WHEN is false, and the two cost a claim-and-complete cycle 8-12% (5.5 of 16 us
    # of SQL per job). The queue now adds its own sums with each commit.
    db.execute("DROP TRIGGER IF EXISTS job_counts_status")
    db.execute("DROP TRIGGER IF EXISTS job_counts_completed")


def _jobs_v13(db: sqlite_utils.Database) -> None:
    # jobs_queue by status, then task: a claim seeks each of its tasks' waiting jobs (and
    # run_until_idle asks whether any wait) without reading the jobs of other tasks. By
    # status then priority, a backlog of another task (500,000 jobs waiting for a worker
    # elsewhere) was read on every claim of this process: 150 ms each, against 0.007 ms.
    db.execute("DROP INDEX IF EXISTS jobs_queue")
    db.execute("CREATE INDEX jobs_queue ON jobs (status, task, priority DESC, id)")


def _jobs_v10(db: sqlite_utils.Database) -> None:
    # what a job awaiting input asked a person, and the reply (JSON); the pending ones
    # are found by jobs_queue (status first), like any status
    db.execute("ALTER TABLE jobs ADD COLUMN input TEXT")


JOBS_MIGRATIONS: list[Migration] = [
    (1, "jobs, job_deps, job_events, schedules, settings", _jobs_v1),
    (2, "schedule_runs, jobs by agent", _jobs_v2),
    (3, "jobs.notify", _jobs_v3),
    (4, "jobs.keep (retention)", _jobs_v4),
    (5, "schedules.overlap, skip_count, last_skipped, pending", _jobs_v5),
    (6, "job_trace (OpenTelemetry trace context)", _jobs_v6),
    (7, "rate_log, rate_limits (rate limits)", _jobs_v7),
    # 8 was taken by a branch that did not need it (a file may have any subset applied)
    (9, "jobs.group, jobs.group_seq, job_groups (groups)", _jobs_v9),
    (10, "jobs.input (awaiting_input: approvals and questions)", _jobs_v10),
    (11, "job_counts (jobs by status, kept as they change)", _jobs_v11),
    (12, "job_counts kept by the queue's transactions, not by triggers", _jobs_v12),
    (13, "jobs_queue by status, task, priority (claims seek their own tasks)", _jobs_v13),
]
