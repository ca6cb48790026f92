"""Start a real Jupyter server (or JupyterLab) as a subprocess on 127.0.0.1, with a token.

Shared by tests/server and tests/browser. The server's Jupyter config, data and runtime
folders are temporary, so a developer's own settings never change what a test sees; the
venv's (where ``make`` installed wiz_jupyter's server and lab extensions) stay in use.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import wiz_jupyter as wiz


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Jupyter:
    """A running server: ``url`` (ends with /), ``token``, its root dir and log file."""

    url: str
    token: str
    root: Path
    db: Path
    log: Path
    proc: subprocess.Popen
    env: dict[str, str] = field(repr=False, default_factory=dict)
    runtime: Path | None = None  #: its Jupyter runtime folder (kernels' connection files)

    def client(self, *, token: bool = True, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"token {self.token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def workspace(self) -> wiz.Workspace:
        """A workspace on the server's database, as a notebook would open it."""
        return wiz.Workspace(self.db)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_jupyter(
    tmp: Path,
    *,
    app: str = "jupyter_server",
    wiz_home: Path | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Jupyter:
    """Start ``python -m <app>`` (``jupyter_server`` or ``jupyterlab``) rooted at ``tmp/root``.

    ``wiz_home`` sets WIZ_HOME (the database is then ``wiz_home/wiz.db``); without it the
    database is ``root/.wiz/wiz.db``. Waits until the server answers; a server that does
    not start is an error, never a skip.
    """
    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    jupyter_dirs = {
        "JUPYTER_CONFIG_DIR": tmp / "jupyter-config",
        "JUPYTER_DATA_DIR": tmp / "jupyter-data",
        "JUPYTER_RUNTIME_DIR": tmp / "jupyter-runtime",
        "JUPYTERLAB_SETTINGS_DIR": tmp / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": tmp / "lab-workspaces",
    }
    for d in jupyter_dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k != "WIZ_HOME"}
    full_env.update({k: str(v) for k, v in jupyter_dirs.items()})
    # the kernels a server starts must import this checkout's wiz_jupyter
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    if wiz_home is not None:
        wiz_home.mkdir(parents=True, exist_ok=True)
        full_env["WIZ_HOME"] = str(wiz_home)
    full_env.update(env or {})
    port, token = free_port(), secrets.token_hex(16)
    log = tmp / f"{app}-{port}.log"
    cmd = [
        sys.executable, "-m", app,
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False", "--ServerApp.allow_root=True", *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=root,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    db = (wiz_home / "wiz.db") if wiz_home is not None else (root / ".wiz" / "wiz.db")
    server = Jupyter(
        url=url, token=token, root=root, db=db, log=log, proc=proc, env=full_env,
        runtime=Path(full_env["JUPYTER_RUNTIME_DIR"]),
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    with server.client() as c:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{app} exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if c.get("api/status", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{app} did not answer in {timeout} s:\n{server.log_tail()}")
            time.sleep(0.1)
