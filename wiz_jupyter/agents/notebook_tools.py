"""Kernel-aware tools: an agent looks at the notebook's variables, read-only.

``tools=["notebook"]`` (or ``%wiz agent NAME --notebook``) gives an agent two tools:
``list_variables`` and ``describe_variable``. They are off unless enabled, and:

- **read-only**: they look at values (type, ``shape``, ``len`` of built-in
  containers, pandas/numpy summaries, a truncated ``repr``); they never call a
  user function or assign anything;
- **bounded**: every answer is cut to :data:`BUDGET` characters, a DataFrame's
  ``describe()`` covers at most :data:`DESCRIBE_ROWS` rows;
- **no secrets**: a variable whose name looks secret (it contains ``key``,
  ``token``, ``secret``, ``password``, ``passwd``, ``credential``, ``auth``,
  ...) is withheld, unless the user *named it explicitly*: the exact name
  appears as a whole word in the text the user wrote for the job (the prompt
  of ``ask``/``assign``, a chat message), decided when the job is created.
  A prompt an agent wrote (a sub-job, a message from another agent) never
  counts, so a model cannot talk itself into a secret. Values under
  secret-looking keys of a dict are masked too;
- **this kernel only**: a job created in a kernel carries that kernel's
  identity; the tools answer only when the job runs in that same kernel. A job
  run by the headless worker, another notebook, or created outside a kernel (a
  schedule) gets a tool error, never someone else's namespace.
"""

from __future__ import annotations

import inspect
import os
import re
import reprlib
import socket
import sys
import types
import uuid
from typing import Any

from .tools import NOTEBOOK, Tool, ToolContext, ToolError, tool

#: the tools ``"notebook"`` stands for
NAMES = NOTEBOOK
#: characters per answer
BUDGET = 4000
#: rows a DataFrame's describe() looks at (the first ones), so a huge frame cannot stall the loop
DESCRIBE_ROWS = 100_000
#: this process; a job stamped with another one ran somewhere else
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

