"""Fixtures of the LLM layer: an LLM on a fresh SQLite file, and a real OpenAI-compatible
server on loopback (``server.url`` is the ``api_base``; see wiz_jupyter.testing)."""

from __future__ import annotations

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.agents import LLM
from wiz_jupyter.jobs.store import Store
from wiz_jupyter.testing import OpenAIServer

#: litellm silences these at import, but pytest restores the warning filters after each
#: test; modules that stream over HTTP apply this mark (``pytestmark = LITELLM_NOISE``).
LITELLM_NOISE = [
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the .* attribute on the instance is deprecated"),
]

#: Tools of the tests, OpenAI style.
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a text file.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "encoding": {"type": "string"}},
            "required": ["path"],
        },
    },
}


@pytest.fixture(scope="session")
def _openai_server():
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def server(_openai_server):
    """The loopback server, with no scripted replies and its counters at zero."""
    _openai_server.reset()
    yield _openai_server
    _openai_server.reset()


@pytest.fixture
async def ws(db_path, monkeypatch):
    """A workspace with no model chosen (the offline default unless an agent says)."""
    monkeypatch.delenv("WIZ_MODEL", raising=False)
    w = wiz.Workspace(db_path, lease=2.0, poll_interval=0.05)
    yield w
    await w.stop(grace=1)
    w.close()


@pytest.fixture
def store(db_path):
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def llm(store, monkeypatch, tmp_path):
    """An LLM with quick retries, and an environment of our own: no model chosen, no mode,
    no keys file, and a dummy OpenAI key (litellm's client wants one)."""
    for name in ("WIZ_MODEL", "WIZ_LLM_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WIZ_CONFIG", str(tmp_path / "no-keys.env"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-loopback")
    return LLM(store, backoff=0.01, max_backoff=5.0, timeout=10.0)
