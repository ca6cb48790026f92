"""Embedding models for semantic memory: the offline WordLlama one, or a provider's through
litellm.

A workspace has no embedding model until one is chosen (memory is then ranked by
SQLite full-text search). The model of a workspace is, first found: the
workspace setting ``memory.embeddings`` (``Workspace(embeddings=...)`` or
``ws.agents.set_embeddings(...)``), ``$WIZ_EMBEDDINGS``, none.

Names: ``"wordllama"`` (alias ``"offline"``) is WordLlama's ``l2_supercat``
model, whose weights ship inside the ``wordllama`` wheel: it loads with
downloads disabled and embeds on the CPU in microseconds per memory. Any
other name is a litellm embedding model (``"openai/text-embedding-3-small"``,
``"ollama/nomic-embed-text"``, ...), called with ``litellm.aembedding``.

numpy and wordllama are the optional extra ``memory``
(``pip install 'wiz_jupyter[memory]'``); both are imported on first use.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import EmbeddingsError

SETTING = "memory.embeddings"
ENV = "WIZ_EMBEDDINGS"
OFFLINE = "wordllama"
ALIASES = {"offline": OFFLINE, "wiz/offline": OFFLINE, "wordllama": OFFLINE}
#: texts per provider request (providers cap the batch; 256 is within all the common ones)
PROVIDER_BATCH = 256

_lock = threading.Lock()
_wordllama: Any = None
_cache: dict[str, Embedder] = {}


def numpy() -> ModuleType:
    """numpy, or a one-line error naming the extra that brings it."""
    try:
        import numpy as np
    except ImportError:
        raise EmbeddingsError(
            "semantic memory needs numpy: pip install 'wiz_jupyter[memory]'"
        ) from None
    return np


def canonical(name: str | None) -> str | None:
    """The stored name of an embedding model (``"offline"`` is ``"wordllama"``)."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise EmbeddingsError(
            f"embeddings must be 'wordllama' (offline) or a litellm embedding model name, "
            f"not {name!r}"
        )
    return ALIASES.get(name.strip(), name.strip())


#: ``log(model, request_hash, tokens_in, cost, latency, error)``: a provider call happened
CallLog = Callable[[str, str, int, float, float, "str | None"], None]


class Embedder:
    """Turns texts into unit vectors (float32 rows), so a dot product is the cosine."""

    name: str

    def embed(self, texts: list[str], log: CallLog | None = None) -> Any:
        """Embed now, in this thread (``log`` is told of each provider request)."""
        raise NotImplementedError

    async def aembed(self, texts: list[str], log: CallLog | None = None) -> Any:
        """Embed without blocking the event loop."""
        return await asyncio.to_thread(self.embed, texts, log)

    @property
    def local(self) -> bool:
        """True when embedding is CPU work in this process (no request to wait for)."""
        return False

    @staticmethod
    def _unit(vectors: Any) -> Any:
        np = numpy()
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v.reshape(1, -1)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        norms[norms == 0] = 1.0  # a text of unknown words: a zero vector, similar to nothing
        return v / norms


class WordLlamaEmbedder(Embedder):
    """WordLlama ``l2_supercat`` (256 dimensions), loaded from the wheel: no network."""

    name = OFFLINE

    @property
    def local(self) -> bool:
        return True

    @staticmethod
    def model() -> Any:
        global _wordllama
        if _wordllama is None:
            with _lock:
                if _wordllama is None:
                    try:
                        import wordllama
                        from wordllama import WordLlama
                    except ImportError:
                        raise EmbeddingsError(
                            "the offline embedding model needs wordllama: "
                            "pip install 'wiz_jupyter[memory]'"
                        ) from None
                    # The weights and the tokenizer are files of the wheel. wordllama
                    # 0.4 looks for the tokenizer in ``tokenizer/`` beside the package
                    # but ships it in ``tokenizers/``, then in ``cache_dir/tokenizers``,
                    # then downloads it: pointing cache_dir at the package finds it,
                    # and downloads stay off whatever the version does.
                    _wordllama = WordLlama.load(
                        cache_dir=Path(wordllama.__file__).parent, disable_download=True
                    )
        return _wordllama

    def embed(self, texts: list[str], log: CallLog | None = None) -> Any:
        if not texts:
            return numpy().zeros((0, 256), dtype=numpy().float32)
        return self._unit(self.model().embed(list(texts), norm=False, batch_size=256))


