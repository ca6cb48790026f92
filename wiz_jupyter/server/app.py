"""The jupyter_server extension: configuration, routes, and the workspace it serves.

Configure it as ``c.WizServer.<trait>`` in a ``jupyter_server_config.py``, or on
the command line (``jupyter lab --WizServer.db_path=...``).
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode

from .backend import Backend
from .changes import ChangeFeed
from .handlers import api_handlers
from .webhooks import WebhookHandler


class WizServer(ExtensionApp):
    """The REST API (``/wiz/api/``) and webhooks (``/wiz/hooks/NAME``) of one workspace.

    ::

        # jupyter_server_config.py (or: jupyter lab --WizServer.db_path=...)
        c.WizServer.db_path = "/srv/team/wiz.db"      # default: $WIZ_HOME/wiz.db, else .wiz/wiz.db
        c.WizServer.allow_unsigned_webhooks = False  # webhook schedules without a secret: 403
        c.WizServer.max_webhook_body = 1024 * 1024   # bytes; larger: 413
    """

    name = "wiz_jupyter"
    load_other_extensions = True

    db_path = Unicode(
        "",
        help=(
            "The workspace database the sidebar and the API show. Default: $WIZ_HOME/wiz.db "
            "if WIZ_HOME is set, else .wiz/wiz.db under the server's root_dir. A relative "
            "path is taken from root_dir."
        ),
    ).tag(config=True)

    allow_unsigned_webhooks = Bool(
        False,
        help=(
            "Fire webhook schedules that have no secret. Off by default: anyone who can "
            "reach the server could fire them. A schedule with a secret always needs a "
            "valid signature."
        ),
    ).tag(config=True)

    max_webhook_body = Int(
        1024 * 1024, help="The largest webhook body accepted, in bytes (larger: 413)."
    ).tag(config=True)

    poll_interval = Float(
        0.15, help="Seconds between checks of the database's change counter while clients wait."
    ).tag(config=True)

    def resolved_db_path(self) -> str:
        if self.db_path:
            path = Path(os.path.expanduser(self.db_path))
            if not path.is_absolute():
                path = Path(self._root_dir()) / path
            return str(path)
        home = os.environ.get("WIZ_HOME")
        if home:
            return str(Path(os.path.expanduser(home)) / "wiz.db")
        return str(Path(self._root_dir()) / ".wiz" / "wiz.db")

    def _root_dir(self) -> str:
        root = getattr(self.serverapp, "root_dir", None) or os.getcwd()
        return os.path.expanduser(root)

    def initialize_settings(self) -> None:
        self.backend = Backend(self.resolved_db_path(), root_dir=self._root_dir())
        self.feed = ChangeFeed(self.backend, interval=self.poll_interval)
        self.log.info("wiz_jupyter: serving the workspace %s", self.backend.path)

    def initialize_handlers(self) -> None:
        self.handlers.extend(api_handlers(self.backend, self.feed))
        hook = {
            "backend": self.backend,
            "feed": self.feed,
            "max_body": self.max_webhook_body,
            "allow_unsigned": self.allow_unsigned_webhooks,
        }
        self.handlers.append((r"/wiz/hooks/([^/]+)", WebhookHandler, hook))

    async def stop_extension(self) -> None:
        self.feed.close()
        self.backend.close()
