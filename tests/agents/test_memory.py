"""Semantic memory: recall against full-text search on a labelled set, the offline
embedder without network, backfill, the agents' tool and opening, a provider's
embeddings through litellm, and consolidation as an idle-triggered job."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.agents.memory import near_duplicates
from wiz_jupyter.agents.tools import ToolContext, builtin_tools

from .conftest import LITELLM_NOISE

pytestmark = LITELLM_NOISE


@pytest.fixture(autouse=True)
def _no_embeddings_from_the_environment(monkeypatch):
    monkeypatch.delenv("WIZ_EMBEDDINGS", raising=False)


RECALL = json.loads((Path(__file__).parent / "data" / "memory_recall.json").read_text())


def recall_at_5(memory, ids: list[int], mode: str) -> float:
    hits = 0
    for q in RECALL["queries"]:
        found = [m["id"] for m in memory.search(q["query"], limit=5, mode=mode)]
        hits += ids[q["expected"]] in found
    return hits / len(RECALL["queries"])


async def test_semantic_recall_beats_full_text(ws):
    ws.agents.set_embeddings("offline")
    assert ws.agents.embeddings == "wordllama"
    ws.agent("analyst", role="data analyst")
    memory = ws.agents.memory("analyst")
    ids = [memory.save(text) for text in RECALL["memories"]]
    fts = recall_at_5(memory, ids, "fts")
    semantic = recall_at_5(memory, ids, "semantic")
    hybrid = recall_at_5(memory, ids, "hybrid")
    print(f"recall@5 on {len(RECALL['queries'])} queries: semantic {semantic:.2f}, "
          f"hybrid {hybrid:.2f}, full-text {fts:.2f}")  # fmt: skip
    assert semantic > fts
    # with a model configured, search ranks by meaning unless told otherwise
    q = RECALL["queries"][0]["query"]
    assert memory.search(q) == memory.search(q, mode="semantic") != memory.search(q, mode="fts")


def test_offline_embedder_loads_without_network(tmp_path):
    # A fresh interpreter with every socket refused and an empty home (no cache to lean on).
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network is blocked in this test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        import wiz_jupyter as wiz

        ws = wiz.Workspace(":memory:", embeddings="wordllama")
        m = ws.agents.memory("a")
        m.save("The sales data is in data/sales.csv")
        m.save("Bob wants the summary every Friday")
        print(m.search("where are the revenue figures", limit=1)[0]["content"])
        """
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "The sales data is in data/sales.csv"
    assert not (tmp_path / ".cache" / "wordllama").exists()


async def test_memories_saved_before_embeddings_are_embedded_on_first_search(ws):
    ws.agent("analyst", role="data analyst")
    memory = ws.agents.memory("analyst")
    for text in RECALL["memories"][:10]:
        memory.save(text)
    q = "turnover numbers spreadsheet"
    assert memory.search(q) == []  # full-text: no word in common
    vectors = "SELECT COUNT(*) FROM agent_memory_vec"
    assert ws.store.read(vectors)[0][0] == 0
    ws.agents.set_embeddings("wordllama")
    assert memory.search(q)[0]["content"] == RECALL["memories"][6]  # the revenue chart
    assert ws.store.read(vectors)[0][0] == 10
    new = memory.save("The forecast service answers in JSON")  # embedded at the next search
    assert memory.search("what format do predictions come back in")[0]["id"] == new
    memory.forget(new)  # its vector goes with it, and the in-process copy follows
    assert ws.store.read(vectors)[0][0] == 10
    assert new not in [m["id"] for m in memory.search("predictions format", limit=20)]
    ws.agents.set_embeddings(None)
    assert ws.agents.embeddings is None
    assert memory.search(q) == []


