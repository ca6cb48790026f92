"""The set-up names what it needs from the system: with node, npm or cron missing,
``make test`` stops before installing anything, with one line that says the apt-get
command (never a Playwright or crontab traceback later)."""

from __future__ import annotations

import os
import shutil
import subprocess

from .fresh import ROOT

NEEDED = "sudo apt-get install -y chromium cron nodejs npm"


def bare_path(tmp_path, *commands: str) -> str:
    """A PATH holding only ``commands`` (symlinks to this machine's)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "env", "sh", *commands):
        os.symlink(shutil.which(name), bin_dir / name)
    return str(bin_dir)


def test_check_prereqs_names_what_is_missing_in_one_line(tmp_path):
    path = bare_path(tmp_path)
    done = subprocess.run(
        [str(ROOT / "scripts" / "check-prereqs"), "test"],
        env={"PATH": path}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and NEEDED in lines[0], done.stderr
    assert "node-and-npm" in lines[0] and "cron" in lines[0]


def test_make_test_stops_before_installing_when_a_prerequisite_is_missing(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Makefile", "scripts"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, repo / name)
    path = bare_path(tmp_path, "make", "node", "npm")  # no crontab
    done = subprocess.run(
        ["make", "test"], cwd=repo, env={"PATH": path}, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert NEEDED in done.stderr and "missing from the system: cron" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (repo / ".venv").exists()


def test_the_machine_running_the_suite_has_every_prerequisite():
    done = subprocess.run(
        [str(ROOT / "scripts" / "check-prereqs"), "test"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
