"""An answer shown by a magic carries its provenance in the output's metadata;
``%wiz provenance`` lists this session's answers and those of the saved notebook."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat

from wiz_jupyter.agents.llm_store import request_hash

CASSETTE = Path(__file__).parents[2] / "notebooks" / "07_a_real_model.cassette.json"

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def answer_output(res) -> dict:
    shown = [o for o in res.outputs if o["type"] == "display_data" and "wiz" in o["metadata"]]
    assert len(shown) == 1, res.outputs
    return shown[0]


def test_an_answer_carries_its_provenance_and_the_listing_shows_it(kernel, tmp_path):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent helper --role assistant")
    first = answer_output(kernel.ok("%wiz ask helper what is 6 * 7?"))
    p = first["metadata"]["wiz"]
    assert first["data"]["text/plain"] != "" and "text/markdown" not in first["data"]
    assert first["data"]["text/plain"] in first["data"]["text/html"]  # as inert HTML
    assert p["job_id"] == 1 and p["agent"] == "helper" and p["model"] == "wiz/offline"
    assert HEX64.match(p["request_hash"])
    assert p["calls"] >= 1 and p["tokens_in"] > 0 and p["tokens_out"] > 0
    assert p["cost"] == 0.0 and p["replayed"] == 0 and p["cassette_key"] is None
    assert p["source"] == "magic" and p["kind"] == "ask"

    # the hash is the request's: the key of the answer's call in llm_calls
    check = kernel.ok(
        """\
        import json
        import wiz_jupyter as wiz
        ws = wiz.workspace()
        calls = [c for c in ws.llm.history(1) if c["error"] is None]
        print(json.dumps({"hash": calls[-1]["request_hash"],
                          "tokens": sum(c["tokens_in"] + c["tokens_out"] for c in calls)}))
        """
    )
    facts = json.loads(check.stdout)
    assert facts["hash"] == p["request_hash"]
    assert facts["tokens"] == p["tokens_in"] + p["tokens_out"]

    # replayed from a cassette (tutorial 07's recorded reply of a real model): the
    # cassette key is given, and it is the sha256 of the canonical request it answers
    shutil.copy(CASSETTE, tmp_path / "real.cassette.json")
    kernel.ok(
        """\
        ws.llm.use_cassette("real.cassette.json", mode="replay")
        ws.agent("analyst", role="data analyst", model="openai/gpt-4o-mini")
        """
    )
    res = kernel.ok("%%wiz ask analyst\nIn one sentence: why do notebooks need durable job queues?")
    again = answer_output(res)["metadata"]["wiz"]
    assert again["job_id"] == 2 and again["agent"] == "analyst"
    assert again["model"] == "openai/gpt-4o-mini" and again["replayed"] == again["calls"] == 1
    assert again["cassette_key"] == again["request_hash"]
    entries = json.loads(CASSETTE.read_text())["entries"]
    assert again["cassette_key"] in {request_hash(e["request"]) for e in entries}
    assert again["tokens_in"] > 0 and again["tokens_out"] > 0

    # the listing: this session's answers, then the saved notebook's others
    saved = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%wiz ask helper earlier", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "an older answer"},
            metadata={"wiz": {**p, "job_id": 99, "model": "openai/gpt-4o-mini"}},
        ),
        nbformat.v4.new_output(
            "display_data", data={"text/plain": "shown here too"}, metadata={"wiz": p}
        ),
    ]
    saved.cells = [nbformat.v4.new_markdown_cell("# notes"), cell]
    nbformat.write(saved, tmp_path / "analysis.ipynb")
    kernel.ok("import os\nos.environ['JPY_SESSION_NAME'] = 'analysis.ipynb'")
    listed = kernel.ok("%wiz provenance -o records")
    table = listed.plain[-1]
    assert "helper" in table and "wiz/offline" in table and "openai/gpt-4o-mini" in table
    assert "analysis.ipynb cell 1" in table
    records = json.loads(
        kernel.ok("print(json.dumps([[r['job_id'], r['where']] for r in records]))").stdout
    )
    assert records == [[1, "session"], [2, "session"], [99, "analysis.ipynb cell 1"]]


def test_an_empty_listing_says_so(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    assert kernel.ok("%wiz provenance").plain == ["(no answers shown yet)"]


def test_a_stored_answer_and_a_result_keep_their_provenance(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent helper --role assistant")
    kernel.ok("%wiz ask helper what is 6 * 7? -o answer")
    facts = kernel.ok(
        """\
        import pickle
        again = pickle.loads(pickle.dumps(answer))
        print(type(answer).__name__, isinstance(answer, str), answer == "42",
              answer.provenance["job_id"], again == answer, again.provenance == answer.provenance)
        """
    )
    assert facts.stdout.split() == ["Answer", "True", "True", "1", "True", "True"]
    shown = kernel.ok("answer").outputs[-1]
    assert shown["type"] == "execute_result" and shown["data"]["text/plain"] == "'42'"
    assert shown["metadata"]["wiz"]["job_id"] == 1
    result = kernel.ok("%wiz result 1").outputs[-1]
    assert result["data"]["text/plain"] == "'42'" and result["metadata"]["wiz"]["agent"] == "helper"
    # shown three times, recorded once
    assert [r["job_id"] for r in json.loads(kernel.ok(
        "%wiz provenance -o recs\nimport json; print(json.dumps(recs))").stdout)] == [1]  # fmt: skip
    # a plain task's result is not an answer: no provenance
    plain = kernel.ok(
        """\
        import wiz_jupyter as wiz
        ws = wiz.workspace()
        @ws.task
        def shout(word: str) -> str:
            return word.upper()
        job = ws.jobs.add("shout", {"word": "hi"})
        await job.wait(timeout=10)
        """
    )
    assert plain.status == "ok"
    out = kernel.ok("%wiz result {job.id}").outputs[-1]
    assert out["data"]["text/plain"] == "'HI'" and out["metadata"] == {}
