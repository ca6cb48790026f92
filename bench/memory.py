"""Semantic memory benchmark.

- recall@5 on the labelled set (tests/agents/data/memory_recall.json) with the
  offline model: semantic, hybrid (semantic fused with full-text) and full-text.
- ``memory_search`` latency (p50 / p99 over ``--queries`` queries; fewer for the slower ones) at 10k and
  100k memories of one agent, for the index wiz uses (numpy over an in-process
  copy of the agent's vectors, kept in step with ``agent_memory_vec``) and the
  alternatives: numpy over the BLOBs read from SQLite on every query, and a
  sqlite-vec ``vec0`` virtual table (brute-force KNN inside SQLite). Target:
  p50 <= 20 ms at 100k. The same-run reference is full-text (FTS5) search of
  the same memories. The memories are synthetic sentences; their vectors are
  RANDOM unit vectors (256 dimensions, as the offline model's), written
  straight to the table, so building 100k takes seconds; queries are embedded
  by the offline model, as in real use.

sqlite-vec needs ``sqlite3`` built with extension loading; where this Python's
is not (pyenv's default build, for one), the vec0 figures come from a child
process of an interpreter that can (``--vec0-python``, else /usr/bin/python3),
on the same database file.

Usage: ``python bench/memory.py [--sizes 10000 100000] [--queries 200]``.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep bench/ off the path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import wiz_jupyter as wiz  # noqa: E402
from wiz_jupyter.agents import embeddings  # noqa: E402

DIM = 256
RECALL = Path(__file__).resolve().parent.parent / "tests" / "agents" / "data" / "memory_recall.json"
WORDS = (
    "sales data report customer invoice budget server deploy backup model chart region "
    "meeting client office team manager python notebook dashboard vpn ticket warehouse "
    "password laptop log survey competitor price holiday product website gpu cluster "
    "expense receipt fraud payment board minutes drive cafeteria encryption newsletter "
    "friday monday march nightly weekly quarterly revenue churn forecast api key vault"
).split()

# Runs in a child interpreter (no numpy needed): builds a vec0 table from the file's
# agent_memory_vec rows and times KNN queries read from a file of float32 vectors.
VEC0_CHILD = r"""
import json, sqlite3, sys, time
sys.path.insert(0, sys.argv[4])
import sqlite_vec
db, queries, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(db)
conn.enable_load_extension(True); sqlite_vec.load(conn); conn.enable_load_extension(False)
conn.execute("DROP TABLE IF EXISTS bench_vec0")
conn.execute(f"CREATE VIRTUAL TABLE bench_vec0 USING vec0(agent TEXT partition key, "
             f"embedding float[{dim}] distance_metric=cosine)")
t = time.perf_counter()
conn.execute("INSERT INTO bench_vec0 (rowid, agent, embedding) SELECT id, agent, vector "
             "FROM agent_memory_vec")
conn.commit()
build = time.perf_counter() - t
raw = open(queries, "rb").read()
size = dim * 4
times = []
for i in range(0, len(raw), size):
    t = time.perf_counter()
    ids = [r[0] for r in conn.execute(
        "SELECT rowid FROM bench_vec0 WHERE embedding MATCH ? AND agent = 'bench' AND k = 5",
        (raw[i:i + size],))]
    rows = conn.execute(f"SELECT id, kind, content FROM agent_memory WHERE id IN "
                        f"({','.join('?' * len(ids))})", ids).fetchall()
    times.append(time.perf_counter() - t)