class LiteLLMEmbedder(Embedder):
    """A provider's embedding model through litellm (imported on the first call)."""

    def __init__(self, name: str):
        self.name = name

    def _vectors(self, response: Any) -> Any:
        data = response["data"] if isinstance(response, dict) else response.data
        rows = [d["embedding"] if isinstance(d, dict) else d.embedding for d in data]
        return self._unit(rows)

    def _failed(self, e: Exception) -> EmbeddingsError:
        return EmbeddingsError(
            f"embedding with {self.name} failed ({type(e).__name__}: {str(e)[:200]}); "
            "check the model name and its key, or use embeddings='wordllama' (offline)"
        )

    def _logged(
        self, log: CallLog | None, batch: list[str], t0: float, response: Any, error: str | None
    ) -> None:
        """One row in ``llm_calls`` per request: tokens, cost and latency, like chat calls."""
        if log is None:
            return
        key = hashlib.sha256(json.dumps(["embedding", self.name, batch]).encode()).hexdigest()
        usage = getattr(response, "usage", None) or {}
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else usage.prompt_tokens
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost") or 0.0
        log(self.name, key, int(tokens or 0), float(cost), time.perf_counter() - t0, error)

    def embed(self, texts: list[str], log: CallLog | None = None) -> Any:
        from . import _litellm

        litellm = _litellm.load()
        out = []
        for i in range(0, len(texts), PROVIDER_BATCH):
            batch, t0 = texts[i : i + PROVIDER_BATCH], time.perf_counter()
            try:
                response = litellm.embedding(model=self.name, input=batch)
            except Exception as e:
                raise self._call_failed(log, batch, t0, e) from None
            out.append(self._call_done(log, batch, t0, response))
        return _joined(out)

    async def aembed(self, texts: list[str], log: CallLog | None = None) -> Any:
        from . import _litellm

        litellm = _litellm.loaded() or await asyncio.to_thread(_litellm.load)
        out = []
        for i in range(0, len(texts), PROVIDER_BATCH):
            batch, t0 = texts[i : i + PROVIDER_BATCH], time.perf_counter()
            try:
                response = await litellm.aembedding(model=self.name, input=batch)
            except Exception as e:
                raise self._call_failed(log, batch, t0, e) from None
            out.append(self._call_done(log, batch, t0, response))
        return _joined(out)

    # the sync and async paths differ only in the call: what surrounds it is shared

    def _call_failed(self, log: CallLog | None, batch: list[str], t0: float, e: Exception) -> Any:
        self._logged(log, batch, t0, None, f"{type(e).__name__}: {str(e)[:500]}")
        return self._failed(e)

    def _call_done(self, log: CallLog | None, batch: list[str], t0: float, response: Any) -> Any:
        self._logged(log, batch, t0, response, None)
        return self._vectors(response)


def _joined(parts: list[Any]) -> Any:
    return numpy().concatenate(parts) if parts else numpy().zeros((0, 0), dtype=numpy().float32)


def get(name: str) -> Embedder:
    """The embedder called ``name`` (one per process and name)."""
    key = canonical(name)
    assert key is not None
    if key not in _cache:
        _cache[key] = WordLlamaEmbedder() if key == OFFLINE else LiteLLMEmbedder(key)
    return _cache[key]


def configured(setting: str | None) -> str | None:
    """The workspace's embedding model name: its setting, else ``$WIZ_EMBEDDINGS``, else None."""
    return canonical(setting or os.environ.get(ENV) or None)
