"""Tools: Python functions an agent may call.

Any function, sync or async, becomes a :class:`Tool`: its JSON schema comes
from the signature, type hints and docstring (through pydantic), its
arguments are validated before the call, it runs with a timeout (sync ones in
a thread), and whatever it raises goes back to the model as an error text
instead of failing the job.

Built-in tools are made per job from a :class:`ToolContext` (the agent, its
folder, the workspace, the running job); name them in ``tools=[...]``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import dataclasses
import functools
import inspect
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from ..errors import ToolError
from . import confined

if TYPE_CHECKING:
    from .deps import AgentDeps

MAX_RESULT_CHARS = 20_000


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The docstring's summary and its parameters' descriptions, in any of the styles
    docstring_parser reads: Google (``Args:``), NumPy (``Parameters`` / ``----------``),
    Sphinx (``:param a:``) and Epydoc."""
    import docstring_parser

    doc = inspect.getdoc(fn) or ""
    try:
        parsed = docstring_parser.parse(doc)
    except docstring_parser.ParseError:  # a docstring that only looks like one style
        return doc.split("\n\n")[0].strip(), {}
    params = {
        p.arg_name: " ".join(p.description.split())
        for p in parsed.params
        if p.description and p.arg_name.isidentifier()
    }
    summary = (parsed.description or "").split("\n\n")[0]  # the first paragraph
    return " ".join(summary.split()), params


@dataclass
class Tool:
    """A function the model can call. Make one with :func:`tool` (or pass the function)."""

    name: str
    description: str
    fn: Callable[..., Any]
    args_model: type[pydantic.BaseModel]
    timeout: float = 60.0
    #: the job waits in ``awaiting_input`` until a person approves each call
    approve: bool = False

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        # a fresh copy: a provider's adapter may change the entry it is given
        return json.loads(_schema(self.name, self.description, self.args_model))

    async def call(self, args: dict[str, Any]) -> tuple[str, bool]:
        """Run with ``args``; return (text for the model, ok). Never raises for the tool's
        own failures: bad arguments, an exception or a timeout come back as text."""
        try:
            parsed = self.args_model.model_validate(args or {})
        except pydantic.ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, x['loc'])) or 'args'}: {x['msg']}" for x in e.errors()
            )
            return f"error: bad arguments for {self.name}: {problems}", False
        kwargs = {k: getattr(parsed, k) for k in self.args_model.model_fields}
        try:
            if inspect.iscoroutinefunction(self.fn):
                out = await asyncio.wait_for(self.fn(**kwargs), self.timeout)
            else:
                # asyncio.to_thread's work without its coroutine, which wait_for would wrap
                # in a task of its own: the executor's future is awaited as it is
                run = functools.partial(contextvars.copy_context().run, self.fn, **kwargs)
                pending = asyncio.get_running_loop().run_in_executor(None, run)
                out = await asyncio.wait_for(pending, self.timeout)
        except asyncio.TimeoutError:
            return f"error: {self.name} timed out after {self.timeout:g} s", False
        except Exception as e:
            return f"error: {type(e).__name__}: {e}", False
        text = out if isinstance(out, str) else json.dumps(out, default=str)
        if len(text) > MAX_RESULT_CHARS:
            text = (
                text[:MAX_RESULT_CHARS]
                + f"\n[... {len(text) - MAX_RESULT_CHARS} more characters cut]"
            )
        return text, True


@functools.lru_cache(maxsize=1024)
def _schema(name: str, description: str, args_model: type[pydantic.BaseModel]) -> str:
    """A tool's ``tools`` entry as JSON, built once: pydantic's schema generation costs
    more than the rest of an agent's step, and every job asks for its tools' schemas."""
    params = args_model.model_json_schema()
    params.pop("title", None)
    for p in params.get("properties", {}).values():
        p.pop("title", None)
    entry = {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": params},
    }
    return json.dumps(entry)


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
         timeout: float = 60.0, approve: bool = False) -> Any:  # fmt: skip
    """Make a tool of a function (also a decorator)::

    @wiz.tool(timeout=10)
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.

        Args:
            a: the first number
            b: the second number
        \"\"\"
        return a + b

    ``approve=True``: each call waits for a person (``ws.jobs.approve(job)`` /
    ``deny(job, reason)``; the job is ``awaiting_input`` meanwhile) unless the agent's
    persona says ``auto_approve``.
    """
    if fn is None:
        return lambda f: tool(
            f, name=name, description=description, timeout=timeout, approve=approve
        )
    if isinstance(fn, Tool):
        return dataclasses.replace(fn, approve=True) if approve and not fn.approve else fn
    made = _make_tool(fn, name, description, timeout)
    made.approve = approve
    return made


