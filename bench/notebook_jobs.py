"""Notebook jobs benchmark.

- overhead per run: the same small parameterised notebook executed ``--runs`` times
  as a wiz notebook job (add, claim, papermill preparation, nbclient cell by cell,
  the executed copy written, the result stored) and as a bare nbclient execution
  (``NotebookClient(nb).async_execute()`` of a copy, written to disk), interleaved
  (alternating which goes first), in the same process. Target: the job's median <= 1.10x nbclient's.
- throughput: ``--jobs`` small notebook jobs with the workspace's concurrency at
  ``--concurrency``, against the same number of bare nbclient runs, ``--concurrency``
  at a time.

Usage: ``python bench/notebook_jobs.py [--runs 10] [--jobs 50] [--concurrency 2]``.
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
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import nbclient  # noqa: E402
import nbformat  # noqa: E402

import wiz_jupyter as wiz  # noqa: E402

CELLS = [
    ("n = 10", ["parameters"]),
    ("squares = [i * i for i in range(n)]", []),
    ("total = sum(squares)\nprint(total)", []),
    ("import json\njson.dumps({'n': n, 'total': total})", []),
]


def make_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for source, tags in CELLS:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = folder / "small.ipynb"
    nbformat.write(nb, str(path))
    return path


async def bare(src: Path, out: Path) -> float:
    t0 = time.perf_counter()
    nb = nbformat.read(str(src), as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        resources={"metadata": {"path": str(src.parent)}},
        shutdown_kernel="immediate",  # as the job does: no graceful wait for the kernel
    )
    await client.async_execute()
    nbformat.write(nb, str(out))
    return time.perf_counter() - t0


async def as_job(ws: wiz.Workspace, src: Path, n: int) -> float:
    t0 = time.perf_counter()
    await ws.jobs.add_notebook(src, {"n": n}).wait(timeout=300)
    return time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = make_notebook(folder)
        ws = wiz.Workspace(folder / "wiz.db", concurrency=args.concurrency)
        await ws.start()
        await as_job(ws, src, 1)  # warm: papermill and nbformat imported, kernelspec found
        await bare(src, folder / "warm.ipynb")

        ours, theirs = [], []
        for i in range(args.runs):  # alternate which goes first: neither gets the warmer turn
            if i % 2:
                ours.append(await as_job(ws, src, i))
                theirs.append(await bare(src, folder / f"bare-{i}.ipynb"))
            else:
                theirs.append(await bare(src, folder / f"bare-{i}.ipynb"))
                ours.append(await as_job(ws, src, i))
        m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
        print(f"one small notebook ({len(CELLS)} code cells), median of {args.runs} runs:")
        print(f"  bare nbclient     {m_theirs * 1000:8.1f} ms")
        print(f"  wiz notebook job  {m_ours * 1000:8.1f} ms")
        print(
            f"  overhead          {(m_ours - m_theirs) * 1000:+8.1f} ms per run, "
            f"ratio {m_ours / m_theirs:.3f}x (target <= 1.10x)"
        )

        t0 = time.perf_counter()
        jobs = [ws.jobs.add_notebook(src, {"n": i}) for i in range(args.jobs)]
        for job in jobs:
            await job.wait(timeout=600)
        wall_ours = time.perf_counter() - t0
        assert all(j.status == "completed" for j in jobs)

        gate = asyncio.Semaphore(args.concurrency)

        async def one(i: int) -> None:
            async with gate:
                await bare(src, folder / f"tp-{i}.ipynb")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(args.jobs)))
        wall_theirs = time.perf_counter() - t0
        print(f"{args.jobs} small notebooks, {args.concurrency} at a time:")
        print(f"  wiz notebook jobs {args.jobs / wall_ours:6.2f} notebooks/s ({wall_ours:.1f} s)")
        print(
            f"  bare nbclient     {args.jobs / wall_theirs:6.2f} notebooks/s ({wall_theirs:.1f} s)"
        )
        print(f"  ratio             {wall_ours / wall_theirs:.3f}x the bare wall time")
        await ws.stop()
        ws.close()


if __name__ == "__main__":
    asyncio.run(main())
