"""The `wiz` command line, run as a subprocess against a database shared with this process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wiz_jupyter as wiz

TASKS = textwrap.dedent(
    """
    import os
    import asyncio
    import wiz_jupyter as wiz

    ws = wiz.workspace()

    @ws.task
    async def hello(name: str = "world") -> str:
        return f"hello {name} from {os.getpid()}"

    @ws.task
    async def nap(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"
    """
)


def wiz_cli(*args: str, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "wiz_jupyter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


@pytest.fixture
def tasks_file(tmp_path):
    path = tmp_path / "my_tasks.py"
    path.write_text(TASKS)
    return path


def test_jobs_and_schedules_list_what_this_process_added(db_path):
    ws = wiz.Workspace(db_path)
    ws.jobs.add("hello", {"name": "ada"})
    bad = ws.jobs.add("hello")
    ws.jobs.cancel(bad)
    ws.schedules.add("hello", every=60, name="minutely")
    ws.schedules.add("hello", webhook="gh", secret="top-secret", name="hook")
    out = wiz_cli("jobs", "--db", str(db_path))
    assert out.returncode == 0, out.stderr
    assert "waiting 1, cancelled 1" in out.stdout
    assert "cancelled  hello" in out.stdout
    rows = json.loads(wiz_cli("jobs", "--db", str(db_path), "--status", "waiting", "--json").stdout)
    assert [(r["task"], r["data"]) for r in rows] == [("hello", {"name": "ada"})]
    listed = wiz_cli("schedules", "--db", str(db_path))
    assert "minutely" in listed.stdout and "hook" in listed.stdout
    as_json = wiz_cli("schedules", "--db", str(db_path), "--json").stdout
    assert [s["name"] for s in json.loads(as_json)] == ["minutely", "hook"]
    assert "top-secret" not in as_json + listed.stdout


def test_bad_arguments_give_a_short_usage_message(db_path, tmp_path):
    out = wiz_cli("jobs", "--status", "done")
    assert out.returncode == 2 and "invalid choice" in out.stderr and "Traceback" not in out.stderr
    garbage = tmp_path / "notes.db"
    garbage.write_text("not a database")
    out = wiz_cli("jobs", "--db", str(garbage))
    assert out.returncode == 2
    assert out.stderr.startswith("wiz: ") and "not a SQLite database" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_due_fires_due_schedules_works_them_and_exits(db_path, tasks_file):
    ws = wiz.Workspace(db_path)
    ws.schedules.add("hello", {"name": "cron"}, every=3600, start=0, name="overdue")
    ws.schedules.add("hello", every=3600, name="later")
    out = wiz_cli("run-due", "--db", str(db_path), "--tasks", str(tasks_file))
    assert out.returncode == 0, out.stderr
    assert "1 jobs fired, 0 failed" in out.stdout
    [job] = ws.schedules.runs("overdue")
    assert job.status == "completed" and job.result.startswith("hello cron from ")
    assert ws.schedules.runs("later") == []


async def test_the_headless_worker_works_jobs_and_stops_gracefully(db_path, tasks_file):
    ws = wiz.Workspace(db_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wiz_jupyter", "worker", "--db", str(db_path), "--tasks", str(tasks_file), "--grace", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = await asyncio.to_thread(proc.stdout.readline)
        assert "tasks hello, nap" in first
        job = ws.jobs.add("hello", {"name": "notebook"})
        assert await job.wait(timeout=20) == f"hello notebook from {proc.pid}"
        sleeper = ws.jobs.add("nap", {"seconds": 30})
        while sleeper.status != "active":
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        proc.kill()
    assert "stopping" in proc.stdout.read()
    assert sleeper.status == "waiting"  # released back to the queue, not lost
    assert sleeper.attempts_made == 0


def test_autowake_installs_and_removes_a_crontab_entry(db_path, tasks_file):
    crontab = shutil.which("crontab")
    assert crontab, "crontab is needed (Debian package cron; .ci/run installs it)"
    before = subprocess.run([crontab, "-l"], capture_output=True, text=True)
    try:
        out = wiz_cli(
            "autowake", "install", "--db", str(db_path), "--tasks", str(tasks_file), "--every", "10"
        )
        assert out.returncode == 0, out.stderr
        table = subprocess.run([crontab, "-l"], capture_output=True, text=True).stdout
        [line] = [x for x in table.splitlines() if x.endswith(f"# wiz-autowake {db_path}")]
        assert line.startswith("*/10 * * * * cd ")
        assert f"-m wiz_jupyter run-due --db {db_path} --tasks {tasks_file}" in line
        status = wiz_cli("autowake", "status", "--db", str(db_path)).stdout
        assert line in status
        wiz_cli("autowake", "install", "--db", str(db_path))  # again: replaced, not doubled
        table = subprocess.run([crontab, "-l"], capture_output=True, text=True).stdout
        assert table.count("# wiz-autowake") == 1
        assert wiz_cli("autowake", "remove", "--db", str(db_path)).returncode == 0
        assert (
            "wiz-autowake"
            not in subprocess.run([crontab, "-l"], capture_output=True, text=True).stdout
        )
        assert "autowake is off" in wiz_cli("autowake", "status", "--db", str(db_path)).stdout
    finally:
        if before.returncode == 0:
            subprocess.run([crontab, "-"], input=before.stdout, text=True, check=True)
        else:
            subprocess.run([crontab, "-r"], capture_output=True)


def test_wiz_console_script_is_installed():
    exe = shutil.which("wiz", path=os.path.dirname(sys.executable))
    assert exe, "the `wiz` console script should be installed beside python"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "worker" in out.stdout


def test_autowake_at_boot_adds_a_worker_entry_with_a_stand_in_crontab(
    db_path, tasks_file, tmp_path
):
    # A stand-in for crontab(1) that keeps the table in a file: the user's real crontab
    # is not touched (WIZ_CRONTAB names the program to call).
    table = tmp_path / "table"
    fake = tmp_path / "crontab"
    fake.write_text(
        f'#!/bin/sh\nif [ "$1" = -l ]; then cat {table} 2>/dev/null || exit 1; '
        f"else cat > {table}; fi\n"
    )
    fake.chmod(0o755)
    table.write_text("0 1 * * * echo mine\n")
    env = {**os.environ, "WIZ_CRONTAB": str(fake)}
    out = wiz_cli("autowake", "install", "--db", str(db_path), "--tasks", str(tasks_file),
                  "--at-boot", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = table.read_text().splitlines()
    assert lines[0] == "0 1 * * * echo mine"
    assert lines[1].startswith("*/5 * * * * cd ") and "run-due" in lines[1]
    assert lines[2].startswith("@reboot cd ") and lines[2].endswith(
        f"# wiz-autowake-boot {db_path}"
    )
    assert f"-m wiz_jupyter worker --db {db_path} --tasks {tasks_file} >> " in lines[2]
    status = wiz_cli("autowake", "status", "--db", str(db_path), env=env).stdout
    assert status.splitlines() == lines[1:]
    wiz_cli("autowake", "install", "--db", str(db_path), env=env)  # without: the boot entry goes
    assert "@reboot" not in table.read_text() and table.read_text().count("wiz-autowake") == 1
    wiz_cli("autowake", "install", "--db", str(db_path), "--at-boot", env=env)
    assert wiz_cli("autowake", "remove", "--db", str(db_path), env=env).returncode == 0
    assert table.read_text() == "0 1 * * * echo mine\n"


async def test_the_headless_worker_runs_dask_bodies_on_a_cluster(db_path, tmp_path, dask_cluster):
    tasks = tmp_path / "dask_tasks.py"
    tasks.write_text(
        textwrap.dedent(
            """
            import os
            import wiz_jupyter as wiz

            ws = wiz.workspace()

            @ws.task(executor="dask")
            def where(n: int) -> list:
                return [n, os.getpid()]
            """
        )
    )
    address = dask_cluster.scheduler_address
    ws = wiz.Workspace(db_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wiz_jupyter", "worker", "--db", str(db_path), "--tasks", str(tasks),
         "--dask", address, "--grace", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = await asyncio.to_thread(proc.stdout.readline)
        assert f"dask: connected to scheduler {address} (2 workers)" in first
        job = ws.jobs.add("where", {"n": 5})
        n, pid = await job.wait(timeout=60)
        workers = {w.process.pid for w in dask_cluster.workers.values()}
        assert n == 5 and pid in workers and pid != proc.pid
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        proc.kill()


def test_the_worker_without_a_reachable_cluster_says_so_in_one_line(db_path, tasks_file):
    out = wiz_cli(
        "worker", "--db", str(db_path), "--tasks", str(tasks_file), "--dask", "nonsense://x"
    )
    assert out.returncode == 2
    assert out.stderr.startswith("wiz: could not connect to Dask at nonsense://x")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_run_a_notebook_from_the_shell(db_path, tmp_path):
    from tests.jobs.test_notebook_jobs import make_nb

    src = make_nb(tmp_path / "report.ipynb", ("n = 1", ["parameters"]), "print('n is', n)")
    out = wiz_cli("run", str(src), "-p", "n", "41", "--db", str(db_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("job 1: 3 cells in ") and "report-1.ipynb" in out.stdout
    copy = Path(out.stdout.rsplit("-> ", 1)[1].strip())
    assert "n is 41" in copy.read_text()

    bad = make_nb(tmp_path / "bad.ipynb", "1 / 0")
    out = wiz_cli("run", str(bad), "--db", str(db_path))
    assert out.returncode == 1 and out.stderr.startswith("wiz: job 2 failed: NotebookFailed: ")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr

    out = wiz_cli("run", str(src), "--db", str(db_path), "--background")
    assert out.returncode == 0 and out.stdout.strip() == "job 3: report.ipynb waits for a worker"
    ws = wiz.Workspace(db_path)
    assert ws.jobs.get(3).status == "waiting"
    ws.close()
    out = wiz_cli("run", str(tmp_path / "nope.ipynb"), "--db", str(db_path))
    assert out.returncode == 2 and out.stderr.startswith("wiz: notebook not found")
