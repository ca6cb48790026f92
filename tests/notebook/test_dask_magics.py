"""%wiz dask in a real kernel: connect, run a notebook-defined body on the cluster,
status and board show the cluster, bad input gives one line."""

from __future__ import annotations


def test_wiz_dask_connects_and_notebook_bodies_run_on_the_workers(kernel, dask_cluster):
    address = dask_cluster.scheduler_address
    kernel.ok(f"""
        %load_ext wiz_jupyter
        import os, wiz_jupyter as wiz
        ws = wiz.workspace()

        @ws.task(executor="dask")
        def where(n: int) -> dict:
            wiz.current_job().log(f"n={{n}}")
            return {{"pid": os.getpid(), "n": n}}

        address = "{address}"
    """)
    assert "dask: off" in kernel.ok("%wiz dask").stdout
    out = kernel.ok("%wiz dask {address}").stdout
    assert f"dask: connected to scheduler {address} (2 workers)" in out
    assert "dashboard http://127.0.0.1:" in out
    kernel.ok("""
        job = ws.jobs.add("where", {"n": 3})
        kernel_pid = os.getpid()
    """)
    res = kernel.ok("%wiz result {job.id} --wait -o r")
    pids = {n.process.pid for n in dask_cluster.workers.values()}
    got = kernel.ok("print(r['pid'], r['n'], kernel_pid, job.logs())").stdout.split(maxsplit=3)
    assert int(got[0]) in pids and int(got[0]) != int(got[2]) and got[1] == "3", res
    assert got[3].strip() == "['n=3']"
    status = kernel.ok("%wiz status").stdout
    assert f"dask: connected to scheduler {address}" in status
    board = kernel.ok("b = ws.board(); print(b.cluster['state'], b.cluster['address'])")
    assert board.stdout.split() == ["connected", address]


def test_wiz_dask_help_and_bad_input(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    assert "ADDRESS|local" in kernel.ok("%wiz dask --help").stdout
    bad = kernel.ok("%wiz dask tcp://127.0.0.1:9 --timeout 2")
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wiz: "), bad.stderr
    assert "Traceback" not in bad.stderr
    assert (
        "argument --workers: expected a number >= 1, got 0"
        in kernel.ok("%wiz dask local --workers 0").stderr
    )
