"""Chains with the scripted model: every operator, the seed examples, resume, graphs."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter import CF, IS
from wiz_jupyter.agents import ScriptedModel

pytestmark = LITELLM_NOISE


class Invoice(BaseModel):
    vendor: str
    total: float
    currency: str


class Items(BaseModel):
    items: list[str]


def agent(ws, name, *replies):
    model = ScriptedModel(list(replies))
    return ws.agent(name, model=model), model


async def test_extract_then_cf_then_analyse(ws):
    reader, _ = agent(ws, "reader", "Invoice from ACME: 120.50 EUR")
    extractor = ScriptedModel([json.dumps({"vendor": "ACME", "total": 120.5, "currency": "EUR"})])
    analyst, analyst_model = agent(ws, "analyst", "120.5 is within budget")
    pipeline = reader >> CF(Invoice, model=extractor) - ("total", "currency") >> analyst
    assert await pipeline.run("scan.pdf") == "120.5 is within budget"
    assert json.loads(analyst_model.requests[0]["messages"][-1]["content"]) == {
        "total": 120.5,
        "currency": "EUR",
    }
    tasks = [j.task for j in ws.jobs.list()]
    assert tasks == ["agent:reader", "wiz.chain.extract", "agent:analyst"]
    jobs = ws.jobs.list()
    assert all(j.status == "completed" for j in jobs)
    deps = ws.store.read("SELECT job_id, dep_id FROM job_deps ORDER BY job_id")
    assert [tuple(d) for d in deps] == [(jobs[1].id, jobs[0].id), (jobs[2].id, jobs[1].id)]


async def test_conditional_routing(ws):
    euro, _ = agent(ws, "euro", "booked in euros", "booked in euros")
    other, other_model = agent(ws, "other", "converted first")
    pick = ScriptedModel([
        json.dumps({"vendor": "A", "total": 1, "currency": "EUR"}),
        json.dumps({"vendor": "B", "total": 2, "currency": "USD"}),
    ])  # fmt: skip
    route = CF(Invoice, model=pick) >> IS("currency", "EUR") >> euro % other
    assert await route.run("invoice A") == "booked in euros"
    assert await route.run("invoice B") == "converted first"
    assert len(other_model.requests) == 1


async def test_a_fallback_chain_ending_in_a_string(ws):
    flaky, _ = agent(ws, "flaky", RuntimeError("down"))
    backup, _ = agent(ws, "backup", RuntimeError("down too"))
    chain = flaky | backup | "no answer today"
    assert await chain.run("question") == "no answer today"
    good, _ = agent(ws, "good", "an answer")
    assert await (good | "unused").run("question") == "an answer"


async def test_fan_out_over_a_list_in_parallel(ws):
    lister = ScriptedModel([json.dumps({"items": ["apples", "pears", "plums"]})])
    seen = []

    def shout(item: str) -> str:
        seen.append(item)
        return item.upper()

    chain = CF(Items, model=lister) - "items[n]" >> shout
    assert await chain.run("a fruit list", ws=ws) == ["APPLES", "PEARS", "PLUMS"]
    assert sorted(seen) == ["apples", "pears", "plums"]
    assert len([j for j in ws.jobs.list() if j.task == "wiz.chain.call"]) == 3


async def test_parallel_then_sequential(ws):
    a, _ = agent(ws, "a", "from a")
    b, _ = agent(ws, "b", "from b")
    merge, merge_model = agent(ws, "merge", "merged")
    assert await ((a + b) >> merge).run("topic") == "merged"
    assert json.loads(merge_model.requests[0]["messages"][-1]["content"]) == ["from a", "from b"]
    c, _ = agent(ws, "c", "from c")
    d, _ = agent(ws, "d", "from d")
    assert await (c & d).run("x") == ["from c", "from d"]


async def test_a_crashed_run_resumes_from_its_completed_nodes(ws):
    first, first_model = agent(ws, "first", "step one done")
    gate = asyncio.Event()

    async def slow_step(value: str) -> str:
        await gate.wait()
        return value + " / step two done"

    pipeline = first >> slow_step
    running = asyncio.create_task(pipeline.run("go"))
    while not [j for j in ws.jobs.list() if j.task == "wiz.chain.call" and j.status == "active"]:
        await asyncio.sleep(0.01)
    running.cancel()  # the notebook's run dies (an interrupt, a kernel restart)
    with pytest.raises(asyncio.CancelledError):
        await running
    gate.set()
    assert await pipeline.run("go") == "step one done / step two done"
    assert len(first_model.requests) == 1  # the completed node was not run again
    assert len(ws.jobs.list()) == 2  # and no node job was duplicated


async def test_graph_as_text_and_mermaid(ws):
    a, _ = agent(ws, "extract")
    x, _ = agent(ws, "euro")
    y, _ = agent(ws, "other")
    chain = a >> CF(Invoice) - "total" >> IS("currency", "EUR") >> x % y
    g = chain.graph()
    text = str(g)
    assert "extract --> CF(Invoice) - 'total'" in text
    assert "IS('currency', 'EUR') --[yes]--> euro" in text and "--[no]--> other" in text
    assert g.mermaid.startswith("graph LR") and '{"IS(' in g.mermaid and "-->|yes|" in g.mermaid
    assert repr(chain).startswith("<chain extract >> CF(Invoice)")
    with pytest.raises(wiz.WizError, match="x % y needs a condition"):
        a >> (x % y)
    with pytest.raises(wiz.WizError, match="has no field 'price'"):
        CF(Invoice) - "price"


async def test_progress_events_per_node(ws):
    a, _ = agent(ws, "a", "one")
    b, _ = agent(ws, "b", "two")
    seen = []
    ws.events.on("chain.node", lambda e: seen.append((e.data["node"], e.data["status"])))
    await (a >> b).run("x")
    assert ("a", "completed") in seen and ("b", "completed") in seen
    assert seen.index(("a", "completed")) < seen.index(("b", "completed"))


async def test_running_a_failed_chain_again_retries_only_the_failed_node(ws):
    first, first_model = agent(ws, "first", "step one done")
    flaky, flaky_model = agent(ws, "flaky", RuntimeError("down"), "step two done")
    pipeline = first >> flaky
    with pytest.raises(wiz.JobFailed, match="down"):
        await pipeline.run("go")
    assert await pipeline.run("go") == "step two done"
    assert len(first_model.requests) == 1 and len(flaky_model.requests) == 2
    assert [j.status for j in ws.jobs.list()] == ["completed", "completed"]
