"""The agent runtime: the handler of every agent job.

A job is worked through the seeds' lifecycle:

1. load the agent's memory (the best matches for the job, by meaning when the workspace
   has an embedding model) and the job's activity;
2. plan (``assign`` jobs): the model restates the goal, lists steps and writes
   validation criteria (the caller's ``validation`` are added);
3. act: model turns with tool calls, each result appended, at most ``max_steps``;
4. validate: the model checks the answer against the criteria; on failure it
   re-plans, at most ``MAX_REPLANS`` times, then the job fails;
5. finish: the answer is the job's result, learnings go to memory.

The activity (plan, messages, tool calls and results, verdicts) is saved after
every step, so a job interrupted by a crash resumes from its last completed
step and never repeats a tool call whose result was saved. ``ask``,
``message`` and ``chat`` jobs skip planning and validation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .. import telemetry
from ..errors import AgentFailed, AwaitInput
from ..jobs.events import Event
from ..jobs.models import JobContext, dumps, loads
from .keys import redact
from .messages import ToolCall
from .tools import ASK_USER, Tool, ToolContext

if TYPE_CHECKING:
    from ..jobs.store import Store
    from .deps import AgentDeps
    from .personas import Agent

MAX_REPLANS = 2
#: how the act phase restates the job (the offline model recognises it and answers the job)
ACT_PROMPT = "Carry out your plan and give your final answer. The job: "
MEMORY_ITEMS = 5
CHAT_CONTEXT = 20


class Plan(BaseModel):
    """What the agent means to do."""

    goal: str = Field(description="the goal, restated in one sentence")
    steps: list[str] = Field(description="the steps, in order")
    criteria: list[str] = Field(default_factory=list, description="how to tell the result is right")


class Verdict(BaseModel):
    """The agent's check of its own answer."""

    passed: bool = Field(description="true if the answer meets every criterion")
    reasons: str = Field(default="", description="what is wrong, when it is not right")
    learnings: list[str] = Field(default_factory=list, description="lessons worth remembering")


@dataclass
class Activity:
    """One job's working state, saved after every step (the ``activity`` table)."""

    job_id: int
    agent: str
    phase: str = "plan"
    plan: dict[str, Any] | None = None
    criteria: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    replans: int = 0
    steps: int = 0
    # the JSON of each message and tool call already saved: a save encodes only what was
    # appended since (an agent's history grows by a message or two a step, and was
    # re-encoded whole at every save)
    _encoded: dict[str, list[tuple[Any, str]]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, store: Store, job_id: int, agent: str) -> Activity:
        rows = store.read("SELECT * FROM activity WHERE job_id = ?", (job_id,))
        if not rows:
            return cls(job_id, agent)
        r = dict(rows[0])
        return cls(
            job_id, agent, r["phase"], loads(r["plan"]), loads(r["criteria"]) or [],
            loads(r["messages"]) or [], loads(r["tool_calls"]) or [], loads(r["validation"]) or [],
            r["replans"], r["steps"],
        )  # fmt: skip

    def save(self, store: Store) -> None:
        messages, tool_calls = self._json("messages"), self._json("tool_calls")
        with store.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO activity VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.job_id, self.agent, self.phase, dumps(self.plan), dumps(self.criteria),
                 messages, tool_calls, dumps(self.validation),
                 self.replans, self.steps, time.time()),
            )  # fmt: skip

    def _json(self, name: str) -> str:
        """``dumps(getattr(self, name))``, encoding only the items appended since the last
        call: the items are dicts appended and never changed in place; an item replaced
        (another object at its place) is encoded again from there on."""
        items = getattr(self, name)
        done = self._encoded.setdefault(name, [])
        same = 0
        for (was, _), now in zip(done, items):
            if was is not now:
                break
            same += 1
        del done[same:]
        done.extend((item, dumps(item)) for item in items[same:])
        return "[" + ",".join(text for _, text in done) + "]"


