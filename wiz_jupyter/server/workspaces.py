"""The workspaces the server knows, and one backend (with its change feed) per workspace.

A workspace is known when it is

- the server's default: ``c.WizServer.db_path``, else ``$WIZ_HOME/wiz.db``, else
  ``.wiz/wiz.db`` under the root (listed even before the file exists);
- ``$WIZ_HOME/wiz.db`` when ``db_path`` is set too;
- announced by a kernel this server runs (:mod:`wiz_jupyter.announce`): the file is in
  the registry folder of Jupyter's runtime directory, its connection file is one of
  the kernel manager's, and the database file exists.

Nothing else is. A request names its workspace by the ``id`` or the ``path`` (or
``rel``) exactly as ``GET /wiz/api/workspaces`` lists it; any other value is refused
(:class:`UnknownWorkspace`, 403), so the API never opens a file it was merely given:
not ``/etc/passwd``, not another SQLite file, not ``..`` or a symlink leading
somewhere else. An announcement whose kernel process is gone is deleted.

Backends open on the first request for their workspace and close once the workspace
is no longer known and no request uses them; the default's stays open.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..announce import process_alive, read_announcements
from .backend import Backend
from .changes import ChangeFeed

log = logging.getLogger("wiz_jupyter.server")


class UnknownWorkspace(LookupError):
    """A ``workspace`` argument that names no workspace this server knows."""


@dataclass(frozen=True)
class Known:
    """A workspace the server may serve: ``id`` (stable: a hash of the real path),
    ``path`` (as configured or announced), ``real`` (symlinks resolved), ``rel`` (to the
    root, when under it), where it was learnt (``sources``) and the kernels using it."""

    id: str
    path: str
    real: str
    rel: str | None
    sources: tuple[str, ...]
    kernels: tuple[str, ...] = ()

    def view(self, default_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "rel": self.rel,
            "label": self.rel or self.path,
            "exists": os.path.isfile(self.real),
            "default": self.id == default_id,
            "sources": list(self.sources),
            "kernels": list(self.kernels),
        }


@dataclass
class Served:
    """An open workspace: its backend, its change feed, and the requests using it."""

    known: Known
    backend: Backend
    feed: ChangeFeed
    users: int = field(default=0)

    def close(self) -> None:
        self.feed.close()
        self.backend.close()


def workspace_id(real: str) -> str:
    return hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:12]


class Workspaces:
    """``find(ref)`` a known workspace, ``acquire`` its backend, ``release`` it after.

    ``fixed``: ``(path, source)`` pairs always known, the default first.
    ``registry_dirs``: where kernels' announcements are. ``running_kernels()``: the
    kernel manager's kernels as ``{real connection file: kernel id}``.
    """

    def __init__(
        self,
        fixed: list[tuple[str, str]],
        *,
        root_dir: str | None,
        registry_dirs: Iterable[str | os.PathLike[str]] = (),
        running_kernels: Callable[[], dict[str, str]] = dict,
        poll_interval: float = 0.15,
    ):
        self.root_dir = root_dir
        self.registry_dirs = list(dict.fromkeys(Path(d) for d in registry_dirs))
        self.running_kernels = running_kernels
        self.poll_interval = poll_interval
        self._fixed = self._merge([(p, s, None) for p, s in fixed])
        self.default = self._fixed[0]
        self._served: dict[str, Served] = {}
        self._cache: tuple[Any, list[Known], dict[str, str]] | None = None
        self._default_served = self._open(self.default)
        self._default_served.users += 1  # never closed before the server stops

    # -- what is known -------------------------------------------------------------------------

    def known(self) -> list[Known]:
        """The default first, the other configured ones, then the kernels' (by path)."""
        return self._scan()[0]

    def kernel_workspaces(self) -> dict[str, str]:
        """``{kernel id: workspace id}``: each running kernel's own (current) workspace."""
        return self._scan()[1]

    def find(self, ref: str | None) -> Known:
        """The workspace ``ref`` names (None or "": the default). Raises
        :class:`UnknownWorkspace` for anything not listed."""
        if ref is None or ref == "":
            return self.default
        for k in self.known():
            if ref in (k.id, k.path, k.real) or (k.rel is not None and ref == k.rel):
                return k
        raise UnknownWorkspace(
            "not a workspace this server knows; GET /wiz/api/workspaces lists them"
        )

    # -- backends ------------------------------------------------------------------------------

    def acquire(self, known: Known) -> Served:
        """The open backend of ``known`` (opened now if needed), counted as in use until
        :meth:`release`."""
        served = self._served.get(known.id) or self._open(known)
        served.users += 1
        return served

    def release(self, served: Served) -> None:
        served.users -= 1
        self.prune()

    def served(self) -> list[Served]:
        return list(self._served.values())

    def prune(self) -> None:
        """Close the backends of workspaces no longer known that no request uses."""
        known = {k.id for k in self.known()}
        for wid, s in list(self._served.items()):
            if s.users <= 0 and wid not in known:
                del self._served[wid]
                s.close()
                log.info("wiz_jupyter: closed the workspace %s (no longer in use)", s.known.path)

    def close(self) -> None:
        for s in self._served.values():
            s.close()
        self._served.clear()

    # -- helpers -------------------------------------------------------------------------------

    def _open(self, known: Known) -> Served:
        backend = Backend(known.path, root_dir=self.root_dir)
        served = Served(known, backend, ChangeFeed(backend, interval=self.poll_interval))
        self._served[known.id] = served
        return served

    def _scan(self) -> tuple[list[Known], dict[str, str]]:
        running = self.running_kernels()
        key = (tuple(sorted(running.items())), tuple(_mtime(d) for d in self.registry_dirs))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        found: list[tuple[str, str, str | None]] = []
        currents: dict[str, str] = {}  # kernel id -> real path of its current workspace
        for directory in self.registry_dirs:
            for entry in read_announcements(directory):
                kernel = running.get(os.path.realpath(entry.connection_file))
                if kernel is None:
                    self._drop_if_stale(entry, set(running.values()))
                    continue
                for path in entry.workspaces:
                    if os.path.isfile(path):  # a kernel's database exists once it is open
                        found.append((path, "kernel", kernel))
                if entry.current and os.path.isfile(entry.current):
                    currents[kernel] = os.path.realpath(entry.current)
        kernels = sorted(self._merge(found), key=lambda k: k.path)
        fixed_ids = {k.id for k in self._fixed}
        merged = [self._with_kernels(k, kernels) for k in self._fixed]
        merged += [k for k in kernels if k.id not in fixed_ids]
        mapping = {kid: workspace_id(real) for kid, real in currents.items()}
        self._cache = (key, merged, mapping)
        return merged, mapping

    @staticmethod
    def _with_kernels(fixed: Known, kernels: list[Known]) -> Known:
        for k in kernels:
            if k.id == fixed.id:
                return Known(
                    fixed.id, fixed.path, fixed.real, fixed.rel,
                    fixed.sources + k.sources, k.kernels,
                )  # fmt: skip
        return fixed

    def _merge(self, items: list[tuple[str, str, str | None]]) -> list[Known]:
        """One :class:`Known` per real path, in the order first seen."""
        out: dict[str, Known] = {}
        for path, source, kernel in items:
            real = os.path.realpath(path)
            wid = workspace_id(real)
            k = out.get(wid)
            if k is None:
                k = Known(wid, path, real, self._rel(real), ())
            sources = k.sources if source in k.sources else (*k.sources, source)
            kernels = k.kernels if kernel is None or kernel in k.kernels else (*k.kernels, kernel)
            out[wid] = Known(k.id, k.path, k.real, k.rel, sources, kernels)
        return list(out.values())

    def _rel(self, real: str) -> str | None:
        if not self.root_dir:
            return None
        try:
            return Path(real).relative_to(os.path.realpath(self.root_dir)).as_posix()
        except ValueError:
            return None

    @staticmethod
    def _drop_if_stale(entry: Any, running_ids: set[str]) -> None:
        # Another server's kernel may share the runtime folder: only a file whose process
        # is gone is removed.
        if entry.kernel_id in running_ids or process_alive(entry.pid):
            return
        try:
            entry.file.unlink()
        except OSError:
            pass


def _mtime(directory: Path) -> int | None:
    try:
        return directory.stat().st_mtime_ns
    except OSError:
        return None
