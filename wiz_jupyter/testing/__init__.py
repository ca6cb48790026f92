"""Helpers for testing code that uses wiz_jupyter: a loopback OpenAI-compatible server, and
a process that holds a workspace's write lock (``wiz_jupyter.testing.lock``).

Imported only by tests and benchmarks (it loads aiohttp, which litellm brings).
"""

from __future__ import annotations

from .openai_server import OpenAIServer, Reply, Request

__all__ = ["OpenAIServer", "Reply", "Request"]