class AgentRuntime:
    """Runs agent jobs for one workspace (registered as each agent's task handler)."""

    def __init__(self, deps: AgentDeps):
        self.deps = deps

    async def __call__(
        self,
        kind: str,
        prompt: str,
        job: JobContext,
        validation: list[str] | None = None,
        chat_id: int | None = None,
        sender: str | None = None,
        kernel: dict[str, Any] | None = None,
        max_cost: float | None = None,  # the job's budget: the LLM layer reads it (budgets.py)
        max_tokens: int | None = None,
    ) -> str:
        name = job.task.split(":", 1)[1]
        agent = self.deps.agents.get(name)
        ctx = ToolContext(self.deps, agent.name, agent.folder, job.id, chat_id, kernel)
        tools = agent.tools_for(ctx)
        if agent.mcp_servers:  # started on first use; their tools are the servers' own
            tools += await self.deps.agents.mcp.tools(agent.mcp_servers, {t.name for t in tools})
        act = Activity.load(self.deps.store, job.id, agent.name)
        if not act.messages:
            act.messages = await self._opening(agent, kind, prompt, chat_id, sender)
            act.phase = "plan" if kind == "assign" else "act"
            act.save(self.deps.store)
        if kind == "assign":
            answer = await self._lifecycle(agent, act, tools, prompt, validation or [], job)
        else:
            answer = await self._act(agent, act, tools, job, then="done")
            if act.phase != "done":  # resumed after its last turn was saved
                act.phase = "done"
                act.save(self.deps.store)
        if chat_id is not None:
            self.deps.chats.get(chat_id).post(agent.name, answer, job_id=job.id)
        return answer

    # -- the lifecycle -------------------------------------------------------------------------

    async def _opening(
        self, agent: Agent, kind: str, prompt: str, chat_id: int | None, sender: str | None
    ) -> list[dict[str, Any]]:
        system = agent.instructions
        # ranked by meaning when the workspace has an embedding model, else by words
        remembered = await agent.memory.asearch(prompt, limit=MEMORY_ITEMS)
        if remembered:
            system += "\n\nWhat you remember:\n" + "\n".join(
                f"- {m['content']}" for m in remembered
            )
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        if chat_id is not None:
            messages += self.deps.chats.get(chat_id).context(agent.name, CHAT_CONTEXT)
            if messages[-1].get("content") != prompt:
                messages.append({"role": "user", "content": prompt})
        else:
            text = f"Message from {sender}: {prompt}" if sender else prompt
            messages.append({"role": "user", "content": text})
        return messages

    async def _lifecycle(
        self,
        agent: Agent,
        act: Activity,
        tools: list[Tool],
        prompt: str,
        validation: list[str],
        job: JobContext,
    ) -> str:
        llm, opts = self.deps.llm, self._options(agent, job)
        if act.phase == "plan":
            job.progress({"phase": "plan"})
            plan = await llm.structured(
                [*act.messages, {"role": "user", "content": f"Job: {prompt}\nBefore you start, plan it: the goal, "
                                 "the steps, and criteria to check the result by."}],
                Plan, **opts,
            )  # fmt: skip
            self._set_plan(act, plan, validation, prompt)
            act.phase = "act"
            act.save(self.deps.store)
        while True:
            if act.phase == "act":
                job.progress({"phase": "act", "steps": act.steps})
                await self._act(agent, act, tools, job, then="validate")
                if act.phase != "validate":  # resumed after its last turn was saved
                    act.phase = "validate"
                    act.save(self.deps.store)
            answer = act.messages[-1].get("content") or ""
            job.progress({"phase": "validate"})
            criteria = (
                "\n".join(f"- {c}" for c in act.criteria) or "- the answer does what the job asks"
            )
            verdict = await llm.structured(
                [
                    {"role": "system", "content": agent.instructions},
                    {"role": "user", "content": f"Job: {prompt}\n\nAnswer:\n{answer}\n\nCheck the answer against "
                     f"every criterion:\n{criteria}\nSay whether it passes, what is wrong, and any lessons."},
                ],
                Verdict, **opts,
            )  # fmt: skip
            act.validation.append(verdict.model_dump())
            if verdict.passed:
                for lesson in verdict.learnings:
                    agent.memory.save(lesson, kind="learning", job_id=act.job_id)
                act.phase = "done"
                act.save(self.deps.store)
                return answer
            if act.replans >= MAX_REPLANS:
                act.save(self.deps.store)
                raise AgentFailed(
                    f"{agent.name}'s answer failed validation {act.replans + 1} times: {verdict.reasons}"
                )
            act.replans += 1
            job.progress({"phase": "replan", "replans": act.replans})
            feedback = (
                f"Your answer failed validation: {verdict.reasons}\nMake a new plan and try again."
            )
            plan = await llm.structured(
                [*act.messages, {"role": "user", "content": feedback}], Plan, **opts
            )
            self._set_plan(act, plan, validation, prompt)
            act.messages.append(
                {"role": "user", "content": f"{feedback}\nNew plan: " + "; ".join(plan.steps)}
            )
            act.phase = "act"
            act.save(self.deps.store)

    def _set_plan(self, act: Activity, plan: Plan, validation: list[str], prompt: str) -> None:
        act.plan = plan.model_dump()
        act.criteria = list(dict.fromkeys([*plan.criteria, *validation]))
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(plan.steps, 1))
        act.messages.append({"role": "assistant", "content": f"Plan: {plan.goal}\n{steps}"})
        act.messages.append({"role": "user", "content": f"{ACT_PROMPT}{prompt}"})

    async def _act(
        self, agent: Agent, act: Activity, tools: list[Tool], job: JobContext, *, then: str
    ) -> str:
        """Model turns and tool calls until the model answers without calling a tool; the
        answer is saved with the phase ``then`` (one write for both)."""
        by_name = {t.name: t for t in tools}
        schemas = [t.schema for t in tools] or None
        opts = self._options(agent, job)
        while True:
            last = act.messages[-1]
            pending = self._unanswered(act.messages)
            if pending:  # also the resume point after a crash mid-turn
                for call in pending:
                    await self._run_tool(agent, act, by_name, call, job)
                continue
            if last["role"] == "assistant" and not last.get("tool_calls"):
                return last.get("content") or ""
            if act.steps >= agent.max_steps:
                raise AgentFailed(
                    f"{agent.name} used its {agent.max_steps} steps without a final answer"
                )
            reply = await self._turn(agent, act, schemas, opts, job)
            act.steps += 1
            act.messages.append(reply.message())
            if not reply.tool_calls:
                act.phase = then
            act.save(self.deps.store)

    async def _turn(
        self,
        agent: Agent,
        act: Activity,
        schemas: list[dict[str, Any]] | None,
        opts: dict[str, Any],
        job: JobContext,
    ) -> Any:
        """One model turn; streamed as ``agent.delta`` events when someone listens (a chat
        panel, a waiting magic), so the words appear as they are written."""
        bus = self.deps.events
        if not bus.listeners("agent.delta"):
            return await self.deps.llm.chat(act.messages, tools=schemas, **opts)
        stream = self.deps.llm.stream(act.messages, tools=schemas, **opts)
        data = job.data
        async for piece in stream:
            if piece:
                bus.emit(
                    Event(
                        "agent.delta",
                        job.id,
                        {"text": piece, "agent": agent.name, "chat": data.get("chat_id")},
                    )
                )
        assert stream.reply is not None
        return stream.reply

    @staticmethod
    def _unanswered(messages: list[dict[str, Any]]) -> list[ToolCall]:
        for i in range(len(messages) - 1, -1, -1):
            m = messages[i]
            if m["role"] == "assistant":
                if not m.get("tool_calls"):
                    return []
                answered = {x.get("tool_call_id") for x in messages[i + 1 :] if x["role"] == "tool"}
                return [ToolCall.from_openai(c) for c in m["tool_calls"] if c["id"] not in answered]
        return []

    async def _run_tool(
        self, agent: Agent, act: Activity, by_name: dict[str, Tool], call: ToolCall,
        job: JobContext,
    ) -> None:  # fmt: skip
        t0 = time.perf_counter()
        t = by_name.get(call.name)
        person: str | None = None  # what a person said of this call, for the record
        reply = None
        if t is not None and call.raw is None and (t.name == ASK_USER or agent.needs_approval(t)):
            # parks the job (AwaitInput) until a person replies; the step is saved already
            reply = self._reply(agent, act, t, call, job)
        with telemetry.tool_call(call.name, call.id) as span:  # a no-op without OpenTelemetry
            if t is None:
                text, ok = (
                    f"error: there is no tool {call.name!r}; tools: {', '.join(by_name) or 'none'}",
                    False,
                )
            elif call.raw is not None:
                text, ok = f"error: the arguments are not valid JSON: {call.raw[:200]}", False
            elif reply is not None and "answer" in reply:
                text, ok, person = str(reply["answer"]), True, "answered"
            elif reply is not None and not reply.get("approved"):
                reason = reply.get("reason") or "no reason given"
                text, ok, person = f"error: the user denied this call: {reason}", False, "denied"
            else:
                text, ok = await t.call(call.args)
                person = "approved" if reply is not None else None
            span.done(ok, text)
        act.messages.append(call.result_message(text))
        record = {
            "name": call.name,
            "args": call.args,
            "result": text[:2000],
            "ok": ok,
            "seconds": round(time.perf_counter() - t0, 4),
        }
        if person is not None:
            record["person"] = person
        act.tool_calls.append(record)
        with self.deps.store.write():  # the result and its log line: one transaction
            act.save(
                self.deps.store
            )  # saved before the next step: a resumed job never runs it again
            job.log(f"tool {call.name}: {'ok' if ok else text[:200]}")

    def _reply(
        self, agent: Agent, act: Activity, t: Tool, call: ToolCall, job: JobContext
    ) -> dict[str, Any]:
        """A person's reply to this call, or :class:`AwaitInput` to wait for one.

        The call is known by its place in the conversation and its id, so a reply is
        never taken for a later call; the request shown to people has its secrets
        redacted (the real arguments stay in the saved activity).
        """
        key = f"{len(act.messages)}:{call.id}"
        held = job.input or {}
        reply = held.get("reply")
        if reply is not None and (held.get("request") or {}).get("call") == key:
            return reply
        if t.name == ASK_USER:
            question = redact(str(call.args.get("question", "")))
            raise AwaitInput({"kind": "question", "question": question, "call": key,
                              "agent": agent.name})  # fmt: skip
        raise AwaitInput({"kind": "approval", "tool": t.name, "args": _redacted(call.args),
                          "call": key, "agent": agent.name})  # fmt: skip

    @staticmethod
    def _options(agent: Agent, job: JobContext) -> dict[str, Any]:
        return {"model": agent.model, "job_id": job.id, **agent.settings}


def _redacted(value: Any) -> Any:
    """``value`` with every secret in its strings replaced by ``***`` (keys.redact)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
