"""Scripted models: replies written in code, served like any model (in-process, or
through litellm's ``wiz`` provider when the LLM layer's direct path is off).

A :class:`ScriptedModel` gets a unique name (``wiz/scripted-1``, ...) under which
the ``wiz`` litellm provider finds it, so it can be passed wherever a model
name can, as the object or as its name.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import LLMError
from .messages import ToolCall

#: What one step may be: a text reply, a tool call, several tool calls, an exception
#: to raise, or a function of the request's messages that returns one of those.
Step = str | ToolCall | list[ToolCall] | BaseException | Callable[[list[dict[str, Any]]], Any]

#: Set on an exception raised by a wiz/ model (a scripted step's, or an LLMError of
#: ours), so the LLM layer can give the caller that exception, not litellm's wrapper.
STEP_MARK = "__wiz_step__"

_numbers = itertools.count(1)
_registry: weakref.WeakValueDictionary[str, ScriptedModel] = weakref.WeakValueDictionary()


class ScriptedModel:
    """A model whose replies are given in code, consumed one per call, in order.

    Each step is a string (a text reply), a :class:`ToolCall` or a list of them
    (tool calls in one reply), an exception instance (raised as that call's
    error), or a function of the request's messages returning one of those.
    Running out of steps is an :class:`~wiz_jupyter.errors.LLMError`::

        model = ScriptedModel(["a text reply", ToolCall("add", {"a": 2, "b": 3}), RuntimeError("down")])
        await llm.complete("hi", model=model)        # "a text reply"
        await llm.tool_calls("add", tools, model=model.name)
        model.requests[0]["messages"]                # what each call received

    Streaming works too: a text step arrives word by word, ``pace`` seconds apart
    (0 by default: as fast as the loop runs; ``pace=0.02`` streams like a provider).
    """

    def __init__(self, steps: Iterable[Step] = (), *, name: str | None = None, pace: float = 0.0):
        if not pace >= 0:
            raise ValueError(f"pace is seconds between streamed pieces, >= 0, not {pace!r}")
        self.pace = float(pace)
        self.name = name or f"wiz/scripted-{next(_numbers)}"
        if not self.name.startswith("wiz/"):
            raise ValueError(f"a scripted model's name starts with 'wiz/', not {self.name!r}")
        self._steps: deque[Step] = deque(steps)
        self._lock = threading.Lock()  # litellm may call from a thread (sync completion)
        self.served = 0
        self.requests: list[dict[str, Any]] = []
        _registry[self.name] = self

    def add(self, *steps: Step) -> ScriptedModel:
        """Append steps; returns the model, so ``ScriptedModel().add("a", "b")`` reads well."""
        with self._lock:
            self._steps.extend(steps)
        return self

    @property
    def remaining(self) -> int:
        return len(self._steps)

    def next_reply(self, request: dict[str, Any]) -> tuple[str | None, list[ToolCall]]:
        """Consume the next step for ``request`` (messages, tools, ...): (text, tool calls).

        Raises the step if it is an exception, :class:`LLMError` when none is left.
        """
        with self._lock:
            self.requests.append(request)
            if not self._steps:
                raise LLMError(
                    f"{self.name} ran out of steps after {self.served} replies; "
                    "give the ScriptedModel one step per expected call",
                    model=self.name,
                )
            step = self._steps.popleft()
            self.served += 1
            number = self.served
        if callable(step):
            step = step(request.get("messages", []))
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, str):
            return step, []
        calls = [step] if isinstance(step, ToolCall) else list(step)
        if not all(isinstance(c, ToolCall) for c in calls):
            raise TypeError(
                f"{self.name} step {number}: expected a str, a ToolCall, a list of ToolCalls "
                f"or an exception, not {type(step).__name__}"
            )
        # ids unique per model and reply, so a conversation's tool messages match up
        return None, [
            ToolCall(c.name, dict(c.args), c.id or f"call_{number}_{i}")
            for i, c in enumerate(calls)
        ]

    def __repr__(self) -> str:
        return f"<ScriptedModel {self.name} ({self.remaining} steps left)>"


def scripted(name: str) -> ScriptedModel | None:
    """The live scripted model called ``name``, if any."""
    return _registry.get(name)


def pace(name: str) -> float:
    """Seconds between the streamed pieces of model ``name`` (``wiz/...``; 0 for all but
    a paced :class:`ScriptedModel`)."""
    script = _registry.get(name)
    return script.pace if script is not None else 0.0
