"""Kernels announce the workspace databases they use, so the Jupyter server can show them.

A notebook's workspace is wherever its kernel puts it (``.wiz/wiz.db`` beside the
notebook, ``$WIZ_HOME/wiz.db``, or any ``wiz.Workspace(path)``), not where the server
runs. So each kernel that opens a workspace writes one small JSON file, named for
its connection file, into ``<jupyter runtime dir>/wiz-workspaces/``::

    {"version": 1, "kernel_id": "5f1c...", "connection_file": "/.../kernel-5f1c....json",
     "pid": 4242, "workspaces": ["/home/me/project/.wiz/wiz.db"],
     "current": "/home/me/project/.wiz/wiz.db", "updated": 1767225600.0}

``current`` is the kernel's default workspace (the one ``%wiz`` and ``wiz.workspace()``
use) once it has one, else the one opened last. The file is written atomically
(a temporary file, then a rename), rewritten when the list changes, and removed
when the last workspace closes, at ``%unload_ext wiz_jupyter`` and when the kernel
exits. A kernel that is killed leaves its file behind; the server ignores files
of kernels it is not running and removes those whose process is gone.

Outside a kernel (a script, ``wiz worker``, the server itself) and for ``:memory:``
databases, announcing does nothing. Writing never fails a workspace: a runtime
folder that cannot be written just means the sidebar does not see this kernel.

The server trusts an announcement only for a kernel its own kernel manager runs
(matched by connection file); see :mod:`wiz_jupyter.server.workspaces`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("wiz_jupyter.announce")

#: the folder under Jupyter's runtime directory that holds the announcements
FOLDER = "wiz-workspaces"
VERSION = 1

_lock = threading.Lock()
_paths: list[str] = []  # this kernel's announced workspaces, oldest first
_default: str | None = None  # the kernel's default workspace (wiz.workspace())
_written: Path | None = None  # the file this process wrote, removed at exit
_exit_hooked = False
_connection_file: str | None = None  # found once: a kernel keeps its file


@dataclass(frozen=True)
class Announcement:
    """One kernel's entry, as the server reads it."""

    file: Path
    kernel_id: str | None
    connection_file: str
    pid: int | None
    workspaces: tuple[str, ...]
    current: str | None


def registry_dir(runtime_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<runtime_dir>/wiz-workspaces``; by default under ``jupyter_runtime_dir()``."""
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = jupyter_runtime_dir()
    return Path(runtime_dir) / FOLDER


def kernel_connection_file() -> str | None:
    """This process's kernel connection file, or None when it is not an ipykernel."""
    global _connection_file
    if _connection_file is not None:
        return _connection_file
    if "ipykernel.kernelapp" not in sys.modules:  # cheap: no import outside kernels
        return None
    try:
        from ipykernel.connect import get_connection_file

        _connection_file = os.path.abspath(get_connection_file())
    except Exception:  # not initialised, or a kernel without a file: nothing to announce
        return None
    return _connection_file


def announce(path: str | os.PathLike[str], *, current: bool = False) -> None:
    """Add ``path`` to this kernel's announced workspaces (``current``: it is the kernel's
    default one). Idempotent and cheap: the file is rewritten only when something changed.

    ::

        announce(ws.path)                 # wiz.Workspace(...) does this
        announce(ws.path, current=True)   # wiz.workspace() does this
    """
    global _default
    target = _announceable(path)
    if target is None or kernel_connection_file() is None:
        return  # not a kernel: there is no server to tell
    with _lock:
        before = (list(_paths), _default)
        if target not in _paths:
            _paths.append(target)
        if current:
            _default = target
        if (list(_paths), _default) != before:
            _write_locked()


def withdraw(path: str | os.PathLike[str] | None = None) -> None:
    """Take ``path`` out of this kernel's announcement (``None``: all of them). The file
    goes when nothing is left. ``Workspace.close()`` and ``%unload_ext`` call this."""
    global _default
    with _lock:
        if not _paths:
            return
        if path is None:
            _paths.clear()
        else:
            target = _announceable(path)
            if target not in _paths:
                return
            _paths.remove(target)
        if _default not in _paths:
            _default = None
        _write_locked()


def current() -> str | None:
    """The workspace this kernel announces as its own: its default workspace if that is
    announced, else the one announced last; None when nothing is announced."""
    if _default in _paths:
        return _default
    return _paths[-1] if _paths else None


def read_announcements(directory: str | os.PathLike[str]) -> list[Announcement]:
    """Every well-formed announcement in ``directory``; others (half written by an older
    version, not JSON, not ours) are skipped."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.endswith(".json"):
            continue
        file = Path(directory) / name
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        entry = _parse(file, raw)
        if entry is not None:
            out.append(entry)
    return out


def process_alive(pid: int | None) -> bool:
    """Whether a process ``pid`` runs on this machine (True when unknown: keep the file)."""
    if not pid or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and belongs to someone else
        return True
    return True


# -- helpers -----------------------------------------------------------------------------------


def _announceable(path: str | os.PathLike[str]) -> str | None:
    text = os.fspath(path)
    if text == ":memory:" or text.startswith("file:") or not text:
        return None
    return os.path.abspath(text)


def _kernel_id(connection_file: str) -> str | None:
    # jupyter_client names a kernel's file kernel-<kernel id>.json
    m = re.fullmatch(r"kernel-(.+)\.json", os.path.basename(connection_file))
    return m.group(1) if m else None


def _write_locked() -> None:
    global _written, _exit_hooked
    connection_file = kernel_connection_file()
    if connection_file is None:
        return
    name = re.sub(r"[^\w.-]", "_", os.path.basename(connection_file))
    if not name.endswith(".json"):
        name += ".json"
    try:
        folder = registry_dir()
        file = folder / name
        if not _paths:
            with contextlib.suppress(FileNotFoundError):
                file.unlink()
            _written = None
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = {
            "version": VERSION,
            "kernel_id": _kernel_id(connection_file),
            "connection_file": connection_file,
            "pid": os.getpid(),
            "workspaces": list(_paths),
            "current": current(),
            "updated": time.time(),
        }
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f)
            os.replace(tmp, file)  # readers see the old file or the new one, never half
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _written = file
        if not _exit_hooked:
            atexit.register(_remove_at_exit)
            _exit_hooked = True
    except OSError as e:  # a read-only runtime folder: the sidebar just does not see us
        log.debug("wiz: cannot announce the workspace: %s", e)


def _remove_at_exit() -> None:
    if _written is not None:
        with contextlib.suppress(OSError):
            _written.unlink()


def _parse(file: Path, raw: Any) -> Announcement | None:
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        return None
    connection_file = raw.get("connection_file")
    workspaces = raw.get("workspaces")
    if not isinstance(connection_file, str) or not isinstance(workspaces, list):
        return None
    paths = tuple(p for p in workspaces if isinstance(p, str) and os.path.isabs(p))
    current = raw.get("current")
    pid = raw.get("pid")
    kernel_id = raw.get("kernel_id")
    return Announcement(
        file=file,
        kernel_id=kernel_id if isinstance(kernel_id, str) else None,
        connection_file=connection_file,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        workspaces=paths,
        current=current if isinstance(current, str) and current in paths else None,
    )
