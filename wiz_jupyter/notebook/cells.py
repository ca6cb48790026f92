"""The notebook's own cells as an assistant's input and output.

- :func:`code_of` takes the code of an answer (its fenced Python blocks) for
  ``%wiz ask --code`` and ``%wiz fix``, which put it in a new cell below with IPython's
  ``set_next_input``: JupyterLab, Notebook 7 and VS Code honour that payload, and none of
  them runs the cell.
- :class:`Errors` remembers the cells that raised (a ``post_run_cell`` hook): the
  source, the exception and its traceback, by execution count. ``Err`` in the user's
  namespace maps each count to its error text, so prompts can interpolate ``{Err[3]}``
  beside IPython's ``{In[3]}`` and ``{Out[3]}``, as jupyter-ai's magics do.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from typing import Any

from ..agents.offline import FIX_PREAMBLE  # how the request begins: the offline model knows it

# ```python ... ``` and unlabelled fences; a fence of another language (bash, json ...)
# is not code for a Python cell
_FENCE = re.compile(
    r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S
)
_PYTHON = {"", "python", "python3", "py", "ipython", "ipython3", "pycon"}
#: lines of a traceback kept for a prompt (its end: where the error happened)
TRACEBACK_LINES = 40


def code_blocks(text: str) -> list[str]:
    """The fenced Python (or unlabelled) code blocks of ``text``, in order."""
    return [
        m.group(3).rstrip("\n")
        for m in _FENCE.finditer(text or "")
        if m.group(2).lower() in _PYTHON and m.group(3).strip()
    ]


def code_of(text: str) -> str | None:
    """One cell's code from an answer: its Python blocks joined, or None if it has none."""
    blocks = code_blocks(text)
    return "\n\n".join(blocks) if blocks else None


def offer(shell: Any, code: str, *, replace: bool = False) -> None:
    """Put ``code`` in a new cell below the running one (never run), or print it where
    the front end has no cells (a terminal)."""
    if getattr(shell, "kernel", None) is not None:
        shell.set_next_input(code, replace=replace)
    else:
        print(code)


@dataclass(frozen=True)
class CellError:
    """A cell that raised: its execution count, its source and the exception."""

    count: int
    source: str
    error: BaseException

    @property
    def text(self) -> str:
        """``Type: message`` and the end of the traceback, as plain text."""
        lines = "".join(traceback.format_exception(self.error)).rstrip().splitlines()
        return "\n".join(lines[-TRACEBACK_LINES:])


class Errors:
    """The cells that raised in this kernel, newest last, and ``Err`` in the namespace."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.last: CellError | None = None
        self.by_count: dict[int, str] = {}
        shell.user_ns.setdefault("Err", self.by_count)

    def attach(self) -> None:
        self.shell.events.register("post_run_cell", self.after_cell)

    def detach(self) -> None:
        try:
            self.shell.events.unregister("post_run_cell", self.after_cell)
        except ValueError:  # not registered
            pass

    def after_cell(self, result: Any) -> None:
        error = result.error_in_exec or result.error_before_exec
        if error is None or result.execution_count is None:
            return
        info = getattr(result, "info", None)
        source = getattr(info, "raw_cell", None) or ""
        self.last = CellError(result.execution_count, source, error)
        self.by_count[result.execution_count] = self.last.text


_NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def fix_prompt(err: CellError, namespace: dict[str, Any], *, with_values: bool) -> str:
    """The request ``%wiz fix`` sends: the cell, its error and traceback, the notebook's
    names that look like an undefined one, and (``with_values``: the agent has the
    notebook tools) the type and size of each variable the cell uses or that looks
    like its undefined name, read without
    running user code. Secret-looking names are left out."""
    from difflib import get_close_matches

    from ..agents.notebook_tools import looks_secret, summary

    public = [n for n in namespace if not n.startswith("_") and not looks_secret(n)]
    parts = [
        f"{FIX_PREAMBLE} It raised the error below. Explain the cause in one or two "
        "sentences, then give the whole corrected cell as one ```python block.",
        f"Cell In[{err.count}]:\n```python\n{err.source.rstrip()}\n```",
        f"Error:\n```\n{err.text}\n```",
    ]
    missing = _NAME_ERROR.search(err.text)
    alike = get_close_matches(missing.group(1), public, n=5, cutoff=0.6) if missing else []
    if alike:
        parts.append("Names defined in the notebook that look alike: " + ", ".join(alike))
    if with_values:
        names = [*_IDENTIFIER.findall(err.source), *alike]
        used = dict.fromkeys(n for n in names if n in public)
        described = [f"- {n}: {summary(namespace[n])}" for n in used]
        if described:
            parts.append("Variables the cell uses:\n" + "\n".join(described))
    return "\n\n".join(parts)
