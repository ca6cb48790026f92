"""Shared fixtures: a fresh workspace on a real SQLite file per test."""

from __future__ import annotations

import asyncio

import pytest

import wiz_jupyter as wiz


@pytest.fixture(scope="session", autouse=True)
def _litellm_loaded():
    """litellm imported once for the session, as in a kernel once its background import is
    done: no test pays the import in its own time. The offline and scripted models answer
    in-process on the LLM layer's direct path (the default) and through litellm's
    custom-provider path with ``llm.direct = False`` (tests/agents/test_offline_models.py);
    tests/agents/test_inprocess.py compares the two."""
    from wiz_jupyter.agents import _litellm

    _litellm.load()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "wiz.db"


@pytest.fixture
async def ws(db_path):
    """A workspace on a fresh file, with short leases so recovery tests are quick."""
    w = wiz.Workspace(db_path, concurrency=8, lease=2.0, poll_interval=0.05)
    yield w
    await w.stop(grace=1)
    w.close()


@pytest.fixture(scope="module")
def dask_cluster():
    """A small real Dask cluster per test module: 2 worker processes x 1 thread on
    loopback (starting processes is the slow part). Dask's own retries are off, as
    wiz_jupyter wants them, and each worker offers one ``GPU`` resource."""
    import logging

    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0", resources={"GPU": 1}, silence_logs=logging.ERROR,
        )  # fmt: skip
    yield cluster
    cluster.close()


async def reach(ws: wiz.Workspace, job: wiz.Job, status: str, timeout: float = 5.0) -> None:
    """Wait, on the workspace's events, until ``job`` has ``status``."""
    arrived = asyncio.Event()

    def check(event: wiz.Event) -> None:
        if event.job_id == job.id:
            arrived.set()

    off = ws.events.on(f"job.{status}", check)
    try:
        if job.status != status:
            await asyncio.wait_for(arrived.wait(), timeout)
    finally:
        off()
