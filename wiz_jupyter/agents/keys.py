"""Provider API keys: read from the environment or a keys file, and kept out of everything else.

litellm finds keys in the environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
...). A keys file in dotenv format fills in the ones the environment lacks; it
lives outside the notebook folder so it is never committed or shared with a
notebook: ``$WIZ_CONFIG`` if set, else ``$XDG_CONFIG_HOME/wiz_jupyter/keys.env``
(``~/.config/wiz_jupyter/keys.env``)::

    # ~/.config/wiz_jupyter/keys.env
    OPENAI_API_KEY=sk-...

Keys are never written to the database, logged, or shown: every error text the
LLM layer stores or raises goes through :func:`redact` first.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("wiz_jupyter.llm")

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)$|API_?KEY", re.IGNORECASE)
_MIN_SECRET = 8  # shorter values are too likely to occur in ordinary text


def keys_file() -> Path:
    """Where the keys file is looked for (it need not exist)."""
    explicit = os.environ.get("WIZ_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "wiz_jupyter" / "keys.env"


def load_keys_file(path: Path | None = None) -> list[str]:
    """Put the file's keys into ``os.environ`` where not already set; returns their names.

    The environment wins, so a key exported in a shell overrides the file.
    """
    path = path or keys_file()
    if not path.is_file():
        return []
    from dotenv import dotenv_values  # python-dotenv comes with litellm

    added = []
    for name, value in dotenv_values(path).items():
        if value and name not in os.environ:
            os.environ[name] = value
            added.append(name)
    if added:
        log.info("loaded %s from %s", ", ".join(sorted(added)), path)  # names, never values
    return added


def secrets(extra: Iterable[str | None] = ()) -> list[str]:
    """Values that must never be shown: key-like environment variables, and ``extra``."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET}
    values.update(v for v in extra if v and len(v) >= _MIN_SECRET)
    return sorted(values, key=len, reverse=True)  # longest first: a key inside another


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every secret value, and every piece of one of 8 or more characters (a key
    cut short by a length limit, or a suffix echoed back by a provider), replaced by ``***``."""
    found = secrets(extra)
    if not found or not text:
        return text
    hidden = bytearray(len(text))  # 1 where a character belongs to a piece of a secret
    for value in found:
        # every piece of _MIN_SECRET or more characters is covered by its windows of that size
        for i in range(len(value) - _MIN_SECRET + 1):
            window = value[i : i + _MIN_SECRET]
            at = text.find(window)
            while at >= 0:
                hidden[at : at + _MIN_SECRET] = b"\x01" * _MIN_SECRET
                at = text.find(window, at + 1)
    if not any(hidden):
        return text
    # runs of hidden characters become one ***
    return re.sub("\x01+", "***", "".join("\x01" if h else c for c, h in zip(text, hidden)))
