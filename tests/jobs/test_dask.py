"""Job bodies on a real Dask LocalCluster (2 worker processes x 1 thread, loopback).

The queue stays in the test's process: claims, leases, attempts, events and results
in its SQLite file; only the bodies travel to the workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import get_worker

import wiz_jupyter as wiz
from tests.conftest import reach

# -- bodies (module level: the workers import them by reference) ---------------------------------


def whoami(n: int, job) -> dict:
    job.log(f"working on {n}")
    job.progress(50)
    assert wiz.current_job() is job  # the remote context, in the worker's thread
    job.progress(100)
    return {"n": n, "pid": os.getpid()}


def big(n: int, job) -> str:
    for i in range(3):
        job.log(f"line {i}")
    return "x" * n


def square(x: int) -> int:
    return x * x


def spin(marker: str, seconds: float = 60.0) -> str:
    """Report that it runs, then wait until cancelled; leave a marker when it notices."""
    job = wiz.current_job()
    job.progress({"pid": os.getpid()})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if job.cancelled:
            Path(marker).write_text("noticed")
            return "cancelled"
        time.sleep(0.02)
    return "finished"


def fragile(job) -> int:
    """The first attempt waits to be killed; the next one completes."""
    job.progress({"pid": os.getpid(), "attempt": job.attempt})
    if job.attempt == 1:
        time.sleep(60)
    return os.getpid()


def fan_out(n: int, job) -> str:
    for i in range(n):
        job.add_child("local_square", {"x": i})
    return "spawned"


def unstorable() -> object:
    return object()


def resources_seen() -> dict:
    w = get_worker()
    running = [ts for ts in w.state.tasks.values() if ts.state == "executing"]
    return running[0].resource_restrictions


def touch(marker: str) -> int:
    Path(marker).write_text("ran")
    return os.getpid()


def slow(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def cluster(dask_cluster):
    return dask_cluster


def worker_pids(cluster) -> set[int]:
    return {n.process.pid for n in cluster.workers.values()}


@pytest.fixture
async def dws(db_path, cluster):
    """A workspace whose Dask tasks run on the module's cluster."""
    w = wiz.Workspace(db_path, concurrency=8, lease=2.0, poll_interval=0.05)
    w.use_dask(cluster.scheduler_address)
    await w.start()
    await w.dask
    yield w
    await w.stop(grace=1)
    w.close()


async def first_progress(ws: wiz.Workspace, job: wiz.Job, timeout: float = 30.0):
    """Wait for the body's first progress report (it is running on a worker)."""
    got = asyncio.get_running_loop().create_future()

    def check(event: wiz.Event) -> None:
        if event.job_id == job.id and not got.done():
            got.set_result(event.data["progress"])

    off = ws.events.on("job.progress", check)
    try:
        return await asyncio.wait_for(got, timeout)
    finally:
        off()


async def until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- tests ---------------------------------------------------------------------------------------


async def test_bodies_run_in_worker_processes_and_report_back(dws, cluster):
    dws.task(whoami, executor="dask")
    jobs = [dws.jobs.add("whoami", {"n": n}) for n in range(4)]
    results = [await j.wait(timeout=60) for j in jobs]
    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids
    assert pids <= worker_pids(cluster)
    assert [r["n"] for r in results] == [0, 1, 2, 3]
    for j in jobs:  # lines sent on the worker are recorded before the job completes
        assert j.logs() == [f"working on {j.data['n']}"]
        assert j.progress == 100
        assert j.attempts_made == 1
    assert "connected" in dws.dask.summary() and "2 workers" in dws.dask.summary()


async def test_small_and_large_results_come_back_whole_after_their_lines(dws):
    dws.task(big, executor="dask")
    small, large = dws.jobs.add("big", {"n": 10}), dws.jobs.add("big", {"n": 100_000})
    assert await small.wait(timeout=60) == "x" * 10  # the reply rides the event stream
    assert await large.wait(timeout=60) == "x" * 100_000  # fetched from the worker
    assert small.logs() == large.logs() == ["line 0", "line 1", "line 2"]


async def test_local_and_dask_tasks_in_one_dependency_chain(dws):
    dws.task(square, executor="dask")

    @dws.task
    def local_square(x: int) -> dict:
        return {"x": x * x, "pid": os.getpid()}

    a = dws.jobs.add("square", {"x": 2})
    b = dws.jobs.add("local_square", {"x": 3}, depends_on=[a])
    c = dws.jobs.add("square", {"x": 4}, depends_on=[b])
    assert await c.wait(timeout=60) == 16
    assert a.result == 4 and b.result["pid"] == os.getpid()
    assert a.finished_at <= b.started_at and b.finished_at <= c.started_at


