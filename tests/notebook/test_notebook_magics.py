"""``%wiz run`` and ``%wiz schedule --notebook`` in a real kernel."""

from __future__ import annotations

import json

import nbformat

from tests.jobs.test_notebook_jobs import make_nb


def test_run_a_notebook_with_parameters_and_wait(kernel, tmp_path):
    make_nb(
        tmp_path / "square.ipynb",
        ("n = 2\nlabel = 'x'", ["parameters"]),
        ("print(label, n * n)", []),
    )
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.ok("%wiz run square.ipynb -p n 12 -p label squared -o run", timeout=120)
    assert "3 cells in" in res.stdout and "square-1.ipynb" in res.stdout
    out = kernel.ok("print(run['notebook'], run['parameters'])").stdout.split()
    nb = nbformat.read(out[0], as_version=4)
    assert nb.cells[-1].outputs[0]["text"] == "squared 144\n"
    assert json.loads(" ".join(out[1:]).replace("'", '"')) == {"n": 12, "label": "squared"}


def test_run_in_the_background_and_a_failing_notebook(kernel, tmp_path):
    make_nb(tmp_path / "bad.ipynb", ("raise KeyError('gone')", []))
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.ok("%wiz run bad.ipynb", timeout=120)
    assert res.stdout == "" and res.stderr.startswith(
        "wiz: job 1 failed: NotebookFailed: bad.ipynb"
    )
    assert "KeyError: 'gone'" in res.stderr and "Traceback" not in res.stderr
    res = kernel.ok("%wiz run bad.ipynb --background -o job\nprint(job.task)")
    assert res.stdout.strip() == "notebook"


def test_schedule_a_notebook_and_bad_input(kernel, tmp_path):
    make_nb(tmp_path / "daily.ipynb", ("day = 'monday'", ["parameters"]))
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.ok(
        "s = %wiz schedule --notebook daily.ipynb --cron '0 6 * * *' -p day friday --name daily\n"
        "d = s.template['data']; print(s.name, s.task, d['parameters'], d['path'].endswith('daily.ipynb'))"
    )
    assert res.stdout.strip() == "daily notebook {'day': 'friday'} True"
    for line, message in [
        ("%wiz run missing.ipynb", "wiz: notebook not found"),
        ("%wiz run daily.ipynb -p 1x 2", "wiz: -p needs a parameter name, not '1x'"),
        ("%wiz run daily.ipynb -p day", "expected 2 arguments"),
        ("%wiz schedule --cron '0 6 * * *'", "wiz: schedule what?"),
        ("%wiz schedule mytask --notebook daily.ipynb '{}' --every 60", "not both"),
        ("%wiz schedule --notebook daily.ipynb --cron 'not cron'", "wiz: "),
    ]:
        res = kernel.ok(line)
        assert message in res.stderr and "Traceback" not in res.stderr, (line, res.stderr)
    assert kernel.ok("print(len(ws.jobs.list()) if 'ws' in dir() else 0)").stdout.strip() == "0"
