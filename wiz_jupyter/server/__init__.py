"""The jupyter_server extension of wiz_jupyter: a REST API over the workspace database
for the JupyterLab sidebar, and webhooks for webhook schedules.

Enabled on install (``etc/jupyter/jupyter_server_config.d/wiz_jupyter.json``);
``jupyter server extension list`` shows it as ``wiz_jupyter.server``.
"""

from __future__ import annotations

from typing import Any

from .app import WizServer


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "wiz_jupyter.server", "app": WizServer}]


__all__ = ["WizServer"]
