"""Model prices and capabilities from litellm's table, read without importing litellm.

litellm ships its price and capability table as a JSON file
(``model_prices_and_context_window_backup.json``, the one it reads itself with
``LITELLM_LOCAL_MODEL_COST_MAP``, which ``_litellm.py`` sets). The direct
OpenAI-compatible path (``llm_openai.py``) prices its calls from that table: reading
it takes tens of milliseconds, importing litellm seconds. Once litellm is imported,
its own ``model_cost`` (the same table, plus models registered since) is used.

The price of a reply is litellm's for the usual cases: prompt tokens at the input
rate, cached prompt tokens at the cache-read rate, completion tokens (reasoning
included) at the output rate, and the ``*_above_<N>k_tokens`` rates once the
prompt passes N thousand tokens.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

from . import _litellm

FILE = "model_prices_and_context_window_backup.json"

_lock = threading.Lock()
_table: dict[str, Any] | None = None


def table() -> dict[str, Any]:
    """litellm's model table: its live ``model_cost`` once imported, else its bundled file."""
    lit = _litellm.loaded()
    if lit is not None:
        return lit.model_cost
    global _table
    if _table is None:
        with _lock:
            if _table is None:
                _table = _read()
    return _table


def _read() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")  # finds the package, imports nothing
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            return json.loads((Path(folder) / FILE).read_text())
        except (OSError, ValueError):
            continue
    return {}


def info(model: str) -> dict[str, Any] | None:
    """The table's entry for ``model`` ("openai/gpt-4o-mini" or "gpt-4o-mini"), if any."""
    t = table()
    entry = t.get(model)
    if entry is None and "/" in model:
        entry = t.get(model.split("/", 1)[1])
    return entry if isinstance(entry, dict) else None


def cost(model: str, usage: Any) -> float | None:
    """The dollars ``usage`` (an OpenAI ``usage`` object or dict) costs on ``model``; None
    when the table does not price the model (a local or private one)."""
    entry = info(model)
    if entry is None or entry.get("input_cost_per_token") is None:
        return None
    prompt = _field(usage, "prompt_tokens")
    completion = _field(usage, "completion_tokens")
    cached = _field(_field(usage, "prompt_tokens_details", None), "cached_tokens")
    tier = _tier(entry, prompt)
    rate_in = _rate(entry, "input_cost_per_token", tier)
    rate_out = _rate(entry, "output_cost_per_token", tier)
    rate_cached = _rate(entry, "cache_read_input_token_cost", tier, rate_in)
    cached = min(cached, prompt)
    return (prompt - cached) * rate_in + cached * rate_cached + completion * rate_out


def _field(obj: Any, name: str, default: Any = 0) -> Any:
    if obj is None:
        return default
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return default if value is None else value


def _tier(entry: dict[str, Any], prompt: int) -> str | None:
    """The highest ``_above_<N>k_tokens`` suffix whose N the prompt passes, if any."""
    best: tuple[float, str] | None = None
    for key in entry:
        if not key.startswith("input_cost_per_token_above_") or not key.endswith("_tokens"):
            continue
        suffix = key[len("input_cost_per_token") :]
        size = suffix[len("_above_") : -len("_tokens")]
        try:
            n = float(size[:-1]) * 1000 if size.endswith("k") else float(size)
        except ValueError:
            continue
        if prompt > n and (best is None or n > best[0]):
            best = (n, suffix)
    return best[1] if best else None


def _rate(entry: dict[str, Any], key: str, tier: str | None, default: float = 0.0) -> float:
    if tier is not None and entry.get(key + tier) is not None:
        return float(entry[key + tier])
    value = entry.get(key)
    return default if value is None else float(value)