SECRET = re.compile(
    r"key|token|secret|passw|pwd|credential|auth|cookie|session|private|signature|bearer",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIZED = (list, tuple, dict, set, frozenset, str, bytes, bytearray, range)


def looks_secret(name: str) -> bool:
    """True for names like ``OPENAI_API_KEY``, ``db_password``, ``auth_token``."""
    return bool(SECRET.search(name))


def _shell() -> Any:
    """The IPython shell of this process, without importing IPython where it is not loaded."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def stamp(prompt: str, *, by_user: bool) -> dict[str, Any] | None:
    """What a job created here records for the notebook tools: this kernel, and the
    secret-looking names the user wrote in ``prompt`` (none when an agent wrote it).
    None outside a kernel."""
    if _shell() is None:
        return None
    named = sorted({w for w in _WORD.findall(prompt or "") if looks_secret(w)}) if by_user else []
    return {"process": PROCESS, "named": named}


def notebook_tools(ctx: ToolContext, names: list[str]) -> list[Tool]:
    """``list_variables`` and ``describe_variable`` for one job (those of ``names``)."""
    stamp_ = ctx.kernel or {}
    named = set(stamp_.get("named") or ())

    def namespace() -> tuple[dict[str, Any], dict[str, Any]]:
        if not stamp_:
            raise ToolError(
                "the notebook tools only answer for a job started from a notebook kernel "
                "(this one came from a schedule, a script or the headless worker)"
            )
        shell = _shell()
        if stamp_.get("process") != PROCESS or shell is None:
            raise ToolError(
                "this job runs in another process than the notebook kernel that started it, "
                "so that notebook's variables are not here"
            )
        return shell.user_ns, getattr(shell, "user_ns_hidden", {})

    def visible(name: str, value: Any, hidden: dict[str, Any], everything: bool) -> bool:
        if name.startswith("_") or (name in hidden and hidden[name] is value):
            return False
        if everything:
            return True
        return not isinstance(value, (types.ModuleType, type)) and not callable_kind(value)

    async def list_variables(everything: bool = False) -> str:
        """List the user's variables in the notebook: name, type and shape or length.
        Modules, functions and classes are left out unless everything is true.

        Args:
            everything: also list modules, functions and classes
        """
        ns, hidden = namespace()
        lines, withheld = [], []
        for name, value in list(ns.items()):
            if not visible(name, value, hidden, everything):
                continue
            if looks_secret(name) and name not in named:
                withheld.append(name)
                continue
            lines.append(f"{name}: {summary(value)}")
        if not lines:
            lines.append("(no variables yet)")
        if withheld:
            lines.append(
                "withheld, as their names look secret (the user must name one in the request): "
                + ", ".join(sorted(withheld))
            )
        return cut("\n".join(lines))

    async def describe_variable(name: str) -> str:
        """Describe one notebook variable: a DataFrame's columns, dtypes, head and
        describe(); an array's shape, dtype and a sample; otherwise a short repr.

        Args:
            name: the variable's name, as list_variables shows it
        """
        ns, hidden = namespace()
        if not isinstance(name, str) or not name.isidentifier():
            raise ToolError(f"give a variable's name, like df, not {name!r}")
        if name not in ns or not visible(name, ns[name], hidden, True):
            raise ToolError(
                f"no variable {name!r} in the notebook; list_variables shows what there is"
            )
        if looks_secret(name) and name not in named:
            raise ToolError(
                f"{name!r} is withheld: its name looks secret, and the user did not name it in the request"
            )
        return cut(describe(ns[name]))

    made = {"list_variables": list_variables, "describe_variable": describe_variable}
    return [tool(made[n]) for n in names if n in made]


# -- looking without touching ---------------------------------------------------------------------


def callable_kind(value: Any) -> bool:
    return isinstance(
        value,
        (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.LambdaType),
    )


def _kind(value: Any) -> str | None:
    """'frame', 'series' or 'array' for pandas/numpy values (only if the user imported them)."""
    pd, np = sys.modules.get("pandas"), sys.modules.get("numpy")
    if pd is not None and isinstance(value, pd.DataFrame):
        return "frame"
    if pd is not None and isinstance(value, pd.Series):
        return "series"
    if np is not None and isinstance(value, np.ndarray):
        return "array"
    return None


def summary(value: Any) -> str:
    """Type and shape or length, from attributes that cannot run user code."""
    kind, tname = _kind(value), type(value).__name__
    if kind is not None:
        return f"{tname} shape {tuple(value.shape)}"
    if type(value) in _SIZED:
        return f"{tname} len {len(value)}"
    return tname


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = 200, 200, 20, 20, 3
    return r


def _masked(value: Any) -> Any:
    """A shallow copy of a mapping with the values under secret-looking keys hidden."""
    if isinstance(value, (dict, os._Environ)):
        return {
            k: "***withheld***" if isinstance(k, str) and looks_secret(k) else v
            for k, v in value.items()
        }
    return value


def describe(value: Any) -> str:
    kind = _kind(value)
    if kind == "frame":
        return _describe_frame(value)
    if kind == "series":
        return _describe_series(value)
    if kind == "array":
        import numpy as np

        sample = np.array2string(value.flat[:20], threshold=20, max_line_width=100)
        return f"numpy array, shape {value.shape}, dtype {value.dtype}\nfirst values: {sample}"
    head = summary(value)
    if isinstance(value, (types.FunctionType, types.MethodType)):
        try:
            sig = str(inspect.signature(value))
        except (TypeError, ValueError):
            sig = "(...)"
        doc = (inspect.getdoc(value) or "").split("\n\n")[0]
        return f"function {value.__qualname__}{sig}\n{doc}".strip()
    return f"{head}\n{_short_repr().repr(_masked(value))}"


def _describe_frame(df: Any) -> str:
    import pandas as pd

    rows = len(df)
    part = df if rows <= DESCRIBE_ROWS else df.head(DESCRIBE_ROWS)
    with pd.option_context(
        "display.max_columns", 30, "display.width", 120, "display.max_colwidth", 40
    ):
        dtypes = "\n".join(f"  {c}: {t}" for c, t in list(df.dtypes.items())[:50])
        more = f"\n  ... {df.shape[1] - 50} more columns" if df.shape[1] > 50 else ""
        try:
            stats = part.describe(include="all").to_string()
        except ValueError:  # no columns
            stats = "(nothing to describe)"
        note = f" (first {DESCRIBE_ROWS} rows)" if rows > DESCRIBE_ROWS else ""
        return (
            f"DataFrame, {rows} rows x {df.shape[1]} columns\ncolumns and dtypes:\n{dtypes}{more}\n"
            f"head:\n{df.head(5).to_string()}\ndescribe(){note}:\n{stats}"
        )


def _describe_series(s: Any) -> str:
    import pandas as pd

    part = s if len(s) <= DESCRIBE_ROWS else s.head(DESCRIBE_ROWS)
    with pd.option_context("display.width", 120):
        return (
            f"Series {s.name!r}, {len(s)} values, dtype {s.dtype}\nhead:\n{s.head(5).to_string()}\n"
            f"describe():\n{part.describe().to_string()}"
        )


def cut(text: str) -> str:
    if len(text) <= BUDGET:
        return text
    return text[:BUDGET] + f"\n[... {len(text) - BUDGET} more characters cut]"
