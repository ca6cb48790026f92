"""Structured output: a model's reply as an instance of a pydantic model.

Models that support JSON schemas get ``response_format``; the others are asked
for JSON in the prompt. A reply that does not validate gets one repair turn
with the validation error shown to the model, then
:class:`~wiz_jupyter.errors.InvalidOutput`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidOutput
from .messages import Reply

if TYPE_CHECKING:
    from pydantic import BaseModel

    M = TypeVar("M", bound=BaseModel)


async def structured(
    chat: Callable[..., Awaitable[Reply]],
    model: str,
    messages: list[dict[str, Any]],
    schema: type[M],
    *,
    native: bool,
    **kwargs: Any,
) -> M:
    """Ask ``model`` through ``chat`` (:meth:`LLM.chat`) for a ``schema`` instance.

    ``native`` says whether the model takes a JSON schema as ``response_format``.
    """
    if native:
        first = await chat(messages, model=model, response_format=schema, **kwargs)
        asked = messages
        fmt: dict[str, Any] = {"response_format": schema}
    else:
        asked = _ask_for_json(messages, schema)
        first = await chat(asked, model=model, **kwargs)
        fmt = {}
    try:
        return _parse(first.text, schema)
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        problem = _short(e)
    repair = [
        *asked,
        first.message(),
        {
            "role": "user",
            "content": f"That reply does not match the schema: {problem}. "
            "Reply with only the corrected JSON object.",
        },
    ]
    second = await chat(repair, model=model, **fmt, **kwargs)
    try:
        return _parse(second.text, schema)
    except ValueError as e:
        raise InvalidOutput(
            f"{model}: the reply does not match {schema.__name__} even after a repair "
            f"turn: {_short(e)}",
            model=model,
        ) from None


def _ask_for_json(messages: list[dict[str, Any]], schema: type[BaseModel]) -> list[dict[str, Any]]:
    """``messages`` with a request for JSON matching ``schema`` added to the last user turn."""
    instruction = (
        "Reply with only a JSON object, no prose and no code fences, that matches this "
        f"JSON schema:\n{json.dumps(schema.model_json_schema())}"
    )
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                m["content"] = [*content, {"type": "text", "text": instruction}]
            else:
                m["content"] = f"{content or ''}\n\n{instruction}"
            return out
    out.append({"role": "user", "content": instruction})
    return out


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _parse(text: str, schema: type[M]) -> M:
    """Validate a reply as ``schema``, forgiving code fences and prose around the JSON."""
    fenced = _FENCE.search(text)
    candidate = fenced.group(1) if fenced else text
    start, end = candidate.find("{"), candidate.rfind("}")
    if start != -1 and end > start:
        candidate = candidate[start : end + 1]
    return schema.model_validate_json(candidate)


def _short(error: Exception) -> str:
    """A validation error in one line: pydantic's first lines, joined."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = "; ".join(lines[:4])
    return text if len(text) <= 400 else text[:397] + "..."
