"""What the agents layer uses of a workspace, and nothing more.

The workspace (``wiz_jupyter.workspace``) builds one :class:`AgentDeps` when its
agents are first used and hands it to ``Agents``, ``AgentRuntime``, ``Chats``,
tool contexts and chains. Nothing in ``wiz_jupyter/agents/`` imports the
workspace at run time: the layer sees the store, the queue, the events, the
schedules and the model client, plus callables for the runtime's state and
for the notebook layer's chat panel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..jobs.events import EventBus
    from ..jobs.queue import Queue
    from ..jobs.schedules import Schedules
    from ..jobs.store import Store
    from .chat import Chats
    from .llm import LLM
    from .personas import Agents


@dataclass(eq=False)
class AgentDeps:
    """The parts of a workspace that agents, chats, tools and chains work with."""

    store: Store
    jobs: Queue
    events: EventBus
    schedules: Schedules
    llm: LLM
    #: the database file's path (``":memory:"`` for an in-memory store)
    path: str
    #: start the workspace's runtime and scheduler (``ws.start``)
    start: Callable[[], Awaitable[None]]
    #: whether this process's runtime is working jobs
    running: Callable[[], bool]
    #: a chat panel widget with these agents (``Agent.chat``): the notebook layer makes it
    chat_panel: Callable[..., Any]
    # set right after construction: the registries built on these deps
    agents: Agents = field(init=False)
    chats: Chats = field(init=False)
    #: the functions and models that chains in this process name (see ``chains.install``)
    chain_registry: dict[str, Any] = field(default_factory=dict, init=False)

    async def ensure_running(self) -> None:
        """Start the runtime unless it is already working jobs (so a job added now runs)."""
        if not self.running():
            await self.start()
