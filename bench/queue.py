"""Queue benchmark: wiz_jupyter's jobs layer against huey's SqliteHuey and BullMQ.

Measured through the public API on a real SQLite file (WAL), the same shapes
as the BullMQ anchor (../shared/anchors/bullmq): no-op jobs;

- add:        N jobs added one by one with ``ws.jobs.add``;
- add_bulk:   N jobs with ``ws.jobs.add_bulk`` in batches of 1,000;
- cycle:      N jobs added (bulk, or one by one for ``cycleS``), then worked to
              completion with concurrency 1 or 8; jobs/s from the first add to
              the last completion;
- latency:    enqueue-to-start with an idle runtime (concurrency 1): the time
              from calling ``add`` to the handler starting, p50/p99 over M jobs;
- huey:       SqliteHuey's full cycle in the same run (enqueue N, then dequeue
              and execute each: huey's best case, no consumer sleeps), as a ratio;
- bullmq:     with ``--bullmq``, the anchor's Node benchmark is run against a
              local redis-server (started here) and its figures printed beside ours.

With ``--scale``, instead: what the reads made on every change (the board, the
sidebar, ``%wiz status``) and the hot path cost with N jobs held in the file (N =
10,000, 100,000, 1,000,000; half completed, a quarter waiting, a quarter delayed by a
day), each in ms (median):
``counts()`` beside counting the rows as it used to (the reference, same file, same
run), ``list(limit=50)``, the board's page of completed jobs and the sidebar's page of
live ones (newest first), the sidebar's counts per agent, a promotion of due delayed
jobs (none due: it must not read the day's delayed ones), one ``add``, and the rate at
which 5,000 new jobs are worked at concurrency 8 (jobs/s). The waiting jobs held are of
a task no runtime here runs, at a lower priority (a backlog for another worker):
claims read the jobs in priority order, so a backlog ahead of them would be skipped
on every claim.

Usage: ``python bench/queue.py [--n 5000] [--reps 3] [--bullmq] [--scale]``. Prints medians.
"""

from __future__ import annotations

import os
import sys

# This file is named like the stdlib's queue module: keep its folder off the path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import asyncio
import gc
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import wiz_jupyter as wiz

BATCH = 1000


def fresh(tmp: Path, concurrency: int = 8) -> wiz.Workspace:
    path = tmp / f"wiz-{time.perf_counter_ns()}.db"
    ws = wiz.Workspace(path, concurrency=concurrency)

    @ws.task
    async def noop(i: int = 0) -> None:
        return None

    return ws


async def bench_add(tmp: Path, n: int) -> float:
    ws = fresh(tmp)
    t0 = time.perf_counter()
    for i in range(n):
        ws.jobs.add("noop", {"i": i})
    dt = time.perf_counter() - t0
    ws.close()
    return n / dt


async def bench_add_bulk(tmp: Path, n: int) -> float:
    ws = fresh(tmp)
    t0 = time.perf_counter()
    for b in range(0, n, BATCH):
        ws.jobs.add_bulk([("noop", {"i": i}) for i in range(b, min(n, b + BATCH))])
    dt = time.perf_counter() - t0
    ws.close()
    return n / dt


async def bench_cycle(tmp: Path, n: int, concurrency: int, single: bool) -> float:
    ws = fresh(tmp, concurrency)
    t0 = time.perf_counter()
    if single:
        for i in range(n):
            ws.jobs.add("noop", {"i": i})
    else:
        for b in range(0, n, BATCH):
            ws.jobs.add_bulk([("noop", {"i": i}) for i in range(b, min(n, b + BATCH))])
    await ws.run_until_idle()
    dt = time.perf_counter() - t0
    counts = ws.jobs.counts()
    assert counts["completed"] == n, counts
    ws.close()
    return n / dt


async def bench_latency(tmp: Path, m: int) -> tuple[float, float]:
    ws = wiz.Workspace(tmp / "lat.db", concurrency=1)
    started: dict[int, float] = {}

    @ws.task
    async def probe(i: int) -> None:
        started[i] = time.perf_counter()

    await ws.start()
    await asyncio.sleep(0.2)
    lat = []
    for i in range(m):
        t0 = time.perf_counter()
        job = ws.jobs.add("probe", {"i": i})
        await job.wait()
        lat.append((started[i] - t0) * 1000)
    await ws.stop()
    ws.close()
    lat.sort()
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def bench_huey(tmp: Path, n: int) -> float:
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=str(tmp / f"huey-{time.perf_counter_ns()}.db"))

    @huey.task()
    def noop(i: int = 0) -> None:
        return None

    t0 = time.perf_counter()
    for i in range(n):
        noop(i)
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    dt = time.perf_counter() - t0
    assert huey.pending_count() == 0
    return n / dt