conn.execute("DROP TABLE bench_vec0"); conn.commit()
print(json.dumps({"build": build, "times": times}))
"""


def pct(times: list[float], p: float) -> float:
    s = sorted(times)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] * 1000


def line(label: str, times: list[float], ref: float | None = None) -> str:
    p50 = pct(times, 50)
    ratio = f"  ({p50 / ref:.1f}x full-text)" if ref else ""
    return f"  {label:<44} p50 {p50:7.2f} ms   p99 {pct(times, 99):7.2f} ms{ratio}"


def recall(ws: wiz.Workspace) -> None:
    data = json.loads(RECALL.read_text())
    memory = ws.agents.memory("recall")
    ids = [memory.save(t) for t in data["memories"]]
    n = len(data["queries"])
    print(f"recall@5 on the labelled set ({len(ids)} memories, {n} paraphrased queries):")
    for mode in ("semantic", "hybrid", "fts"):
        hits = sum(
            ids[q["expected"]] in [m["id"] for m in memory.search(q["query"], 5, mode=mode)]
            for q in data["queries"]
        )
        print(f"  {mode:<9} {hits}/{n} = {hits / n:.2f}")


def fill(ws: wiz.Workspace, n: int, rng: np.random.Generator) -> None:
    """``n`` synthetic memories of agent 'bench' with random unit vectors (offline model)."""
    with ws.store.write() as c:
        c.execute("DELETE FROM agent_memory WHERE agent = 'bench'")
    now = time.time()
    for start in range(0, n, 20_000):
        count = min(20_000, n - start)
        words = rng.integers(0, len(WORDS), size=(count, 8))
        vectors = rng.standard_normal((count, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with ws.store.write() as c:
            first = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM agent_memory").fetchone()[0]
            c.executemany(
                "INSERT INTO agent_memory (id, agent, kind, content, created_at) "
                "VALUES (?, 'bench', 'fact', ?, ?)",
                (
                    (first + i, f"memory {start + i}: " + " ".join(WORDS[w] for w in row), now)
                    for i, row in enumerate(words)
                ),
            )
            c.executemany(
                "INSERT INTO agent_memory_vec (id, agent, model, vector) "
                "VALUES (?, 'bench', 'wordllama', ?)",
                ((first + i, v.tobytes()) for i, v in enumerate(vectors)),
            )


def blob_scan(ws: wiz.Workspace, query: np.ndarray) -> list:
    """The alternative index: read every vector of the agent from SQLite, per query."""
    rows = ws.store.read(
        "SELECT id, vector FROM agent_memory_vec WHERE agent = 'bench' AND model = 'wordllama'"
    )
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    scores = matrix @ query
    top = np.argpartition(-scores, 4)[:5]
    top = top[np.argsort(-scores[top])]
    chosen = [int(ids[i]) for i in top]
    return ws.store.read(
        f"SELECT id, kind, content FROM agent_memory WHERE id IN ({','.join('?' * 5)})",
        tuple(chosen),
    )


def vec0_python(given: str | None) -> str | None:
    for candidate in [given, sys.executable, "/usr/bin/python3", shutil.which("python3")]:
        if not candidate or not os.path.exists(candidate):
            continue
        probe = "import sqlite3; sqlite3.connect(':memory:').enable_load_extension(True)"
        if subprocess.run([candidate, "-c", probe], capture_output=True).returncode == 0:
            return candidate
    return None


def vec0(python: str | None, db: str, queries: np.ndarray, folder: str) -> dict | None:
    if python is None:
        return None
    qfile = os.path.join(folder, "queries.f32")
    queries.astype(np.float32).tofile(qfile)
    site = os.path.dirname(os.path.dirname(os.path.abspath(__import__("sqlite_vec").__file__)))
    out = subprocess.run(
        [python, "-c", VEC0_CHILD, db, qfile, str(DIM), site], capture_output=True, text=True
    )
    if out.returncode != 0:
        print("  vec0 child failed:", out.stderr.strip().splitlines()[-1:])
        return None
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument(
        "--vec0-python", default=None, help="an interpreter whose sqlite3 loads extensions"
    )
    args = ap.parse_args()
    os.environ.pop(embeddings.ENV, None)
    rng = np.random.default_rng(12)
    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "wiz.db")
        t = time.perf_counter()
        ws = wiz.Workspace(db, embeddings="wordllama")  # loads the offline model
        print(
            f"offline model (WordLlama l2_supercat, {DIM} dims) loaded in {time.perf_counter() - t:.2f} s"
        )
        recall(ws)
        texts = [f"memory {i}: " + " ".join(rng.choice(WORDS, 12)) for i in range(5000)]
        t = time.perf_counter()
        embeddings.get("wordllama").embed(texts)
        print(f"offline embedding: {len(texts) / (time.perf_counter() - t):,.0f} memories/s\n")
        python = vec0_python(args.vec0_python)
        here = hasattr(sqlite3.connect(":memory:"), "enable_load_extension")
        memory = ws.agents.memory("bench")
        phrases = [" ".join(rng.choice(WORDS, 5)) for _ in range(args.queries)]
        qvecs = embeddings.get("wordllama").embed(phrases)
        for n in args.sizes:
            t = time.perf_counter()
            fill(ws, n, rng)
            print(
                f"{n:,} memories (random unit vectors; filled in {time.perf_counter() - t:.1f} s):"
            )
            few = phrases[: max(20, args.queries * 10_000 // n)]  # for the slower searches
            fts = []
            for q in few:
                t = time.perf_counter()
                memory.search(q, 5, mode="fts")
                fts.append(time.perf_counter() - t)
            ref = pct(fts, 50)
            t = time.perf_counter()
            memory.search(phrases[0], 5, mode="semantic")
            print(
                f"  first semantic search (loads the copy): {(time.perf_counter() - t) * 1000:.0f} ms"
            )
            chosen = []
            for q in phrases:
                t = time.perf_counter()
                memory.search(q, 5, mode="semantic")
                chosen.append(time.perf_counter() - t)
            hybrid = []
            for q in few:
                t = time.perf_counter()
                memory.search(q, 5, mode="hybrid")
                hybrid.append(time.perf_counter() - t)
            scan = []
            for q in qvecs[: max(10, args.queries * 2000 // n)]:  # slow: fewer
                t = time.perf_counter()
                blob_scan(ws, q)
                scan.append(time.perf_counter() - t)
            print(line("semantic, numpy in-process copy (chosen)", chosen, ref))
            print(line("hybrid, numpy copy + full-text", hybrid, ref))
            print(line("semantic, numpy over BLOBs read per query", scan, ref))
            ws.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            got = vec0(python, db, qvecs, folder)
            if got is None:
                print("  sqlite-vec vec0: no interpreter here can load SQLite extensions")
            else:
                where = "" if here else f" [child: {python}]"
                print(line(f"semantic, sqlite-vec vec0 KNN{where}", got["times"], ref))
                print(f"  {'':<44} (vec0 table built in {got['build']:.1f} s)")
            print(line("full-text (FTS5, the reference)", fts))
            print(
                f"  target p50 <= 20 ms: {'met' if pct(chosen, 50) <= 20 else 'NOT met'} "
                f"({pct(chosen, 50):.2f} ms)\n"
            )
        ws.close()


if __name__ == "__main__":
    main()
