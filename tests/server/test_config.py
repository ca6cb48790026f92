"""Which database the server shows: ``c.WizServer.db_path``, else ``$WIZ_HOME/wiz.db``,
else ``.wiz/wiz.db`` under the server's root_dir."""

from __future__ import annotations

from types import SimpleNamespace

from wiz_jupyter.server import WizServer, _jupyter_server_extension_points


def server(root, **traits) -> WizServer:
    return WizServer(serverapp=SimpleNamespace(root_dir=str(root)), **traits)


def test_default_is_under_the_root_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("WIZ_HOME", raising=False)
    assert server(tmp_path).resolved_db_path() == str(tmp_path / ".wiz" / "wiz.db")


def test_wiz_home_is_shared_by_every_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WIZ_HOME", str(tmp_path / "home"))
    assert server(tmp_path / "root").resolved_db_path() == str(tmp_path / "home" / "wiz.db")


def test_db_path_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("WIZ_HOME", str(tmp_path / "home"))
    absolute = tmp_path / "elsewhere" / "team.db"
    assert server(tmp_path, db_path=str(absolute)).resolved_db_path() == str(absolute)
    relative = server(tmp_path / "root", db_path="data/wiz.db").resolved_db_path()
    assert relative == str(tmp_path / "root" / "data" / "wiz.db")


def test_defaults_and_extension_point():
    s = server("/tmp")
    assert s.allow_unsigned_webhooks is False and s.max_webhook_body == 1024 * 1024
    assert _jupyter_server_extension_points() == [
        {"module": "wiz_jupyter.server", "app": WizServer}
    ]
