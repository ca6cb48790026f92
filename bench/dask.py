"""Dask executor benchmark: CPU-bound job bodies on a 2-worker LocalCluster.

For each case of ``--jobs`` (16 and 200) jobs of about ``--ms`` (200) ms of pure
Python, in one run and on one cluster (2 worker processes x 1 thread):

- in-process: the runtime's thread executor at concurrency 2 (the GIL makes the
  bodies take turns): the baseline of the speed-ups;
- wiz: the queue with ``executor="dask"`` (claims, leases, events and results in
  SQLite; ``--concurrency`` 16, the workspace's default);
- bare: ``client.submit`` of the same function on the same cluster, then gather;
- the queue at concurrency 2, the cluster's thread count (``--low``; 0 leaves it
  out): each worker waits for the round trip to the kernel between two bodies.

Printed per case: the median wall times, each path's speed-up over in-process
(target for 16 jobs through the queue: >= 1.8x), the queue's wall over bare
(target <= 1.10) and its overhead per remote job ((wiz - bare) / jobs); how busy
the workers were (the bodies' own time, measured on the workers, over 2 x the
wall) and the bodies' mean time there (a busy machine slows them: compare the
paths' body times before their walls); and the CPU time this process (the
kernel's role: runtime, client, and here the scheduler too) spends per job on
each path, its idle costs over the run included. The paths take turns in a
rotating order.

Usage: ``python bench/dask.py [--jobs 16,200] [--reps 5,3] [--ms 200] [--concurrency 16]
[--low 2]``.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep bench/ off the path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import wiz_jupyter as wiz  # noqa: E402

WORKERS = 2
TARGET_SPEEDUP = 1.8  # 16 jobs through the queue, 2 workers
TARGET_RATIO = 1.10  # the queue's wall over bare client.submit's


def burn(n: int) -> float:
    """Pure Python work: ``n`` rounds of integer arithmetic; returns its own seconds."""
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1_000_003
    return time.perf_counter() - t0 + x * 0.0


def calibrate(ms: float) -> int:
    """Rounds of ``burn`` that take about ``ms`` milliseconds here (best of 5)."""
    n = 200_000
    best = min(burn(n) for _ in range(5))
    return max(1, int(n * ms / 1000 / best))


class Run:
    """One path's run: wall seconds, this process's CPU seconds, the bodies' own seconds."""

    def __init__(self, wall: float, cpu: float, bodies: float):
        self.wall, self.cpu, self.bodies = wall, cpu, bodies


async def in_process(tmp: Path, jobs: int, n: int, tag: str) -> Run:
    ws = wiz.Workspace(tmp / f"threads{tag}.db", concurrency=WORKERS)
    ws.task(burn)  # sync: the thread executor
    ws.jobs.add_bulk([("burn", {"n": n}) for _ in range(jobs)])
    t0, c0 = time.perf_counter(), time.process_time()
    await ws.run_until_idle()
    run = Run(time.perf_counter() - t0, time.process_time() - c0, 0.0)
    assert ws.jobs.counts()["completed"] == jobs
    ws.close()
    return run


async def on_dask(tmp: Path, address: str, jobs: int, n: int, tag: str, concurrency: int) -> Run:
    ws = wiz.Workspace(tmp / f"dask{tag}.db", concurrency=concurrency)
    ws.task(burn, executor="dask")
    ws.use_dask(address)
    await ws.start()
    await ws.dask
    ws.jobs.add("burn", {"n": 1})  # warm up: the function reaches the workers
    await ws.run_until_idle()
    t0, c0 = time.perf_counter(), time.process_time()
    ids = ws.jobs.add_bulk([("burn", {"n": n}) for _ in range(jobs)])
    await ws.run_until_idle()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await ws.stop()
    bodies = sum(ws.jobs.get(i).result for i in ids)
    assert ws.jobs.counts()["completed"] == jobs + 1
    ws.close()
    return Run(wall, cpu, bodies)


async def bare(address: str, jobs: int, n: int) -> Run:
    from distributed import Client

    async with Client(address, asynchronous=True, set_as_default=False) as client:
        await client.submit(burn, 1, pure=False)
        t0, c0 = time.perf_counter(), time.process_time()
        futures = [client.submit(burn, n, pure=False) for _ in range(jobs)]
        results = await client.gather(futures)
        return Run(time.perf_counter() - t0, time.process_time() - c0, sum(results))


