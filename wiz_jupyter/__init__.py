"""wiz_jupyter: LLM agents, a durable job queue, schedules, chats and job boards in notebooks.

::

    import wiz_jupyter as wiz
    ws = wiz.Workspace()

Importing this package stays light: no LLM library is loaded until a model is called.
"""

from __future__ import annotations

from .errors import (
    AgentFailed,
    AgentNotFound,
    AwaitInput,
    BudgetExceeded,
    DeliveryFailed,
    InvalidEndpoint,
    InvalidJob,
    InvalidNotification,
    InvalidPersona,
    InvalidRate,
    InvalidSchedule,
    JobCancelled,
    JobFailed,
    JobNotFound,
    MissingExtra,
    NotAwaitingInput,
    NotebookFailed,
    ScheduleNotFound,
    StoreError,
    ToolError,
    Unrecoverable,
    WebhookRejected,
    WizError,
    WorkspaceBusy,
    WorkspaceFull,
)
from .jobs.events import Event
from .jobs.models import Job, JobContext
from .jobs.models import current_job as _current_job
from .jobs.notebooks import Notebook
from .jobs.schedules import Schedule
from .jobs.system import Boot, NetworkAvailable, Shutdown, SystemIdle
from .jobs.triggers import (
    After,
    At,
    Cron,
    Every,
    Fire,
    Idle,
    Kernel,
    ManualClock,
    Trigger,
    Watch,
    Webhook,
    sign_webhook,
    verify_webhook,
)
from .workspace import Workspace, workspace

__version__ = "0.1.0.dev0"

# The agents layer is imported when one of its names is first used, so that
# `import wiz_jupyter` and `%load_ext wiz_jupyter` stay light (PEP 562).
_LAZY = {
    "ScriptedModel": "wiz_jupyter.agents.scripted",
    "ToolCall": "wiz_jupyter.agents.messages",
    "Reply": "wiz_jupyter.agents.messages",
    "tool": "wiz_jupyter.agents.tools",
    "Tool": "wiz_jupyter.agents.tools",
    "Agent": "wiz_jupyter.agents.personas",
    "Chat": "wiz_jupyter.agents.chat",
    "Memory": "wiz_jupyter.agents.memory",
    "LLMError": "wiz_jupyter.errors",
    "EmbeddingsError": "wiz_jupyter.errors",
    "LLMAuthError": "wiz_jupyter.errors",
    "ModelNotFound": "wiz_jupyter.errors",
    "ReplayMiss": "wiz_jupyter.errors",
    "InvalidOutput": "wiz_jupyter.errors",
    "LLM": "wiz_jupyter.agents.llm",
    "Usage": "wiz_jupyter.agents.llm_store",
    "CF": "wiz_jupyter.agents.chains",
    "IS": "wiz_jupyter.agents.chains",
    "chain": "wiz_jupyter.agents.chains",
    "mcp": "wiz_jupyter.agents.mcp",
    "MCPServer": "wiz_jupyter.agents.mcp",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wiz_jupyter' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext wiz_jupyter``: the ``%wiz`` magics, and the runtime on the kernel's loop."""
    from .notebook.magics import load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    from .notebook.magics import unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (the Wiz sidebar), for ``jupyter labextension``."""
    return [{"src": "labextension", "dest": "wiz-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension (REST API, events, webhooks), as ``jupyter server extension`` finds it."""
    return [{"module": "wiz_jupyter.server"}]


def current_job() -> JobContext | None:
    """The job whose handler is running in this context (task or thread), else None."""
    return _current_job.get()


__all__ = [  # noqa: RUF022 - grouped: the jobs layer, then the lazily imported agents layer
    "CF",
    "IS",
    "chain",
    "Agent",
    "AgentFailed",
    "AgentNotFound",
    "Chat",
    "EmbeddingsError",
    "InvalidOutput",
    "LLM",
    "LLMAuthError",
    "LLMError",
    "Memory",
    "MCPServer",
    "ModelNotFound",
    "ReplayMiss",
    "Usage",
    "Reply",
    "ScriptedModel",
    "Tool",
    "ToolCall",
    "tool",
    "After",
    "At",
    "Boot",
    "Cron",
    "Every",
    "mcp",
    "Event",
    "Fire",
    "Idle",
    "DeliveryFailed",
    "InvalidJob",
    "AwaitInput",
    "NotAwaitingInput",
    "InvalidEndpoint",
    "BudgetExceeded",
    "InvalidNotification",
    "InvalidPersona",
    "InvalidRate",
    "InvalidSchedule",
    "Job",
    "JobCancelled",
    "Unrecoverable",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "Kernel",
    "ManualClock",
    "MissingExtra",
    "NetworkAvailable",
    "Notebook",
    "NotebookFailed",
    "Schedule",
    "ScheduleNotFound",
    "Shutdown",
    "StoreError",
    "ToolError",
    "SystemIdle",
    "Trigger",
    "Watch",
    "Webhook",
    "WebhookRejected",
    "WizError",
    "Workspace",
    "WorkspaceBusy",
    "WorkspaceFull",
    "__version__",
    "current_job",
    "sign_webhook",
    "verify_webhook",
    "workspace",
]
