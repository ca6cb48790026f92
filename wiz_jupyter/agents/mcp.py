"""MCP: the tools of a Model Context Protocol server, given to an agent.

::

    ws.agent("helper", tools=[wiz.mcp("files", command=["my-mcp-server", "--root", "data"])])
    ws.agent("search", tools=[wiz.mcp("web", url="http://127.0.0.1:8765/mcp")])

:func:`mcp` makes a reference (a name and a command or a URL) that is stored
with the persona; the connection is made through the official ``mcp`` SDK
(the optional extra ``wiz_jupyter[mcp]``, imported on first use) when a job of
the agent first needs it: a subprocess over stdio, or streamable HTTP. The
server's tool names, descriptions and JSON schemas go to the model as tools.

One long-lived asyncio task per server owns the SDK's session (its anyio
contexts are entered and left in that task) and serves tool calls from a
queue, each in its own child task, so calls never block the loop or each
other. A failing call (an ``isError`` result, an exception, a timeout, a
server that exits mid-call) goes back to the model as a tool error; a server
that crashed is started again on the next call. Servers stop with the
workspace (``await ws.stop()`` or ``ws.close()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WizError
from .tools import MAX_RESULT_CHARS, Tool

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
#: seconds a server has to start and list its tools
START_TIMEOUT = 30.0


def _sdk() -> Any:
    """The ``mcp`` SDK, imported on first use."""
    try:
        import mcp
        import mcp.client.streamable_http
    except ImportError:
        raise WizError("MCP tools need the mcp extra: pip install 'wiz_jupyter[mcp]'") from None
    return mcp


@dataclass(frozen=True)
class MCPServer:
    """A reference to an MCP server (what the persona stores; not a connection).

    Make one with :func:`mcp`.
    """

    name: str
    command: tuple[str, ...] | None = None
    url: str | None = None
    env: tuple[str, ...] = ()
    cwd: str | None = None
    timeout: float = 60.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mcp": self.name}
        if self.command:
            out["command"] = list(self.command)
        if self.url:
            out["url"] = self.url
        if self.env:
            out["env"] = list(self.env)
        if self.cwd:
            out["cwd"] = self.cwd
        if self.timeout != 60.0:
            out["timeout"] = self.timeout
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MCPServer:
        return mcp(
            data["mcp"], command=data.get("command"), url=data.get("url"),
            env=data.get("env", ()), cwd=data.get("cwd"), timeout=data.get("timeout", 60.0),
        )  # fmt: skip

    def __repr__(self) -> str:
        where = shlex.join(self.command) if self.command else self.url
        return f"<MCP server {self.name}: {where}>"


def mcp(
    name: str,
    command: str | Sequence[str] | None = None,
    *,
    url: str | None = None,
    env: Sequence[str] = (),
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> MCPServer:
    """An MCP server whose tools an agent gets: ``tools=[wiz.mcp("files", command=[...])]``.

    ``command``: the program and its arguments (a list, or a string split like a
    shell line), started as a subprocess speaking MCP over stdio; or ``url``: a
    streamable HTTP endpoint (``http://127.0.0.1:8000/mcp``). ``env``: names of
    environment variables passed on to the subprocess (the SDK passes only a safe
    few such as PATH and HOME; values are read when the server starts and never
    stored). ``timeout``: seconds one tool call may take.

    ::

        helper = ws.agent("helper", tools=[wiz.mcp("files", command="python files_server.py",
                                                   env=["FILES_ROOT"])])
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise WizError(f"an MCP server's name is a short word like 'files', not {name!r}")
    if (command is None) == (url is None):
        raise WizError(f"give MCP server {name!r} either command=[...] or url='http://...'")
    cmd: tuple[str, ...] | None = None
    if command is not None:
        cmd = tuple(shlex.split(command) if isinstance(command, str) else map(str, command))
        if not cmd:
            raise WizError(f"MCP server {name!r} has an empty command")
    if url is not None and not re.match(r"^https?://", str(url)):
        raise WizError(f"MCP server {name!r}: the url starts with http:// or https://, not {url!r}")
    if isinstance(env, str):
        env = [env]
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise WizError(f"MCP server {name!r}: timeout is seconds > 0, not {timeout!r}")
    return MCPServer(
        name, cmd, url, tuple(env), str(cwd) if cwd is not None else None, float(timeout)
    )


# -- the tools an agent sees ----------------------------------------------------------------------


@dataclass
class MCPTool(Tool):
    """One tool of an MCP server, as the model sees it (the server's own schema)."""

    connection: Any = None
    remote: str = ""  # the tool's name on the server (``name`` may carry a prefix)
    input_schema: dict[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> dict[str, Any]:
        params = dict(self.input_schema or {})
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    async def call(self, args: dict[str, Any]) -> tuple[str, bool]:
        """Call the tool on its server; every failure comes back as error text."""
        server = self.connection.spec.name
        try:
            for again in (True, False):
                run = await self.connection.ensure()  # (re)starting is not part of the call's time
                try:
                    text, ok = await asyncio.wait_for(
                        self.connection.call(run, self.remote, args or {}, self.timeout),
                        self.timeout + 1,
                    )
                    break
                except _Stale:  # the server had exited while idle: start it again, call once more
                    if not again:
                        raise WizError(self.connection._stopped()) from None
        except asyncio.TimeoutError:
            return (
                f"error: {self.name} (MCP server {server}) timed out after {self.timeout:g} s",
                False,
            )
        except Exception as e:
            return f"error: {self.name} (MCP server {server}): {e}", False
        if len(text) > MAX_RESULT_CHARS:
            text = (
                text[:MAX_RESULT_CHARS]
                + f"\n[... {len(text) - MAX_RESULT_CHARS} more characters cut]"
            )
        return text if ok else f"error: {self.name} (MCP server {server}): {text}", ok


def _result_text(result: Any) -> str:
    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        else:
            parts.append(
                f"[{kind or type(block).__name__} content: {getattr(block, 'mime_type', '')}]"
            )
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    return "\n".join(parts)


# -- connections ----------------------------------------------------------------------------------


class _Stop:
    """The sentinel that ends a connection's task."""


class _Stale(Exception):
    """The session had closed before the call was sent (the server exited while idle)."""


class _Run:
    """One start of a server: its owner task, its queue of calls, the calls not yet answered.
    A crash ends the run; the next call makes a new one while the old one winds down."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = loop.create_future()
        self.calls: asyncio.Queue = asyncio.Queue()
        self.pending: set[asyncio.Future] = set()
        self.task: asyncio.Task | None = None
        self.dead = False  # the session closed (the server crashed or exited)

    @property
    def live(self) -> bool:
        return self.task is not None and not self.task.done() and not self.dead


class Connection:
    """One server: started on first use (and again after a crash), stopped with the workspace."""

    def __init__(self, spec: MCPServer, logs: Path):
        self.spec = spec
        self.tools: list[Any] | None = None  # the server's tool listing (kept across restarts)
        self._logs = logs
        self._run: _Run | None = None
        # runs whose task has not finished (a crashed one may still be winding down)
        self._runs: set[_Run] = set()

    @property
    def running(self) -> bool:
        return self._run is not None and self._run.live

    async def ensure(self) -> _Run:
        """The live run, starting the server if needed (first use, or after a crash)."""
        loop = asyncio.get_running_loop()
        old = self._run
        if old is not None and old.task is not None and old.task.get_loop() is not loop:
            # started on a loop that has gone (a script's earlier asyncio.run)
            self._runs.discard(old)
            self._run = None
        if not self.running:
            run = self._run = _Run()
            run.task = loop.create_task(self._serve(run), name=f"wiz-mcp-{self.spec.name}")
            self._runs.add(run)
            run.task.add_done_callback(lambda _t: self._runs.discard(run))
        run = self._run
        assert run is not None
        try:
            await asyncio.wait_for(asyncio.shield(run.ready), START_TIMEOUT)
        except asyncio.TimeoutError:
            if run.task is not None:
                run.task.cancel()  # stuck before it reads its queue: a stop request would wait
            raise WizError(
                f"MCP server {self.spec.name!r} did not answer within {START_TIMEOUT:g} s of starting"
                f"{self._stderr_tail()}"
            ) from None
        return run

    async def call(
        self, run: _Run, tool: str, args: dict[str, Any], timeout: float
    ) -> tuple[str, bool]:
        """Send one tool call to ``run`` (from :meth:`ensure`); (text, ok)."""
        if not run.live:
            raise WizError(self._stopped())
        fut = asyncio.get_running_loop().create_future()
        run.pending.add(fut)
        fut.add_done_callback(run.pending.discard)
        run.calls.put_nowait((tool, args, timeout, fut))
        return await fut

    def stop(self) -> None:
        """Ask the owner tasks to close their sessions and stop the server (returns at once)."""
        for run in list(self._runs):
            try:
                run.calls.put_nowait(_Stop)
            except RuntimeError:  # its loop is closed: the server saw stdin close and exited
                self._runs.discard(run)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop the server and wait until it has stopped."""
        tasks = [r.task for r in self._runs if r.task is not None and not r.task.done()]
        self.stop()
        for task in tasks:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except (asyncio.TimeoutError, Exception):
                task.cancel()

    def _stderr_file(self) -> Path:
        return self._logs / f"{self.spec.name}.log"

    def _open_stderr(self) -> Any:
        """The server's stderr goes to a log file (a kernel's sys.stderr has no file descriptor)."""
        self._logs.mkdir(parents=True, exist_ok=True)
        return open(self._stderr_file(), "a")  # closed by the owner task's exit stack

    def _stderr_tail(self) -> str:
        if not self.spec.command:
            return ""
        try:
            with open(self._stderr_file(), "rb") as f:  # the end of a log that only grows
                f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
                lines = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f" (its stderr: {lines[-1][:300]})" if lines else ""

    async def _serve(self, run: _Run) -> None:
        """The owner task: enter the transport and session, list the tools, serve calls."""
        sdk = _sdk()
        import anyio

        spec = self.spec
        try:
            async with contextlib.AsyncExitStack() as stack:
                if spec.command:
                    errlog = stack.enter_context(await asyncio.to_thread(self._open_stderr))
                    params = sdk.StdioServerParameters(
                        command=spec.command[0], args=list(spec.command[1:]),
                        env={k: os.environ[k] for k in spec.env if k in os.environ},
                        cwd=spec.cwd,
                    )  # fmt: skip
                    transport = sdk.stdio_client(params, errlog=errlog)
                else:
                    transport = sdk.client.streamable_http.streamable_http_client(spec.url)
                read, write = await stack.enter_async_context(transport)
                session = await stack.enter_async_context(sdk.ClientSession(read, write))
                await session.initialize()
                if self.tools is None:
                    self.tools = await _list_tools(session)
                run.ready.set_result(None)
                async with anyio.create_task_group() as tg:
                    while True:
                        item = await run.calls.get()
                        if item is _Stop:
                            break
                        tg.start_soon(self._handle, session, item, run, tg)
                    tg.cancel_scope.cancel()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the SDK raises exception groups too
            reason = _reason(e)
            if not run.ready.done():
                run.ready.set_exception(
                    WizError(
                        f"MCP server {spec.name!r} did not start: {reason}{self._stderr_tail()}"
                    )
                )
            log.debug("MCP server %s ended: %s", spec.name, reason)
        finally:
            run.dead = True
            if not run.ready.done():
                run.ready.set_exception(
                    WizError(f"MCP server {spec.name!r} stopped while starting")
                )
            for fut in list(run.pending):
                if not fut.done():
                    fut.set_exception(WizError(self._stopped()))

    def _stopped(self) -> str:
        return f"the server stopped during the call (it crashed or exited){self._stderr_tail()}"

    async def _handle(self, session: Any, item: tuple, run: _Run, tg: Any) -> None:
        tool, args, timeout, fut = item
        if getattr(getattr(session, "_dispatcher", None), "_closed", False):
            run.dead = True  # nothing was sent: the caller may start the server and try again
            tg.cancel_scope.cancel()
            if not fut.done():
                fut.set_exception(_Stale())
            return
        try:
            result = await session.call_tool(tool, args, read_timeout_seconds=timeout)
        except Exception as e:
            from mcp_types import REQUEST_TIMEOUT

            closed = _is_closed(e)
            if closed:  # the session is dead: the next call starts the server again
                run.dead = True
                tg.cancel_scope.cancel()
            if fut.done():
                pass
            elif any(getattr(x, "code", None) == REQUEST_TIMEOUT for x in _leaves(e)):
                fut.set_exception(asyncio.TimeoutError())  # the tool says "timed out after N s"
            else:
                fut.set_exception(WizError(self._stopped() if closed else _reason(e)))
            return
        if not fut.done():
            fut.set_result((_result_text(result), not result.is_error))


async def _list_tools(session: Any) -> list[Any]:
    tools, cursor = [], None
    for _ in range(100):  # a server that pages forever cannot hang the job
        if cursor is None:
            page = await session.list_tools()
        else:
            from mcp_types import PaginatedRequestParams

            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _leaves(e: BaseException) -> list[BaseException]:
    subs = getattr(e, "exceptions", None)  # an exception group (3.11+ or anyio's backport)
    if isinstance(subs, (list, tuple)) and subs:
        return [x for sub in subs for x in _leaves(sub)]
    return [e]


def _is_closed(e: BaseException) -> bool:
    from mcp_types import CONNECTION_CLOSED

    return any(getattr(x, "code", None) == CONNECTION_CLOSED for x in _leaves(e)) or any(
        "closed" in str(x).lower() and type(x).__name__ in ("MCPError", "ClosedResourceError", "BrokenResourceError")
        for x in _leaves(e)
    )  # fmt: skip


def _reason(e: BaseException) -> str:
    leaf = _leaves(e)[0]
    return f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__


class MCPClients:
    """The MCP servers of one workspace (``ws.agents.mcp``), started on first use."""

    def __init__(self, logs: Path | None = None):
        self._logs = logs or Path(tempfile.gettempdir()) / f"wiz-mcp-{os.getpid()}"
        self._connections: dict[MCPServer, Connection] = {}

    def connection(self, spec: MCPServer) -> Connection:
        if spec not in self._connections:
            self._connections[spec] = Connection(spec, self._logs)
        return self._connections[spec]

    async def tools(self, specs: Sequence[MCPServer], taken: set[str]) -> list[Tool]:
        """The tools of these servers (starting them if needed); a name already ``taken``
        by another tool of the job gets the server's name as a prefix."""
        out: list[Tool] = []
        if specs:
            _sdk()  # a missing extra: one line naming it
        for spec in specs:
            conn = self.connection(spec)
            if conn.tools is None:
                await conn.ensure()
            for t in conn.tools or []:
                name = t.name if t.name not in taken else f"{spec.name}_{t.name}"
                taken.add(name)
                out.append(
                    MCPTool(
                        name=name, description=t.description or t.title or t.name, fn=None,  # type: ignore[arg-type]
                        args_model=None, timeout=spec.timeout, connection=conn, remote=t.name,  # type: ignore[arg-type]
                        input_schema=dict(t.input_schema or {}), approve=True,
                    )
                )  # fmt: skip
        return out

    def running(self) -> list[str]:
        """The names of the servers running now."""
        return [c.spec.name for c in self._connections.values() if c._runs]

    async def aclose(self) -> None:
        """Stop every server and wait for them."""
        await asyncio.gather(*(c.aclose() for c in self._connections.values()))

    def close(self) -> None:
        """Ask every server to stop (the owner tasks finish on the loop)."""
        for c in self._connections.values():
            c.stop()
