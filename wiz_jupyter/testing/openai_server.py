"""A real OpenAI-compatible chat completions server on loopback, for tests and benchmarks.

It runs aiohttp on its own event loop in a daemon thread, so synchronous code
(a benchmark) and any test's event loop can use it alike, and so the server's
work never competes with the client's loop. Replies are scripted per test:

::

    with OpenAIServer() as server:
        server.reply("hello")                                  # the next reply's text
        server.reply(tool_calls=[("add", {"a": 2, "b": 3})])   # a tool call
        server.fail(429, retry_after=0.1)                      # a rate limit with Retry-After
        server.fail(500, times=2)                              # two server errors
        server.reply("late", delay=5)                          # a slow reply
        server.reply(body="{not json")                         # a malformed reply
        await litellm.acompletion(model="openai/gpt-test", api_base=server.url, ...)
        len(server.requests)                                   # requests received

In a separate process (so a benchmark's client has the CPU to itself):
``python -m wiz_jupyter.testing --delay 0.2`` prints its ``url``
and serves until its stdin closes; ``GET /_wiz/stats`` and ``POST /_wiz/reset``
stand in for ``server.requests`` and ``server.reset()``.

With no reply queued it answers ``echo: <last user message>`` after
``server.delay`` seconds. Streaming (SSE, with usage when asked), tool calls
(streamed as deltas too) and ``Authorization`` checks (``server.api_key``) work
like the real API.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import socket
import threading
import time
import zlib
from typing import Any

from aiohttp import web

__all__ = ["OpenAIServer", "Reply", "Request"]


@dataclasses.dataclass
class Reply:
    """One scripted reply. ``text=None`` with no tool calls means the default echo."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float | None = None  # seconds before answering; None: the server's default
    body: str | None = None  # a raw body sent as is (malformed replies)
    message: str | None = None  # the error message of a non-200 reply


