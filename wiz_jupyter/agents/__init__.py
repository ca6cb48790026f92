"""The agents layer: model calls (``llm.py``), personas, the agent runtime, tools, chats.

Importing this package stays light: litellm is imported on the first model call.

::

    from wiz_jupyter.agents import LLM, ScriptedModel, ToolCall
"""

from __future__ import annotations

from .llm import LLM, Stream
from .llm_store import Usage
from .messages import Reply, ToolCall
from .scripted import ScriptedModel

__all__ = ["LLM", "Reply", "ScriptedModel", "Stream", "ToolCall", "Usage"]
