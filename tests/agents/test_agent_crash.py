"""An agent's process killed with SIGKILL between two steps: another process resumes the
job from its saved activity and does not run the completed tool call again."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE

pytestmark = LITELLM_NOISE
WORKER = str(Path(__file__).with_name("_agent_worker.py"))


async def test_a_killed_agent_job_resumes_elsewhere_without_repeating_its_tool_call(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("WIZ_MODEL", raising=False)
    db, marks = tmp_path / "shared.db", tmp_path / "marks.txt"

    def assign() -> (
        int
    ):  # from a thread: no running loop, so this process does not start working it
        other = wiz.Workspace(db)
        job = other.agent("recorder", role="note keeper").assign("record once", attempts=2)
        other.close()
        return job.id

    job_id = await asyncio.to_thread(assign)
    ws = wiz.Workspace(db, lease=1.0, poll_interval=0.05)
    job = ws.jobs.get(job_id)
    proc = subprocess.Popen(
        [sys.executable, WORKER, str(db), str(marks)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line.strip() == "between steps"
        assert marks.read_text().split() == ["1"]
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(proc.wait, 10) == -signal.SIGKILL
    finally:
        proc.kill()

    def record(n: int) -> str:
        """Record that the tool ran."""
        with open(marks, "a") as f:
            f.write(f"{n}\n")
        return f"recorded {n}"

    model = wiz.ScriptedModel(["recorded it once", json.dumps({"passed": True})])
    ws.agent("recorder", model=model, tools=[record])
    await ws.start()
    assert await job.wait(timeout=30) == "recorded it once"
    assert marks.read_text().split() == ["1"]  # the tool ran once, in the killed process
    assert job.attempts_made == 2
    assert any(e["data"].get("reason") == "stalled" for e in job.events())
    assert len(model.requests) == 2  # no new plan: the resumed job went on from its activity
    await ws.stop()
    ws.close()
