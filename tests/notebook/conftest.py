"""A real ipykernel driven through jupyter_client, in a fresh folder per test."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field

import pytest
from jupyter_client.manager import start_new_kernel


@dataclass
class Result:
    status: str
    stdout: str = ""
    stderr: str = ""
    plain: list[str] = field(default_factory=list)  # text/plain of results and displays
    html: list[str] = field(default_factory=list)
    error: str | None = None
    # every display_data / update_display_data / execute_result: {"type", "data", "metadata"}
    outputs: list[dict] = field(default_factory=list)
    # the execute_reply's payloads (set_next_input puts a cell below: {"source", "text", ...})
    payload: list[dict] = field(default_factory=list)


class Kernel:
    def __init__(self, kc):
        self.kc = kc

    def run(self, code: str, timeout: float = 60) -> Result:
        out = Result(status="")

        def hook(msg):
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    out.stdout += content["text"]
                else:
                    out.stderr += content["text"]
            if kind in ("execute_result", "display_data", "update_display_data"):
                out.outputs.append(
                    {"type": kind, "data": content["data"], "metadata": content["metadata"]}
                )
            if kind in ("execute_result", "display_data"):
                out.plain.append(content["data"].get("text/plain", ""))
                if "text/html" in content["data"]:
                    out.html.append(content["data"]["text/html"])
            elif kind == "error":
                out.error = f"{content['ename']}: {content['evalue']}"

        reply = self.kc.execute_interactive(
            textwrap.dedent(code), timeout=timeout, output_hook=hook
        )
        out.status = reply["content"]["status"]
        out.payload = reply["content"].get("payload", [])
        return out

    def ok(self, code: str, timeout: float = 60) -> Result:
        res = self.run(code, timeout)
        assert res.status == "ok" and res.error is None, (res.error, res.stderr)
        return res


@pytest.fixture
def kernel(tmp_path):
    env = {**os.environ, "WIZ_HOME": str(tmp_path / "home")}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    yield Kernel(kc)
    kc.stop_channels()
    km.shutdown_kernel(now=True)
