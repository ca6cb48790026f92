"""System-event triggers: boot, system idle, shutdown and network available.

Probes are injected the way a user can: the boot id and the idle seconds from
files (``source="file:PATH"``), a fake ``xprintidle`` on PATH, and a real TCP
server on 127.0.0.1 for the network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs import system


@pytest.fixture
def clock():
    return wiz.ManualClock("2026-11-24T09:00:00+00:00")


def tasks(tmp_path, body: str = ""):
    path = tmp_path / "my_tasks.py"
    path.write_text(
        textwrap.dedent(
            """
            import asyncio, os
            import wiz_jupyter as wiz
            ws = wiz.workspace()

            @ws.task
            async def hello(**data) -> int:
                return os.getpid()
            """
        )
        + textwrap.dedent(body)
    )
    return path


# -- boot ----------------------------------------------------------------------------------------


def test_boot_fires_once_per_boot_across_workspaces_and_again_on_a_new_boot(
    db_path, tmp_path, clock
):
    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    a = wiz.Workspace(db_path, clock=clock)
    b = wiz.Workspace(db_path, clock=clock)
    s = a.schedules.add("hello", trigger=wiz.Boot(source=f"file:{boot}"), overlap="allow")
    assert s.trigger["params"] == {"source": f"file:{boot}", "added_in": "boot-1"}
    assert s.description == "on boot"
    for ws in (a, b):
        ws.scheduler.tick()
    assert s.runs() == []  # the boot it was added in does not count
    boot.write_text("boot-2\n")  # the machine restarted
    for _ in range(3):
        for ws in (a, b):
            ws.scheduler.tick()
        clock.advance(60)
    [job] = s.runs()
    assert job.data == {"boot_id": "boot-2"} and job.key.endswith(":boot:boot-2")
    boot.write_text("boot-3\n")
    clock.advance(60)
    b.scheduler.tick()
    a.scheduler.tick()
    assert [j.data["boot_id"] for j in s.runs()] == ["boot-2", "boot-3"]
    a.close()
    b.close()


def test_boot_by_name_uses_the_machines_boot_id(db_path):
    ws = wiz.Workspace(db_path)
    s = ws.schedules.add("hello", trigger="boot")
    current = system.boot_id()
    assert current and s.trigger["params"] == {"source": "auto", "added_in": current}
    if os.path.exists("/proc/sys/kernel/random/boot_id"):
        assert current == open("/proc/sys/kernel/random/boot_id").read().strip()
    ws.scheduler.tick()
    assert s.runs() == []
    ws.close()


def test_boot_fires_once_when_two_processes_see_the_same_boot(db_path, tmp_path):
    boot = tmp_path / "boot_id"
    boot.write_text("old-boot")
    ws = wiz.Workspace(db_path)
    s = ws.schedules.add("hello", trigger=wiz.Boot(source=f"file:{boot}"))
    boot.write_text("new-boot")
    spec = str(tasks(tmp_path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wiz_jupyter", "run-due", "--db", str(db_path), "--tasks", spec],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    [job] = s.runs()
    assert job.status == "completed" and job.result in {p.pid for p in procs}
    assert sorted(o[0].split(":")[1].strip() for o in outs) == [
        "0 jobs fired, 0 failed",
        "1 jobs fired, 0 failed",
    ]
    ws.close()


async def test_boot_seen_by_a_headless_worker_and_a_kernel_fires_once(db_path, tmp_path):
    from jupyter_client.manager import start_new_kernel

    boot = tmp_path / "boot_id"
    boot.write_text("old-boot")
    ws = wiz.Workspace(db_path)
    s = ws.schedules.add("hello", trigger=wiz.Boot(source=f"file:{boot}"))
    boot.write_text("new-boot")
    spec = str(tasks(tmp_path))
    worker = subprocess.Popen(
        [sys.executable, "-m", "wiz_jupyter", "worker", "--db", str(db_path), "--tasks", spec],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        code = f"""
            import wiz_jupyter as wiz
            ws = wiz.Workspace({str(db_path)!r})
            await ws.start()
        """
        reply = await asyncio.to_thread(kc.execute_interactive, textwrap.dedent(code), timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert "1 active schedules" in await asyncio.to_thread(worker.stdout.readline)
        [job] = s.runs()
        assert await job.wait(timeout=30) == worker.pid  # only the worker has the handler
        assert job.data == {"boot_id": "new-boot"}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
    assert len(s.runs()) == 1
    ws.close()


def test_a_boot_trigger_that_cannot_tell_the_boot_never_fires_and_says_so(
    db_path, tmp_path, clock, caplog
):
    ws = wiz.Workspace(db_path, clock=clock)
    missing = f"file:{tmp_path / 'no_such_file'}"
    s = ws.schedules.add("hello", trigger=wiz.Boot(source=missing))
    with caplog.at_level(logging.WARNING, logger="wiz_jupyter.scheduler"):
        for _ in range(3):
            ws.scheduler.tick()
            clock.advance(60)
    assert s.runs() == []
    assert [r.message for r in caplog.records].count(
        "wiz: the boot trigger cannot tell this machine's boot; it never fires"
    ) == 1
    with pytest.raises(wiz.InvalidSchedule, match="'auto' or 'file:PATH'"):
        wiz.Boot(source="/proc/whatever")
    ws.close()


# -- system idle ---------------------------------------------------------------------------------


def test_system_idle_fires_once_per_idle_period_in_one_of_two_workspaces(db_path, tmp_path, clock):
    idle = tmp_path / "idle_seconds"
    idle.write_text("3")
    a = wiz.Workspace(db_path, clock=clock)
    b = wiz.Workspace(db_path, clock=clock)
    s = a.schedules.add(
        "hello", trigger=wiz.SystemIdle(minutes=10, source=f"file:{idle}", poll=5), overlap="allow"
    )
    assert s.description == "system idle 10 min"

    def tick(seconds: str | None = None) -> None:
        if seconds is not None:
            idle.write_text(seconds)
        clock.advance(5)
        a.scheduler.tick()
        b.scheduler.tick()

    tick()
    tick("599")
    assert s.runs() == []
    tick("601")
    tick("700")
    tick("1000")
    [first] = s.runs()
    assert first.data == {"idle_seconds": 601.0}
    tick("2")  # someone moved the mouse
    tick("650")
    tick("660")
    assert [j.data["idle_seconds"] for j in s.runs()] == [601.0, 650.0]
    # A workspace that starts in the middle of an idle period that already fired stays quiet.
    c = wiz.Workspace(db_path, clock=clock)
    c.scheduler.tick()
    clock.advance(5)
    c.scheduler.tick()
    assert len(s.runs()) == 2
    for ws in (a, b, c):
        ws.close()


async def test_system_idle_reads_xprintidle_without_blocking_the_loop(
    db_path, tmp_path, monkeypatch
):
    fake = tmp_path / "bin" / "xprintidle"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 900000\n")  # milliseconds, as xprintidle prints
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":99")
    assert system.idle_probes()[0][0] == ("ioreg" if sys.platform == "darwin" else "xprintidle")
    ws = wiz.Workspace(db_path, poll_interval=0.02)
    s = ws.schedules.add("hello", trigger=wiz.SystemIdle(minutes=10, poll=0.05))
    await ws.start()
    try:
        for _ in range(200):
            if s.runs():
                break
            await asyncio.sleep(0.02)
        [job] = s.runs()
        assert job.data == {"idle_seconds": 900.0}
    finally:
        await ws.stop(grace=1)
        ws.close()


def test_the_logind_and_macos_probes_read_what_those_tools_print(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    since_us = int((time.time() - 125) * 1e6)
    (bin_ / "loginctl").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = show-session ] && [ "$2" = 7 ]; then '
        f'printf "IdleHint=$(cat {tmp_path}/hint)\\nIdleSinceHint={since_us}\\n"; else exit 1; fi\n'
    )
    (bin_ / "ioreg").write_text(
        "#!/bin/sh\necho '    |   \"HIDIdleTime\" = 42000000000'\n"  # nanoseconds
    )
    for f in bin_.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_SESSION_ID", "7")
    monkeypatch.delenv("DISPLAY", raising=False)
    (tmp_path / "hint").write_text("yes")
    assert 124 < system._logind() < 135
    (tmp_path / "hint").write_text("no")
    assert system._logind() == 0.0
    assert system._ioreg() == 42.0
    if sys.platform != "darwin":
        assert [name for name, _ in system.idle_probes()] == ["logind"]


def test_system_idle_where_the_os_cannot_tell_never_fires_and_says_so_once(
    db_path, clock, monkeypatch, caplog
):
    monkeypatch.setattr(system, "idle_probes", lambda: [])
    ws = wiz.Workspace(db_path, clock=clock)
    s = ws.schedules.add("hello", trigger="system_idle")
    assert s.trigger["params"] == {"minutes": 10.0, "source": "auto", "poll": 30.0}
    with caplog.at_level(logging.WARNING, logger="wiz_jupyter.scheduler"):
        for _ in range(5):
            ws.scheduler.tick()
            clock.advance(60)
    assert s.runs() == []
    warned = [r.message for r in caplog.records if "system_idle" in r.message]
    assert len(warned) == 1 and "never fires" in warned[0]
    with pytest.raises(wiz.InvalidSchedule, match="positive number"):
        wiz.SystemIdle(minutes=0)
    ws.close()


# -- shutdown ------------------------------------------------------------------------------------


async def test_shutdown_jobs_run_within_the_grace_then_are_released(db_path):
    ws = wiz.Workspace(db_path, poll_interval=0.02)
    ran = []

    @ws.task
    async def save_state() -> str:
        await asyncio.sleep(0.1)
        ran.append("saved")
        return "saved"

    @ws.task
    async def long_cleanup() -> None:
        await asyncio.sleep(30)

    quick = ws.schedules.add("save_state", trigger=wiz.Shutdown(grace=5))
    slow = ws.schedules.add("long_cleanup", trigger=wiz.Shutdown(grace=0.3))
    assert quick.description == "on shutdown"
    await ws.start()
    assert quick.runs() == []
    started = time.monotonic()
    await ws.stop(grace=0.2)
    took = time.monotonic() - started
    [saved] = quick.runs()
    assert saved.status == "completed" and ran == ["saved"]
    [cleanup] = slow.runs()
    assert cleanup.status == "waiting" and cleanup.attempts_made == 0  # released, not lost
    assert took < 10  # bounded by the graces, not by the 30 s job
    await ws.stop()  # stopping again fires nothing more
    assert len(quick.runs()) == 1
    ws.close()


async def test_the_headless_worker_fires_shutdown_on_sigterm(db_path, tmp_path):
    spec = tasks(
        tmp_path,
        """
        @ws.task
        async def flush() -> str:
            await asyncio.sleep(0.2)
            return "flushed"
        """,
    )
    ws = wiz.Workspace(db_path)
    s = ws.schedules.add("flush", trigger="shutdown")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wiz_jupyter", "worker", "--db", str(db_path), "--tasks", str(spec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = await asyncio.to_thread(proc.stdout.readline)
        assert "1 active schedules" in first
        assert s.runs() == []
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        proc.kill()
    [job] = s.runs()
    assert (job.status, job.result) == ("completed", "flushed")
    ws.close()


def test_a_kernel_fires_shutdown_and_works_it_before_exiting(db_path, tmp_path):
    from jupyter_client.manager import start_new_kernel

    ws = wiz.Workspace(db_path)
    s = ws.schedules.add("flush", trigger=wiz.Shutdown(grace=3))
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        code = f"""
            import asyncio, os
            import wiz_jupyter as wiz
            ws = wiz.Workspace({str(db_path)!r})

            @ws.task
            async def flush() -> int:
                await asyncio.sleep(0.1)
                return os.getpid()

            @ws.task
            async def nap() -> None:
                await asyncio.sleep(60)

            await ws.start()
        """
        reply = kc.execute_interactive(textwrap.dedent(code), timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        napping = ws.jobs.add("nap")
        deadline = time.monotonic() + 20
        while napping.status != "active":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert s.runs() == []
        km.shutdown_kernel(now=False)  # a shutdown request, as from JupyterLab
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)
    [job] = s.runs()
    assert job.status == "completed" and isinstance(job.result, int)
    assert (napping.status, napping.attempts_made) == ("waiting", 0)  # released, not stalled
    ws.close()


# -- network -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    return sock


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_network_available_fires_on_each_return_once_across_workspaces(db_path):
    port = free_port()
    a = wiz.Workspace(db_path, poll_interval=0.02)
    b = wiz.Workspace(db_path, poll_interval=0.02)
    trig = wiz.NetworkAvailable("127.0.0.1", port, every=0.05, max_every=0.2, timeout=0.5)
    s = a.schedules.add("hello", trigger=trig, overlap="allow")
    assert s.description == f"network available (127.0.0.1:{port})"
    await a.start()
    await b.start()
    try:
        await asyncio.sleep(0.5)  # down: probes fail, backing off
        assert s.runs() == []
        server = listen(port)
        await until(lambda: len(s.runs()) >= 1)
        await asyncio.sleep(0.5)  # both runtimes have seen it come back by now
        [job] = s.runs()
        assert job.data == {"host": "127.0.0.1", "port": port}
        server.close()
        await asyncio.sleep(0.6)
        server = listen(port)
        await until(lambda: len(s.runs()) >= 2)
        await asyncio.sleep(0.5)
        server.close()
        assert len(s.runs()) == 2
    finally:
        await a.stop(grace=1)
        await b.stop(grace=1)
        a.close()
        b.close()


async def test_network_available_on_start_and_its_backoff(db_path):
    port = free_port()
    server = listen(port)
    ws = wiz.Workspace(db_path, poll_interval=0.02)
    plain = ws.schedules.add(
        "hello", name="plain", trigger=wiz.NetworkAvailable("127.0.0.1", port, every=0.05)
    )
    eager = ws.schedules.add(
        "hello", name="eager", trigger=wiz.NetworkAvailable("127.0.0.1", port, every=0.05, on_start=True)
    )  # fmt: skip
    await ws.start()
    try:
        await until(lambda: len(eager.runs()) == 1)
        await asyncio.sleep(0.3)
        assert plain.runs() == [] and len(eager.runs()) == 1  # up at start: only on_start fires
    finally:
        await ws.stop(grace=1)
        server.close()
        ws.close()
    with pytest.raises(wiz.InvalidSchedule, match="TCP port"):
        wiz.NetworkAvailable("example.org", 0)


def test_network_probes_back_off_while_unreachable_and_fire_on_return(clock):
    trig = wiz.NetworkAvailable("127.0.0.1", 9, every=1, max_every=4)
    trig.setup()
    probed, reachable = [], [False]

    def probe():
        probed.append(clock.now() - start)
        return reachable[0]

    trig._probe.probe = probe  # the answer a TCP connect would give
    start, fires = clock.now(), []
    for step in range(60):  # 15 s in steps of 0.25 s
        if step == 40:
            reachable[0] = True
        out = trig.evaluate(clock.now())
        if out:
            fires.append((clock.now() - start, out.data))
        if trig._probe._thread is not None:
            trig._probe._thread.join()
        clock.advance(0.25)
    # Each answer is picked up at the next check (0.25 s on); then the wait doubles: 1, 2, 4, 4.
    assert probed == [0.0, 1.25, 3.5, 7.75, 12.0, 13.25, 14.5]  # up: every 1 s again
    assert fires == [(12.25, {"host": "127.0.0.1", "port": 9})]
