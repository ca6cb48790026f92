"""Persona files: export and load in YAML or JSON, the published schema, one-line errors."""

from __future__ import annotations

import json
import warnings

import pytest

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter.agents import persona_file

pytestmark = LITELLM_NOISE

PERSONA = {
    "role": "data analyst",
    "goal": "answer questions about sales",
    "backstory": "Ex-statistician.\nLikes tables.",
    "instructions": "Answer in one paragraph: é, ü and 中文 survive.",
    "model": "wiz/offline",
    "settings": {"temperature": 0.2, "max_tokens": 300, "stop": ["\n\n"], "extra": {"a": [1]}},
    "max_steps": 7,
    "concurrency": 3,
    "approve": ["summarise"],
    "auto_approve": ["write_file"],
}


def summarise(text: str) -> str:
    """Summarise a text.

    Args:
        text: what to summarise
    """
    return text[:20]


def stored(agent: wiz.Agent) -> dict:
    row = dict(agent._row)
    return {
        k: row[k]
        for k in (
            "role",
            "goal",
            "backstory",
            "instructions",
            "model",
            "max_steps",
            "concurrency",
            "folder",
        )
    } | {
        "settings": agent.settings,
        "tools": agent.tool_names,
        "approve": agent.approve,
        "auto_approve": agent.auto_approve,
    }


def test_the_committed_schema_is_the_one_the_model_generates():
    assert persona_file.SCHEMA_PATH.read_text() == persona_file.schema_text()
    schema = json.loads(persona_file.SCHEMA_PATH.read_text())
    assert schema["additionalProperties"] is False and schema["required"] == ["name"]
    assert list(schema["properties"]) == sorted(persona_file.FIELD_NAMES)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
async def test_a_persona_round_trips_through_a_file_with_every_field(ws, tmp_path, db_path, suffix):
    ws.agents.register_tool(summarise)
    a = ws.agent("analyst", **PERSONA, folder=tmp_path / "desk", tools=["read_file", "summarise"])
    before = stored(a)
    path = ws.agents.export("analyst", tmp_path / f"analyst{suffix}")
    text = path.read_text(encoding="utf-8")
    assert "中文" in text  # written as text, not escapes
    if suffix == ".json":
        assert json.loads(text)["tools"] == ["read_file", "summarise"]
    else:
        assert text.startswith("version: 1\nname: analyst\n")
    # Into a fresh workspace (another notebook), where summarise is registered too.
    other = wiz.Workspace(tmp_path / "other.db")
    other.agents.register_tool(summarise)
    b = other.agents.load(path)
    assert b.name == "analyst" and stored(b) == before
    assert set(PERSONA) | {"tools", "folder", "name"} == set(persona_file.FIELD_NAMES) - {"version"}
    assert [t.name for t in b.tools_for(_ctx(other, b))] == ["read_file", "summarise"]
    # Loading replaces: fields the file leaves out are cleared, under another name too.
    minimal = tmp_path / f"minimal{suffix}"
    minimal.write_text(
        json.dumps({"name": "analyst", "role": "critic"})
        if suffix == ".json"
        else "name: analyst\nrole: critic\n"
    )
    c = other.agents.load(minimal)
    assert (c.role, c.goal, c.backstory, c._row["instructions"], c.model) == (
        "critic",
        None,
        None,
        None,
        None,
    )
    assert (c.max_steps, c.concurrency, c.tool_names, c.settings) == (10, 1, [], {})  # fmt: skip
    assert (c.approve, c.auto_approve) == ([], False)
    assert other.agents.load(path, name="copy").goal == PERSONA["goal"]
    other.close()


def _ctx(ws, agent):
    from wiz_jupyter.agents.tools import ToolContext

    return ToolContext(deps=ws.agents.deps, agent=agent.name, folder=agent.folder, job_id=None)


