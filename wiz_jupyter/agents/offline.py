"""The ``wiz/offline`` model: deterministic replies computed from the request alone.

No network, no randomness: the same request always gets the same reply, so
tutorials run anywhere and their outputs can be checked. It answers by these
rules, first match wins:

1. The conversation ends with tool results: a sentence reporting them
   (``"add returned 5."``).
2. Tools are offered and the last user message names one (or ``tool_choice``
   forces one): a call of each named tool, in the order named, with arguments
   taken from the message (``key=value``, then numbers, quoted strings and
   file names in order, then defaults).
3. A JSON schema is asked for (``response_format``): a JSON object that
   validates against it, with values taken from the message (explicit
   ``field: value``, numbers in order, the message's sentences for lists, its
   first sentence for text, ``true`` for booleans).
4. Otherwise text that follows simple instructions in the last user message:
   ``say``/``repeat`` X, ``uppercase``/``lowercase``/``reverse`` X, ``count the
   words in`` X, ``summarise`` X, arithmetic (``what is 2 + 3?``); anything else
   is echoed back (``You asked: ...`` / ``You said: ...``), shortened to its
   first sentence when long.

This module only computes replies; ``inprocess.py`` serves them, or ``provider.py``
through litellm when the LLM layer's direct path is off.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections import deque
from typing import Any

from .messages import ToolCall, last_user_text, text_of

MAX_WORDS = 40  # longer messages are answered with their first sentence


def reply(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
    response_format: Any = None,
) -> tuple[str | None, list[ToolCall]]:
    """The offline model's reply to a request: (text, tool calls)."""
    if messages and messages[-1].get("role") == "tool":
        return _report_tool_results(messages), []
    text = last_user_text(messages)
    if tools and tool_choice != "none":
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        calls = _tool_calls(text, tools, tool_choice, turn)
        if calls:
            return None, calls
    schema = _schema_of(response_format)
    if schema is not None:
        return json.dumps(_Filler(text, schema).value("", schema)), []
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        return json.dumps({"answer": answer(text)}), []
    return answer(text), []


def tokens(text: str) -> int:
    """A token count estimate (4 characters a token), enough for usage figures."""
    return max(1, len(text) // 4) if text else 0


# -- 1. after tool results -----------------------------------------------------------------------


def _report_tool_results(messages: list[dict[str, Any]]) -> str:
    i = len(messages) - 1
    results: list[dict[str, Any]] = []
    while i >= 0 and messages[i].get("role") == "tool":
        results.insert(0, messages[i])
        i -= 1
    names: dict[str, str] = {}
    if i >= 0 and messages[i].get("role") == "assistant":
        for call in messages[i].get("tool_calls") or []:
            c = ToolCall.from_openai(call)
            if c.id:
                names[c.id] = c.name
    parts = [
        f"{names.get(r.get('tool_call_id') or '', r.get('name') or 'the tool')} "
        f"returned {text_of(r).strip()}"
        for r in results
    ]
    return "; ".join(parts) + "."


# -- 2. tool calls -------------------------------------------------------------------------------


def _tool_calls(
    text: str, tools: list[dict[str, Any]], tool_choice: Any, turn: int
) -> list[ToolCall]:
    specs = [t.get("function") or {} for t in tools if t.get("type", "function") == "function"]
    specs = [s for s in specs if s.get("name")]
    forced = None
    if isinstance(tool_choice, dict):
        forced = (tool_choice.get("function") or {}).get("name")
    if forced:
        chosen = [s for s in specs if s["name"] == forced]
    else:
        found = [(_mentioned_at(text, s["name"]), n, s) for n, s in enumerate(specs)]
        chosen = [s for pos, _, s in sorted(f for f in found if f[0] >= 0)]
        if not chosen and tool_choice == "required" and specs:
            chosen = specs[:1]
    return [
        ToolCall(
            s["name"], _Filler(text, s.get("parameters") or {}).arguments(), f"call_{turn}_{i}"
        )
        for i, s in enumerate(chosen)
    ]


def _mentioned_at(text: str, name: str) -> int:
    """Where ``name`` (or its words, ``get_weather`` as ``get weather``) first appears, else -1."""
    for form in {name, name.replace("_", " "), name.replace("-", " ")}:
        m = re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text, re.IGNORECASE)
        if m:
            return m.start()
    return -1


# -- 3. values from a JSON schema ----------------------------------------------------------------


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        return spec.get("schema") or spec.get("json_schema") or {"type": "object"}
    if hasattr(response_format, "model_json_schema"):  # a pydantic class passed straight through
        return response_format.model_json_schema()
    return None


