"""A separate process working one agent job, killed by the test between two steps.

python _agent_worker.py DB MARKS   (MARKS: the file the tool appends to)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import wiz_jupyter as wiz


async def main(db: str, marks: str) -> None:
    ws = wiz.Workspace(db, lease=1.0)

    def record(n: int) -> str:
        """Record that the tool ran."""
        with open(marks, "a") as f:
            f.write(f"{n}\n")
        return f"recorded {n}"

    def hang(messages):  # the model's next turn never comes back: the test kills us here
        print("between steps", flush=True)
        time.sleep(600)

    plan = json.dumps({"goal": "record", "steps": ["record 1"], "criteria": []})
    model = wiz.ScriptedModel([plan, wiz.ToolCall("record", {"n": 1}), hang])
    ws.agent("recorder", model=model, tools=[record])
    await ws.start()
    await asyncio.sleep(600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
