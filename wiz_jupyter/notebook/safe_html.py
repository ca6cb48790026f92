"""Model and job text as HTML that cannot run anything, for cell outputs.

A trusted notebook renders what its outputs carry, so an answer displayed as
``text/markdown`` with ``<img onerror=...>`` in it (a prompt injection in a tool
result is enough) would run in the user's JupyterLab with their token. Answers
are therefore rendered here, by mistune (a real CommonMark parser, so what counts
as code and what as text is decided once, by the same code that renders it), and
displayed as ``text/html`` that is safe by construction:

- raw HTML in the text is escaped, shown as text;
- a link keeps its target only if it is ``http``, ``https``, ``mailto``, or has no
  scheme (relative, ``#anchor``); ``javascript:``, ``data:``, ``vbscript:`` and
  the rest become ``#blocked``, after the decoding a browser would do (entities,
  percent-escapes, tabs and newlines inside the scheme);
- an image is shown as a link to it, never loaded: a remote image in model text
  can carry data out in its URL the moment it renders.

Tables, strikethrough, task lists and fenced code are rendered.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import unquote

import mistune
from mistune.renderers.html import HTMLRenderer

#: Schemes a link in model text may keep; anything else is blocked.
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
BLOCKED = "#blocked"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")


def safe_url(url: str) -> str:
    """``url`` if its scheme is harmless (or it has none), else :data:`BLOCKED`."""
    seen = url
    for _ in range(3):  # entities and percent-escapes, nested a few levels deep
        decoded = unquote(html.unescape(seen))
        if decoded == seen:
            break
        seen = decoded
    plain = _INVISIBLE.sub("", seen)  # browsers drop these before reading the scheme
    scheme = _SCHEME.match(plain)
    if scheme is None:  # relative, an anchor, or //host/path
        return url
    return url if scheme.group(1).lower() in SAFE_SCHEMES else BLOCKED


class _Renderer(HTMLRenderer):
    def __init__(self) -> None:
        super().__init__(escape=True)

    def sanitize_url(self, url: str) -> str:
        return safe_url(url)

    def image(self, text: str, url: str, title: str | None = None) -> str:
        label = text or url
        return self.link(f"[image: {label}]", url, title)


_markdown = mistune.create_markdown(
    renderer=_Renderer(), plugins=["table", "strikethrough", "task_lists", "url"]
)


def markdown_to_html(text: str) -> str:
    """Render ``text`` (markdown from a model or a job) as HTML that runs nothing."""
    rendered: Any = _markdown(text)
    return f"<div class='wiz-answer'>{rendered}</div>"


def answer_bundle(text: str) -> dict[str, str]:
    """The mime bundle an answer is displayed with: plain text, and the safe HTML."""
    return {"text/plain": text, "text/html": markdown_to_html(text)}
