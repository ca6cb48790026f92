"""Persona files: an agent's persona as YAML or JSON, checked against a published schema.

``ws.agents.export("analyst", "analyst.yaml")`` writes one;
``ws.agents.load("analyst.yaml")`` (or ``%wiz agent --from analyst.yaml``)
creates or replaces the agent from one. The format is the pydantic model
:class:`PersonaFile`; its JSON schema is committed beside this module as
``persona.schema.json`` (``python -m wiz_jupyter.agents.persona_file`` prints
it), so editors can check files as they are written::

    # analyst.yaml
    version: 1
    name: analyst
    role: data analyst
    goal: answer questions about the sales data
    model: wiz/offline
    settings: {temperature: 0}
    tools: [read_file, list_dir, summarise]   # built-ins, or tools registered by name

A file that cannot be used raises :class:`~wiz_jupyter.errors.InvalidPersona`
with one line naming the file, the field and what was expected. Keys never go
into a file: export leaves key-like settings out (and warns), load refuses a
file holding one.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import pydantic

from ..errors import InvalidPersona
from .keys import secrets

SCHEMA_PATH = Path(__file__).with_name("persona.schema.json")
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Setting names that hold credentials (api_key, access_token, client_secret, password, ...).
_KEY_NAME = re.compile(r"(^|_)(api_?key|key|token|secret|password|passwd|credentials?)$", re.I)
# Values shaped like provider keys (OpenAI/Anthropic sk-..., GitHub, Slack, AWS, Google).
_KEY_VALUE = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,})"
)


class MCPRef(pydantic.BaseModel):
    """An MCP server whose tools the agent gets (``wiz.mcp``): a reference, never a session;
    ``env`` names variables passed on, never their values."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    mcp: str = pydantic.Field(description="the server's name")
    command: list[str] | None = pydantic.Field(None, description="a stdio server's command")
    url: str | None = pydantic.Field(None, description="a streamable HTTP server's URL")
    env: list[str] = pydantic.Field(default_factory=list, description="variables passed on")
    cwd: str | None = None
    timeout: float = pydantic.Field(60.0, gt=0, description="seconds per call")


class PersonaFile(pydantic.BaseModel):
    """One agent's persona, as stored in a persona file (every field of ``ws.agent``)."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        strict=True,
        title="wiz_jupyter persona",
    )

    version: Literal[1] = pydantic.Field(1, description="the persona file format's version")
    name: str = pydantic.Field(pattern=_NAME, description="the agent's name, a word like 'analyst'")
    role: str | None = pydantic.Field(None, description="what the agent is, e.g. 'data analyst'")
    goal: str | None = pydantic.Field(None, description="what it works towards")
    backstory: str | None = pydantic.Field(None, description="background for its system prompt")
    instructions: str | None = pydantic.Field(
        None, description="the whole system prompt (else built from role, goal and backstory)"
    )
    model: str | None = pydantic.Field(None, description="a litellm model name (null: the default)")
    settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="model settings: temperature, max_tokens, ... (no keys)"
    )
    tools: list[str | MCPRef] = pydantic.Field(
        default_factory=list,
        description="tool names (built-ins such as read_file, or tools registered by name) "
        "and MCP servers ({mcp: NAME, command: [...]} or {mcp: NAME, url: ...})",
    )
    max_steps: int = pydantic.Field(10, ge=1, description="tool-using turns per job at most")
    concurrency: int = pydantic.Field(1, ge=1, description="jobs of this agent at once")
    folder: str | None = pydantic.Field(
        None, description="where its file tools read and write (null: agents/NAME)"
    )
    approve: list[str] = pydantic.Field(
        default_factory=list,
        description="tool names whose calls wait for a person's approval (beside write_file, "
        "run_python, MCP tools and tools made with approve=True)",
    )
    auto_approve: bool | list[str] = pydantic.Field(
        False,
        description="true: no call waits for approval; a list: those tools' calls do not",
    )


FIELD_NAMES = tuple(PersonaFile.model_fields)


def json_schema() -> dict[str, Any]:
    """The persona file's JSON schema, generated from :class:`PersonaFile`."""
    schema = PersonaFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    """The schema as it is committed (``persona.schema.json``)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


# -- reading -------------------------------------------------------------------------------------


def read(path: str | Path) -> PersonaFile:
    """Parse and check a persona file; raises :class:`InvalidPersona` (one line) if it
    cannot be used."""
    path = Path(path)
    label = path.name
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidPersona(f"{label}: expected a .yaml, .yml or .json persona file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidPersona(f"{label}: no such file ({path})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidPersona(f"{label}: cannot be read ({type(e).__name__}: {e})") from None
    data = _parse(label, fmt, text)
    if not isinstance(data, dict):
        raise InvalidPersona(f"{label}: expected a mapping of persona fields, got {_kind(data)}")
    _refuse_secrets(label, data)
    try:
        return PersonaFile.model_validate(data)
    except pydantic.ValidationError as e:
        raise InvalidPersona(f"{label}: {_first_error(e)}") from None


def _parse(label: str, fmt: str, text: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidPersona(
                f"{label}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
            ) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InvalidPersona(f"{label}: not valid YAML ({where}{problem})") from None


def _walk(value: Any, where: str) -> Any:
    """(field path, key name or None, value) for every entry, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{where}.{k}" if where else str(k)
            yield path, str(k), v
            yield from _walk(v, path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield f"{where}[{i}]", None, v
            yield from _walk(v, f"{where}[{i}]")


def _looks_secret(value: Any, known: list[str]) -> bool:
    if not isinstance(value, str):
        return False
    return bool(_KEY_VALUE.search(value)) or any(s in value for s in known)


def _refuse_secrets(label: str, data: dict[str, Any]) -> None:
    known = secrets()
    for where, key, value in _walk(data, ""):
        if (key is not None and _KEY_NAME.search(key) and value) or _looks_secret(value, known):
            raise InvalidPersona(
                f"{label}: field '{where}': looks like a key; persona files never hold keys "
                "(set it in the environment or ~/.config/wiz_jupyter/keys.env)"
            )


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "literal_error": "1",
}


