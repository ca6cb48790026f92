"""A fresh machine, as far as a test can make one: a clean copy of the repository (the files
git tracks, nothing built) and a virtualenv with the pip that ``python -m venv`` bundles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_copy(dest: Path) -> Path:
    """The tracked files of this checkout (uncommitted edits included) copied to ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def fresh_venv(dest: Path) -> tuple[Path, dict[str, str]]:
    """A new virtualenv (bundled pip, never upgraded) and the environment that activates it."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(dest)], check=True)
    env = {**os.environ, "PATH": f"{dest / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(dest)}
    env.pop("PYTHONPATH", None)
    return dest, env


def pip_version(venv: Path) -> tuple[int, ...]:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return tuple(int(part) for part in out.split()[1].split(".")[:2])


def locked_pip() -> tuple[int, ...]:
    """The pip version requirements.lock pins."""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.startswith("pip=="):
            return tuple(int(part) for part in line.split("==")[1].split()[0].split(".")[:2])
    raise AssertionError("requirements.lock pins no pip")
