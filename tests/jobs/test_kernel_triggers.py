"""Kernel start and exit schedules, in a real Jupyter kernel (jupyter_client)."""

from __future__ import annotations

import textwrap

import pytest
from jupyter_client.manager import start_new_kernel

import wiz_jupyter as wiz


def run(kc, code: str) -> None:
    reply = kc.execute_interactive(textwrap.dedent(code), timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]


@pytest.fixture
def kernel():
    km, kc = start_new_kernel(kernel_name="python3")
    yield km, kc
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=True)


def test_kernel_start_and_exit_schedules_fire_in_a_real_kernel(kernel, db_path):
    km, kc = kernel
    ws = wiz.Workspace(db_path)
    ws.schedules.add("warm_up", kernel="start")
    ws.schedules.add("save_notes", kernel="exit")
    run(
        kc,
        f"""
        import wiz_jupyter as wiz
        ws = wiz.Workspace({str(db_path)!r})
        await ws.start()
        assert ws.scheduler.in_kernel
    """,
    )
    assert [j.task for j in ws.jobs.list()] == ["warm_up"]
    km.shutdown_kernel(now=False)  # a normal shutdown, as from JupyterLab
    assert [j.task for j in ws.jobs.list()] == ["warm_up", "save_notes"]
    assert ws.schedules.get("warm_up kernel start").run_count == 1


def test_outside_a_kernel_nothing_fires(db_path):
    ws = wiz.Workspace(db_path)
    ws.schedules.add("warm_up", kernel="start")
    assert not ws.scheduler.in_kernel
    ws.scheduler.tick()
    assert ws.jobs.list() == []
