"""The tutorials are an acceptance test: nbval fails when what a notebook shows changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def test_a_changed_result_in_a_tutorial_fails_nbval(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / "sanitize.cfg", folder)
    nb = nbformat.read(ROOT / "notebooks" / "02_job_queue.ipynb", 4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "children_results" in c.source)
    stream = next(o for o in cell.outputs if o.get("name") == "stdout")
    assert "completed 14" in stream["text"]  # the parent read its children's results
    stream["text"] = stream["text"].replace("completed 14", "completed 15")  # a broken sum
    nbformat.write(nb, folder / "02_job_queue.ipynb")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", str(folder / "sanitize.cfg"), str(folder / "02_job_queue.ipynb")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout[-2000:]
    assert "completed 15" in out.stdout and "completed 14" in out.stdout
