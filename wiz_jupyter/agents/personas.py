"""Personas: agents stored in the ``agents`` table, and the handle ``ws.agent(name)`` returns."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AgentNotFound, WizError
from ..jobs.models import Job, dumps, loads
from ..jobs.options import TaskSpec
from .chains import ChainOps
from .mcp import MCPClients, MCPServer
from .memory import Memory, VectorIndex
from .tools import BUILTIN, Tool, ToolContext, builtin_tools, expand, tool

if TYPE_CHECKING:
    from .deps import AgentDeps

FIELDS = (
    "role",
    "goal",
    "backstory",
    "instructions",
    "model",
    "settings",
    "tools",
    "max_steps",
    "concurrency",
    "folder",
    "approve",
    "auto_approve",
)
TASK_PREFIX = "agent:"
#: the task of an agent's memory consolidation jobs: ``agent:NAME:consolidate``
CONSOLIDATE_SUFFIX = ":consolidate"


class Agent(ChainOps):
    """An agent of the workspace: ``ws.agent("analyst", role=..., goal=...)``.

    ::

        answer = await analyst.ask("What is in data/?")
        job = analyst.assign("Summarise data/sales.csv", validation=["mentions the total"])
        await job.wait()
    """

    def __init__(self, agents: Agents, row: dict[str, Any]):
        self._agents = agents
        self._row = row

    @property
    def deps(self) -> AgentDeps:
        """The workspace parts this agent works with (its jobs, store, events, ...)."""
        return self._agents.deps

    # -- the persona ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._row["name"]

    @property
    def role(self) -> str | None:
        return self._row["role"]

    @property
    def goal(self) -> str | None:
        return self._row["goal"]

    @property
    def backstory(self) -> str | None:
        return self._row["backstory"]

    @property
    def max_steps(self) -> int:
        return self._row["max_steps"]

    @property
    def concurrency(self) -> int | None:
        return self._row["concurrency"]

    @property
    def model(self) -> str | None:
        return self._row["model"]

    @property
    def settings(self) -> dict[str, Any]:
        return loads(self._row["settings"]) or {}

    @property
    def api_base(self) -> str | None:
        """Where this agent's model is called (``ws.agent(..., api_base=URL)``, kept in its
        settings), or None for the workspace's endpoint for the model, if any."""
        return self.settings.get("api_base")

    @property
    def tool_names(self) -> list[str]:
        """The agent's tools as named in its persona (an MCP server as ``mcp:NAME``)."""
        return [t if isinstance(t, str) else f"mcp:{t['mcp']}" for t in self._tool_specs]

    @property
    def mcp_servers(self) -> list[MCPServer]:
        """The MCP servers whose tools the agent gets (references, started on first use)."""
        return [MCPServer.from_json(t) for t in self._tool_specs if isinstance(t, dict)]

    @property
    def _tool_specs(self) -> list[Any]:
        return loads(self._row["tools"]) or []

    @property
    def folder(self) -> Path:
        return Path(self._row["folder"])

    @property
    def approve(self) -> list[str]:
        """Tool names whose calls wait for a person's approval, beside the tools that
        ask by themselves (``write_file``, ``run_python``, MCP tools, ``@wiz.tool(approve=True)``)."""
        return loads(self._row.get("approve")) or []

    @property
    def auto_approve(self) -> bool | list[str]:
        """True: no call of this agent waits for approval; a list: those tools' calls
        do not (``ask_user`` questions still wait for an answer)."""
        value = loads(self._row.get("auto_approve"))
        return value if isinstance(value, list) else bool(value)

    def needs_approval(self, tool: Tool) -> bool:
        """Whether a call of ``tool`` by this agent waits for a person."""
        auto = self.auto_approve
        if auto is True or (isinstance(auto, list) and tool.name in auto):
            return False
        return tool.approve or tool.name in self.approve

    @property
    def instructions(self) -> str:
        """The system prompt: the persona's own, or one built from role, goal and backstory."""
        if self._row["instructions"]:
            return self._row["instructions"]
        parts = [f"You are {self.name}" + (f", {self.role}." if self.role else ".")]
        if self.goal:
            parts.append(f"Your goal: {self.goal}")
        if self.backstory:
            parts.append(self.backstory)
        parts.append("Use your tools when they help; answer plainly and say when you are unsure.")
        return "\n".join(parts)

    @property
    def status(self) -> str:
        """busy while one of its jobs runs, else idle."""
        busy = self._agents.deps.store.read(
            "SELECT 1 FROM jobs WHERE agent = ? AND status = 'active' LIMIT 1", (self.name,)
        )
        return "busy" if busy else "idle"

    @property
    def memory(self) -> Memory:
        return self._agents.memory(self.name)

    def tools_for(self, ctx: ToolContext) -> list[Tool]:
        """The tools of one job: built-ins made for it, plus the functions given."""
        own = self._agents._functions.get(self.name, {})
        names = [t for t in self._tool_specs if isinstance(t, str)]
        missing = [n for n in names if n not in BUILTIN and n not in own]
        if missing:
            raise WizError(
                f"tool(s) {', '.join(missing)} of {self.name} are not defined in this process"
            )
        return builtin_tools(ctx, [n for n in names if n in BUILTIN]) + [
            own[n] for n in names if n in own
        ]

    @property
    def notebook_tools(self) -> bool:
        """Whether the agent has a kernel-aware tool (``tools=["notebook"]``)."""
        from .tools import NOTEBOOK

        return any(
            n in NOTEBOOK for n in expand([t for t in self._tool_specs if isinstance(t, str)])
        )

    # -- work ----------------------------------------------------------------------------------

    def submit(self, kind: str, prompt: str, **options: Any) -> Job:
        """A job for this agent (``kind``: assign, ask, message or chat)."""
        data = {"kind": kind, "prompt": prompt}
        if options.get("max_cost") is not None or options.get("max_tokens") is not None:
            from .budgets import check_budget

            check_budget(options.get("max_cost"), options.get("max_tokens"))
        for key in ("validation", "chat_id", "sender", "max_cost", "max_tokens"):
            if options.get(key) is not None:
                data[key] = options.pop(key)
            else:
                options.pop(key, None)
        if self.notebook_tools:
            from ..jobs.models import current_job
            from .notebook_tools import stamp

            # the user wrote this prompt unless another job (an agent's tool) made it
            by_user = kind != "message" and current_job.get() is None
            kernel = stamp(prompt, by_user=by_user)
            if kernel is not None:
                data["kernel"] = kernel
        job = self._agents.deps.jobs.add(
            f"{TASK_PREFIX}{self.name}", data, agent=self.name, **options
        )
        self._agents.ensure_running()
        return job

    def assign(self, task: str, *, validation: Iterable[str] = (), **options: Any) -> Job:
        """Hand the agent a job: it plans, uses its tools, checks its work against its
        criteria and ``validation``, and re-plans when the check fails. Returns the Job;
        ``depends_on``, ``priority``, ``delay``, ``attempts``, ``timeout`` as for jobs;
        ``max_cost`` (dollars) and ``max_tokens`` cap its model calls."""
        return self.submit("assign", task, validation=list(validation) or None, **options)

    async def ask(
        self,
        prompt: str,
        *,
        timeout: float | None = None,
        max_cost: float | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """A chat-style answer (tools allowed, no planning). Runs as a job, so it shows
        on the board; starts the workspace runtime if it is not running. ``max_cost``
        (dollars) and ``max_tokens`` cap its model calls (:mod:`.budgets`)."""
        await self._agents.deps.ensure_running()
        job = self.submit("ask", prompt, max_cost=max_cost, max_tokens=max_tokens)
        return await job.wait(timeout=timeout)

    def consolidate_memory(self, **options: Any) -> Job:
        """A job (task ``agent:NAME:consolidate``) that merges this agent's near-duplicate
        memories and keeps every distinct fact (:meth:`Memory.consolidate`). Its result is
        ``{"checked", "merged", "kept"}``. The job has no ``agent`` of its own, so it
        does not count as the agent's work (an idle trigger does not see it)."""
        job = self._agents.deps.jobs.add(
            f"{TASK_PREFIX}{self.name}{CONSOLIDATE_SUFFIX}", {}, **options
        )
        self._agents.ensure_running()
        return job

    def consolidate_when_idle(self, after: float = 60.0) -> Any:
        """Schedule :meth:`consolidate_memory` for each time this agent has been idle
        ``after`` seconds (the ``idle`` trigger; once per idle period). Returns the
        schedule, named ``NAME:consolidate``; adding it again updates it.

        ::

            analyst.consolidate_when_idle(after=300)
        """
        return self._agents.deps.schedules.add(
            f"{TASK_PREFIX}{self.name}{CONSOLIDATE_SUFFIX}",
            {},
            name=f"{self.name}{CONSOLIDATE_SUFFIX}",
            idle=(self.name, after),
        )

    def history(self, limit: int | None = 50) -> list[Job]:
        """This agent's jobs, newest first."""
        return self._agents.deps.jobs.list(agent=self.name, limit=limit, newest_first=True)

    def chat(self, **options: Any) -> Any:
        """A chat panel widget with this agent."""
        return self._agents.deps.chat_panel(self.name, **options)

    def schedule_template(self) -> dict[str, Any]:
        """So ``ws.schedules.add(agent, {"prompt": ...}, cron=...)`` schedules agent work."""
        return {"task": f"{TASK_PREFIX}{self.name}", "agent": self.name}

    def __repr__(self) -> str:
        return f"<Agent {self.name}: {self.role or 'no role'}; model {self.model or 'default'}; tools {', '.join(self.tool_names) or 'none'}>"

    def _repr_html_(self) -> str:
        e = html.escape
        return (
            f"<b>{e(self.name)}</b> <i>{e(self.role or '')}</i> · {e(self.status)}<br>"
            f"goal: {e(self.goal or '-')}<br>model: <code>{e(self.model or 'default')}</code> · "
            f"tools: {e(', '.join(self.tool_names) or 'none')}"
        )


def _tool_names(value: Any, key: str) -> list[str]:
    """A persona's list of tool names (``approve=[...]``), checked."""
    if isinstance(value, str) or not all(isinstance(n, str) and n for n in value or ()):
        raise WizError(f"{key} is a list of tool names like ['write_file'], not {value!r}")
    return list(dict.fromkeys(value))


class Agents:
    """``ws.agents``: the workspace's personas."""

    def __init__(self, deps: AgentDeps):
        self.deps = deps
        self._functions: dict[str, dict[str, Tool]] = {}
        self._models: dict[str, Any] = {}
        self._starting: asyncio.Task | None = None
        self.handler: Callable[..., Any] | None = None  # set by the agent runtime
        #: tools known by name in this process (persona files name them)
        self.tools: dict[str, Tool] = {}
        self.vectors = VectorIndex(deps.store)
        logs = None if deps.store.in_memory else Path(deps.path).resolve().parent / "mcp"
        self.mcp = MCPClients(logs)  # the MCP servers of agents' tools, started on first use

    @property
    def embeddings(self) -> str | None:
        """The embedding model that ranks memories (None: full-text search)."""
        return self.vectors.model()

    def set_embeddings(self, model: str | None) -> None:
        """Rank memories by meaning with ``model``, kept in the workspace database:
        ``"wordllama"`` (alias ``"offline"``: built in, no network; needs the
        ``memory`` extra) or a litellm embedding model such as
        ``"openai/text-embedding-3-small"``. ``None`` goes back to full-text
        search. Memories already stored are embedded on the next search.

        ::

            ws.agents.set_embeddings("wordllama")
        """
        from . import embeddings

        name = embeddings.canonical(model)
        if name == embeddings.OFFLINE:
            embeddings.numpy()  # say now, not at the first search, that the extra is missing
            embeddings.get(name).model()
        self.vectors.set_model(name)

    def _with_api_base(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        from .llm_request import check_api_base

        fields = dict(fields)
        base = fields.pop("api_base")
        settings = fields.get("settings")
        if settings is None:
            row = self._row(name)
            settings = (loads(row["settings"]) or {}) if row is not None else {}
        settings = {k: v for k, v in settings.items() if k != "api_base"}
        if base is not None:
            settings["api_base"] = check_api_base(base)
        fields["settings"] = settings
        return fields

    def define(self, name: str, **fields: Any) -> Agent:
        """Create the agent, or update the fields given (``ws.agent`` calls this)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise WizError(f"an agent's name is a word like 'analyst', not {name!r}")
        if "api_base" in fields:  # a setting of its own calls: kept with the others
            fields = self._with_api_base(name, fields)
        if "budget" in fields:  # kept with the workspace's budgets (settings), by name
            fields = dict(fields)
            self.set_budget(name, fields.pop("budget"))
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise WizError(f"unknown agent field(s): {', '.join(sorted(unknown))}")
        row = self._row(name)
        now = time.time()
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if value is None:
                continue
            if key == "tools":
                names, functions = [], {}
                for t in value:
                    if isinstance(t, MCPServer):
                        if any(isinstance(n, dict) and n["mcp"] == t.name for n in names):
                            raise WizError(f"two MCP servers called {t.name!r}; name them apart")
                        names.append(t.to_json())
                    elif isinstance(t, str):
                        if t in self.tools:
                            functions[t] = self.tools[t]
                        elif t not in BUILTIN:
                            raise WizError(
                                f"unknown built-in tool {t!r}; built-ins: {', '.join(BUILTIN)}"
                                + (f"; registered: {', '.join(self.tools)}" if self.tools else "")
                            )
                        names.append(t)
                    else:
                        made = tool(t)
                        functions[made.name] = made
                        self.tools.setdefault(made.name, made)
                        names.append(made.name)
                self._functions[name] = functions
                value = dumps(names)
            elif key == "settings":
                value = dumps(value)
            elif key == "approve":
                value = dumps(_tool_names(value, "approve"))
            elif key == "auto_approve":
                value = dumps(value if isinstance(value, bool) else _tool_names(value, key))
            elif key == "model":
                if not isinstance(value, str):  # a ScriptedModel: kept alive as long as its agent
                    self._models[name] = value
                value = getattr(value, "name", value)
            elif key == "folder":
                value = str(Path(value).resolve())
            elif key in ("max_steps", "concurrency") and (not isinstance(value, int) or value < 1):
                raise WizError(f"{key} must be a whole number >= 1, not {value!r}")
            values[key] = value
        with self.deps.store.write() as c:
            if row is None:
                values.setdefault("folder", str(self._default_folder(name)))
                cols = ["name", *values, "created_at", "updated_at"]
                c.execute(
                    f"INSERT INTO agents ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    (name, *values.values(), now, now),
                )
            elif values:
                sets = ", ".join(f"{k} = ?" for k in values)
                c.execute(
                    f"UPDATE agents SET {sets}, updated_at = ? WHERE name = ?",
                    (*values.values(), now, name),
                )
        agent = self.get(name)
        agent.folder.mkdir(parents=True, exist_ok=True)
        return agent

    def register_tool(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Make a function a tool that personas (and persona files) name by its name.
        A decorator, or a call; returns the function. A function given to an agent's
        ``tools=[...]`` is registered too.

        ::

            @ws.agents.register_tool
            def summarise(text: str) -> str: ...

            ws.agent("analyst", tools=["read_file", "summarise"])
        """
        if fn is None:
            return lambda f: self.register_tool(f, name=name)
        made = tool(fn, name=name)
        if made.name in BUILTIN:
            raise WizError(f"{made.name!r} is a built-in tool's name; register it under another")
        self.tools[made.name] = made
        return fn

    def export(self, name: str, path: str | Path) -> Path:
        """Write the agent's persona to a YAML or JSON file (by its suffix); returns the path.
        Key-like settings (``api_key``, ...) are left out, with a warning.

        ::

            ws.agents.export("analyst", "analyst.yaml")
        """
        from . import persona_file

        agent = self.get(name)
        row = agent._row
        persona = {
            "name": agent.name,
            **{k: row[k] for k in ("role", "goal", "backstory", "instructions", "model")},
            "settings": agent.settings,
            "tools": agent._tool_specs,  # names, and MCP servers as references
            "max_steps": row["max_steps"],
            "concurrency": row["concurrency"],
            "folder": row["folder"],
            "approve": agent.approve,
            "auto_approve": agent.auto_approve,
        }
        return persona_file.write(persona, path)

    def load(self, path: str | Path, *, name: str | None = None) -> Agent:
        """Create or replace an agent from a persona file (YAML or JSON, by suffix);
        ``name`` loads it under another name. Tools are named: built-ins, or tools
        registered with :meth:`register_tool`. A bad file raises
        :class:`~wiz_jupyter.errors.InvalidPersona` naming the file and the field.

        ::

            analyst = ws.agents.load("analyst.yaml")
        """
        from ..errors import InvalidPersona
        from . import persona_file

        p = persona_file.read(path)
        label = Path(path).name
        for i, t in enumerate(p.tools):
            if not isinstance(t, str):
                continue  # an MCP server reference, checked by its model
            if t not in BUILTIN and t not in self.tools:
                known = ", ".join([*BUILTIN, *self.tools])
                raise InvalidPersona(
                    f"{label}: field 'tools[{i}]': expected a built-in or registered tool "
                    f"({known}), got {t!r}"
                )
        name = name or p.name
        fields = p.model_dump(exclude={"version", "name"})
        fields["tools"] = [
            t if isinstance(t, str) else MCPServer.from_json(t.model_dump(exclude_none=True))
            for t in p.tools
        ]
        if self._row(name) is not None:  # replace: what the file leaves out is cleared
            with self.deps.store.write() as c:
                c.execute(
                    "UPDATE agents SET role = NULL, goal = NULL, backstory = NULL, "
                    "instructions = NULL, model = NULL WHERE name = ?",
                    (name,),
                )
        return self.define(name, **fields)

    def _default_folder(self, name: str) -> Path:
        if self.deps.store.in_memory:
            import tempfile

            return Path(tempfile.mkdtemp(prefix=f"wiz-{name}-"))
        return Path(self.deps.path).resolve().parent / "agents" / name

    def _row(self, name: str) -> dict[str, Any] | None:
        rows = self.deps.store.read("SELECT * FROM agents WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def get(self, name: str) -> Agent:
        """The agent called ``name``; raises :class:`AgentNotFound` with the names there are."""
        row = self._row(name)
        if row is None:
            names = ", ".join(a.name for a in self.list()) or "none yet"
            raise AgentNotFound(
                f"no agent {name!r} in this workspace (agents: {names}); create it with ws.agent({name!r}, ...)"
            )
        agent = Agent(self, row)
        self._register(agent)
        return agent

    def list(self) -> list[Agent]:
        return [
            Agent(self, dict(r)) for r in self.deps.store.read("SELECT * FROM agents ORDER BY name")
        ]

    def set_budget(self, name: str, budget: dict[str, Any] | None) -> None:
        """Cap agent ``name``'s model spend: ``{"cost": 1.0, "tokens": 200_000, "per":
        "day"}`` (``per``: hour, day, week, month, or None for all time); None removes
        it. Kept in the database, so every process on the file keeps to it."""
        self.deps.llm.budgets.set_agent(name, budget)

    def models(self) -> list[dict[str, Any]]:
        """The models in use: the workspace's default and each agent's, one row per model
        and endpoint: ``{"model", "used_by", "api_base", "key"}``, where ``key`` says
        ``"ok"`` (litellm finds what the provider needs, or it needs none), ``"missing
        NAME"`` or ``"offline"``; never a key's value."""
        default = self.deps.llm.resolve()
        bases = self.deps.llm.api_bases
        uses: dict[tuple[str, str | None], list[str]] = {(default, bases.get(default)): []}
        for a in self.list():
            model = self.deps.llm.resolve(self._models.get(a.name) or a.model)
            uses.setdefault((model, a.api_base or bases.get(model)), []).append(a.name)
        return [
            {"model": m, "used_by": names or ["(default)"], "api_base": base,
             "key": _key_state(m, base)}
            for (m, base), names in uses.items()
        ]  # fmt: skip

    def remove(self, name: str) -> None:
        self.get(name)
        with self.deps.store.write() as c:
            c.execute("DELETE FROM agents WHERE name = ?", (name,))
        self._functions.pop(name, None)
        self.deps.jobs.unregister(f"{TASK_PREFIX}{name}")
        self.deps.jobs.unregister(f"{TASK_PREFIX}{name}{CONSOLIDATE_SUFFIX}")

    def ensure_running(self) -> None:
        """Agent work should not wait for an explicit ``await ws.start()``: start the
        runtime on the running loop (a notebook's) if it is not running."""
        if self.deps.running() or (self._starting is not None and not self._starting.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: scripts call `await ws.start()` or `ws.run_until_idle()`
        self._starting = loop.create_task(self.deps.start())

    def memory(self, name: str) -> Memory:
        """The memory of agent ``name`` (``agent.memory``)."""
        return Memory(self.deps.store, name, self.vectors)

    def _consolidate(self, job: Any) -> dict[str, Any]:
        """The handler of ``agent:NAME:consolidate`` jobs (runs in a thread)."""
        name = job.task[len(TASK_PREFIX) : -len(CONSOLIDATE_SUFFIX)]
        self.get(name)
        job.progress({"phase": "consolidate"})
        out = self.memory(name).consolidate()
        job.log(
            f"checked {out['checked']} memories, merged {len(out['merged'])}, kept {out['kept']}"
        )
        return out

    def _register(self, agent: Agent) -> None:
        """This process can run the agent's jobs: a task handler per agent, so its
        concurrency is the task's."""
        task = f"{TASK_PREFIX}{agent.name}"
        consolidate = task + CONSOLIDATE_SUFFIX
        if consolidate not in self.deps.jobs.tasks:
            self.deps.jobs.register(
                TaskSpec(name=consolidate, fn=self._consolidate, concurrency=1, executor="thread")
            )
        spec = self.deps.jobs.tasks.get(task)
        if spec is not None and spec.concurrency == agent.concurrency:
            return
        assert self.handler is not None
        self.deps.jobs.register(
            TaskSpec(name=task, fn=self.handler, concurrency=agent.concurrency, executor="loop")
        )

    def __repr__(self) -> str:
        return f"<Agents: {', '.join(a.name for a in self.list()) or 'none'}>"


def _key_state(model: str, api_base: str | None) -> str:
    """Whether litellm finds the key ``model``'s provider needs (by name, never value)."""
    if model.startswith("wiz/"):
        return "offline"
    from . import _litellm

    try:
        found = _litellm.load().validate_environment(model=model, api_base=api_base)
    except Exception:  # an unknown provider: litellm cannot say
        return "unknown provider"
    missing = found.get("missing_keys") or []
    return (
        "ok" if found.get("keys_in_environment") or not missing else "missing " + ", ".join(missing)
    )