@dataclasses.dataclass
class Request:
    """A request the server received: its path, JSON body and headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


class OpenAIServer:
    """An OpenAI-compatible server on ``127.0.0.1`` and a free port; see the module doc."""

    def __init__(self, host: str = "127.0.0.1", *, delay: float = 0.0):
        self.host = host
        self.delay = self._default_delay = delay
        self.api_key: str | None = None  # when set, other bearer tokens get a 401
        self.requests: list[Request] = []
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0  # the most at once since the last reset
        self._active: set[asyncio.Task[Any]] = set()
        self._replies: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- scripting replies ---------------------------------------------------------------------

    def reply(
        self,
        text: str | None = None,
        *,
        tool_calls: list[tuple[str, dict[str, Any]]] | None = None,
        delay: float | None = None,
        body: str | None = None,
        times: int = 1,
    ) -> None:
        """Queue a successful reply (``times`` times)."""
        self.queue(*[Reply(text, tool_calls, delay=delay, body=body) for _ in range(times)])

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
        delay: float | None = None,
    ) -> None:
        """Queue ``times`` error replies with ``status`` (and a ``Retry-After`` header)."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        self.queue(
            *[
                Reply(status=status, headers=headers, message=message, delay=delay)
                for _ in range(times)
            ]
        )

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and received requests; back to the default echo.

        Replies still being answered (a slow one a test did not wait for) are
        cancelled, so they do not count in the next test's figures.
        """
        if self._loop is not None and self._active:
            asyncio.run_coroutine_threadsafe(self._cancel_active(), self._loop).result(5)
        with self._lock:
            self._replies.clear()
            self.requests.clear()
            self.max_in_flight = self.in_flight
        self.delay = self._default_delay
        self.api_key = None

    @property
    def url(self) -> str:
        """The ``api_base`` to give litellm (ends in ``/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(sock))
            except BaseException as e:  # reported to start() below
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="wiz-openai-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/_wiz/stats", self._stats)  # for a server in another process
        app.router.add_post("/_wiz/reset", self._reset)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=2048).start()

    async def _cancel_active(self) -> None:
        tasks = list(self._active)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # replies still sleeping (a slow reply nobody waited for) end here, quietly
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<OpenAIServer {self.url} ({len(self.requests)} requests)>"

    # -- handlers ------------------------------------------------------------------------------

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"requests": len(self.requests), "max_in_flight": self.max_in_flight}
        )

    async def _reset(self, request: web.Request) -> web.Response:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight
        return web.json_response({})

    def _record(self, request: web.Request, body: Any) -> None:
        """Keep the request for the test to read (call with the lock held)."""
        self.requests.append(Request(request.path, body, dict(request.headers), time.time()))

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "gpt-test"}]})

    async def _embeddings(self, request: web.Request) -> web.Response:
        """Deterministic embeddings: each word hashed into one of 64 dimensions (texts
        sharing words are similar), so litellm's embedding path runs end to end."""
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        with self._lock:
            self._record(request, body)
        texts = body.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        data = []
        for i, text in enumerate(texts):
            vector = [0.0] * 64
            for word in str(text).lower().split():
                vector[zlib.crc32(word.strip(".,?!").encode()) % 64] += 1.0
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(_tokens(str(t)) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "embed-test"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        with self._lock:
            self._record(request, body)
            reply = self._replies.popleft() if self._replies else Reply()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            return await self._answer(request, body, reply)
        finally:
            self._active.discard(task)  # type: ignore[arg-type]
            with self._lock:
                self.in_flight -= 1

    async def _answer(
        self, request: web.Request, body: dict[str, Any], reply: Reply
    ) -> web.StreamResponse:
        delay = self.delay if reply.delay is None else reply.delay
        if delay:
            await asyncio.sleep(delay)
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if reply.status != 200:
            message = reply.message or f"injected {reply.status}"
            return _error(reply.status, message, headers=reply.headers)
        if reply.body is not None:
            return web.Response(text=reply.body, content_type="application/json")
        text = reply.text
        if text is None and not reply.tool_calls:
            text = "echo: " + _last_user_text(body.get("messages", []))
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(reply.tool_calls or [])
        ]
        usage = {
            "prompt_tokens": _tokens(json.dumps(body.get("messages", []))),
            "completion_tokens": _tokens(text or json.dumps([c["function"] for c in calls])),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = body.get("model", "gpt-test")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, model, text, calls, usage if include_usage else None)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        return web.json_response(
            {
                "id": "chatcmpl-loopback",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": usage,
            }
        )


async def _stream(
    request: web.Request,
    model: str,
    text: str | None,
    calls: list[dict[str, Any]],
    usage: dict[str, int] | None,
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    base = {
        "id": "chatcmpl-loopback",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    async def send(delta: dict[str, Any], finish: str | None = None) -> None:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    await send({"role": "assistant", "content": ""})
    for word in _words(text or ""):
        await send({"content": word})
    for i, call in enumerate(calls):
        await send({"tool_calls": [{"index": i, **call}]})
    await send({}, "tool_calls" if calls else "stop")
    if usage is not None:
        chunk = {**base, "choices": [], "usage": usage}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def _error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": code}},
        status=status,
        headers=headers,
    )


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # content parts
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _words(text: str) -> list[str]:
    """Split ``text`` into chunks that join back to it exactly (a word and its space)."""
    out: list[str] = []
    for part in text.split(" "):
        out.append(part + " ")
    if out:
        out[-1] = out[-1][:-1]
    return [w for w in out if w]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def main(argv: list[str] | None = None) -> None:
    """Serve in this process until stdin closes; the first line printed is the url."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="A loopback OpenAI-compatible server.")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = ap.parse_args(argv)
    with OpenAIServer(delay=args.delay) as server:
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()


async def _json_body(request: web.Request) -> Any:
    """The request's JSON body, or the 400 response to send back."""
    try:
        return await request.json()
    except ValueError:
        return _error(400, "the request body is not JSON")
