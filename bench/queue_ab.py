"""Paired A/B of the queue bench between git revisions, for a noisy machine.

``bench/queue.py`` run twice in a row can differ by more than the 10% a change is judged
by when the machine is shared (steal time, a neighbour's load). This runs the same shapes
(add, add_bulk, cycle and cycleS at concurrency 1 and 8, enqueue-to-start p50) for each
revision in a fresh process per rep, interleaving the revisions (the order rotates and
reverses every rep), and prints per shape each revision's median and the median of the
per-rep ratios against the first revision, as jobs/s and as CPU per job (process time:
less moved by another tenant than wall time).

Each revision is checked out (``git worktree``) into a temporary folder and imported from
there; the bench functions are this checkout's ``bench/queue.py`` for all, so every
revision is measured the same way.

Usage: ``python bench/queue_ab.py REV [REV ...] [--reps 8] [--shapes add,cycle_c8]``,
e.g. ``python bench/queue_ab.py 06d6b07 HEAD``.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep this folder off the path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ["add", "add_bulk", "cycle_c1", "cycleS_c1", "cycle_c8", "cycleS_c8", "p50_ms"]

# one rep of the chosen shapes, in a fresh process importing the revision's package
CHILD = r"""
import asyncio, importlib.util, json, sys, tempfile, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("queue_bench", sys.argv[1])
qb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qb)
shapes = sys.argv[2].split(",")
N, BULK = 5000, 50000

async def main():
    out = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async def timed(name, n, make):
            if name in shapes:
                t = time.process_time()
                out[name] = await make()
                out[name + " cpu_us"] = 1e6 * (time.process_time() - t) / n
        await timed("add", N, lambda: qb.bench_add(tmp, N))
        await timed("add_bulk", BULK, lambda: qb.bench_add_bulk(tmp, BULK))
        for c in (1, 8):
            await timed(f"cycle_c{c}", N, lambda: qb.bench_cycle(tmp, N, c, False))
            await timed(f"cycleS_c{c}", N, lambda: qb.bench_cycle(tmp, N, c, True))
        if "p50_ms" in shapes:
            out["p50_ms"] = (await qb.bench_latency(tmp, 1000))[0]
    print(json.dumps(out))

asyncio.run(main())
"""


def checkout(rev: str, into: Path) -> Path:
    """The package of ``rev`` in a worktree under ``into`` (the sys.path entry to use)."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree = into / sha
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), sha],
            capture_output=True, check=True,
        )  # fmt: skip
    return tree


def one_rep(tree: Path, shapes: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "bench" / "queue.py"), ",".join(shapes)],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tempfile.gettempdir(), capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{tree.name}: the bench failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(revs: list[str], runs: dict[str, list[dict[str, float]]]) -> None:
    first = revs[0]
    print(f"{'shape':16}" + "".join(f"{r:>12}" for r in revs)
          + "".join(f"{r + '/' + first:>18}" for r in revs[1:]))  # fmt: skip
    for key in runs[first][0]:
        meds = [statistics.median(x[key] for x in runs[r]) for r in revs]
        paired = [
            statistics.median(b[key] / a[key] for a, b in zip(runs[first], runs[r]))
            for r in revs[1:]
        ]
        small = key.endswith(("ms", "us"))
        print(f"{key:16}" + "".join(f"{m:12.3f}" if small else f"{m:12.0f}" for m in meds)
              + "".join(f"{q:18.3f}" for q in paired))  # fmt: skip
    print("ratios: median of the paired per-rep ratios; jobs/s above 1 is faster, "
          "cpu_us and p50_ms below 1 are")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("revs", nargs="+", help="git revisions; the first is the reference")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    args = ap.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown or args.reps < 1:
        raise SystemExit(f"shapes are {', '.join(SHAPES)}; reps >= 1")
    try:
        with tempfile.TemporaryDirectory(prefix="wiz-ab-") as d:
            trees = {rev: checkout(rev, Path(d)) for rev in args.revs}
            runs: dict[str, list[dict[str, float]]] = {rev: [] for rev in args.revs}
            for rep in range(args.reps):
                k = rep % len(args.revs)
                order = args.revs[k:] + args.revs[:k]
                for rev in order[::-1] if rep % 2 else order:
                    runs[rev].append(one_rep(trees[rev], shapes))
                print(f"rep {rep + 1} of {args.reps}", file=sys.stderr, flush=True)
    finally:  # the worktrees' folders are gone: drop git's notes of them
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)
    print(f"queue bench A/B, {args.reps} reps, cpus {os.cpu_count()}, load "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    report(args.revs, runs)


if __name__ == "__main__":
    main()