async def test_parents_and_children_across_local_and_dask(dws):
    dws.task(square, executor="dask")
    dws.task(fan_out, executor="dask")

    @dws.task
    def local_square(x: int) -> int:
        return x * x

    @dws.task
    def local_parent(n: int, job) -> str:
        for i in range(n):
            job.add_child("square", {"x": i})
        return "spawned"

    remote_parent = dws.jobs.add("fan_out", {"n": 3})  # a Dask body adds local children
    local_parent_job = dws.jobs.add("local_parent", {"n": 3})  # and the other way round
    assert await remote_parent.wait(timeout=60) == "spawned"
    assert await local_parent_job.wait(timeout=60) == "spawned"
    for parent in (remote_parent, local_parent_job):
        kids = parent.children()
        assert sorted(parent.children_results().values()) == [0, 1, 4]
        assert all(k.finished_at <= parent.finished_at for k in kids)
    assert {k.task for k in remote_parent.children()} == {"local_square"}
    assert {k.task for k in local_parent_job.children()} == {"square"}


async def test_cancel_stops_the_remote_body(dws, tmp_path):
    dws.task(spin, executor="dask")
    marker = tmp_path / "cancelled"
    job = dws.jobs.add("spin", {"marker": str(marker)})
    await first_progress(dws, job)
    assert job.cancel()
    assert job.status == "cancelled"
    await until(marker.exists, what="the worker to see the Dask future cancelled")
    dws.task(square, executor="dask")
    assert await dws.jobs.add("square", {"x": 5}).wait(timeout=60) == 25  # the worker is free


async def test_a_timeout_fails_the_job_and_cancels_the_remote_body(dws, tmp_path):
    dws.task(spin, executor="dask", timeout=1.5)
    marker = tmp_path / "timed-out"
    job = dws.jobs.add("spin", {"marker": str(marker)})
    with pytest.raises(wiz.JobFailed, match=r"timed out after 1\.5 s"):
        await job.wait(timeout=60)
    assert job.fail_reason == "timeout"
    await until(marker.exists, what="the worker to see the Dask future cancelled")


async def test_a_timeout_counts_from_the_bodys_start_not_its_wait_in_dasks_queue(dws):
    """Six 0.6 s bodies on two 1-thread workers, all claimed at once: the last pair waits
    about 1.2 s in Dask's queue, and none of them runs for its 1 s timeout."""
    dws.task(slow, executor="dask", timeout=1.0)
    jobs = dws.jobs.add_bulk([("slow", {"seconds": 0.6}) for _ in range(6)])
    pids = [await j.wait(timeout=60) for j in jobs]
    assert len(set(pids)) == 2
    for j in jobs:
        j.refresh()
    # the last finished more than its timeout after its claim: counted from there, it failed
    assert max(j.finished_at for j in jobs) - min(j.started_at for j in jobs) > 1.0
    assert all(j.attempts_made == 1 for j in jobs)


async def test_a_job_with_a_timeout_cancelled_while_queued_in_dask_never_runs(dws, tmp_path):
    dws.task(spin, executor="dask")
    dws.task(touch, executor="dask", timeout=30)
    markers = [tmp_path / f"spin{i}" for i in range(2)]
    busy = [dws.jobs.add("spin", {"marker": str(m)}) for m in markers]
    await until(lambda: all(j.refresh().progress for j in busy), what="both workers taken")
    ran = tmp_path / "ran"
    queued = dws.jobs.add("touch", {"marker": str(ran)})
    await reach(dws, queued, "active", timeout=30)  # claimed, submitted, waiting in Dask
    assert queued.cancel()
    await until(lambda: queued.id not in dws.runtime.active_ids, what="the runtime to drop it")
    for j in busy:
        j.cancel()
    for m in markers:
        await until(m.exists, what="the spinning bodies to stop")
    after = tmp_path / "after"
    assert await dws.jobs.add("touch", {"marker": str(after)}).wait(timeout=60) > 0
    await asyncio.sleep(0.5)
    assert after.exists() and not ran.exists()  # Dask dropped the queued body
    assert queued.refresh().status == "cancelled" and queued.attempts_made == 1