async def case(address: str, tmp: Path, jobs: int, n: int, reps: int, args: Any) -> dict:
    runs: dict[str, list[Run]] = {"threads": [], "wiz": [], "bare": []}
    if args.low:
        runs["low"] = []
    for rep in range(reps):
        tag = f"{jobs}-{rep}"
        paths = {
            "threads": lambda tag=tag: in_process(tmp, jobs, n, tag),
            "wiz": lambda tag=tag: on_dask(tmp, address, jobs, n, tag, args.concurrency),
            "bare": lambda: bare(address, jobs, n),
            "low": lambda tag=tag: on_dask(tmp, address, jobs, n, f"{tag}-low", args.low),
        }
        order = list(runs)
        order = order[rep % len(order) :] + order[: rep % len(order)]  # a busy machine: rotate
        for name in order:
            runs[name].append(await paths[name]())
    return runs


def report(jobs: int, runs: dict[str, list[Run]], low: int) -> None:
    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs[name])

    wall = {k: med(k, "wall") for k in runs}
    reps = len(runs["wiz"])
    print(f"\n{jobs} jobs, medians of {reps}")
    print(
        f"  {'path':<38}{'wall s':>8}{'speed-up':>10}{'workers busy':>14}{'body ms':>9}"
        f"{'CPU/job':>10}"
    )
    for name, label in (
        ("threads", "in-process (threads, concurrency 2)"),
        ("wiz", "queue, executor='dask'"),
        ("bare", "bare client.submit (same cluster)"),
        ("low", f"queue at concurrency {low} (the threads)"),
    ):
        if name not in runs:
            continue
        busy = body = ""
        if name != "threads":
            busy = f"{med(name, 'bodies') / WORKERS / wall[name]:.0%}"
            body = f"{med(name, 'bodies') / jobs * 1000:.0f}"
        cpu = med(name, "cpu") / jobs * 1000
        line = f"  {label:<38}{wall[name]:8.2f}{wall['threads'] / wall[name]:9.2f}x{busy:>14}"
        print(f"{line}{body:>9}{cpu:8.2f}ms")
    speedup = wall["threads"] / wall["wiz"]
    ratio = wall["wiz"] / wall["bare"]
    overhead = (wall["wiz"] - wall["bare"]) / jobs * 1000
    if jobs == 16:
        mark = "ok" if speedup >= TARGET_SPEEDUP else "MISSED"
        print(f"  queue speed-up {speedup:.2f}x   target >= {TARGET_SPEEDUP}x ({mark})")
    mark = "ok" if ratio <= TARGET_RATIO else "MISSED"
    print(f"  queue wall / bare wall {ratio:.3f}   target <= {TARGET_RATIO:.2f} ({mark})")
    cpu = (med("wiz", "cpu") - med("bare", "cpu")) / jobs * 1000
    print(f"  queue overhead per remote job: {overhead:.2f} ms of wall, {cpu:.2f} ms of CPU here")


async def main(args: argparse.Namespace) -> None:
    from distributed import LocalCluster

    n = calibrate(args.ms)
    cases = [int(j) for j in args.jobs.split(",")]
    reps = [int(r) for r in args.reps.split(",")]
    reps += [reps[-1]] * (len(cases) - len(reps))
    print(
        f"wiz_jupyter dask bench: jobs of ~{args.ms:g} ms pure Python ({n} rounds) on a "
        f"LocalCluster of {WORKERS} processes x 1 thread, {os.cpu_count()} cores, "
        f"queue concurrency {args.concurrency}; load average {os.getloadavg()[0]:.1f}"
    )
    async with LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, processes=True, asynchronous=True,
        host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR,
    ) as cluster:  # fmt: skip
        with tempfile.TemporaryDirectory() as d:
            for jobs, r in zip(cases, reps):
                runs = await case(cluster.scheduler_address, Path(d), jobs, n, r, args)
                report(jobs, runs, args.low)
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # heartbeats cut by the close
    print(f"\nload average now: {os.getloadavg()[0]:.1f} (wall figures are only fair when idle)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", default="16,200", help="job counts, one case each")
    p.add_argument("--reps", default="5,3", help="repetitions per case (medians)")
    p.add_argument("--ms", type=float, default=200.0, help="milliseconds per body")
    p.add_argument("--concurrency", type=int, default=16, help="the queue's concurrency")
    p.add_argument("--low", type=int, default=2, help="also the queue at this concurrency")
    asyncio.run(main(p.parse_args()))