def run_bullmq(n: int, reps: int) -> dict | None:
    """Run the BullMQ anchor (Node) against a redis-server started here; None if unavailable."""
    anchor = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "bullmq"
    if not anchor.exists() or not shutil.which("redis-server") or not shutil.which("node"):
        print("bullmq: skipped (needs ../shared/anchors/bullmq, redis-server and node)")
        return None
    work = Path(tempfile.mkdtemp(prefix="wiz-bullmq-"))
    shutil.copy(anchor / "bench.js", work)
    cache = Path.home() / ".cache" / "wiz-bench-bullmq"
    if not (cache / "node_modules" / "bullmq").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "init", "-y"], cwd=cache, check=True, capture_output=True)
        subprocess.run(
            ["npm", "install", "bullmq", "ioredis"], cwd=cache, check=True, capture_output=True
        )
    (work / "node_modules").symlink_to(cache / "node_modules")
    port = 6399
    (work / "r").mkdir()
    subprocess.run(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "yes", "--appendfsync", "everysec", "--daemonize", "yes", "--dir", str(work / "r")],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        tests = "add_single,add_bulk,cycle_c1,cycle_c8,cycleS_c1,cycleS_c8,latency"
        subprocess.run(
            ["node", "bench.js", f"--port={port}", f"--n={n}", f"--reps={reps}", "--roc=false",
             f"--tests={tests}", "--tag=wiz"],
            cwd=work, check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        res = json.loads((work / f"results_node_{port}_rocfalse_wiz.json").read_text())["res"]
    finally:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    ours = {"add_single": "add"}  # the anchor's names for our shapes
    out = {
        ours.get(t, t): med([r["jobs_s"] for r in runs])
        for t, runs in res.items()
        if t != "latency"
    }
    out["latency_p50"] = med([r["p50_ms"] for r in res["latency"]])
    out["latency_p99"] = med([r["p99_ms"] for r in res["latency"]])
    return out


def _ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


#: how counts() used to count: every row (the reference for --scale)
ROWS_REF = "SELECT status, COUNT(*) FROM jobs GROUP BY status"


async def bench_scale(tmp: Path, sizes: list[int]) -> None:
    ws = fresh(tmp)
    held = 0
    print(f"{'jobs held':>10}{'counts':>10}{'rows ref':>10}{'list 50':>10}{'board':>8}"
          f"{'live':>8}{'agents':>8}{'promote':>8}{'add':>8}{'work c8':>10}"
          "   (ms; work in jobs/s)")  # fmt: skip
    for size in sizes:
        while held < size:  # half completed, the rest waiting or delayed: written so
            k = min(BATCH * 10, size - held)
            items = [("held", {"i": held + i}, {"priority": -1}) for i in range(k)]
            jobs = ws.jobs.add_bulk(items)
            with ws.jobs.transaction() as ch:  # ... directly, as if worked long ago
                done = ch.c.execute(
                    "UPDATE jobs SET status = 'completed', finished_at = 0 "
                    "WHERE id BETWEEN ? AND ? AND id % 2 = 0",
                    (jobs[0].id, jobs[-1].id),
                ).rowcount
                ch.moved("waiting", "completed", done)  # what the queue's own changes say
                later = ch.c.execute(  # and a quarter planned for later (retries, run_at)
                    "UPDATE jobs SET status = 'delayed', run_at = ? "
                    "WHERE id BETWEEN ? AND ? AND id % 4 = 1",
                    (time.time() + 86_400, jobs[0].id, jobs[-1].id),
                ).rowcount
                ch.moved("waiting", "delayed", later)
            held += k
        counts = _ms(ws.jobs.counts, 200)
        rows = _ms(lambda: ws.store.read(ROWS_REF), 5 if size >= 1_000_000 else 20)
        listed = _ms(lambda: ws.jobs.list(limit=50), 200)
        # the board's status filter and the sidebar's page of live jobs, newest first
        board = _ms(lambda: ws.jobs.list("completed", newest_first=True, limit=50), 100)
        live = _ms(lambda: ws.jobs.list(["waiting", "active"], newest_first=True, limit=51), 100)
        agents = _ms(
            lambda: ws.store.read(
                "SELECT agent, status, COUNT(*) FROM jobs WHERE agent IS NOT NULL "
                "GROUP BY agent, status"
            ),
            200,
        )
        promote = _ms(ws.jobs.promote_due, 50)  # none due: a quarter of the jobs wait a day
        add = _ms(lambda: ws.jobs.add("noop"), 500)
        ws.jobs.add_bulk([("noop", {"i": i}) for i in range(5000)])
        t0 = time.perf_counter()
        await ws.run_until_idle(timeout=300)
        rate = 5500 / (time.perf_counter() - t0)  # the 500 adds above are worked too
        truth = dict(ws.store.read(ROWS_REF))
        assert {k: v for k, v in ws.jobs.counts().items() if v} == truth, "counts drifted"
        print(f"{size:>10,}{counts:10.3f}{rows:10.2f}{listed:10.3f}{board:8.3f}{live:8.3f}"
              f"{agents:8.3f}{promote:8.3f}{add:8.3f}{rate:10.0f}")  # fmt: skip
    print("target: counts <= 1 ms at 1,000,000 jobs held; list, promote, add and work flat")
    ws.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--bulk-n", type=int, default=50000)
    ap.add_argument("--latency-n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bullmq", action="store_true", help="also run the BullMQ anchor")
    ap.add_argument("--scale", action="store_true", help="reads and costs with jobs held")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wiz-bench-"))
    if args.scale:
        await bench_scale(tmp, [int(x) for x in args.sizes.split(",")])
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shapes = {
        "add": lambda: bench_add(tmp, args.n),
        "add_bulk": lambda: bench_add_bulk(tmp, args.bulk_n),
        "cycle_c1": lambda: bench_cycle(tmp, args.n, 1, False),
        "cycle_c8": lambda: bench_cycle(tmp, args.n, 8, False),
        "cycleS_c1": lambda: bench_cycle(tmp, args.n, 1, True),
        "cycleS_c8": lambda: bench_cycle(tmp, args.n, 8, True),
    }
    res: dict[str, list[float]] = {k: [] for k in [*shapes, "huey", "lat_p50", "lat_p99"]}
    for shape in shapes.values():  # warm-up, not recorded
        await shape()
    for _ in range(args.reps):
        for name, shape in shapes.items():
            gc.collect()
            res[name].append(await shape())
        res["huey"].append(bench_huey(tmp, args.n))
        p50, p99 = await bench_latency(tmp, args.latency_n)
        res["lat_p50"].append(p50)
        res["lat_p99"].append(p99)
    shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    bull = run_bullmq(args.n, args.reps) if args.bullmq else None

    print(f"wiz_jupyter queue bench: N={args.n}, bulk N={args.bulk_n}, medians of {args.reps}, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cores")  # fmt: skip
    print(f"{'shape':<12}{'wiz jobs/s':>12}{'bullmq':>10}{'ratio':>8}   target")
    targets = {"add_bulk": ">= 50,000/s", "cycle_c8": ">= 5,000/s and >= 4x huey"}
    for name in shapes:
        b = bull.get(name) if bull else None
        ratio = f"{med[name] / b:7.2f}x" if b else "      -"
        bcol = f"{b:10.0f}" if b else "         -"
        print(f"{name:<12}{med[name]:12.0f}{bcol}{ratio}   {targets.get(name, '')}")
    print(f"{'huey cycle':<12}{med['huey']:12.0f}   (SqliteHuey enqueue + execute, same run)")
    print(f"full cycle vs huey: {med['cycle_c8'] / med['huey']:.2f}x (concurrency 8), "
          f"{med['cycle_c1'] / med['huey']:.2f}x (concurrency 1)")  # fmt: skip
    lat = f"enqueue-to-start: p50 {med['lat_p50']:.3f} ms, p99 {med['lat_p99']:.3f} ms (target p50 <= 2 ms)"
    if bull:
        lat += f"; bullmq p50 {bull['latency_p50']:.3f} ms, p99 {bull['latency_p99']:.3f} ms"
    print(lat)


if __name__ == "__main__":
    asyncio.run(main())