async def test_a_cluster_made_here_has_its_workers_import_the_package_before_any_job(db_path):
    """The import (0.15 s or more in a fresh worker process) happens when the kernel
    connects, not on each worker's first job."""
    ws = wiz.Workspace(db_path, poll_interval=0.05)
    ws.use_dask("local", n_workers=1)
    await ws.start()
    try:
        await ws.dask
        client = ws.dask.client

        async def imported() -> bool:
            seen = await client.run(lambda: "wiz_jupyter.jobs.dask_worker" in sys.modules)
            return len(seen) == 1 and all(seen.values())

        deadline = time.monotonic() + 30
        while not await imported():
            assert time.monotonic() < deadline, "the worker never imported wiz_jupyter"
            await asyncio.sleep(0.05)
        assert ws.jobs.counts()["completed"] == 0  # no job has run there yet
        ws.task(square, executor="dask")
        assert await ws.jobs.add("square", {"x": 3}).wait(timeout=60) == 9
    finally:
        await ws.stop(grace=1)
        ws.close()


async def test_the_lease_is_renewed_while_the_remote_body_runs(db_path, cluster):
    ws = wiz.Workspace(db_path, lease=0.6, poll_interval=0.05)
    ws.use_dask(cluster.scheduler_address)
    ws.task(slow, executor="dask")
    await ws.start()
    try:
        job = ws.jobs.add("slow", {"seconds": 2.5})
        await reach(ws, job, "active", timeout=30)
        first = ws.store.read("SELECT lease_expires FROM jobs WHERE id = ?", (job.id,))[0][0]
        await asyncio.sleep(1.5)  # more than twice the lease
        later = ws.store.read("SELECT lease_expires FROM jobs WHERE id = ?", (job.id,))[0][0]
        assert later > first and later > time.time()
        assert job.status == "active"
        await job.wait(timeout=60)
        assert job.attempts_made == 1
        assert not [e for e in job.events() if e["event"] in ("job.waiting", "job.failed")]
    finally:
        await ws.stop(grace=1)
        ws.close()


async def test_a_result_that_cannot_be_stored_fails_clearly_without_retrying(dws):
    dws.task(unstorable, executor="dask", attempts=3)
    job = dws.jobs.add("unstorable")
    with pytest.raises(wiz.JobFailed, match="result is not JSON-serialisable: object is not"):
        await job.wait(timeout=60)
    assert job.attempts_made == 1


async def test_resource_annotations_pass_through(dws):
    dws.task(resources_seen, executor="dask", resources={"GPU": 1})
    assert await dws.jobs.add("resources_seen").wait(timeout=60) == {"GPU": 1}


async def test_a_sync_client_or_a_cluster_object_is_joined_by_an_async_client(db_path, cluster):
    from distributed import Client

    sync_client = await asyncio.to_thread(Client, cluster.scheduler_address, set_as_default=False)
    try:
        for target in (sync_client, cluster):  # a Client; an object with a scheduler_address
            ws = wiz.Workspace(db_path, poll_interval=0.05)
            ws.task(square, executor="dask")
            ws.use_dask(target)
            await ws.start()
            try:
                assert (await ws.dask).client is not sync_client
                assert ws.dask.address == cluster.scheduler_address
                assert await ws.jobs.add("square", {"x": 9}).wait(timeout=60) == 81
            finally:
                await ws.stop(grace=1)
                ws.close()
        assert sync_client.status == "running"  # the user's client is left alone
    finally:
        await asyncio.to_thread(sync_client.close)


async def test_an_async_client_on_the_runtimes_loop_is_used_as_it_is(db_path, cluster):
    from distributed import Client

    async with Client(cluster.scheduler_address, asynchronous=True, set_as_default=False) as c:
        ws = wiz.Workspace(db_path, poll_interval=0.05)
        ws.task(square, executor="dask")
        ws.use_dask(c)
        await ws.start()
        assert (await ws.dask).client is c
        assert await ws.jobs.add("square", {"x": 4}).wait(timeout=60) == 16
        await ws.stop(grace=1)
        ws.close()
        assert c.status == "running"  # not ours to close
        assert await c.submit(square, 3) == 9