def _first_error(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    if len(err["loc"]) >= 3 and err["loc"][0] == "tools" and err["loc"][2] in ("str", "MCPRef"):
        # a tool is a name or an MCP server reference: say so, not which branch failed
        item = err["loc"][1]
        if not isinstance(err["input"], dict):
            return f"field 'tools[{item}]': expected a string, got {_show(err['input'])}"
        mcp_errs = [e for e in exc.errors() if e["loc"][:3] == ("tools", item, "MCPRef")]
        err = {**mcp_errs[0], "loc": ("tools", item, *mcp_errs[0]["loc"][3:])}
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field '{loc}'; expected one of: {', '.join(FIELD_NAMES)}"
    if kind == "missing":
        return f"field '{loc}' is missing; expected the agent's name, a word like 'analyst'"
    if kind == "string_pattern_mismatch":
        expected = "a word like 'analyst' (letters, digits, _)"
    elif kind == "greater_than_equal":
        expected = f"a whole number >= {err['ctx']['ge']}"
    else:
        expected = _EXPECTED.get(kind, err["msg"].lower())
    return f"field '{loc}': expected {expected}, got {_show(err['input'])}"


def _kind(value: Any) -> str:
    if value is None:
        return "an empty file"
    return {list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = (
        json.dumps(value) if isinstance(value, (dict, list, bool)) or value is None else repr(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


# -- writing -------------------------------------------------------------------------------------


def write(persona: dict[str, Any], path: str | Path) -> Path:
    """Write ``persona`` (the fields of :class:`PersonaFile`) to ``path``, YAML or JSON by
    its suffix. Key-like settings are left out, with a warning naming them."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidPersona(f"{path.name}: expected a .yaml, .yml or .json persona file")
    data = PersonaFile.model_validate(persona).model_dump()
    known = secrets()
    dropped = []
    for key in list(data["settings"]):
        value = data["settings"][key]
        inside = [value, *(v for _, _, v in _walk(value, ""))]
        if _KEY_NAME.search(key) or any(_looks_secret(v, known) for v in inside):
            dropped.append(f"settings.{key}")
            del data["settings"][key]
    if dropped:
        warnings.warn(
            f"{path.name}: left out {', '.join(dropped)} (looks like a key; persona files "
            "never hold keys)",
            UserWarning,
            stacklevel=3,
        )
    if fmt == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m wiz_jupyter.agents.persona_file > persona.schema.json
    print(schema_text(), end="")
