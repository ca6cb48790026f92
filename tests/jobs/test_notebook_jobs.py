"""Notebook jobs: real notebooks executed in real kernels (ipykernel via nbclient)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs.notebooks import parse_value

from ..conftest import reach

pytestmark = pytest.mark.timeout(180)


def make_nb(path: Path, *cells: str | tuple[str, list[str]]) -> Path:
    """A notebook of code cells; ``(source, tags)`` tags a cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for c in cells:
        source, tags = (c, []) if isinstance(c, str) else c
        cell = nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


def kernel_children() -> set[int]:
    """Kernel processes started by this test process (read from /proc, no psutil)."""
    me, found = os.getpid(), set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and b"ipykernel" in cmd:
            found.add(int(d.name))
    return found


async def gone(pids: set[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pids & kernel_children():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_parameters_go_after_the_tagged_cell_and_the_source_is_untouched(ws, tmp_path):
    src = make_nb(
        tmp_path / "report.ipynb",
        "print('setup')",
        ("region = 'us'\nrows = 1", ["parameters"]),
        "print(region, rows * 10)",
    )
    before = digest(src)
    await ws.start()
    job = ws.jobs.add_notebook(src, {"region": "eu", "rows": 5}, timeout=120)
    result = await job.wait(timeout=120)

    assert digest(src) == before  # byte for byte
    out = Path(result["notebook"])
    assert out.parent == Path(ws.runs_dir) and out.name == f"report-{job.id}.ipynb"
    nb = nbformat.read(str(out), as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags[1] == ["parameters"] and tags[2] == ["injected-parameters"]
    assert 'region = "eu"' in nb.cells[2].source
    assert stdout_of(nb.cells[3]) == "eu 50\n"
    meta = nb.metadata["wiz"]
    assert meta["job_id"] == job.id and meta["parameters"] == {"region": "eu", "rows": 5}
    assert meta["status"] == "completed" and meta["duration"] > 0
    assert nb.metadata["papermill"]["parameters"] == {"region": "eu", "rows": 5}
    assert all(c.metadata["papermill"]["status"] == "completed" for c in nb.cells)
    assert "duration" in nb.cells[3].metadata["papermill"]
    assert job.progress == {"done": 4, "of": 4}
    [row] = repr(ws.jobs.list(task="notebook")).splitlines()[2:]
    assert row.split()[:2] == [str(job.id), "completed"] and " 4/4 " in row  # cells, not JSON
    assert result["cells"] == 4 and result["source"] == str(src)


async def test_without_a_tagged_cell_parameters_go_at_the_top(ws, tmp_path):
    src = make_nb(tmp_path / "plain.ipynb", "print(n + 1)")
    await ws.start()
    result = await ws.jobs.add_notebook(src, {"n": 41}).wait(timeout=120)
    nb = nbformat.read(result["notebook"], as_version=4)
    assert nb.cells[0].metadata["tags"] == ["injected-parameters"]
    assert stdout_of(nb.cells[1]) == "42\n"


async def test_a_failing_cell_fails_the_job_naming_the_cell(ws, tmp_path):
    src = make_nb(tmp_path / "broken.ipynb", "x = 1", "y = x / 0", "print('never')")
    await ws.start()
    job = ws.jobs.add_notebook(src)
    with pytest.raises(wiz.JobFailed) as err:
        await job.wait(timeout=120)
    assert job.status == "failed"
    assert (
        "broken.ipynb cell 2 ('y = x / 0') raised ZeroDivisionError: division by zero" in job.error
    )
    out = Path(ws.runs_dir) / f"broken-{job.id}.ipynb"
    assert str(out) in str(err.value)
    nb = nbformat.read(str(out), as_version=4)
    assert nb.cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert nb.cells[2].outputs == [] and nb.metadata["wiz"]["status"] == "failed"
    assert nb.metadata["wiz"]["error"]["cell"] == 1
    assert any("ZeroDivisionError" in line for line in job.logs())


async def test_a_timeout_stops_the_kernel(ws, tmp_path):
    src = make_nb(tmp_path / "slow.ipynb", "print('started')", "import time; time.sleep(120)")
    before = kernel_children()
    await ws.start()
    job = ws.jobs.add_notebook(src, timeout=15)
    while (job.progress or {}).get("done", 0) < 1:  # the kernel is up, the sleep has begun
        await asyncio.sleep(0.05)
    mine = kernel_children() - before
    assert len(mine) == 1
    with pytest.raises(wiz.JobFailed):
        await job.wait(timeout=60)
    assert job.status == "failed" and "timed out after 15 s" in job.error
    assert await gone(mine), "the timed-out notebook's kernel is still running"


async def test_cancel_stops_the_kernel(ws, tmp_path):
    src = make_nb(tmp_path / "long.ipynb", "print('started')", "import time; time.sleep(120)")
    before = kernel_children()
    await ws.start()
    job = ws.jobs.add_notebook(src)
    while (job.progress or {}).get("done", 0) < 1:
        await asyncio.sleep(0.05)
    mine = kernel_children() - before
    assert len(mine) == 1
    assert ws.jobs.cancel(job.id)
    await reach(ws, job, "cancelled", timeout=10)
    assert await gone(mine), "the cancelled notebook's kernel is still running"
    nb = nbformat.read(str(Path(ws.runs_dir) / f"long-{job.id}.ipynb"), as_version=4)
    assert nb.metadata["wiz"]["status"] == "stopped"


async def test_a_pipeline_of_three_notebooks_with_a_failure_handler(ws, tmp_path):
    data = tmp_path / "data.txt"
    extract = make_nb(
        tmp_path / "extract.ipynb",
        ("path = ''", ["parameters"]),
        "open(path, 'w').write('3,4,oops')",
    )
    transform = make_nb(
        tmp_path / "transform.ipynb",
        ("path = ''", ["parameters"]),
        "total = sum(int(v) for v in open(path).read().split(','))",
    )
    load = make_nb(tmp_path / "load.ipynb", "print('loaded')")
    handler = make_nb(
        tmp_path / "on_failure.ipynb",
        ("upstream = None\nreport = ''", ["parameters"]),
        "open(report, 'w').write(f\"{upstream['job']} {upstream['status']}: {upstream['error']}\")",
    )
    report = tmp_path / "failure.txt"

    await ws.start()
    j1 = ws.jobs.add_notebook(extract, {"path": str(data)})
    j2 = ws.jobs.add_notebook(transform, {"path": str(data)}, depends_on=[j1])
    ws.schedules.add(ws.notebook(handler, {"report": str(report)}), after=j2, on="failed")
    j3 = ws.jobs.add_notebook(load, depends_on=[j2])

    await j1.wait(timeout=120)
    with pytest.raises(wiz.JobFailed):
        await j2.wait(timeout=120)
    with pytest.raises(wiz.JobFailed):
        await j3.wait(timeout=120)
    assert "ValueError" in j2.error and "transform.ipynb cell 3" in j2.error
    assert j3.status == "failed"  # its dependency failed: it never ran
    [handled] = ws.jobs.list(task="notebook", newest_first=True)[:1]
    await handled.wait(timeout=120)
    text = report.read_text()
    assert text.startswith(f"{j2.id} failed: ") and "ValueError" in text


async def test_bad_notebook_arguments_are_one_line_errors(ws, tmp_path):
    with pytest.raises(wiz.InvalidJob, match="notebook not found"):
        ws.jobs.add_notebook(tmp_path / "missing.ipynb")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(wiz.InvalidJob, match=r"needs an \.ipynb file"):
        ws.jobs.add_notebook(tmp_path / "notes.txt")
    src = make_nb(tmp_path / "ok.ipynb", "1")
    with pytest.raises(wiz.InvalidJob, match="parameters must be a dict"):
        ws.jobs.add_notebook(src, ["a"])
    with pytest.raises(wiz.InvalidJob, match="notebook not found"):
        ws.schedules.add(tmp_path / "missing.ipynb", cron="0 6 * * *")
    assert ws.jobs.counts()["waiting"] == 0


async def test_a_missing_kernel_fails_the_job_clearly(ws, tmp_path):
    src = make_nb(tmp_path / "k.ipynb", "1")
    await ws.start()
    job = ws.jobs.add_notebook(src, kernel="no-such-kernel")
    with pytest.raises(wiz.JobFailed):
        await job.wait(timeout=60)
    assert "kernel 'no-such-kernel' start" in job.error and "NoSuchKernel" in job.error


def test_parameter_values_parse_as_python_literals():
    assert parse_value("3") == 3 and parse_value("2.5") == 2.5
    assert parse_value("True") is True and parse_value("None") is None
    assert parse_value("[1, 2]") == [1, 2] and parse_value("'x'") == "x"
    assert parse_value("eu-west") == "eu-west"


async def test_the_headless_worker_runs_a_scheduled_notebook_with_no_server(db_path, tmp_path):
    out = tmp_path / "ran.txt"
    src = make_nb(
        tmp_path / "nightly.ipynb",
        ("target = ''", ["parameters"]),
        "import os; open(target, 'w').write(str(os.getpid()))",
    )
    ws = wiz.Workspace(db_path)
    ws.schedules.add(src, {"target": str(out)}, every=3600, start=time.time(), name="nightly")
    ws.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "wiz_jupyter", "worker", "--db", str(db_path), "--grace", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stdout.read()
            await asyncio.sleep(0.2)
        assert out.exists(), "the worker did not run the scheduled notebook"
        ws = wiz.Workspace(db_path)
        [job] = ws.jobs.list(task="notebook")
        deadline = time.monotonic() + 30
        while job.status != "completed" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert job.status == "completed"
        assert int(out.read_text()) not in (os.getpid(), worker.pid)  # its own kernel
        assert Path(job.result["notebook"]).parent == tmp_path / "runs"
        assert (
            json.loads(Path(job.result["notebook"]).read_text())["metadata"]["wiz"]["job_id"]
            == job.id
        )
        ws.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


async def test_a_webhook_payload_reaches_the_notebook_as_a_parameter(ws, tmp_path):
    src = make_nb(
        tmp_path / "on_upload.ipynb",
        ("payload = None\nbucket = 'default'", ["parameters"]),
        "print(bucket, payload['file'])",
    )
    body = b'{"file": "sales.csv"}'
    ws.schedules.add(ws.notebook(src, {"bucket": "raw"}), webhook="landed", secret="s3cret")
    await ws.start()
    [job] = ws.schedules.fire_webhook(
        "landed", {"file": "sales.csv"}, body=body, signature=wiz.sign_webhook("s3cret", body)
    )
    result = await job.wait(timeout=120)
    nb = nbformat.read(result["notebook"], as_version=4)
    assert stdout_of(nb.cells[-1]) == "raw sales.csv\n"
    assert result["parameters"] == {"bucket": "raw", "payload": {"file": "sales.csv"}}
    assert ws.schedules.list()[0].name.startswith("on_upload.ipynb webhook")


EXITS = {  # the last statement of the second cell, and whether papermill calls it a success
    "sys.exit()": True,
    "sys.exit(0)": True,
    "raise SystemExit": True,
    "sys.exit(1)": False,
    "sys.exit('bye')": False,
    "pass": True,
}


@pytest.mark.timeout(300)
async def test_sys_exit_ends_a_notebook_job_as_it_ends_a_papermill_run(ws, tmp_path):
    """Issue 19: sys.exit() / sys.exit(0) / raise SystemExit end a papermill run
    successfully with the cells after it skipped; they failed a notebook job."""
    import papermill

    await ws.start()
    for i, (stmt, ok) in enumerate(EXITS.items()):
        src = make_nb(tmp_path / f"exit{i}.ipynb", "import sys\nx = 1", f"x = 2\n{stmt}", "x = 3")
        try:
            await asyncio.to_thread(
                papermill.execute_notebook, str(src), str(tmp_path / f"pm{i}.ipynb"),
                progress_bar=False, log_output=False,
            )  # fmt: skip
            pm_ok = True
        except papermill.PapermillExecutionError:
            pm_ok = False
        assert pm_ok is ok, stmt
        job = ws.jobs.add_notebook(src)
        try:
            result = await job.wait(timeout=120)
        except wiz.JobFailed:
            result = None
        assert (job.status == "completed") is pm_ok, (stmt, job.error)
        pm_copy = nbformat.read(str(tmp_path / f"pm{i}.ipynb"), as_version=4)
        ours = nbformat.read(str(Path(ws.runs_dir) / f"exit{i}-{job.id}.ipynb"), as_version=4)

        # the same cells ran: the last one only when nothing exited
        def ran(nb):  # papermill adds markdown cells around an error: code cells only
            return [c.get("execution_count") is not None for c in nb.cells if c.cell_type == "code"]

        assert ran(ours) == ran(pm_copy), stmt
        if pm_ok and stmt != "pass":
            assert result["exited_at_cell"] == 2 and ours.metadata["wiz"]["exited"] == {"cell": 1}
            assert ours.cells[2].metadata["papermill"]["status"].startswith("not run")
