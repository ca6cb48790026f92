"""A real Jupyter server with wiz_jupyter's extension, as ``make`` installs it (the
extension is switched on by the venv's jupyter_server_config.d, not by the tests)."""

from __future__ import annotations

import pytest

from .jupyter import Jupyter, start_jupyter


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory) -> Jupyter:
    """A server whose workspace is ``$WIZ_HOME/wiz.db``, shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("jupyter")
    server = start_jupyter(tmp, wiz_home=tmp / "home")
    yield server
    server.stop()


@pytest.fixture
def api(jupyter):
    """An HTTP client with the server's token."""
    with jupyter.client() as c:
        yield c


@pytest.fixture
def ws(jupyter):
    """The server's workspace, opened by the test as a notebook would."""
    w = jupyter.workspace()
    yield w
    w.close()
