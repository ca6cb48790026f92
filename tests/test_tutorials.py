"""The tutorials are an acceptance test: nbval fails when what a notebook shows changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from wiz_jupyter.notebook import provenance

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


def test_the_quickstarts_answer_records_how_it_was_made():
    # nbval compares outputs but skips their metadata ("metadata" is in its skip_compare),
    # so the provenance an answer's output carries is checked here, in the saved notebook
    nb = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", 4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "%wiz ask helper" in c.source)
    answers = [o for o in cell.outputs if "wiz" in o.get("metadata", {})]
    assert len(answers) == 1 and answers[0]["output_type"] == "display_data"
    assert answers[0]["data"]["text/plain"] == "42"
    p = answers[0]["metadata"]["wiz"]
    assert {*provenance.FIELDS, "source", "kind"} <= set(p)
    assert p["job_id"] == 1 and p["agent"] == "helper" and p["model"] == "wiz/offline"
    assert len(p["request_hash"]) == 64 and int(p["request_hash"], 16) >= 0
    assert p["tokens_in"] > 0 and p["tokens_out"] > 0 and p["calls"] == 1
    assert p["cost"] == 0.0 and p["cassette_key"] is None and p["replayed"] == 0
    assert p["source"] == "magic" and p["kind"] == "ask"
    listing = next(c for c in nb.cells if c.cell_type == "code" and c.source == "%wiz provenance")
    assert p["request_hash"][:13] in listing.outputs[0]["data"]["text/plain"]


def test_a_replayed_answer_in_a_tutorial_names_its_cassette_entry():
    from wiz_jupyter.agents.llm_store import request_hash

    nb = nbformat.read(ROOT / "notebooks" / "07_a_real_model.ipynb", 4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "%%wiz ask" in c.source)
    (answer,) = [o for o in cell.outputs if "wiz" in o.get("metadata", {})]
    p = answer["metadata"]["wiz"]
    assert p["model"] == "openai/gpt-4o-mini" and p["agent"] == "analyst"
    assert p["replayed"] == p["calls"] == 1 and p["cassette_key"] == p["request_hash"]
    assert p["tokens_in"] > 0 and p["tokens_out"] > 0
    cassette = json.loads((ROOT / "notebooks" / "07_a_real_model.cassette.json").read_text())
    assert p["cassette_key"] in {request_hash(e["request"]) for e in cassette["entries"]}
