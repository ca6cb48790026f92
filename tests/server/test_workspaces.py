"""Workspaces beyond the default: kernels announce theirs, the API serves those and refuses
every other file (``?workspace=``), with real kernels started by the real server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_client import BlockingKernelClient

import wiz_jupyter as wiz

from .jupyter import Jupyter, start_jupyter

GETS = ["counts", "changes?timeout=0", "agents", "jobs", "jobs/1", "notifications",
        "schedules", "schedules/1"]  # fmt: skip
POSTS = ["jobs/1/cancel", "jobs/1/retry", "jobs/1/priority", "schedules/1/pause",
         "schedules/1/resume"]  # fmt: skip


class Kernel:
    """A kernel the server started for a notebook (a session), driven over its channels."""

    def __init__(self, jupyter: Jupyter, notebook: str):
        with jupyter.client() as c:
            r = c.post(
                "api/sessions",
                json={"path": notebook, "type": "notebook", "kernel": {"name": "python3"}},
            )
            r.raise_for_status()
        self.jupyter = jupyter
        self.session = r.json()["id"]
        self.id = r.json()["kernel"]["id"]
        self.connection_file = jupyter.runtime / f"kernel-{self.id}.json"
        self.announcement = jupyter.runtime / "wiz-workspaces" / f"kernel-{self.id}.json"
        self.client = BlockingKernelClient(connection_file=str(self.connection_file))
        self.client.load_connection_file()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str) -> str:
        out: list[str] = []

        def hook(msg: dict) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(content["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(content["traceback"]))

        reply = self.client.execute_interactive(code, timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", "".join(out)
        return "".join(out)

    def shutdown(self) -> None:
        self.client.stop_channels()
        with self.jupyter.client() as c:
            c.delete(f"api/sessions/{self.session}")


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory) -> Jupyter:
    tmp = tmp_path_factory.mktemp("workspaces")
    server = start_jupyter(tmp, wiz_home=tmp / "home")
    (server.root / "notebooks").mkdir()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kernel(jupyter):
    """A notebook in ``notebooks/`` whose kernel uses the workspace beside it (no WIZ_HOME)."""
    k = Kernel(jupyter, "notebooks/analysis.ipynb")
    k.run('import os\nos.environ.pop("WIZ_HOME", None)\n%load_ext wiz_jupyter')
    k.run('ws = wiz_ws = __import__("wiz_jupyter").workspace()\njob = ws.jobs.add("crunch", {})')
    yield k
    k.shutdown()


@pytest.fixture
def api(jupyter):
    with jupyter.client() as c:
        yield c


def listing(api) -> dict:
    r = api.get("wiz/api/workspaces")
    assert r.status_code == 200, r.text
    return r.json()


def by_rel(api, rel: str) -> dict | None:
    return next((w for w in listing(api)["workspaces"] if w["rel"] == rel), None)


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


NOTEBOOK_DB = "notebooks/.wiz/wiz.db"


def test_the_default_is_listed_first_and_used_without_a_parameter(jupyter, api):
    data = listing(api)
    first = data["workspaces"][0]
    assert first["id"] == data["default"] and first["default"] is True
    assert first["path"] == str(jupyter.db) and first["sources"] == ["WIZ_HOME"]
    counts = api.get("wiz/api/counts").json()
    assert counts["workspace"] == data["default"] and counts["db"] == str(jupyter.db)
    assert api.get("wiz/api/counts", params={"workspace": ""}).json()["workspace"] == first["id"]


def test_a_kernel_announces_the_workspace_beside_its_notebook(jupyter, api, kernel):
    entry = json.loads(kernel.announcement.read_text())
    db = jupyter.root / NOTEBOOK_DB
    assert entry["workspaces"] == [str(db)] and entry["current"] == str(db)
    assert entry["kernel_id"] == kernel.id and entry["pid"] > 0

    w = by_rel(api, NOTEBOOK_DB)
    assert w is not None, listing(api)
    assert w["path"] == str(db) and w["label"] == NOTEBOOK_DB and w["exists"] is True
    assert w["sources"] == ["kernel"] and w["kernels"] == [kernel.id]
    assert w["notebooks"] == ["notebooks/analysis.ipynb"]
    assert listing(api)["kernels"][kernel.id] == w["id"]

    # named by id, by its path, by its path under the root: the same workspace
    for ref in (w["id"], w["path"], w["rel"]):
        page = api.get("wiz/api/jobs", params={"workspace": ref}).json()
        assert [j["task"] for j in page["jobs"]] == ["crunch"], ref
    assert all(j["task"] != "crunch" for j in api.get("wiz/api/jobs").json()["jobs"])

    changes = api.get("wiz/api/changes", params={"workspace": w["id"]}).json()
    assert changes["workspace"] == w["id"] and changes["db"] == str(db)
    assert changes["counts"]["waiting"] == 1

    # actions go to that workspace too
    job_id = page["jobs"][0]["id"]
    r = api.post(f"wiz/api/jobs/{job_id}/cancel", params={"workspace": w["id"]})
    assert r.status_code == 200 and r.json()["cancelled"] is True
    assert "cancelled" in kernel.run("print(ws.jobs.get(job.id).status)")
    kernel.run("ws.jobs.retry(job.id)")


def test_unloading_withdraws_and_loading_announces_again(api, kernel):
    w = by_rel(api, NOTEBOOK_DB)
    kernel.run("%unload_ext wiz_jupyter")
    assert not kernel.announcement.exists()
    assert wait_for(lambda: by_rel(api, NOTEBOOK_DB) is None)
    assert api.get("wiz/api/jobs", params={"workspace": w["id"]}).status_code == 403

    kernel.run("%load_ext wiz_jupyter")
    assert kernel.announcement.exists()
    assert by_rel(api, NOTEBOOK_DB)["id"] == w["id"]  # ids are stable: a hash of the path
    assert api.get("wiz/api/jobs", params={"workspace": w["id"]}).status_code == 200


def test_a_workspace_in_python_is_announced_and_closing_withdraws_it(jupyter, api, kernel):
    kernel.run('extra = __import__("wiz_jupyter").Workspace("extra/team.db")')
    w = wait_for(lambda: by_rel(api, "notebooks/extra/team.db"))
    assert w and w["kernels"] == [kernel.id]
    # the kernel's own workspace is still its default one, not the one opened last
    assert listing(api)["kernels"][kernel.id] == by_rel(api, NOTEBOOK_DB)["id"]
    kernel.run("extra.close()")
    assert wait_for(lambda: by_rel(api, "notebooks/extra/team.db") is None)


def test_a_kernel_that_ends_takes_its_workspace_away(jupyter, api):
    k = Kernel(jupyter, "notebooks/short.ipynb")
    k.run('%load_ext wiz_jupyter\nimport wiz_jupyter as wiz\nws = wiz.Workspace("short.db")')
    w = wait_for(lambda: by_rel(api, "notebooks/short.db"))
    assert w and k.announcement.exists()
    k.shutdown()
    assert wait_for(lambda: by_rel(api, "notebooks/short.db") is None)
    assert api.get("wiz/api/counts", params={"workspace": w["id"]}).status_code == 403
    assert wait_for(lambda: not k.announcement.exists())  # removed at exit


@pytest.fixture(scope="module")
def strangers(jupyter, tmp_path_factory):
    """Files the server must never open: a real wiz database nobody announced, a symlink to
    it, and one to the known default."""
    other = wiz.Workspace(jupyter.root / "other.db")
    other.jobs.add("secret", {})
    other.close()
    (jupyter.root / "link.db").symlink_to(jupyter.root / "other.db")
    jupyter.db.parent.mkdir(parents=True, exist_ok=True)
    (jupyter.root / "default-link.db").symlink_to(jupyter.db)
    return jupyter.root / "other.db"


def refusals(jupyter: Jupyter, other: Path) -> list[str]:
    root = jupyter.root
    return [
        "/etc/passwd",
        str(other),
        "other.db",
        str(root / "link.db"),
        "link.db",
        "default-link.db",
        f"{root}/notebooks/../other.db",
        "notebooks/../other.db",
        "notebooks/.wiz/../../other.db",
        f"{jupyter.db.parent}/../home/wiz.db",  # the default, spelt another way
        f"{root}/./{NOTEBOOK_DB}",
        "../" * 8 + "etc/passwd",
        "%2e%2e/other.db",
        "file:other.db",
        ":memory:",
        "~/.wiz/wiz.db",
    ]


def test_anything_else_is_refused_with_403(jupyter, api, kernel, strangers):
    for ref in refusals(jupyter, strangers):
        for path in GETS:
            r = api.get(f"wiz/api/{path}", params={"workspace": ref})
            assert r.status_code == 403, (ref, path, r.text)
            assert "secret" not in r.text and "Traceback" not in r.text
        for path in POSTS:
            r = api.post(f"wiz/api/{path}", params={"workspace": ref}, json={"priority": 1})
            assert r.status_code == 403, (ref, path, r.text)
    assert by_rel(api, "other.db") is None and by_rel(api, "link.db") is None


def test_announcements_of_kernels_the_server_does_not_run_are_ignored(jupyter, api, strangers):
    folder = jupyter.runtime / "wiz-workspaces"
    folder.mkdir(exist_ok=True)
    forged = {
        "version": 1,
        "kernel_id": "not-a-kernel",
        "connection_file": str(jupyter.runtime / "kernel-not-a-kernel.json"),
        "pid": os.getpid(),  # alive: kept, since another server might run it
        "workspaces": [str(strangers)],
        "current": str(strangers),
    }
    (folder / "kernel-not-a-kernel.json").write_text(json.dumps(forged))
    gone = {**forged, "kernel_id": "gone", "pid": 2**22 + 12345}  # no such process
    (folder / "kernel-gone.json").write_text(json.dumps(gone))
    (folder / "junk.json").write_text("{not json")

    assert by_rel(api, "other.db") is None
    assert api.get("wiz/api/jobs", params={"workspace": str(strangers)}).status_code == 403
    assert (folder / "kernel-not-a-kernel.json").exists()
    assert not (folder / "kernel-gone.json").exists()  # a dead process's file is cleaned up
    (folder / "kernel-not-a-kernel.json").unlink()
    (folder / "junk.json").unlink()


def workspace_refs(jupyter: Jupyter, other: Path):
    known = st.sampled_from(
        [*refusals(jupyter, other), str(jupyter.db), NOTEBOOK_DB, "", ".", "/", "..", "\x00"]
    )
    return st.one_of(
        st.text(max_size=120),
        known,
        st.tuples(known, st.text(max_size=20)).map("".join),
        st.text(alphabet="0123456789abcdef", min_size=12, max_size=12),  # id-shaped
    )


def test_random_workspace_values_never_fail_the_server(jupyter, kernel, strangers):
    # actions on jobs and schedules that do not exist: a known workspace answers 404, never
    # the 409 of an action a real job's state forbids
    posts = [p.replace("/1/", "/999999/") for p in POSTS]
    paths = [("GET", p) for p in GETS] + [("POST", p) for p in posts]

    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ref=workspace_refs(jupyter, strangers), where=st.sampled_from(paths))
    def check(ref: str, where: tuple[str, str]) -> None:
        method, path = where
        r = client.request(method, f"wiz/api/{path}", params={"workspace": ref}, json={})
        assert r.status_code in (200, 400, 403, 404), (ref, path, r.status_code, r.text)
        assert "Traceback" not in r.text
        if r.status_code != 200:
            assert isinstance(r.json()["message"], str)

    with jupyter.client() as client:
        check()


def test_backends_open_on_demand_and_close_when_their_kernel_is_gone(tmp_path):
    from wiz_jupyter.server.workspaces import UnknownWorkspace, Workspaces

    registry = tmp_path / "runtime" / "wiz-workspaces"
    registry.mkdir(parents=True)
    db = tmp_path / "root" / "nb" / ".wiz" / "wiz.db"
    wiz.Workspace(db).close()
    connection = str(tmp_path / "runtime" / "kernel-k1.json")
    running = {os.path.realpath(connection): "k1"}
    (registry / "kernel-k1.json").write_text(
        json.dumps({"version": 1, "kernel_id": "k1", "connection_file": connection,
                    "pid": os.getpid(), "workspaces": [str(db)], "current": str(db)})
    )  # fmt: skip
    spaces = Workspaces(
        [(str(tmp_path / "default.db"), "root")],
        root_dir=str(tmp_path / "root"),
        registry_dirs=[registry],
        running_kernels=lambda: dict(running),
    )
    try:
        known = spaces.find("nb/.wiz/wiz.db")
        assert spaces.kernel_workspaces() == {"k1": known.id}
        assert len(spaces.served()) == 1  # only the default's, until someone asks
        served = spaces.acquire(known)
        assert served.backend.summary()["exists"] is True and len(spaces.served()) == 2

        running.clear()  # the kernel ends while a request still uses its workspace
        with pytest.raises(UnknownWorkspace):
            spaces.find(known.id)
        spaces.prune()
        assert served in spaces.served()  # still in use: kept
        spaces.release(served)
        assert [s.known.id for s in spaces.served()] == [spaces.default.id]
    finally:
        spaces.close()