async def test_bad_settings_are_one_line_errors(ws, monkeypatch):
    ws.agent("analyst", role="data analyst")
    with pytest.raises(wiz.WizError, match="embeddings must be 'wordllama'"):
        ws.agents.set_embeddings("  ")
    with pytest.raises(ValueError, match="mode must be one of"):
        ws.agents.memory("analyst").search("x", mode="fuzzy")
    with pytest.raises(wiz.EmbeddingsError, match="needs an embedding model"):
        ws.agents.memory("analyst").search("x", mode="semantic")
    ws.agents.set_embeddings("wordllama")
    ws.agents.memory("analyst").save("Lunch is at noon")
    assert ws.agents.memory("analyst").search("?!") == []  # nothing to look for
    assert ws.agents.memory("analyst").search("lunch", limit=0) == []


async def test_the_memory_search_tool_and_the_job_opening_rank_by_meaning(ws):
    ws.agents.set_embeddings("wordllama")
    analyst = ws.agent("analyst", model=wiz.ScriptedModel(["noted"]), tools=["memory_search"])
    for text in RECALL["memories"]:
        analyst.memory.save(text)
    ctx = ToolContext(ws.agents.deps, "analyst", analyst.folder, None)
    (search,) = builtin_tools(ctx, ["memory_search"])
    text, ok = await search.call({"query": "can I bring my puppy to work", "limit": 3})
    assert ok and RECALL["memories"][34] in json.loads(text)
    answer = await analyst.ask("when does Bob expect his weekly recap?")
    assert answer == "noted"
    job = analyst.history(limit=1)[0]
    system = ws.store.read("SELECT messages FROM activity WHERE job_id = ?", (job.id,))[0][0]
    assert RECALL["memories"][1] in json.loads(system)[0]["content"]


