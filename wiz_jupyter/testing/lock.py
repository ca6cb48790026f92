"""Hold a workspace database's write lock from another process, as a worker or a second
notebook can: for tests and benchmarks of what a kernel does meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys

_HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE jobs SET priority = priority WHERE id = -1")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_write_lock(db: str | os.PathLike[str], seconds: float) -> subprocess.Popen:
    """Start a process that takes ``BEGIN EXCLUSIVE`` on ``db`` and keeps it ``seconds``;
    returns once the lock is held. ``proc.wait()`` returns when it is released."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, os.fspath(db), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip() if proc.stdout is not None else ""
    if line != "locked":
        proc.kill()
        raise RuntimeError(f"could not lock {db}: the holder said {line!r}")
    return proc
