"""Chains: agents wired into pipelines with operators, run as durable jobs.

::

    pipeline = extractor >> CF(Invoice) - "total" >> IS("currency", "EUR") >> euro % other
    await pipeline.run(text)

Operators: ``a >> b`` (sequence: b gets a's result), ``a + b`` or ``a & b``
(parallel: a list of results, in order), ``a | b`` (fallback: b when a fails;
a plain string may be the last resort), ``IS(key, value) >> x % y``
(branch on the input's ``key``), ``CF(Model)`` (structured extraction into a
pydantic model), ``CF(M) - "field"`` / ``- ("f1", "f2")`` / ``- "*"`` (field
selection), ``CF(M) - "items[n]"`` (the next node runs once per item, in
parallel). Plain Python callables are nodes too.

Each node runs as a job on the workspace queue (an agent's job, or a
``wiz.chain.*`` task), so it is durable and shows on the board; the job after
another names it in ``depends_on``. A run is identified by the chain and its
input (or ``run=``): running it again reuses every node job that already
completed and retries the ones that failed, so a run interrupted by a crash or
an error resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import JobFailed, WizError
from ..jobs.events import Event
from ..jobs.options import TaskSpec

if TYPE_CHECKING:
    from ..workspace import Workspace
    from .deps import AgentDeps

_FAN = re.compile(r"^(\w+)\[n\]$")


def _node(x: Any) -> Node:
    if isinstance(x, Node):
        return x
    if hasattr(x, "name") and hasattr(x, "submit"):  # an Agent
        return AgentNode(x)
    if callable(x):
        return FnNode(x)
    raise WizError(f"{x!r} cannot be a chain node (use an agent, CF(...), IS(...) or a function)")


class ChainOps:
    """The operators; agents and every node have them."""

    def __rshift__(self, other: Any) -> Node:
        return Seq.of(_node(self), other)

    def __rrshift__(self, other: Any) -> Node:
        return Seq.of(_node(other), self)

    def __add__(self, other: Any) -> Node:
        return Par.of(_node(self), _node(other))

    __and__ = __add__

    def __or__(self, other: Any) -> Node:
        return Fallback(_node(self), other if isinstance(other, str) else _node(other))

    def __mod__(self, other: Any) -> Branch:
        return Branch(_node(self), _node(other))


class Node(ChainOps):
    """A chain, or a part of one."""

    def label(self) -> str:
        raise NotImplementedError

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        """Run on ``value``; return the result and the jobs it ended with (for ``depends_on``)."""
        raise NotImplementedError

    def run(self, value: Any = None, *, ws: Workspace | None = None, run: str | None = None) -> Any:
        """Run the chain on ``value``; an awaitable of the result.

        ``run`` names the run (default: a hash of the chain and the input, so the
        same call after a crash resumes it); ``ws``: the workspace (default: the
        one of the chain's first agent; a chain with no agent needs it).
        """
        return _Run.start(self, value, ws, run)

    def __call__(self, value: Any = None, **kwargs: Any) -> Any:
        return self.run(value, **kwargs)

    def graph(self) -> Graph:
        """A picture of the chain: ``str()`` is text, ``.mermaid`` a Mermaid diagram."""
        g = Graph()
        self._draw(g, [])
        return g

    def _draw(self, g: Graph, parents: list[str]) -> list[str]:
        nid = g.add(self.label())
        for p in parents:
            g.edge(p, nid)
        return [nid]

    def _agents(self) -> list[Any]:
        return []

    def __repr__(self) -> str:
        return f"<chain {self.label()}>"


@dataclass(eq=False, repr=False)
class AgentNode(Node):
    agent: Any

    def label(self) -> str:
        return self.agent.name

    def _agents(self) -> list[Any]:
        return [self.agent]

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        prompt = value if isinstance(value, str) else json.dumps(value, default=str)
        job = self.agent.submit(
            "ask", prompt, key=run.key(path), depends_on=after, on_dep_failure="ignore"
        )
        return await run.wait(job, path, self.label()), [job.id]


@dataclass(eq=False, repr=False)
class FnNode(Node):
    fn: Callable[..., Any]

    def label(self) -> str:
        return getattr(self.fn, "__name__", "function")

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        fid = run.register(self.fn)
        job = run.deps.jobs.add("wiz.chain.call", {"fn": fid, "value": value}, key=run.key(path),
                              depends_on=after, on_dep_failure="ignore")  # fmt: skip
        return await run.wait(job, path, self.label()), [job.id]


@dataclass(eq=False, repr=False)
class CF(Node):
    """``CF(Model)``: extract the input into the pydantic ``Model`` (a dict result);
    ``- "field"`` selects fields; ``- "items[n]"`` fans the next node out."""

    schema: Any
    select: Any = "*"
    model: Any = None

    def __sub__(self, fields: Any) -> CF:
        if not isinstance(fields, (str, tuple, list)):
            raise WizError(
                f"CF(...) - takes a field name, a tuple of them, '*' or 'items[n]', not {fields!r}"
            )
        names = [fields] if isinstance(fields, str) else list(fields)
        known = set(self.schema.model_fields)
        for n in names:
            m = _FAN.match(n)
            if n != "*" and (m.group(1) if m else n) not in known:
                raise WizError(
                    f"{self.schema.__name__} has no field {n!r}; fields: {', '.join(known)}"
                )
        return CF(self.schema, fields, self.model)

    @property
    def fans_out(self) -> bool:
        return isinstance(self.select, str) and bool(_FAN.match(self.select))

    def label(self) -> str:
        sel = "" if self.select == "*" else f" - {self.select!r}"
        return f"CF({self.schema.__name__}){sel}"

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        sid = run.register(self.schema)
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        select = self.select if isinstance(self.select, str) else list(self.select)
        job = run.deps.jobs.add("wiz.chain.extract", {"schema": sid, "text": text, "select": select,
                              "model": getattr(self.model, "name", self.model)}, key=run.key(path),
                              depends_on=after, on_dep_failure="ignore")  # fmt: skip
        return await run.wait(job, path, self.label()), [job.id]


@dataclass(eq=False, repr=False)
class IS(Node):
    """``IS(key, value)``: a condition on the input (a dict's ``key``, or the text)."""

    key: str
    value: Any

    def test(self, data: Any) -> bool:
        if isinstance(data, dict):
            return data.get(self.key) == self.value
        return str(self.value).lower() in str(data).lower()

    def label(self) -> str:
        return f"IS({self.key!r}, {self.value!r})"

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        return value, after  # on its own, a condition passes its input on


@dataclass(eq=False, repr=False)
class Branch(Node):
    """``x % y``: then / else, after an ``IS``."""

    then: Node
    otherwise: Node

    def label(self) -> str:
        return f"{self.then.label()} % {self.otherwise.label()}"


@dataclass(eq=False, repr=False)
class Cond(Node):
    cond: IS
    then: Node
    otherwise: Node | None

    def label(self) -> str:
        other = f" % {self.otherwise.label()}" if self.otherwise else ""
        return f"{self.cond.label()} >> {self.then.label()}{other}"

    def _agents(self) -> list[Any]:
        return self.then._agents() + (self.otherwise._agents() if self.otherwise else [])

    def _draw(self, g: Graph, parents: list[str]) -> list[str]:
        c = g.add(self.cond.label(), shape="cond")
        for p in parents:
            g.edge(p, c)
        ends = self.then._draw(g, [c])
        g.label_last(c, "yes")
        if self.otherwise:
            ends += self.otherwise._draw(g, [c])
            g.label_last(c, "no")
        else:
            ends.append(c)
        return ends

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        chosen = self.cond.test(value)
        run.note(path, self.cond.label(), "yes" if chosen else "no")
        if chosen:
            return await self.then._run(run, value, path + ".then", after)
        if self.otherwise is None:
            return value, after
        return await self.otherwise._run(run, value, path + ".else", after)


@dataclass(eq=False, repr=False)
class FanOut(Node):
    """The node after ``CF(M) - "items[n]"``, once per item, in parallel."""

    node: Node

    def label(self) -> str:
        return f"each: {self.node.label()}"

    def _agents(self) -> list[Any]:
        return self.node._agents()

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        items = value if isinstance(value, list) else [value]
        outs = await asyncio.gather(
            *(self.node._run(run, item, f"{path}[{i}]", after) for i, item in enumerate(items))
        )
        return [o[0] for o in outs], [j for o in outs for j in o[1]]


@dataclass(eq=False, repr=False)
class Seq(Node):
    items: list[Node] = field(default_factory=list)

    @classmethod
    def of(cls, first: Node, nxt: Any) -> Seq:
        items = list(first.items) if isinstance(first, Seq) else [first]
        add = list(nxt.items) if isinstance(nxt, Seq) else [nxt]
        for x in add:
            prev = items[-1] if items else None
            if isinstance(x, Branch):
                if not isinstance(prev, IS):
                    raise WizError("x % y needs a condition before it: IS(key, value) >> x % y")
                items[-1] = Cond(prev, x.then, x.otherwise)
            elif isinstance(prev, IS) and not isinstance(x, IS):
                items[-1] = Cond(prev, _node(x), None)
            elif isinstance(prev, CF) and prev.fans_out:
                items.append(FanOut(_node(x)))
            else:
                items.append(_node(x) if not isinstance(x, str) else _literal(x))
        return cls(items)

    def label(self) -> str:
        return " >> ".join(
            i.label() if not isinstance(i, (Par, Fallback)) else f"({i.label()})"
            for i in self.items
        )

    def _agents(self) -> list[Any]:
        return [a for i in self.items for a in i._agents()]

    def _draw(self, g: Graph, parents: list[str]) -> list[str]:
        for i in self.items:
            parents = i._draw(g, parents)
        return parents

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        for n, item in enumerate(self.items):
            value, after = await item._run(run, value, f"{path}.{n}", after)
        return value, after


@dataclass(eq=False, repr=False)
class Par(Node):
    items: list[Node] = field(default_factory=list)

    @classmethod
    def of(cls, a: Node, b: Node) -> Par:
        return cls(
            [*(a.items if isinstance(a, Par) else [a]), *(b.items if isinstance(b, Par) else [b])]
        )

    def label(self) -> str:
        return " + ".join(i.label() for i in self.items)

    def _agents(self) -> list[Any]:
        return [a for i in self.items for a in i._agents()]

    def _draw(self, g: Graph, parents: list[str]) -> list[str]:
        return [e for i in self.items for e in i._draw(g, parents)]

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        outs = await asyncio.gather(
            *(i._run(run, value, f"{path}+{n}", after) for n, i in enumerate(self.items))
        )
        return [o[0] for o in outs], [j for o in outs for j in o[1]]


@dataclass(eq=False, repr=False)
class Fallback(Node):
    first: Node
    second: Node | str

    def label(self) -> str:
        second = repr(self.second) if isinstance(self.second, str) else self.second.label()
        return f"{self.first.label()} | {second}"

    def _agents(self) -> list[Any]:
        return self.first._agents() + (
            [] if isinstance(self.second, str) else self.second._agents()
        )

    def _draw(self, g: Graph, parents: list[str]) -> list[str]:
        ends = self.first._draw(g, parents)
        if isinstance(self.second, str):
            alt = [g.add(repr(self.second), shape="text")]
            for p in parents:
                g.edge(p, alt[0], "on failure")
        else:
            alt = self.second._draw(g, parents)
            g.label_last(parents[0] if parents else alt[0], "on failure")
        return ends + alt

    async def _run(
        self, run: _Run, value: Any, path: str, after: list[int]
    ) -> tuple[Any, list[int]]:
        try:
            return await self.first._run(run, value, path + "|0", after)
        except JobFailed as e:
            run.note(path, self.label(), f"fallback after: {e}")
            if isinstance(self.second, str):
                return self.second, after
            return await self.second._run(run, value, path + "|1", after)


def _literal(text: str) -> Node:
    return FnNode(lambda _value, _t=text: _t)


class Graph:
    """A chain drawn as nodes and edges: ``str(g)`` is text, ``g.mermaid`` Mermaid."""

    def __init__(self) -> None:
        self.nodes: list[tuple[str, str, str]] = []
        self.edges: list[list[str]] = []

    def add(self, label: str, shape: str = "box") -> str:
        nid = f"n{len(self.nodes) + 1}"
        self.nodes.append((nid, label, shape))
        return nid

    def edge(self, a: str, b: str, label: str = "") -> None:
        self.edges.append([a, b, label])

    def label_last(self, source: str, label: str) -> None:
        for e in reversed(self.edges):
            if e[0] == source and not e[2]:
                e[2] = label
                return

    @property
    def mermaid(self) -> str:
        shapes = {"box": ("[", "]"), "cond": ("{", "}"), "text": ("([", "])")}
        lines = ["graph LR"]
        for nid, label, shape in self.nodes:
            o, c = shapes[shape]
            lines.append(f'    {nid}{o}"{_mermaid_text(label)}"{c}')
        for a, b, label in self.edges:
            text = _mermaid_text(label)
            lines.append(f"    {a} -->|{text}| {b}" if label else f"    {a} --> {b}")
        return "\n".join(lines)

    def __str__(self) -> str:
        names = {nid: label for nid, label, _ in self.nodes}
        out = [
            f"{names[a]} --{f'[{label}]--' if label else ''}> {names[b]}"
            for a, b, label in self.edges
        ]
        return "\n".join(out) if out else "\n".join(names.values())

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self.mermaid}\n```"


class _Run:
    """One run of a chain: names its node jobs, waits for them, reports progress."""

    def __init__(self, deps: AgentDeps, chain: Node, run_id: str):
        self.deps = deps
        self.chain = chain
        self.id = run_id
        self.jobs: dict[str, int] = {}
        self.started = time.time()

    @classmethod
    async def start(cls, chain: Node, value: Any, ws: Workspace | None, run: str | None) -> Any:
        if ws is not None:
            deps = ws.agents.deps
        elif agents := chain._agents():
            deps = agents[0].deps
        else:
            raise WizError(
                "this chain has no agent to take the workspace from: chain.run(value, ws=ws)"
            )
        install(deps)
        await deps.ensure_running()
        if run is None:
            material = json.dumps([chain.label(), value], default=str, sort_keys=True)
            run = hashlib.sha256(material.encode()).hexdigest()[:16]
        self = cls(deps, chain, run)
        result, _ = await chain._run(self, value, "root", [])
        deps.events.emit(Event("chain.done", None, {"run": run, "chain": chain.label()}))
        return result

    def key(self, path: str) -> str:
        return f"chain:{self.id}:{path}"

    def register(self, obj: Any) -> str:
        registry = self.deps.chain_registry
        name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
        if "<lambda>" in name or "<locals>" in name:  # not unique by name: add what sets it apart
            extra = repr(getattr(obj, "__defaults__", None)) + repr(
                getattr(getattr(obj, "__code__", None), "co_firstlineno", "")
            )
            name += ":" + hashlib.sha1(extra.encode()).hexdigest()[:8]
        registry[name] = obj
        return name

    async def wait(self, job: Any, path: str, label: str) -> Any:
        self.jobs[path] = job.id
        if job.status in ("failed", "cancelled") and job.created_at < self.started:
            # a node that failed in an earlier try of this run: running the chain again
            # retries it (the completed nodes before it are reused)
            job = self.deps.jobs.retry(job)
        self.deps.events.emit(
            Event(
                "chain.node",
                job.id,
                {"run": self.id, "node": label, "path": path, "status": job.status},
            )
        )
        result = await job.wait()
        self.deps.events.emit(
            Event(
                "chain.node",
                job.id,
                {"run": self.id, "node": label, "path": path, "status": "completed"},
            )
        )
        return result

    def note(self, path: str, label: str, what: str) -> None:
        self.deps.events.emit(
            Event("chain.node", None, {"run": self.id, "node": label, "path": path, "status": what})
        )


# -- the chain tasks ------------------------------------------------------------------------------


def install(deps: AgentDeps) -> None:
    """Register the ``wiz.chain.*`` tasks in this process (once per workspace): they call
    the functions and models that chains name in ``deps.chain_registry``."""
    if "wiz.chain.call" in deps.jobs.tasks:
        return
    registry = deps.chain_registry

    async def call(fn: str, value: Any) -> Any:
        target = registry.get(fn)
        if target is None:
            raise WizError(f"the function {fn} of this chain is not defined in this process")
        out = target(value)
        if asyncio.iscoroutine(out):
            out = await out
        return out

    async def extract(schema: str, text: str, select: Any, model: str | None = None) -> Any:
        cls = registry.get(schema)
        if cls is None:
            raise WizError(f"the model {schema} of this chain is not defined in this process")
        data = (await deps.llm.structured(text, cls, model=model)).model_dump(mode="json")
        return _select(data, select)

    deps.jobs.register(TaskSpec(name="wiz.chain.call", fn=call))
    deps.jobs.register(TaskSpec(name="wiz.chain.extract", fn=extract))


def _select(data: dict[str, Any], select: Any) -> Any:
    if select == "*":
        return data
    if isinstance(select, str):
        m = _FAN.match(select)
        return data[m.group(1)] if m else data[select]
    return {k: data[k] for k in select}


def chain(*nodes: Any) -> Node:
    """``chain(a, b, c)`` is ``a >> b >> c``."""
    out = _node(nodes[0])
    for n in nodes[1:]:
        out = Seq.of(out, n)
    return out


__all__: Sequence[str] = ("CF", "IS", "Graph", "Node", "chain")


def _mermaid_text(label: str) -> str:
    """A label as mermaid text: its entity codes for the characters that would end the
    label or open HTML (a chain's labels come from prompts and field names)."""
    for ch, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        label = label.replace(ch, code)
    return label.replace("\n", " ").replace("\r", " ")
