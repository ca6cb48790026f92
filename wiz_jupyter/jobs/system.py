"""System-event triggers: the machine booted, its user went idle, this runtime is
shutting down, the network came back.

They are :class:`~wiz_jupyter.Trigger` subclasses, registered in every
workspace under their names, so ``ws.schedules.add(task, trigger="boot")``
works, and ``trigger=SystemIdle(minutes=15)`` when parameters matter::

    ws.schedules.add("sync_notes", trigger="boot")
    ws.schedules.add("retrain", trigger=wiz.SystemIdle(minutes=20))
    ws.schedules.add("save_state", trigger=wiz.Shutdown(grace=15))
    ws.schedules.add("push_results", trigger=wiz.NetworkAvailable("pypi.org", 443))

Where each is reliable:

- ``boot`` fires once per machine boot (the boot id of
  ``/proc/sys/kernel/random/boot_id``, else the boot time from psutil or
  ``/proc/stat``), in whichever runtime (a kernel, ``wiz worker``, ``wiz
  run-due``) sees the new boot first, and in one of them only: the boot id is
  the job's dedup key. Not for the boot during which the schedule was added.
- ``system_idle`` fires when the OS says nobody touched keyboard or mouse for N
  minutes: X11 (``xprintidle``), logind's IdleHint (``loginctl``; set by
  desktop sessions), macOS (``ioreg`` HIDIdleTime). Where none of these can
  tell, it never fires, and says so once in the log.
- ``shutdown`` fires when a runtime stops: ``wiz worker`` on SIGTERM/SIGINT, a
  kernel on a shutdown request (and, if it exits otherwise, at exit: then the
  job waits for the next runtime). The stopping runtime works the jobs it
  fired for up to ``grace`` seconds, then releases them to the queue.
- ``network_available`` probes a TCP ``host:port`` in a thread, backing off
  while it is unreachable, and fires on the change unreachable -> reachable
  (and at start if ``on_start=True``). Several runtimes noticing the same
  change fire once between them.

The probes are injectable (``source="file:PATH"`` reads the boot id or the
idle seconds from a file), so tests and unusual systems can feed them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import InvalidSchedule
from .triggers import Fire, Trigger

log = logging.getLogger("wiz_jupyter.scheduler")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _read_file(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def _source(source: str | None, what: str) -> str | None:
    if source is None or source == "auto":
        return source
    if not isinstance(source, str) or not source.startswith("file:") or len(source) <= 5:
        raise InvalidSchedule(f"{what} source is 'auto' or 'file:PATH', not {source!r}")
    return source


# -- boot ----------------------------------------------------------------------------------------


def boot_id(source: str | None = None) -> str | None:
    """This machine's current boot: the kernel's boot id, else its boot time (psutil, then
    ``/proc/stat``); ``source="file:PATH"`` reads it from a file. None if unknown."""
    if source is not None and source != "auto":
        return _read_file(source[5:])
    found = _read_file(str(BOOT_ID))
    if found:
        return found
    try:
        import psutil

        return f"btime:{int(psutil.boot_time())}"
    except Exception:  # not installed, or no boot time on this platform
        pass
    stat = _read_file("/proc/stat") or ""
    m = re.search(r"^btime\s+(\d+)", stat, re.M)
    return f"btime:{m.group(1)}" if m else None


class Boot(Trigger):
    """Fires once per machine boot, in the first runtime to see it (a kernel or a
    headless worker), exactly once across processes. The boot during which the
    schedule is added does not count.

    ``source``: ``"auto"`` (the OS), or ``"file:PATH"`` (a file holding the boot id).
    ``added_in``: the boot that does not fire it (by default the current one; None: fire
    for the current boot too, if no runtime has yet).
    """

    name = "boot"
    check_every = 30.0

    @classmethod
    def describe_params(cls, params: dict[str, Any]) -> str:
        return f"on {cls.name}"

    def __init__(self, source: str | None = "auto", added_in: str | None = "current"):
        self.source = _source(source, "boot")
        # Stored with the schedule: the boot it was added in, which never fires it.
        self.added_in = boot_id(self.source) if added_in == "current" else added_in
        self._warned = False
        self._tried: str | None = None  # the boot this process has fired (or seen fired)

    def evaluate(self, now: float) -> Fire | None:
        current = boot_id(self.source)
        if current is None:
            if not self._warned:
                self._warned = True
                log.warning("wiz: the boot trigger cannot tell this machine's boot; it never fires")
            return None
        if current in (self.added_in, self._tried):
            return None
        self._tried = current  # the dedup key settles it across processes: once is enough here
        return Fire(data={"boot_id": current}, occasion=f"boot:{current}")


# -- system idle ---------------------------------------------------------------------------------


def _run(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _xprintidle() -> float | None:
    out = _run(["xprintidle"])
    return int(out.strip()) / 1000 if out and out.strip().isdigit() else None


def _logind_session() -> str | None:
    session = os.environ.get("XDG_SESSION_ID")
    if session:
        return session
    out = _run(["loginctl", "show-user", str(os.getuid()), "-p", "Display", "--value"])
    return out.strip() if out and out.strip() else None


def _logind() -> float | None:
    session = _logind_session()
    if session is None:
        return None
    out = _run(["loginctl", "show-session", session, "-p", "IdleHint", "-p", "IdleSinceHint"])
    if not out:
        return None
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if props.get("IdleHint") != "yes":
        return 0.0
    since = int(props.get("IdleSinceHint") or 0) / 1e6
    return max(0.0, time.time() - since) if since else None


def _ioreg() -> float | None:
    out = _run(["ioreg", "-c", "IOHIDSystem"])
    m = re.search(r'"HIDIdleTime"\s*=\s*(\d+)', out or "")
    return int(m.group(1)) / 1e9 if m else None


def idle_probes() -> list[tuple[str, Any]]:
    """The ways this machine can report user idle time, best first (may be empty)."""
    probes: list[tuple[str, Any]] = []
    if sys.platform == "darwin" and shutil.which("ioreg"):
        probes.append(("ioreg", _ioreg))
    if os.environ.get("DISPLAY") and shutil.which("xprintidle"):
        probes.append(("xprintidle", _xprintidle))
    if shutil.which("loginctl") and _logind_session() is not None:
        probes.append(("logind", _logind))
    return probes


class _Background:
    """Runs a blocking probe in a thread, so the event loop never waits for it; the
    answer is picked up by a later check."""

    def __init__(self, probe: Any):
        self.probe = probe
        self.result: Any = None
        self.done_at: float | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return

        def run() -> None:
            try:
                value = self.probe()
            except Exception:
                value = None
            with self._lock:
                self.result, self.done_at = value, time.time()

        self._thread = threading.Thread(target=run, name="wiz-probe", daemon=True)
        self._thread.start()

    def take(self) -> tuple[bool, Any]:
        """(a new answer arrived, the answer)."""
        with self._lock:
            fresh = self.done_at is not None
            self.done_at = None
            return fresh, self.result


class SystemIdle(Trigger):
    """Fires when nobody has used keyboard or mouse for ``minutes``, once per idle
    period, where the OS reports it (X11, logind, macOS); elsewhere it never fires
    and logs that once.

    ``source``: ``"auto"``, or ``"file:PATH"`` (a file holding the idle seconds);
    ``poll``: seconds between checks.
    """

    name = "system_idle"

    @classmethod
    def describe_params(cls, params: dict[str, Any]) -> str:
        return f"system idle {params.get('minutes', 0):g} min"

    def __init__(self, minutes: float = 10.0, source: str | None = "auto", poll: float = 30.0):
        if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or minutes <= 0:
            raise InvalidSchedule(f"system_idle minutes must be a positive number, not {minutes!r}")
        self.minutes = float(minutes)
        self.source = _source(source, "system_idle")
        self.poll = float(poll)
        self._probe: _Background | None = None
        self._inline: Any = None
        self._below_at: float | None = None  # wall time this process last saw activity
        self._fired = False

    @property
    def check_every(self) -> float:  # type: ignore[override]
        return self.poll

    def setup(self) -> None:
        if self.source and self.source.startswith("file:"):
            path = self.source[5:]
            self._inline = lambda: float(_read_file(path) or "nan")
            return
        probes = idle_probes()
        if not probes:
            log.warning(
                "wiz: system_idle cannot know user idle time here (no X11 xprintidle, logind "
                "session or macOS ioreg); this schedule never fires"
            )
            return
        name, probe = probes[0]
        log.info("wiz: system_idle reads idle time from %s", name)
        self._probe = _Background(probe)

    def evaluate(self, now: float) -> Fire | None:
        if self._inline is not None:
            try:
                idle = self._inline()
            except (TypeError, ValueError):
                idle = None
            fresh = True
        elif self._probe is not None:
            fresh, idle = self._probe.take()
            self._probe.start()  # the next answer, for the next check
        else:
            return None
        if not fresh or idle is None or idle != idle:  # no answer yet, or NaN
            return None
        wall = time.time()
        if idle < self.minutes * 60:
            self._below_at, self._fired = wall, False
            return None
        if self._fired:
            return None
        self._fired = True
        # Another runtime that saw this idle period start has fired it if the schedule
        # ran since this process last saw activity (or since the period began).
        since = self._below_at if self._below_at is not None else wall - idle
        return Fire(
            data={"idle_seconds": round(idle, 1)},
            occasion=f"system_idle:{wall!r}",
            not_since=since,
        )


# -- shutdown ------------------------------------------------------------------------------------


class Shutdown(Trigger):
    """Fires when a runtime stops (``wiz worker`` on SIGTERM, a kernel shutting down);
    the stopping runtime works the jobs it fired for up to ``grace`` seconds, then
    releases them back to the queue."""

    name = "shutdown"

    @classmethod
    def describe_params(cls, params: dict[str, Any]) -> str:
        return f"on {cls.name}"

    def __init__(self, grace: float = 10.0):
        if not isinstance(grace, (int, float)) or isinstance(grace, bool) or grace < 0:
            raise InvalidSchedule(f"shutdown grace must be seconds >= 0, not {grace!r}")
        self.grace = float(grace)


# -- network -------------------------------------------------------------------------------------


def tcp_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class NetworkAvailable(Trigger):
    """Fires when ``host:port`` becomes reachable (a TCP connect) after being
    unreachable; with ``on_start=True`` also when a runtime starts with it reachable.

    Probes run in a thread every ``every`` seconds; while unreachable the interval
    doubles up to ``max_every``. The default target, 1.1.1.1:443, is a public
    anycast address; point it at what your jobs need (a proxy, a model server).
    """

    name = "network_available"

    @classmethod
    def describe_params(cls, params: dict[str, Any]) -> str:
        return f"network available ({params.get('host')}:{params.get('port')})"

    def __init__(
        self,
        host: str = "1.1.1.1",
        port: int = 443,
        *,
        every: float = 30.0,
        max_every: float = 300.0,
        timeout: float = 3.0,
        on_start: bool = False,
    ):
        if not isinstance(host, str) or not host:
            raise InvalidSchedule(f"network_available needs a host name, not {host!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise InvalidSchedule(f"network_available needs a TCP port 1-65535, not {port!r}")
        self.host, self.port = host, port
        self.every, self.max_every, self.timeout = float(every), float(max_every), float(timeout)
        self.on_start = bool(on_start)
        self._probe: _Background | None = None
        self._state: bool | None = None
        self._down_at: float | None = None  # wall time of the last failed probe
        self._wait = self.every
        self._next_probe = float("-inf")

    @property
    def check_every(self) -> float:  # type: ignore[override]
        # Cheap (no probe unless one is due): often enough to pick answers up promptly.
        return min(self.every, 0.5)

    def setup(self) -> None:
        self._probe = _Background(lambda: tcp_reachable(self.host, self.port, self.timeout))

    def evaluate(self, now: float) -> Fire | None:
        # Probes are timed on the scheduler's clock (``now``); the outage is stamped in
        # wall time, which is what the schedule's last run is compared with.
        assert self._probe is not None
        wall = time.time()
        fresh, up = self._probe.take()
        out = None
        if fresh and up is not None:
            before, self._state = self._state, up
            if not up:
                self._down_at = wall
                self._wait = min(self._wait * 2, self.max_every) if before is False else self.every
            else:
                self._wait = self.every
                if before is False:
                    out = Fire(
                        data={"host": self.host, "port": self.port},
                        occasion=f"network:{wall!r}",
                        not_since=self._down_at,
                    )
                elif before is None and self.on_start:
                    out = Fire(data={"host": self.host, "port": self.port},
                               occasion=f"network-start:{wall!r}")  # fmt: skip
            self._next_probe = now + self._wait
        if now >= self._next_probe:
            self._next_probe = now + self._wait + self.timeout  # until this answer lands
            self._probe.start()
        return out


BUILTIN_TRIGGERS: dict[str, type[Trigger]] = {
    t.name: t for t in (Boot, SystemIdle, Shutdown, NetworkAvailable)
}