async def test_a_providers_embeddings_through_litellm(ws, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_API_BASE", server.url)
    ws.agents.set_embeddings("openai/embed-test")
    ws.agent("analyst", role="data analyst")
    memory = ws.agents.memory("analyst")
    for text in RECALL["memories"][:5]:
        memory.save(text)
    found = await memory.asearch("Customers in Germany pay euros", limit=1)
    assert found[0]["content"] == RECALL["memories"][3]
    paths = [r.path for r in server.requests]
    assert paths == ["/v1/embeddings", "/v1/embeddings"]  # the backlog, then the query
    assert server.requests[0].body["input"] == RECALL["memories"][:5]
    calls = ws.store.read("SELECT model, tokens_in, error FROM llm_calls ORDER BY id")
    assert {c[0] for c in calls} == {"openai/embed-test"}
    assert len(calls) == 2 and all(c[1] > 0 and c[2] is None for c in calls)


FACTS = [
    ("The sales data is in data/sales.csv", "fact"),
    ("Bob wants the summary every Friday", "fact"),
    ("the sales data is in data/sales.csv!", "fact"),  # the same, but for case and punctuation
    ("The customer data is in data/customers.csv", "fact"),  # a different file: kept
    ("The marketing budget is 50000 dollars", "fact"),
    ("The marketing budget is 60000 dollars", "fact"),  # a different figure: kept
    ("Every Friday, Bob wants the summary", "learning"),  # the same words: merged, as a learning
    ("The staging server is stable", "fact"),
    ("The staging server is not stable", "fact"),  # negated: kept
    ("Sales data: data/sales.csv, refreshed nightly", "fact"),  # says more: it stays
    ("Alice manages the data science team", "goal"),
]


def test_near_duplicates():
    assert near_duplicates("Paris is the capital of France", "France's capital is Paris")
    assert not near_duplicates("The budget is 5000", "The budget is 6000")
    assert not near_duplicates("The API is stable", "The API isn't stable")
    assert not near_duplicates("The sales data is in data/sales.csv", "The customer data is in data/customers.csv", 0.95)  # fmt: skip


async def test_consolidation_job_on_idle_merges_duplicates_and_keeps_every_fact(ws):
    ws.agents.set_embeddings("wordllama")
    analyst = ws.agent("analyst", role="data analyst")
    for text, kind in FACTS:
        analyst.memory.save(text, kind=kind)
    schedule = analyst.consolidate_when_idle(after=0.2)
    assert schedule.name == "analyst:consolidate"
    done = asyncio.Event()
    ws.events.on("job.completed", lambda e: done.set())
    await ws.start()
    await asyncio.wait_for(done.wait(), 10)
    (job,) = ws.jobs.list(status="completed")
    assert job.task == "agent:analyst:consolidate" and job.agent is None
    kept = {m["content"]: m["kind"] for m in analyst.memory.all()}
    assert kept == {
        "Bob wants the summary every Friday": "learning",
        "The customer data is in data/customers.csv": "fact",
        "The marketing budget is 50000 dollars": "fact",
        "The marketing budget is 60000 dollars": "fact",
        "The staging server is stable": "fact",
        "The staging server is not stable": "fact",
        "Sales data: data/sales.csv, refreshed nightly": "fact",
        "Alice manages the data science team": "goal",
    }
    assert len(job.result["merged"]) == 3 and job.result["kept"] == 8
    # every removed memory is said by one that stays
    for text, _ in FACTS:
        assert any(near_duplicates(text, k) for k in kept)
    # search after the merge sees only what is kept
    assert "the sales data is in data/sales.csv!" not in [
        m["content"] for m in analyst.memory.search("sales csv", limit=10)
    ]
    # the job is not the agent's own work: the idle period it ended does not fire again
    await asyncio.sleep(0.6)
    assert len(ws.jobs.list()) == 1
    # a later consolidation looks only at what is new
    analyst.memory.save("Bob wants the summary every Friday.")
    again = analyst.consolidate_memory()
    assert (await again.wait())["checked"] == 1
    assert len(analyst.memory) == 8


def test_a_v1_database_upgrades_and_its_memories_are_embedded(db_path):
    from wiz_jupyter.agents.schema import MIGRATIONS
    from wiz_jupyter.jobs.store import Store

    old = Store(db_path)  # a workspace written before semantic memory existed
    old.migrate("agents", MIGRATIONS[:1])
    with old.write() as c:
        c.execute(
            "INSERT INTO agent_memory (agent, kind, content, created_at) "
            "VALUES ('analyst', 'fact', ?, 0)",
            (RECALL["memories"][34],),
        )
    old.close()
    ws = wiz.Workspace(db_path, embeddings="offline")
    try:
        versions = ws.store.read("SELECT version FROM wiz_migrations WHERE component = 'agents'")
        assert [r[0] for r in versions] == [m[0] for m in MIGRATIONS]  # all applied, in order
        found = ws.agents.memory("analyst").search("can I bring my puppy to work", limit=1)
        assert found[0]["content"] == RECALL["memories"][34]
    finally:
        ws.close()


def test_a_missing_extra_is_named(monkeypatch, ws):
    import wiz_jupyter.agents.embeddings as emb

    monkeypatch.setitem(sys.modules, "wordllama", None)  # as if not installed
    monkeypatch.setattr(emb, "_wordllama", None)
    with pytest.raises(wiz.EmbeddingsError, match=r"pip install 'wiz_jupyter\[memory\]'"):
        ws.agents.set_embeddings("wordllama")
    assert ws.agents.embeddings is None  # nothing half-set


async def test_memories_another_process_saves_are_found(ws, db_path):
    ws.agents.set_embeddings("wordllama")
    memory = ws.agents.memory("analyst")
    memory.save(RECALL["memories"][0])
    assert len(memory.search("revenue figures file")) == 1  # the copy is loaded here
    other = wiz.Workspace(db_path)  # another process on the same file
    try:
        other.agents.memory("analyst").save(RECALL["memories"][34])
    finally:
        other.close()
    found = memory.search("can I bring my puppy to work", limit=1)
    assert found[0]["content"] == RECALL["memories"][34]