def test_export_leaves_keys_out_and_says_so(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdefghij")
    ws.agent("leaky", settings={"temperature": 0, "api_key": "abc123456", "headers": {
        "X-Auth": "sk-test-0123456789abcdefghij"}})  # fmt: skip
    with pytest.warns(
        UserWarning, match=r"leaky.yaml: left out settings.api_key, settings.headers"
    ):
        path = ws.agents.export("leaky", tmp_path / "leaky.yaml")
    text = path.read_text()
    assert "abc123456" not in text and "sk-test" not in text and "temperature: 0" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ws.agents.load(path).settings == {"temperature": 0}


BAD = {
    "unknown.yaml": (
        "name: a\ncolour: blue\n",
        "unknown.yaml: unknown field 'colour'; expected one of: version, name, role, goal",
    ),
    "type.yaml": ("name: a\nmodel: 3\n", "type.yaml: field 'model': expected a string, got 3"),
    "steps.json": (
        '{"name": "a", "max_steps": "5"}',
        "steps.json: field 'max_steps': expected a whole number, got '5'",
    ),
    "zero.yaml": ("name: a\nconcurrency: 0\n", "zero.yaml: field 'concurrency': expected a whole number >= 1, got 0"),
    "tools.yaml": ("name: a\ntools: [read_file, 4]\n", "tools.yaml: field 'tools[1]': expected a string, got 4"),
    "unknown_tool.yaml": (
        "name: a\ntools: [read_file, rm_rf]\n",
        "unknown_tool.yaml: field 'tools[1]': expected a built-in or registered tool (read_file,",
    ),
    "noname.yaml": ("role: x\n", "noname.yaml: field 'name' is missing"),
    "badname.yaml": ("name: two words\n", "badname.yaml: field 'name': expected a word like"),
    "syntax.yaml": (
        "name: a\nrole: [unclosed\n",
        "syntax.yaml: not valid YAML (line 3, column 1:",
    ),
    "syntax.json": ('{"name": "a",}', "syntax.json: not valid JSON (line 1, column 14:"),
    "list.yaml": ("- name: a\n", "list.yaml: expected a mapping of persona fields, got a list"),
    "empty.yaml": ("", "empty.yaml: expected a mapping of persona fields, got an empty file"),
    "key.yaml": (
        "name: a\nsettings:\n  api_key: abc123\n",
        "key.yaml: field 'settings.api_key': looks like a key; persona files never hold keys",
    ),
    "keyvalue.json": (
        '{"name": "a", "instructions": "use sk-proj-abcdefghijklmnopqrstuv"}',
        "keyvalue.json: field 'instructions': looks like a key",
    ),
    "persona.txt": ("name: a\n", "persona.txt: expected a .yaml, .yml or .json persona file"),
}  # fmt: skip


@pytest.mark.parametrize("filename", sorted(BAD))
def test_a_bad_file_gives_one_line_naming_file_and_field(ws, tmp_path, filename):
    text, message = BAD[filename]
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(wiz.InvalidPersona) as err:
        ws.agents.load(path)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)
    assert ws.agents.list() == []  # nothing half-made


def test_a_missing_file_and_a_key_in_settings_of_an_existing_agent(ws, tmp_path):
    with pytest.raises(wiz.InvalidPersona, match=r"^nowhere.yaml: no such file \("):
        ws.agents.load(tmp_path / "nowhere.yaml")
    with pytest.raises(wiz.InvalidPersona, match="expected a string, got 3"):
        persona_file.read(_write(tmp_path / "t.yml", "name: a\ngoal: 3\n"))


def _write(path, text):
    path.write_text(text)
    return path


def test_registered_tools_are_named_and_builtins_cannot_be_shadowed(ws):
    ws.agents.register_tool(summarise)
    assert ws.agent("a", tools=["summarise"]).tool_names == ["summarise"]
    with pytest.raises(wiz.WizError, match="built-in tool's name"):
        ws.agents.register_tool(summarise, name="read_file")


def test_an_mcp_server_round_trips_as_a_reference(tmp_path):
    ws = wiz.Workspace(tmp_path / "a.db")
    server = wiz.mcp("files", command=["my-mcp-server", "--root", "data"], env=["DATA_TOKEN"])
    ws.agent("helper", role="helper", tools=["read_file", server])
    path = ws.agents.export("helper", tmp_path / "helper.yaml")
    text = path.read_text()
    assert "my-mcp-server" in text and "DATA_TOKEN" in text
    other = wiz.Workspace(tmp_path / "b.db")
    agent = other.agents.load(path)
    assert agent.tool_names == ["read_file", "mcp:files"]
    [ref] = agent.mcp_servers
    assert ref.command == ("my-mcp-server", "--root", "data") or list(ref.command) == [
        "my-mcp-server",
        "--root",
        "data",
    ]
    assert list(ref.env) == ["DATA_TOKEN"]
    ws.close()
    other.close()