def _make_tool(
    fn: Callable[..., Any],
    name: str | None = None,
    description: str | None = None,
    timeout: float = 60.0,
    *,
    bound: tuple[str, ...] = (),
) -> Tool:
    """The Tool of ``fn``: its arguments model from the signature, leaving out the
    ``bound`` parameters (a built-in's ``ctx``, given when the tool is bound to a job)."""
    summary, param_docs = _doc_parts(fn)
    fields: dict[str, Any] = {}
    hints = _hints(fn)
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in bound:
            continue
        annotation = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (annotation, pydantic.Field(default, description=param_docs.get(p.name)))
    tool_name = name or fn.__name__
    model = pydantic.create_model(f"{tool_name}_args", **fields)
    return Tool(tool_name, description or summary or tool_name, fn, model, timeout)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        import typing

        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to untyped
        return {}


# -- built-in tools ------------------------------------------------------------------------------


@dataclass
class ToolContext:
    """What built-in tools may touch while an agent works a job: the agents layer's
    parts of the workspace (``deps.jobs``, ``deps.agents``, ``deps.chats``, ...)."""

    deps: AgentDeps
    agent: str
    folder: Path
    job_id: int | None
    chat_id: int | None = None
    kernel: dict[str, Any] | None = (
        None  # the notebook kernel that created the job (notebook tools)
    )


def _confined(call: Callable[[], Any]) -> Any:
    """Run a file operation of :mod:`confined`; what goes wrong is a ToolError the model reads."""
    try:
        return call()
    except confined.OutsideFolder as e:
        raise ToolError(str(e)) from None
    except OSError as e:
        raise ToolError(e.strerror if e.filename is None and e.strerror else str(e)) from None


def read_file(ctx: ToolContext, path: str) -> str:
    """Read a text file from your folder.

    Args:
        path: the file's path, relative to your folder
    """
    return _confined(lambda: confined.read_text(ctx.folder, path))


def write_file(ctx: ToolContext, path: str, content: str) -> str:
    """Write a text file in your folder (replacing it if it exists).

    Args:
        path: the file's path, relative to your folder
        content: the text to write
    """
    _confined(lambda: confined.write_text(ctx.folder, path, content))
    return f"wrote {len(content)} characters to {path}"


def list_dir(ctx: ToolContext, path: str = ".") -> list[str]:
    """List a folder inside your folder (sub-folders end with '/').

    Args:
        path: the folder, relative to your folder
    """
    return _confined(lambda: confined.list_dir(ctx.folder, path))


def memory_save(ctx: ToolContext, content: str, kind: str = "fact") -> str:
    """Remember something for later jobs.

    Args:
        content: what to remember
        kind: fact, learning or goal
    """
    ctx.deps.agents.memory(ctx.agent).save(content, kind=kind, job_id=ctx.job_id)
    return "saved"


async def memory_search(ctx: ToolContext, query: str, limit: int = 5) -> list[str]:
    """Search your long-term memory (best matches first, by meaning when embeddings
    are on).

    Args:
        query: what to look for, in your own words
        limit: how many memories at most
    """
    found = await ctx.deps.agents.memory(ctx.agent).asearch(query, limit=limit)
    return [m["content"] for m in found]


async def send_message(ctx: ToolContext, agent: str, message: str) -> str:
    """Ask another agent something and get its answer.

    Args:
        agent: the other agent's name
        message: what to ask or tell it
    """
    if agent == ctx.agent:
        raise ToolError("you cannot message yourself")
    other = ctx.deps.agents.get(agent)
    job = other.submit("message", message, sender=ctx.agent)
    return str(await job.wait())


