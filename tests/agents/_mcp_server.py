"""A small MCP server for the tests, on the SDK's server API: stdio by default,
streamable HTTP on 127.0.0.1 with ``--http PORT``."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from mcp.server.mcpserver import MCPServer

server = MCPServer("wiz-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ValueError(message)


@server.tool()
async def slow(seconds: float) -> str:
    """Answers after a while."""
    await asyncio.sleep(seconds)
    return "late"


@server.tool()
def leave() -> str:
    """Answers, then the server exits while idle."""
    threading.Timer(0.1, os._exit, (4,)).start()
    return "bye"


@server.tool()
def die() -> str:
    """Crashes the server in the middle of the call."""
    print("dying on purpose", file=sys.stderr, flush=True)
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
