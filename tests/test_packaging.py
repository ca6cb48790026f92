"""Packaging by the JupyterLab convention: any standard build of a clean copy, with plain pip
and no make, carries the prebuilt lab extension (hatch-jupyter-builder runs npm), and a build
that cannot build it fails instead of shipping a wheel without a sidebar."""

from __future__ import annotations

import subprocess
import tarfile
import zipfile

import pytest

from .fresh import ROOT, clean_copy, fresh_venv

LABEXT = "share/jupyter/labextensions/wiz-jupyter"


def wheel_names(dist) -> set[str]:
    (wheel,) = dist.glob("wiz_jupyter-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.mark.timeout(900)
def test_pip_wheel_of_a_clean_copy_carries_the_built_lab_extension(tmp_path):
    repo = clean_copy(tmp_path / "repo")
    assert not (repo / "wiz_jupyter" / "labextension").exists()
    venv, env = fresh_venv(tmp_path / "venv")
    wheel = subprocess.run(
        [str(venv / "bin" / "pip"), "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(repo)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert wheel.returncode == 0, wheel.stdout[-3000:] + wheel.stderr[-3000:]
    names = wheel_names(tmp_path / "dist")
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert f"{LABEXT}/package.json" in data
    assert f"{LABEXT}/install.json" in data
    static = {n for n in data if n.startswith(f"{LABEXT}/static/")}
    assert f"{LABEXT}/static/style.js" in static
    assert any("/static/remoteEntry." in n for n in static), static
    assert "etc/jupyter/jupyter_server_config.d/wiz_jupyter.json" in data
    assert "wiz_jupyter/server/__init__.py" in names

    # the sdist built next to it carries the extension, and a wheel built from that sdist on
    # a machine without node or npm skips the npm step and still carries it
    sdist = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "hatchling", "build", "-t", "sdist",
         "-d", str(tmp_path / "sdist")],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert sdist.returncode == 0, sdist.stdout[-3000:] + sdist.stderr[-3000:]
    (archive,) = (tmp_path / "sdist").glob("wiz_jupyter-*.tar.gz")
    with tarfile.open(archive) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers()}
    assert "wiz_jupyter/labextension/package.json" in members
    assert "labextension/src/index.ts" in members and "install.json" in members
    no_node = {**env, "PATH": str(venv / "bin")}
    from_sdist = subprocess.run(
        [str(venv / "bin" / "pip"), "wheel", "--no-deps", "-w", str(tmp_path / "dist2"),
         str(archive)],
        env=no_node, capture_output=True, text=True,
    )  # fmt: skip
    assert from_sdist.returncode == 0, from_sdist.stdout[-3000:] + from_sdist.stderr[-3000:]
    assert f"{LABEXT}/static/style.js" in {
        n.split(".data/data/", 1)[1] for n in wheel_names(tmp_path / "dist2") if ".data/data/" in n
    }


@pytest.mark.timeout(600)
def test_a_build_without_npm_fails_instead_of_shipping_no_sidebar(tmp_path):
    repo = clean_copy(tmp_path / "repo")
    venv, env = fresh_venv(tmp_path / "venv")
    no_node = {**env, "PATH": str(venv / "bin")}
    wheel = subprocess.run(
        [str(venv / "bin" / "pip"), "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(repo)],
        env=no_node, capture_output=True, text=True,
    )  # fmt: skip
    assert wheel.returncode != 0
    assert "npm" in wheel.stdout + wheel.stderr
    assert not list((tmp_path / "dist").glob("*.whl"))
