"""File access confined to an agent's folder, race-free.

Resolving a path, checking it is inside the folder, then opening it by name leaves a
window in which a component can be swapped for a symbolic link that leads out (three
escapes in 3,000 calls when a second process swapped links in a loop). Here every
component is opened relative to the descriptor of the one before it, with
``O_NOFOLLOW``: what is opened is what was checked, whatever happens meanwhile. A
symbolic link anywhere in the path is refused, even one that stays inside: the tools
do not follow links.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import WizError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class OutsideFolder(WizError):
    """A path that is absolute, climbs out with ``..``, or goes through a symbolic link."""


def parts(path: str) -> list[str]:
    """The components of ``path``, relative and free of ``..``; raises OutsideFolder."""
    if not isinstance(path, str) or not path.strip():
        raise OutsideFolder("give a path relative to your folder")
    if "\x00" in path:
        raise OutsideFolder(f"{path!r} is not a valid path")
    if posixpath.isabs(path) or path.startswith("~"):
        raise OutsideFolder(f"{path!r} is absolute; use a path relative to your folder")
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        raise OutsideFolder(f"{path!r} is outside your folder")
    return [p for p in normal.split("/") if p not in ("", ".")]


@contextmanager
def _fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _open_dir(folder: Path, names: list[str], *, create: bool, shown: str) -> int:
    """A descriptor of folder/names..., each step opened without following links."""
    fd = os.open(folder.resolve(), _DIR_FLAGS)  # the folder itself is the user's choice
    try:
        for name in names:
            try:
                nxt = _open_in(fd, name, _DIR_FLAGS)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = _open_in(fd, name, _DIR_FLAGS)
            os.close(fd)
            fd = nxt
        return fd
    except OSError as e:
        os.close(fd)
        raise _explain(e, shown) from None


def _open_in(dir_fd: int, name: str, flags: int, mode: int = 0o644) -> int:
    """``os.open`` of ``name`` in ``dir_fd``; a symbolic link there raises ELOOP.

    (Linux answers ENOTDIR, not ELOOP, for a link opened with ``O_DIRECTORY``: the
    name is looked at again, without following it, to tell the two apart.)
    """
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except NotADirectoryError:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        if is_link:
            raise OSError(errno.ELOOP, "a symbolic link", name) from None
        raise


def _explain(error: OSError, shown: str) -> Exception:
    if error.errno in (errno.ELOOP, errno.EMLINK):  # EMLINK: FreeBSD's O_NOFOLLOW answer
        return OutsideFolder(
            f"{shown!r} is or goes through a symbolic link: not followed, it could lead "
            "outside your folder"
        )
    if error.errno == errno.ENOTDIR:
        return NotADirectoryError(f"{shown!r}: a part of it is a file, not a folder")
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f"no {shown!r} in your folder")
    return error


def read_text(folder: Path, path: str) -> str:
    """The text of ``folder/path``."""
    names = parts(path)
    if not names:
        raise IsADirectoryError(f"{path!r} is your folder, not a file")
    with _fd(_open_dir(folder, names[:-1], create=False, shown=path)) as d:
        try:
            fd = _open_in(d, names[-1], os.O_RDONLY | _NOFOLLOW)
        except OSError as e:
            raise _explain(e, path) from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise IsADirectoryError(f"{path!r} is not a file")
            return f.read().decode("utf-8", errors="replace")


def write_text(folder: Path, path: str, content: str) -> None:
    """Write ``content`` to ``folder/path``, creating its folders."""
    names = parts(path)
    if not names:
        raise IsADirectoryError(f"{path!r} is your folder, not a file")
    folder.mkdir(parents=True, exist_ok=True)
    with _fd(_open_dir(folder, names[:-1], create=True, shown=path)) as d:
        try:
            fd = _open_in(d, names[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW)
        except OSError as e:
            raise _explain(e, path) from None
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise IsADirectoryError(f"{path!r} is not a file")
            f.write(content.encode("utf-8"))


def list_dir(folder: Path, path: str = ".") -> list[str]:
    """Names in ``folder/path``; sub-folders end with '/'. Links are listed, not followed."""
    names = parts(path) if path.strip() not in ("", ".") else []
    with _fd(_open_dir(folder, names, create=False, shown=path)) as d:
        out = []
        for entry in os.scandir(d):
            out.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
        return sorted(out)
