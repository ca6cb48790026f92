"""MCP and notebook-tool benchmark.

- MCP: a small server of the SDK (written to a temporary file) over stdio and over
  streamable HTTP on 127.0.0.1: time to start and list its tools on first use, then
  ``--calls`` tool calls one after another and all at once (each call in its own task
  of the server's owner task). Same-run reference: the same function as an in-process
  ``wiz.tool`` call.
- Notebook tools: ``describe`` of a ``--rows``-row DataFrame (its describe() bounded to
  the first 100,000 rows) against a full ``DataFrame.describe()``, the loop-blocking cost
  the bound saves.

Usage: ``python bench/mcp.py [--calls 200] [--rows 5000000]``.
"""

from __future__ import annotations

import os
import sys

# bench/queue.py is named like the stdlib's queue module: keep bench/ off the path.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import wiz_jupyter as wiz  # noqa: E402
from wiz_jupyter.agents.mcp import MCPClients  # noqa: E402

SERVER = '''
import sys
from mcp.server.mcpserver import MCPServer
server = MCPServer("bench")

@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b

if sys.argv[1:2] == ["--http"]:
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
else:
    server.run()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def calls(tool, n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    for i in range(n):
        text, ok = await tool.call({"a": i, "b": 1})
        assert ok and text == str(i + 1), text
    one_by_one = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    results = await asyncio.gather(*(tool.call({"a": i, "b": 1}) for i in range(n)))
    assert all(ok for _, ok in results)
    together = time.perf_counter() - t0
    return one_by_one, together


async def mcp_figures(tmp: Path, script: Path, port: int, n: int) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    local = wiz.tool(add)
    ref_one, ref_all = await calls(local, n)
    print(
        f"in-process wiz.tool (reference): {ref_one * 1e6:8.0f} us per call; {n} at once {ref_all * 1e3:7.1f} ms"
    )

    for label, spec in (
        ("stdio", wiz.mcp("bench", command=[sys.executable, str(script)])),
        ("http ", wiz.mcp("bench", url=f"http://127.0.0.1:{port}/mcp")),
    ):
        clients = MCPClients(tmp / "logs")
        t0 = time.perf_counter()
        (tool,) = await clients.tools([spec], set())
        started = time.perf_counter() - t0
        one, together = await calls(tool, n)
        print(
            f"MCP {label}: first use (start + list tools) {started * 1e3:7.1f} ms; "
            f"{one * 1e3:6.2f} ms per call ({one / ref_one:6.0f}x the in-process tool); "
            f"{n} at once {together * 1e3:7.1f} ms ({together / (one * n):.2f}x of one after another)"
        )
        await clients.aclose()


def notebook_figures(rows: int) -> None:
    import numpy as np
    import pandas as pd

    from wiz_jupyter.agents import notebook_tools as nt

    df = pd.DataFrame({"a": np.arange(rows), "b": np.random.default_rng(0).random(rows)})
    t0 = time.perf_counter()
    text = nt.cut(nt.describe(df))
    bounded = time.perf_counter() - t0
    t0 = time.perf_counter()
    df.describe(include="all")
    full = time.perf_counter() - t0
    print(
        f"describe_variable of a {rows}-row DataFrame: {bounded * 1e3:7.1f} ms, {len(text)} characters; "
        f"a full describe() (reference) {full * 1e3:7.1f} ms ({bounded / full:.2f}x)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rows", type=int, default=5_000_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "server.py"
        script.write_text(SERVER)
        port = free_port()
        http = subprocess.Popen([sys.executable, str(script), "--http", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:  # listening yet?
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the HTTP server did not start"
                    time.sleep(0.05)
            asyncio.run(mcp_figures(Path(tmp), script, port, args.calls))
        finally:
            http.terminate()
            http.wait(10)
    notebook_figures(args.rows)


if __name__ == "__main__":
    main()