_ASSIGNMENT = re.compile(r"\b(\w+)\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^\s,;]+)")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"\"([^\"]+)\"|`([^`]+)`|(?:(?<=\s)|^)'([^']+)'(?=[\s.,;:!?]|$)")
_PATHLIKE = re.compile(
    r"https?://[^\s\"']+|[\w~./-]*[\w-]\.[A-Za-z0-9]{1,8}\b|(?:\.{1,2}|~)?/[\w./-]+"
)
_TITLE_HINTS = ("title", "name", "topic", "subject", "label", "heading", "category")
_PATH_HINTS = ("path", "file", "url", "uri", "dir", "folder")


class _Filler:
    """Builds values for a JSON schema from one message, deterministically."""

    def __init__(self, text: str, root: dict[str, Any]):
        self.text = text
        self.root = root
        self.defs = root.get("$defs") or root.get("definitions") or {}
        self.assigned = {k.lower(): v.strip("\"'") for k, v in _ASSIGNMENT.findall(text)}
        self.numbers = deque(float(n) for n in _NUMBER.findall(text))
        self.quoted = deque(next(g for g in m if g) for m in _QUOTED.findall(text))
        self.paths = deque(p.rstrip(".,;:!?") for p in _PATHLIKE.findall(text))

    def arguments(self) -> dict[str, Any]:
        """Tool arguments: the required parameters, and optional ones the text sets."""
        schema = self._resolve(self.root)
        required = set(schema.get("required") or [])
        out: dict[str, Any] = {}
        for name, prop in (schema.get("properties") or {}).items():
            if name in required or name.lower() in self.assigned:
                out[name] = self.value(name, prop)
        return out

    def value(self, name: str, schema: dict[str, Any], depth: int = 0) -> Any:
        schema = self._resolve(schema)
        if depth > 6:  # a recursive schema: stop with the smallest value
            return None
        if "const" in schema:
            return schema["const"]
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                options = [self._resolve(o) for o in schema[key]]
                useful = [o for o in options if o.get("type") != "null"] or options
                return self.value(name, useful[0], depth + 1)
        if "enum" in schema:
            return self._enum(name, schema["enum"])
        kind = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        explicit = self.assigned.get(name.lower())
        if kind == "object":
            return {
                p: self.value(p, s, depth + 1) for p, s in (schema.get("properties") or {}).items()
            }
        if kind == "array":
            return self._array(name, schema, depth)
        if kind in ("integer", "number"):
            n = _to_number(explicit) if explicit is not None else None
            if n is None:
                n = self.numbers.popleft() if self.numbers else schema.get("default", 0)
            lo, hi = schema.get("minimum"), schema.get("maximum")
            n = max(n, lo) if lo is not None else n
            n = min(n, hi) if hi is not None else n
            return int(n) if kind == "integer" else float(n)
        if kind == "boolean":
            if explicit is not None:
                return explicit.lower() in ("true", "yes", "1", "y")
            # optimistic on purpose: an agent's "is it done?" check passes offline
            return bool(schema.get("default", True))
        if kind == "null":
            return None
        return self._string(name, schema, explicit)

    def _string(self, name: str, schema: dict[str, Any], explicit: str | None) -> str:
        fmt = schema.get("format")
        lname = name.lower()
        if explicit is not None:
            s = explicit
        elif fmt == "date":
            s = "2000-01-01"
        elif fmt == "date-time":
            s = "2000-01-01T00:00:00Z"
        elif fmt == "email":
            s = "user@example.com"
        elif fmt in ("uri", "url"):
            s = "https://example.com"
        elif any(h in lname for h in _PATH_HINTS) and self.paths:
            s = self.paths.popleft()
        elif self.quoted:
            s = self.quoted.popleft()
        elif any(h in lname for h in _TITLE_HINTS):
            s = title(self.text)
        else:
            s = summary(self.text)
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        if hi is not None:
            s = s[:hi]
        if lo is not None and len(s) < lo:
            s = s.ljust(lo, ".")
        return s

    def _array(self, name: str, schema: dict[str, Any], depth: int) -> list[Any]:
        items = self._resolve(schema.get("items") or {"type": "string"})
        kind = items.get("type")
        lo, hi = schema.get("minItems", 1), schema.get("maxItems")
        if kind in ("integer", "number") and "enum" not in items:
            values: list[Any] = [
                self.value(name, items, depth + 1) for _ in range(len(self.numbers))
            ]
        elif kind == "string" and "enum" not in items and not items.get("format"):
            values = _points(self.text)
        else:
            values = [self.value(name, items, depth + 1)]
        while len(values) < lo:
            values.append(self.value(name, items, depth + 1))
        return values[:hi] if hi is not None else values

    def _enum(self, name: str, options: list[Any]) -> Any:
        explicit = self.assigned.get(name.lower())
        for option in options:
            if explicit is not None and str(option).lower() == explicit.lower():
                return option
        for option in options:
            if isinstance(option, str) and _mentioned_at(self.text, option) >= 0:
                return option
        return options[0]

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 20:
            ref = schema["$ref"].split("/")[-1]
            schema = self.defs.get(ref, {})
            seen += 1
        return schema


