"""The layering of DESIGN.md, checked on the source: jobs/ knows nothing above it, and
agents/ works with the parts of a workspace it is given (``AgentDeps``), never the
facade or the notebook layer. Imports under ``if TYPE_CHECKING:`` are for type
checkers only and do not count."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "wiz_jupyter"

#: per layer, the modules of the package it must not import at run time
FORBIDDEN = {
    "jobs": ("wiz_jupyter.workspace", "wiz_jupyter.agents", "wiz_jupyter.notebook",
             "wiz_jupyter.server", "wiz_jupyter.cli"),
    "agents": ("wiz_jupyter.workspace", "wiz_jupyter.notebook", "wiz_jupyter.server",
               "wiz_jupyter.cli"),
}  # fmt: skip


def _runtime_imports(source: str, module_name: str) -> list[tuple[int, str]]:
    """(line, module) of every import that runs: top level, in functions, in classes."""
    tree = ast.parse(source)
    package = module_name
    out = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: -child.level]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                out.append((child.lineno, module))
                out.extend((child.lineno, f"{module}.{a.name}") for a in child.names)
            visit(child)

    visit(tree)
    return out


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it_at_run_time(layer):
    bad = []
    files = sorted((PACKAGE / layer).glob("*.py"))
    assert files, f"no modules found in {layer}/"
    for path in files:
        name = "wiz_jupyter." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for line, module in _runtime_imports(path.read_text(), name):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert bad == []


def test_the_checker_sees_imports_inside_functions_and_skips_type_checking_ones():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..workspace import Workspace\n"
        "def f():\n    from ..workspace import workspace\n"
    )
    found = _runtime_imports(source, "wiz_jupyter.agents.probe")
    assert (5, "wiz_jupyter.workspace.workspace") in found
    assert not any(line == 3 for line, _ in found)


def test_no_function_in_the_package_is_over_80_lines():
    """Long builders become tables and small functions (a house rule: issue 20)."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} {lines}")
    assert long == []
