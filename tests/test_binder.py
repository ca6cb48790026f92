"""binder/ builds a working environment: a fresh virtualenv, with the pip that
``python -m venv`` bundles, set up by binder/postBuild (as repo2docker runs it, through
scripts/install-lock, the Makefile's install step too) runs the quickstart tutorial under
nbval."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .fresh import ROOT, clean_copy, fresh_venv, locked_pip, pip_version


@pytest.mark.timeout(1200)
def test_a_fresh_virtualenv_from_binder_runs_the_quickstart(tmp_path):
    repo = clean_copy(tmp_path / "repo")
    built = ROOT / "wiz_jupyter" / "labextension"
    assert (built / "package.json").exists(), "make builds the lab extension before the tests"
    # the npm build is tested from a clean copy in tests/test_packaging.py; here it is skipped
    shutil.copytree(built, repo / "wiz_jupyter" / "labextension")
    venv, env = fresh_venv(tmp_path / "venv")
    bundled = pip_version(venv)
    assert bundled < locked_pip(), "the venv starts with the bundled pip, older than the lock's"
    build = subprocess.run(
        ["bash", "binder/postBuild"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert pip_version(venv) == locked_pip(), "install-lock puts the lock's pip in place"
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