def _to_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# -- 4. text -------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def summary(text: str, words: int = 25) -> str:
    """The first sentence of ``text``, at most ``words`` words."""
    first = next((s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()), "")
    parts = first.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def title(text: str) -> str:
    return " ".join(summary(text).split()[:6]).rstrip(".,;:!?…")


def _points(text: str, most: int = 5) -> list[str]:
    """List items of ``text``: its bullet lines if any, else its sentences."""
    bullets = re.findall(r"^\s*(?:[-*•]|\d+[.)])\s+(.+)$", text, re.MULTILINE)
    items = bullets or [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    return items[:most]


_RULES: list[tuple[str, Any]] = [
    (r"(?:say|repeat|echo)(?:\s+after\s+me)?", lambda s: _unquote(s)),
    (r"(?:upper\s?-?case|capitali[sz]e|shout)", lambda s: _unquote(s).upper()),
    (r"(?:lower\s?-?case)", lambda s: _unquote(s).lower()),
    (r"reverse(?:\s+the\s+(?:text|string|letters))?", lambda s: _unquote(s)[::-1]),
    (r"count\s+(?:the\s+)?words\s+(?:in|of)", lambda s: str(len(_unquote(s).split()))),
    (r"(?:summari[sz]e|tl;?dr)(?:\s+(?:this|the\s+following|the\s+text))?", summary),
]
_INSTRUCTIONS = [
    (re.compile(rf"^\s*(?:please\s+)?{p}\b\s*[:,]?\s*(.+?)\s*$", re.IGNORECASE | re.DOTALL), f)
    for p, f in _RULES
]
# Only a message that is a sum and nothing else ("What is 2 + 3?"), so dates and
# ranges inside ordinary sentences are not taken for arithmetic.
_ARITHMETIC = re.compile(
    r"^\s*(?:what\s+is|what's|calculate|compute|evaluate|how\s+much\s+is)?\s*"
    r"([-(]*\s*\d+(?:\.\d+)?\s*\)*(?:\s*(?:\*\*|[-+*/×÷^])\s*[-(]*\s*\d+(?:\.\d+)?\s*\)*)+)"
    r"\s*[?=.!]*\s*$",
    re.IGNORECASE,
)


#: the agent runtime's act-phase wording (agents/runtime.py ACT_PROMPT): the job follows it
_ACT_PREFIX = "Carry out your plan and give your final answer. The job: "


def answer(text: str) -> str:
    """A text reply to the user's message ``text`` (rule 4 of the module doc)."""
    text = text.strip()
    if text.startswith(_ACT_PREFIX):  # an agent carrying out its plan: answer the job itself
        text = text[len(_ACT_PREFIX) :].strip()
    if not text:
        return "There is no question to answer."
    if text.startswith(FIX_PREAMBLE):
        return _fix(text)
    for pattern, transform in _INSTRUCTIONS:
        m = pattern.match(text)
        if m:
            return transform(m.group(1))
    m = _ARITHMETIC.match(text)
    if m:
        result = _calculate(m.group(1))
        if result is not None:
            return result
    short = text if len(text.split()) <= MAX_WORDS else summary(text)
    return f"You asked: {short}" if text.endswith("?") else f"You said: {short}"


#: how ``%wiz fix`` begins its request (notebook/cells.py); written here too, as the
#: agents layer does not import the notebook layer
FIX_PREAMBLE = "Fix this notebook cell."
_FIX_CELL = re.compile(r"^Cell In\[\d+\]:\n```python\n(.*?)\n```$", re.M | re.S)
_FIX_ERROR = re.compile(r"^Error:\n```\n(.*?)\n```$", re.M | re.S)


def _fix(text: str) -> str:
    """A ``%wiz fix`` request: a name that is not defined but looks like one that is (the
    request lists them) is corrected in the cell; any other error is only explained."""
    cell, error = _FIX_CELL.search(text), _FIX_ERROR.search(text)
    if cell is None or error is None:
        return "There is no cell to fix."
    last = error.group(1).strip().splitlines()[-1]
    missing = re.search(r"NameError: name '(\w+)' is not defined", last)
    alike = re.search(r"^Names defined in the notebook that look alike: (.+)$", text, re.M)
    if missing and alike:
        wrong, right = missing.group(1), alike.group(1).split(", ")[0]
        fixed = re.sub(rf"\b{re.escape(wrong)}\b", right, cell.group(1))
        return (
            f"`{wrong}` is not defined: it looks like a misspelling of `{right}`, "
            f"which is.\n\n```python\n{fixed}\n```"
        )
    return f"The cell raised `{last}`. The offline model cannot tell the fix for this one."


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'`":
        return s[1:-1]
    return s


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _calculate(expression: str) -> str | None:
    expr = expression.replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        value = _eval(ast.parse(expr.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError("not arithmetic")