def test_bad_options_are_refused_in_one_line(db_path):
    ws = wiz.Workspace(db_path)
    with pytest.raises(ValueError, match='use them with executor="dask"'):
        ws.task(square, resources={"GPU": 1})
    with pytest.raises(ValueError, match="resources map names to amounts"):
        ws.task(square, executor="dask", resources={"GPU": "one"})
    with pytest.raises(wiz.InvalidJob, match="use_dask takes 'local', a scheduler address"):
        ws.use_dask(42)
    with pytest.raises(wiz.InvalidJob, match=r"n_workers is for use_dask\('local'\)"):
        ws.use_dask("tcp://127.0.0.1:8786", n_workers=2)
    ws.close()


async def test_dask_jobs_wait_unclaimed_until_a_cluster_is_given(db_path, cluster):
    ws = wiz.Workspace(db_path, poll_interval=0.05)
    ws.task(square, executor="dask")
    job = ws.jobs.add("square", {"x": 7})
    await ws.run_until_idle(timeout=5)  # idle: nothing this process can run yet
    assert job.status == "waiting"
    ws.use_dask(cluster.scheduler_address)
    await ws.run_until_idle(timeout=60)
    assert job.result == 49
    ws.close()


def test_dask_is_imported_only_when_a_cluster_is_used(tmp_path):
    script = """
import sys
import wiz_jupyter as wiz
ws = wiz.Workspace(sys.argv[1])
ws.task(len, name="remote_len", executor="dask")  # registering a Dask task imports nothing
print("distributed" in sys.modules, "dask" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "w.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_without_the_extra_the_package_loads_and_asking_for_dask_says_which_extra(tmp_path):
    script = """
import sys
sys.modules["distributed"] = None  # as if the dask extra were not installed
import wiz_jupyter as wiz
from wiz_jupyter.notebook import magics  # noqa: F401 - the notebook layer loads too
ws = wiz.Workspace(sys.argv[1])
for ask in (lambda: ws.use_dask("local"), lambda: ws.task(len, executor="dask")):
    try:
        ask()
    except wiz.WizError as e:
        print(type(e).__name__, str(e))
"""
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "w.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    extra = "Dask support needs the dask extra: pip install 'wiz_jupyter[dask]'"
    assert out.stdout.splitlines() == [f"MissingExtra {extra}"] * 2


async def test_use_dask_on_a_running_runtime_starts_the_waiting_jobs(db_path, cluster):
    ws = wiz.Workspace(db_path, poll_interval=0.05)
    ws.task(square, executor="dask")
    await ws.start()
    try:
        job = ws.jobs.add("square", {"x": 6})
        await asyncio.sleep(0.3)  # the runtime looked, and found nothing it could run
        assert job.status == "waiting"
        ws.use_dask(cluster.scheduler_address)
        assert await job.wait(timeout=60) == 36
    finally:
        await ws.stop(grace=1)
        ws.close()


async def test_stopping_releases_a_remote_job_and_cancels_its_body(db_path, cluster, tmp_path):
    ws = wiz.Workspace(db_path, poll_interval=0.05)
    ws.use_dask(cluster.scheduler_address)
    ws.task(spin, executor="dask")
    await ws.start()
    marker = tmp_path / "stopped"
    job = ws.jobs.add("spin", {"marker": str(marker)})
    await first_progress(ws, job)
    await ws.stop(grace=0)
    assert job.status == "waiting" and job.attempts_made == 0  # back in the queue, not lost
    await until(marker.exists, what="the worker to see the Dask future cancelled")
    ws.close()


# last: it kills a worker (the nanny starts a new one)
async def test_a_killed_worker_is_one_failed_attempt_retried_on_another_worker(dws, cluster):
    dws.task(fragile, executor="dask", attempts=3)
    job = dws.jobs.add("fragile")
    seen = await first_progress(dws, job)
    assert seen["attempt"] == 1 and seen["pid"] in worker_pids(cluster)
    os.kill(seen["pid"], signal.SIGKILL)
    pid = await job.wait(timeout=90)
    assert pid != seen["pid"] and pid != os.getpid()
    assert job.attempts_made == 2  # once for the lost worker, once for the success
    failed = [e for e in job.events() if e["event"] == "job.waiting" and e["data"].get("error")]
    assert len(failed) == 1
    assert "died while running it" in failed[0]["data"]["error"]
    # its nanny starts a worker in its place; the scheduler (asked, not the client's cached
    # view, which may still count the dead one) has two running workers again
    assert await dws.dask.wait_for_workers(2) == 2
    with pytest.raises(wiz.WizError, match=r"^dask: 2 of 5 workers running after 0.3 s$"):
        await dws.dask.wait_for_workers(5, timeout=0.3)
