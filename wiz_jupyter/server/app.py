"""The jupyter_server extension: configuration, routes, and the workspaces it serves.

Configure it as ``c.WizServer.<trait>`` in a ``jupyter_server_config.py``, or on
the command line (``jupyter lab --WizServer.db_path=...``).
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode

from ..announce import registry_dir
from .handlers import api_handlers
from .webhooks import WebhookHandler
from .workspaces import Workspaces


class WizServer(ExtensionApp):
    """The REST API (``/wiz/api/``) over the workspaces it knows, and webhooks
    (``/wiz/hooks/NAME``) of the default one.

    It knows the default workspace (below), ``$WIZ_HOME/wiz.db``, and those its
    running kernels announce (see :mod:`wiz_jupyter.server.workspaces`).

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
            "The default workspace database of the sidebar and the API (kernels announce "
            "their own too). Default: $WIZ_HOME/wiz.db "
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

    def known_paths(self) -> list[tuple[str, str]]:
        """The workspaces known whatever the kernels do, the default first, as
        ``(path, source)``; source is ``"config"``, ``"WIZ_HOME"`` or ``"root"``."""
        home = os.environ.get("WIZ_HOME")
        home_db = str(Path(os.path.expanduser(home)) / "wiz.db") if home else None
        default = self.resolved_db_path()
        source = "config" if self.db_path else "WIZ_HOME" if home else "root"
        out = [(default, source)]
        if home_db and home_db != default:
            out.append((home_db, "WIZ_HOME"))
        return out

    def _running_kernels(self) -> dict[str, str]:
        """``{real path of a kernel's connection file: kernel id}`` of this server's kernels."""
        km = getattr(self.serverapp, "kernel_manager", None)
        out: dict[str, str] = {}
        if km is None:
            return out
        for kid in km.list_kernel_ids():
            try:
                connection_file = km.get_kernel(kid).connection_file
            except KeyError:  # it just went away
                continue
            if connection_file:
                out[os.path.realpath(connection_file)] = kid
        return out

    def _registry_dirs(self) -> list[str]:
        # kernels write under their jupyter_runtime_dir(), which they inherit from us
        dirs = [str(registry_dir())]
        runtime = getattr(self.serverapp, "runtime_dir", None)
        if runtime:
            dirs.append(str(registry_dir(runtime)))
        return dirs

    def initialize_settings(self) -> None:
        self.workspaces = Workspaces(
            self.known_paths(),
            root_dir=self._root_dir(),
            registry_dirs=self._registry_dirs(),
            running_kernels=self._running_kernels,
            poll_interval=self.poll_interval,
        )
        self.log.info("wiz_jupyter: serving the workspace %s", self.workspaces.default.path)

    def initialize_handlers(self) -> None:
        self.handlers.extend(api_handlers(self.workspaces))
        default = self.workspaces.acquire(self.workspaces.default)  # webhooks: the default's
        hook = {
            "backend": default.backend,
            "feed": default.feed,
            "max_body": self.max_webhook_body,
            "allow_unsigned": self.allow_unsigned_webhooks,
        }
        self.handlers.append((r"/wiz/hooks/([^/]+)", WebhookHandler, hook))

    async def stop_extension(self) -> None:
        self.workspaces.close()
