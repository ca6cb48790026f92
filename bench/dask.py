"""Dask executor benchmark: CPU-bound job bodies on a 2-worker LocalCluster.

- ``--jobs`` (200) jobs of about ``--ms`` (50) ms of pure Python each, worked by
  the in-process runtime (threads: the GIL makes them take turns) and by the
  runtime with ``executor="dask"`` on a LocalCluster of 2 worker processes x 1
  thread. Target: speed-up >= 1.7x on a 2-core machine.
- the per-job overhead of the Dask path (claim, submit, events, result recorded in
  SQLite) over a bare ``client.submit`` of the same function on the same cluster,
  measured in the same run: (wiz wall - bare wall) / jobs. Target: <= 2 ms. Beside
  it, the CPU time this process (the kernel's role: runtime, client, and here the
  scheduler too) spends per job on each path, which a busy machine disturbs less.

Usage: ``python bench/dask.py [--jobs 200] [--ms 50] [--reps 3]``.
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

import wiz_jupyter as wiz  # noqa: E402


def burn(n: int) -> int:
    """Pure Python work: ``n`` rounds of integer arithmetic."""
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1_000_003
    return x


def calibrate(ms: float) -> int:
    """Rounds of ``burn`` that take about ``ms`` milliseconds here (best of 5)."""
    n = 200_000
    best = min(_time(burn, n) for _ in range(5))
    return max(1, int(n * ms / 1000 / best))


def _time(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


async def in_process(tmp: Path, jobs: int, n: int, rep: int) -> float:
    ws = wiz.Workspace(tmp / f"threads{rep}.db", concurrency=2)
    ws.task(burn)  # sync: the thread executor
    ws.jobs.add_bulk([("burn", {"n": n}) for _ in range(jobs)])
    t0 = time.perf_counter()
    await ws.run_until_idle()
    wall = time.perf_counter() - t0
    assert ws.jobs.counts()["completed"] == jobs
    ws.close()
    return wall


CPU: dict[str, list[float]] = {"dask": [], "bare": []}  # this process's CPU s per run


async def on_dask(tmp: Path, address: str, jobs: int, n: int, rep: int) -> float:
    ws = wiz.Workspace(tmp / f"dask{rep}.db", concurrency=16)
    ws.task(burn, executor="dask")
    ws.use_dask(address)
    await ws.start()
    await ws.dask
    ws.jobs.add("burn", {"n": 1})  # warm up: the function reaches the workers
    await ws.run_until_idle()
    ws.jobs.add_bulk([("burn", {"n": n}) for _ in range(jobs)])
    t0, c0 = time.perf_counter(), time.process_time()
    await ws.run_until_idle()
    wall = time.perf_counter() - t0
    CPU["dask"].append(time.process_time() - c0)
    await ws.stop()
    assert ws.jobs.counts()["completed"] == jobs + 1
    ws.close()
    return wall


async def bare(address: str, jobs: int, n: int) -> float:
    from distributed import Client

    async with Client(address, asynchronous=True, set_as_default=False) as client:
        await client.submit(burn, 1, pure=False)
        t0, c0 = time.perf_counter(), time.process_time()
        futures = [client.submit(burn, n, pure=False) for _ in range(jobs)]
        await client.gather(futures)
        wall = time.perf_counter() - t0
        CPU["bare"].append(time.process_time() - c0)
        return wall


async def main(args: argparse.Namespace) -> None:
    from distributed import LocalCluster

    n = calibrate(args.ms)
    print(
        f"wiz_jupyter dask bench: {args.jobs} jobs of ~{args.ms:g} ms pure Python ({n} rounds), "
        f"medians of {args.reps}, {os.cpu_count()} cores"
    )
    async with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, asynchronous=True,
        host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR,
    ) as cluster:  # fmt: skip
        address = cluster.scheduler_address
        walls: dict[str, list[float]] = {"threads": [], "dask": [], "bare": []}
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            for rep in range(args.reps):
                runs = {
                    "threads": lambda rep=rep: in_process(tmp, args.jobs, n, rep),
                    "dask": lambda rep=rep: on_dask(tmp, address, args.jobs, n, rep),
                    "bare": lambda: bare(address, args.jobs, n),
                }
                order = list(runs)
                order = order[rep % 3 :] + order[: rep % 3]  # a busy machine: rotate the order
                for name in order:
                    walls[name].append(await runs[name]())
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # heartbeats cut by the close
    med = {k: statistics.median(v) for k, v in walls.items()}
    speedup = med["threads"] / med["dask"]
    overhead_ms = (med["dask"] - med["bare"]) / args.jobs * 1000
    print(f"{'path':<34}{'wall s':>8}{'jobs/s':>9}")
    for name, label in (
        ("threads", "in-process (threads, concurrency 2)"),
        ("dask", "wiz executor='dask' (2 workers)"),
        ("bare", "bare client.submit (same cluster)"),
    ):
        print(f"{label:<34}{med[name]:8.2f}{args.jobs / med[name]:9.1f}")
    print(f"load average now: {os.getloadavg()[0]:.1f} (figures are only fair on an idle machine)")
    print(f"speed-up dask vs threads: {speedup:.2f}x   target >= 1.7x")
    print(
        f"per-job overhead over bare client.submit: {overhead_ms:.2f} ms   target <= 2 ms "
        f"(ratio wiz/bare wall {med['dask'] / med['bare']:.3f})"
    )
    cpu = {k: statistics.median(v) / args.jobs * 1000 for k, v in CPU.items()}
    print(
        f"this process's CPU per job: wiz {cpu['dask']:.2f} ms, bare {cpu['bare']:.2f} ms, "
        f"difference {cpu['dask'] - cpu['bare']:.2f} ms"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--ms", type=float, default=50.0)
    p.add_argument("--reps", type=int, default=3)
    asyncio.run(main(p.parse_args()))
