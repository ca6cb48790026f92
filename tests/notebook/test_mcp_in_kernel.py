"""An MCP server's tools used by an agent inside a real kernel (the session lives on the
kernel's loop; the cell that asks waits through the one bridge)."""

from __future__ import annotations

import sys
from pathlib import Path

SERVER = str(Path(__file__).parents[1] / "agents" / "_mcp_server.py")


def test_an_agent_in_a_kernel_calls_an_mcp_server(kernel):
    kernel.ok(
        "%load_ext wiz_jupyter\n"
        "import wiz_jupyter as wiz\n"
        "from wiz_jupyter.agents import ScriptedModel, ToolCall\n"
        "model = ScriptedModel([ToolCall('add', {'a': 19, 'b': 23}),\n"
        "                       lambda m: 'the server says ' + m[-1]['content']])\n"
        f"calc = wiz.mcp('calc', command=[{sys.executable!r}, {SERVER!r}])\n"
        "wiz.workspace().agent('calc', model=model, tools=[calc], auto_approve=True)"
    )
    res = kernel.ok("%wiz ask calc add 19 and 23")
    # the answer is a display (it carries its provenance), not stdout
    assert [p for p in res.plain if p.strip()] == ["the server says 42"], res.plain
    assert kernel.ok("print(wiz.workspace().agents.mcp.running())").stdout.strip() == "['calc']"
    # the kernel stays responsive between cells while the server runs
    assert kernel.ok("print(1 + 1)").stdout.strip() == "2"
    kernel.ok("await wiz.workspace().stop()")
    assert kernel.ok("print(wiz.workspace().agents.mcp.running())").stdout.strip() == "[]"
