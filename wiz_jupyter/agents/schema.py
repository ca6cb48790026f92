"""The agents layer's tables, as numbered migrations of the ``agents`` component."""

from __future__ import annotations

import sqlite3

import sqlite_utils

from ..jobs.store import Migration


def _v1(db: sqlite_utils.Database) -> None:
    # A migration and its helpers stay as they ran on existing files: a change is a new one.
    _agents(db)
    _agent_memory(db)
    _activity(db)
    _chats(db)


def _agents(db: sqlite_utils.Database) -> None:
    """One row per agent: its persona, model and settings."""
    db["agents"].create(
        {
            "name": str,
            "role": str,
            "goal": str,
            "backstory": str,
            "instructions": str,
            "model": str,
            "settings": str,  # JSON: temperature, max_tokens, ...
            "tools": str,  # JSON list of tool names
            "max_steps": int,
            "concurrency": int,
            "folder": str,
            "status": str,  # idle / busy
            "created_at": float,
            "updated_at": float,
        },
        pk="name",
        not_null={"name", "created_at"},
        defaults={
            "status": "idle",
            "max_steps": 10,
            "concurrency": 1,
            "settings": "{}",
            "tools": "[]",
        },
    )


def _agent_memory(db: sqlite_utils.Database) -> None:
    """An agent's memories, and their full-text index."""
    db["agent_memory"].create(
        {"id": int, "agent": str, "kind": str, "content": str, "job_id": int, "created_at": float},
        pk="id",
        not_null={"agent", "kind", "content", "created_at"},
    )
    db["agent_memory"].create_index(["agent"])
    # full-text search over memories, kept in step by triggers
    db.execute(
        "CREATE VIRTUAL TABLE agent_memory_fts USING fts5(content, content='agent_memory', "
        "content_rowid='id', tokenize='porter unicode61')"
    )
    db.execute(
        "CREATE TRIGGER agent_memory_ai AFTER INSERT ON agent_memory BEGIN "
        "INSERT INTO agent_memory_fts(rowid, content) VALUES (new.id, new.content); END"
    )
    db.execute(
        "CREATE TRIGGER agent_memory_ad AFTER DELETE ON agent_memory BEGIN "
        "INSERT INTO agent_memory_fts(agent_memory_fts, rowid, content) "
        "VALUES ('delete', old.id, old.content); END"
    )


def _activity(db: sqlite_utils.Database) -> None:
    """What an agent's job is doing: one row per job, updated as it goes."""
    db["activity"].create(
        {
            "job_id": int,
            "agent": str,
            "phase": str,  # plan / act / validate / done
            "plan": str,  # JSON
            "criteria": str,  # JSON list
            "messages": str,  # JSON list of chat messages
            "tool_calls": str,  # JSON list: name, args, result, error, seconds
            "validation": str,  # JSON list of verdicts
            "replans": int,
            "steps": int,
            "updated_at": float,
        },
        pk="job_id",
        not_null={"job_id", "agent", "updated_at"},
        defaults={"replans": 0, "steps": 0},
    )


def _chats(db: sqlite_utils.Database) -> None:
    """Chats between a person and agents, and their messages."""
    db["chats"].create(
        {"id": int, "title": str, "agents": str, "created_at": float},
        pk="id",
        not_null={"created_at"},
    )
    db["messages"].create(
        {
            "id": int,
            "chat_id": int,
            "role": str,  # user / agent / error
            "author": str,
            "content": str,
            "job_id": int,
            "created_at": float,
        },
        pk="id",
        not_null={"chat_id", "role", "content", "created_at"},
    )
    db["messages"].create_index(["chat_id", "id"])


def _v2(db: sqlite_utils.Database) -> None:
    # Semantic memory: one unit vector (float32 bytes) per memory, for the workspace's
    # embedding model. Memories are embedded in id order, so every memory up to an
    # agent's highest embedded id has its vector and the rest are the backlog.
    # Searched by numpy over an in-process copy: measured faster than reading the
    # BLOBs per query, and portable where sqlite-vec cannot load (bench/memory.py).
    db.execute(
        "CREATE TABLE agent_memory_vec (id INTEGER PRIMARY KEY, agent TEXT NOT NULL, "
        "model TEXT NOT NULL, vector BLOB NOT NULL)"
    )
    db.execute("CREATE INDEX agent_memory_vec_agent ON agent_memory_vec (agent, model, id)")
    db.execute(
        "CREATE TRIGGER agent_memory_vec_ad AFTER DELETE ON agent_memory BEGIN "
        "DELETE FROM agent_memory_vec WHERE id = old.id; END"
    )


def _v3(db: sqlite_utils.Database) -> None:
    # who must approve what: the persona's tool names that wait for a person (JSON list),
    # and what it approves itself (JSON: true, false or a list of tool names)
    db.execute("ALTER TABLE agents ADD COLUMN approve TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE agents ADD COLUMN auto_approve TEXT NOT NULL DEFAULT 'false'")


#: the agents layer's rows that belong to one job: its activity (plan, steps), the chat
#: messages it posted and its model calls' metering. The replay cache (``llm_cache``) is
#: keyed by request, not by job, and is never removed with jobs: cassettes and the
#: provenance saved in notebooks name its entries.
PER_JOB_TABLES = ("activity", "messages", "llm_calls")


def remove_job_rows(c: sqlite3.Connection, job_ids: list[int]) -> None:
    """Delete what the agents layer keeps of these jobs (in the caller's transaction)."""
    present = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in PER_JOB_TABLES:
        if table not in present:
            continue
        for start in range(0, len(job_ids), 500):
            part = job_ids[start : start + 500]
            c.execute(f"DELETE FROM {table} WHERE job_id IN ({','.join('?' * len(part))})", part)


MIGRATIONS: list[Migration] = [
    (1, "agents, agent_memory (+fts), activity, chats, messages", _v1),
    (2, "agent_memory_vec: embeddings of memories", _v2),
    (3, "agents.approve, agents.auto_approve (approvals)", _v3),
]
