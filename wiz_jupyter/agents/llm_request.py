"""One model call, resolved: the messages and options litellm gets, and the hash that
identifies the call for replay.

:class:`~wiz_jupyter.agents.llm.LLM` builds a :class:`Request` for every call;
the retry, stream and replay code read it and never the caller's arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..jobs.models import current_job
from .llm_store import SEMANTIC_PARAMS, request_hash
from .messages import last_user_text, to_messages


@dataclass
class Request:
    """One call, resolved: what litellm gets, and what identifies it for replay."""

    model: str
    messages: list[dict[str, Any]]
    kwargs: dict[str, Any]  # tools, response_format, params: for litellm, never stored
    material: dict[str, Any]  # what is hashed and kept in llm_cache
    key: str
    job_id: int | None
    timeout: float

    @property
    def cacheable(self) -> bool:
        # wiz/ models are offline and free, and a scripted model's reply depends on
        # its position in the script, not on the request: replaying them would be wrong.
        return not self.model.startswith("wiz/")

    @property
    def api_key(self) -> str | None:
        """The key passed explicitly to this call, if any: redacted from every error text."""
        return self.kwargs.get("api_key")

    def describe(self) -> str:
        text = " ".join(last_user_text(self.messages).split())
        return text if len(text) <= 60 else text[:57] + "..."


def build_request(
    model: str,
    prompt: Any,
    *,
    system: str | None,
    tools: Sequence[dict[str, Any]] | None,
    tool_choice: Any,
    response_format: Any,
    job_id: int | None,
    timeout: float,
    params: dict[str, Any],
) -> Request:
    """The :class:`Request` of a call to the (already resolved) ``model``.

    A call inside a job is metered to that job unless ``job_id`` says otherwise.
    """
    messages = to_messages(prompt, system)
    kwargs = {k: v for k, v in params.items() if v is not None}
    material: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        kwargs["tools"] = material["tools"] = list(tools)
    if tool_choice is not None and tools:
        kwargs["tool_choice"] = tool_choice
    if response_format is not None:
        kwargs["response_format"] = response_format
        material["response_format"] = _format_material(response_format)
    for k in SEMANTIC_PARAMS & kwargs.keys():
        material[k] = kwargs[k]
    if material.get("tool_choice") == "auto":  # the default when tools are given
        del material["tool_choice"]
    if job_id is None:
        ctx = current_job.get()
        job_id = ctx.id if ctx is not None else None
    return Request(
        model=model,
        messages=messages,
        kwargs=kwargs,
        material=material,
        key=request_hash(material),
        job_id=job_id,
        timeout=timeout,
    )


def _format_material(response_format: Any) -> Any:
    """What identifies a ``response_format`` in a request's hash (a pydantic class by its schema)."""
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return {
            "type": "json_schema",
            "name": response_format.__name__,
            "schema": response_format.model_json_schema(),
        }
    return response_format


def check_api_base(url: Any) -> str:
    """``url`` if it is an http(s) URL with a host (a model's endpoint), else a one-line
    :class:`~wiz_jupyter.errors.InvalidEndpoint`."""
    from urllib.parse import urlsplit

    from ..errors import InvalidEndpoint

    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        host = parts.hostname if parts is not None else None
    except ValueError:  # a bad port or bracket
        parts = host = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise InvalidEndpoint(
            f"api_base must be an http(s) URL like http://localhost:11434/v1, not {url!r}"
        )
    return url
