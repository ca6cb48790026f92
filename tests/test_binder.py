"""binder/ builds a working environment: a fresh virtualenv set up by binder/postBuild
(as repo2docker runs it) runs the quickstart tutorial under nbval."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(1200)
def test_a_fresh_virtualenv_from_binder_runs_the_quickstart(tmp_path):
    repo = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            dst = repo / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    built = ROOT / "wiz_jupyter" / "labextension"
    assert (built / "package.json").exists(), "make builds the lab extension before the tests"
    shutil.copytree(
        built, repo / "wiz_jupyter" / "labextension"
    )  # postBuild's npm step is make's, tested there
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    build = subprocess.run(
        ["bash", "binder/postBuild"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    listed = subprocess.run([str(venv / "bin" / "jupyter"), "labextension", "list"], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert "wiz-jupyter" in listed.stdout + listed.stderr
    run = subprocess.run(
        ["bash", "binder/start", str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "notebooks/01_quickstart.ipynb"],
        cwd=repo, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "passed" in run.stdout