def create_subjob(
    ctx: ToolContext, prompt: str, agent: str | None = None, priority: int = 0
) -> str:
    """Create a sub-job (a child of the current job) for yourself or another agent.
    The current job completes only after its sub-jobs.

    Args:
        prompt: what the sub-job must do
        agent: who does it (default: you)
        priority: higher runs sooner
    """
    if ctx.job_id is None:
        raise ToolError("sub-jobs need a running job")
    target = ctx.deps.agents.get(agent or ctx.agent)
    job = target.submit("assign", prompt, parent=ctx.job_id, priority=priority)
    return f"created job {job.id} for {target.name}"


def set_priority(ctx: ToolContext, job_id: int, priority: int) -> str:
    """Change the priority of your own job or of one of its sub-jobs.

    Args:
        job_id: the job
        priority: the new priority (higher runs sooner)
    """
    job = ctx.deps.jobs.get(job_id)
    if job.id != ctx.job_id and job.parent_id != ctx.job_id:
        raise ToolError(f"job {job_id} is neither yours nor one of your sub-jobs")
    ctx.deps.jobs.set_priority(job_id, priority)
    return f"job {job_id} now has priority {priority}"


def post_to_chat(ctx: ToolContext, message: str) -> str:
    """Post a message to the chat this job answers.

    Args:
        message: the text to post
    """
    if ctx.chat_id is None:
        raise ToolError("this job does not belong to a chat")
    ctx.deps.chats.get(ctx.chat_id).post(ctx.agent, message, job_id=ctx.job_id)
    return "posted"


def ask_user(ctx: ToolContext, question: str) -> str:
    """Ask the user a question and get their answer (the job waits for it, maybe long).

    Args:
        question: the question, short and self-contained
    """
    # never called: the agent runtime parks the job and the answer becomes the result
    raise ToolError("ask_user is answered by a person, not run")


def run_python(ctx: ToolContext, code: str) -> str:
    """Run Python code and return what it prints (enabled for this agent on purpose).

    Args:
        code: the Python source to run
    """
    out = io.StringIO()

    def captured_print(*args: Any, file: Any = None, **kwargs: Any) -> None:
        print(*args, file=out if file is None else file, **kwargs)

    # the code's own print, not a swap of sys.stdout: that is process-wide, and would
    # take what the notebook (or any other thread) prints while the tool runs
    env = {"__name__": "__agent__", "__builtins__": {**vars(builtins), "print": captured_print}}
    exec(compile(code, "<agent>", "exec"), env)
    return out.getvalue()


#: The built-in tools, their argument models built once (``ctx`` is bound per job).
_BUILTINS: dict[str, Tool] = {
    f.__name__: _make_tool(f, bound=("ctx",))
    for f in (read_file, write_file, list_dir, memory_save, memory_search, send_message,
              create_subjob, set_priority, post_to_chat, run_python, ask_user)
}  # fmt: skip
#: built-ins that act on the world: each call waits for approval unless the persona says
APPROVE_BY_DEFAULT = ("write_file", "run_python")
for _name in APPROVE_BY_DEFAULT:
    _BUILTINS[_name].approve = True
#: the built-in whose calls a person answers (the runtime parks the job for it)
ASK_USER = "ask_user"


def builtin_tools(ctx: ToolContext, names: list[str]) -> list[Tool]:
    """The built-in tools named in ``names``, bound to ``ctx`` (others are ignored here)."""
    names = expand(names)
    out = [
        dataclasses.replace(_BUILTINS[n], fn=functools.partial(_BUILTINS[n].fn, ctx))
        for n in names
        if n in _BUILTINS
    ]
    if any(n in NOTEBOOK for n in names):
        from .notebook_tools import notebook_tools

        out += notebook_tools(ctx, names)
    return out


#: the kernel-aware tools (agents/notebook_tools.py); ``"notebook"`` names both
NOTEBOOK = ("list_variables", "describe_variable")
GROUPS = {"notebook": NOTEBOOK}
BUILTIN = ("read_file", "write_file", "list_dir", "memory_save", "memory_search", "send_message",
           "create_subjob", "set_priority", "post_to_chat", "run_python", ASK_USER, *NOTEBOOK,
           *GROUPS)  # fmt: skip


def expand(names: list[str]) -> list[str]:
    """Tool names with groups (``"notebook"``) replaced by their tools, without repeats."""
    return list(dict.fromkeys(n for name in names for n in GROUPS.get(name, (name,))))


def now() -> float:
    return time.time()
