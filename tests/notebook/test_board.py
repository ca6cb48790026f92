"""The job board's Python side: throttled patches, snapshots, filters, actions."""

from __future__ import annotations

import asyncio

import wiz_jupyter as wiz
from wiz_jupyter.notebook.board import JobBoard


class Sent(list):
    def of(self, kind):
        return [m for m in self if m["type"] == kind]


def board_for(ws, **kw) -> tuple[JobBoard, Sent]:
    board = ws.board(**kw)
    sent = Sent()
    board.send = lambda msg, buffers=None: sent.append(msg)
    return board, sent


async def test_changes_are_batched_into_few_patches_with_exact_counts(ws):
    board, sent = board_for(ws, interval=0.05)

    @ws.task
    async def noop(i: int) -> int:
        return i

    ws.jobs.add_bulk([("noop", {"i": i}) for i in range(2000)])
    await ws.run_until_idle(timeout=30)
    await asyncio.sleep(0.15)
    patches = sent.of("patch")
    assert 1 <= len(patches) <= 40  # 6,000 events, a handful of messages
    latest = {}
    for p in patches:
        for j in p["jobs"]:
            latest[j["id"]] = j["status"]
    assert len(latest) == 2000 and set(latest.values()) == {"completed"}
    assert board.counts["completed"] == 2000
    board.close()


async def test_snapshot_respects_limit_and_filters(ws):
    board, sent = board_for(ws, limit=5)
    for i in range(12):
        ws.jobs.add("fetch" if i % 2 else "parse", {"i": i})
    ws.jobs.cancel(3)
    assert board._ready({}, []) == ({"ok": True}, [])
    snap = sent.of("snapshot")[-1]["jobs"]
    assert [j["id"] for j in snap] == [12, 11, 10, 9, 8]
    board.status_filter = "cancelled"
    assert [j["id"] for j in sent.of("snapshot")[-1]["jobs"]] == [3]
    board.status_filter = ""
    board.text_filter = "fetch"
    assert {j["task"] for j in sent.of("snapshot")[-1]["jobs"]} == {"fetch"}
    board.close()


async def test_actions_from_the_board_reach_the_queue_and_errors_stay_in_the_board(ws):
    board, sent = board_for(ws)
    a, b = ws.jobs.add("t"), ws.jobs.add("t")
    assert board._act({"action": "cancel", "id": a.id}, []) == ({"ok": True}, [])
    assert a.status == "cancelled"
    board._act({"action": "retry", "id": a.id}, [])
    assert a.status == "waiting"
    board._act({"action": "priority", "id": b.id, "priority": 4}, [])
    assert b.priority == 4
    answer, _ = board._act({"action": "retry", "id": b.id}, [])  # not failed: refused
    assert "only failed or cancelled" in answer["error"]
    for bad in ({"action": "cancel"}, {"action": "cancel", "id": "x"}, {"action": "pause", "id": 1},
                None, {"action": "priority", "id": b.id, "priority": "high"}):  # fmt: skip
        assert board._act(bad, [])[0]["error"]
    assert b.priority == 4 and sent.of("error") == []
    board.close()


def test_the_widget_ships_its_javascript_and_css():
    from wiz_jupyter.notebook.board import STATIC

    js = (STATIC / "board.js").read_text()
    assert "export default { render }" in js
    assert "innerHTML" not in js  # every value goes through textContent
    assert (STATIC / "board.css").stat().st_size > 0


async def test_board_magic_returns_the_widget(ws):
    from wiz_jupyter.notebook.magics import WizMagics

    magics = WizMagics(shell=None, ws=ws)
    board = magics.wiz("board --limit 7")
    assert isinstance(board, JobBoard) and board.limit == 7
    board.close()
    assert isinstance(wiz.Workspace(":memory:").board(), JobBoard)
