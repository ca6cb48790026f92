"""A kernel while another process holds the workspace's write lock (issue 19).

In a real kernel (jupyter_client): ``%load_ext wiz_jupyter``, 100 background jobs that
finish during the lock (half succeed, half fail), a ticker task measuring the event
loop's longest stall, and trivial cells (``1 + 1``) timed from request to reply, while a
second process holds ``BEGIN EXCLUSIVE`` for ``--hold`` seconds. Beside it, the same
figures with nobody holding the lock (the reference, same run). Then: how long after the
lock is released every outcome is in the database.

Target: longest stall and cell round trip p99 <= 50 ms while the lock is held (before
the fix: every write waited up to SQLite's 10 s busy timeout on the loop).

Usage: ``python bench/lock.py [--hold 10] [--cells 200]``.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep bench/ off the path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402

from jupyter_client.manager import start_new_kernel  # noqa: E402

from wiz_jupyter.testing.lock import hold_write_lock  # noqa: E402

SETUP = """
import asyncio, time, wiz_jupyter as wiz
from wiz_jupyter.agents import _litellm
while _litellm.loaded() is None:  # %load_ext's background import of litellm: not measured
    await asyncio.sleep(0.05)
ws = wiz.workspace()
gate = asyncio.Event()

@ws.task
async def finish(i: int) -> int:
    await gate.wait()
    if i % 2:
        raise ValueError(f"odd {i}")
    return i

class Meter:
    worst = 0.0
    async def tick(self):
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.005)
            last = now

meter = Meter()
ticker = asyncio.get_running_loop().create_task(meter.tick())
"""


def run(kc, code: str) -> float:
    t0 = time.perf_counter()
    reply = kc.execute_interactive(textwrap.dedent(code), timeout=120, output_hook=lambda m: None)
    assert reply["content"]["status"] == "ok", reply["content"]
    return (time.perf_counter() - t0) * 1000


def value(kc, expr: str) -> str:
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    kc.execute_interactive(f"print({expr})", timeout=60, output_hook=hook)
    return "".join(out).strip()


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def phase(kc, db: str, hold: float | None, cells: int) -> tuple[float, float, float, float]:
    """(cell p50 ms, cell p99 ms, loop's longest stall ms, s until every outcome is written)."""
    run(kc, "jobs = [ws.jobs.add('finish', {'i': i}) for i in range(100)]")
    run(kc, "while ws.jobs.counts().get('active', 0) < 16: await asyncio.sleep(0.01)")
    holder = hold_write_lock(db, hold) if hold is not None else None
    run(kc, "meter.worst = 0.0; gate.set()")
    started = time.monotonic()
    times = []
    while len(times) < cells or (hold is not None and time.monotonic() - started < hold * 0.8):
        times.append(run(kc, "1 + 1"))
        time.sleep(0.01)
    stall = float(value(kc, "meter.worst")) * 1000
    if holder is not None:
        holder.wait(hold + 30)
    released = time.monotonic()
    run(kc, "await asyncio.gather(*(j.wait(timeout=120) for j in jobs), return_exceptions=True)")
    written = time.monotonic() - released
    counts = value(kc, "ws.jobs.counts()")
    assert "'completed': " in counts and "'failed': " in counts, counts
    run(kc, "gate.clear()")
    return pct(times, 0.5), pct(times, 0.99), stall, written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--cells", type=int, default=200)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="wiz-bench-lock-")
    km, kc = start_new_kernel(kernel_name="python3", cwd=home, env={**os.environ, "WIZ_HOME": home})
    try:
        run(kc, "%load_ext wiz_jupyter")
        run(kc, SETUP)
        db = value(kc, "ws.path")
        free = phase(kc, db, None, args.cells)
        held = phase(kc, db, args.hold, args.cells)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    for label, (p50, p99, stall, written) in (("nobody holds the lock", free),
                                              (f"another process holds it {args.hold:g} s", held)):  # fmt: skip
        print(f"{label}: cell round trip p50 {p50:.2f} ms, p99 {p99:.2f} ms; loop's longest "
              f"stall {stall:.1f} ms; all outcomes written {written:.2f} s after")  # fmt: skip
    print(f"ratio, lock held / free: p99 {held[1] / free[1]:.2f}x, stall {held[2] / max(free[2], 0.1):.2f}x "
          f"(target: p99 and stall <= 50 ms while held)")  # fmt: skip


if __name__ == "__main__":
    main()
