"""OpenTelemetry (the ``otel`` extra): spans of job attempts, model calls and tool calls,
job metrics, one trace across processes, and nothing of it without the extra.

The SDK's in-memory exporter and metric reader are set as the global providers once
per test session (the API refuses to replace a global provider); each test clears
the exporter and uses task names of its own, so metric points do not mix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import wiz_jupyter as wiz
from tests.agents.conftest import LITELLM_NOISE
from wiz_jupyter import telemetry
from wiz_jupyter.agents import ScriptedModel, ToolCall

pytestmark = LITELLM_NOISE
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def otel():
    """The global providers, set once: (span exporter, metric reader)."""
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    assert trace.get_tracer_provider() is provider, "another test set the global provider"
    return exporter, reader


@pytest.fixture
def spans(otel):
    """The spans ended during the test: ``spans()`` reads them so far."""
    exporter = otel[0]
    exporter.clear()
    yield lambda: list(exporter.get_finished_spans())
    exporter.clear()


def job_spans(found, task):
    return [s for s in found if s.name == f"wiz.job {task}"]


def points(reader, name, **attrs):
    """The data points of metric ``name`` whose attributes include ``attrs``."""
    out = []
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    out += [
                        p
                        for p in m.data.data_points
                        if all(p.attributes.get(k) == v for k, v in attrs.items())
                    ]
    return out


async def test_a_job_attempt_is_a_span_with_the_jobs_attributes(ws, spans):
    @ws.task
    def greet(name: str) -> str:
        return f"hello {name}"

    job = ws.jobs.add("greet", {"name": "Ada"})
    await ws.run_until_idle(timeout=30)
    assert job.status == "completed"
    [span] = job_spans(spans(), "greet")
    assert dict(span.attributes) == {
        "wiz.job.id": job.id,
        "wiz.job.task": "greet",
        "wiz.job.attempt": 1,
        "wiz.job.status": "completed",
    }
    assert span.kind is SpanKind.CONSUMER and span.status.status_code is StatusCode.UNSET
    assert span.parent is None  # added under no span: a trace of its own
    # nothing was stored for it: only jobs added under a span carry a trace context
    assert ws.store.read("SELECT COUNT(*) FROM job_trace")[0][0] == 0


async def test_a_failing_job_has_an_error_span_and_retries_give_one_span_per_attempt(ws, spans):
    @ws.task(attempts=3)
    async def flaky() -> None:
        raise ValueError("boom")

    @ws.task(attempts=5)
    def hopeless(path: str) -> None:
        raise wiz.Unrecoverable(f"{path} is not a CSV file")

    a, b = ws.jobs.add("flaky"), ws.jobs.add("hopeless", {"path": "x.txt"})
    await ws.run_until_idle(timeout=30)
    assert (a.status, b.status, b.fail_reason) == ("failed", "failed", "unrecoverable")
    tries = sorted(job_spans(spans(), "flaky"), key=lambda s: s.attributes["wiz.job.attempt"])
    assert [(s.attributes["wiz.job.attempt"], s.attributes["wiz.job.status"]) for s in tries] == [
        (1, "retry"),
        (2, "retry"),
        (3, "failed"),
    ]
    assert {s.attributes["wiz.job.id"] for s in tries} == {a.id}
    for s in tries:
        assert s.status.status_code is StatusCode.ERROR
        assert s.status.description == "ValueError: boom"
        [event] = s.events
        assert event.name == "exception"
        assert event.attributes["exception.type"] == "ValueError"
    # Unrecoverable: one attempt, failed at once, whatever attempts were left
    [span] = job_spans(spans(), "hopeless")
    assert (span.attributes["wiz.job.attempt"], span.attributes["wiz.job.status"]) == (1, "failed")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "Unrecoverable"
    assert "x.txt is not a CSV file" in span.events[0].attributes["exception.message"]


async def test_a_timed_out_attempt_is_an_error_span(ws, spans):
    import asyncio

    @ws.task(timeout=0.2)
    async def sleepy() -> None:
        await asyncio.sleep(30)

    job = ws.jobs.add("sleepy")
    await ws.run_until_idle(timeout=30)
    assert job.status == "failed"
    [span] = job_spans(spans(), "sleepy")
    assert span.attributes["wiz.job.status"] == "failed"
    assert span.status.description == "TimeoutError: timed out after 0.2 s"


async def test_the_job_span_is_a_child_of_the_span_that_added_it(ws, spans):
    tracer = trace.get_tracer("notebook")

    @ws.task(attempts=2)
    def step(n: int, job) -> int:
        if n == 1 and job.attempt == 1:
            raise RuntimeError("first try fails")
        if n == 0:  # a job added by a job: a child of the adding job's span
            ws.jobs.add("step", {"n": 2})
        return n

    with tracer.start_as_current_span("cell") as cell:
        ws.jobs.add("step", {"n": 0})
        ws.jobs.add_bulk([("step", {"n": 1})])
    plain = ws.jobs.add("step", {"n": 3})  # outside the span
    await ws.run_until_idle(timeout=30)
    found = job_spans(spans(), "step")
    by_n = {}
    for s in found:
        job = ws.jobs.get(s.attributes["wiz.job.id"])
        by_n.setdefault(job.data["n"], []).append(s)
    cell_ctx = cell.get_span_context()
    for s in by_n[0] + by_n[1]:  # both attempts of n=1: siblings under the cell
        assert s.context.trace_id == cell_ctx.trace_id
        assert s.parent.span_id == cell_ctx.span_id
    assert len(by_n[1]) == 2
    [first] = by_n[0]
    [grandchild] = by_n[2]
    assert grandchild.context.trace_id == cell_ctx.trace_id
    assert grandchild.parent.span_id == first.context.span_id
    [other] = by_n[3]
    assert other.parent is None and other.context.trace_id != cell_ctx.trace_id
    assert plain.status == "completed"


async def test_the_trace_context_goes_when_retention_removes_the_job(ws, spans):
    @ws.task
    def brief() -> int:
        return 1

    with trace.get_tracer("notebook").start_as_current_span("cell"):
        done = ws.jobs.add("brief", remove_on_complete=True)
        kept = ws.jobs.add("elsewhere")  # no handler here: it waits, and stays
    rows = ws.store.read("SELECT job_id, traceparent FROM job_trace ORDER BY job_id")
    assert [r[0] for r in rows] == [done.id, kept.id]
    assert rows[0][1].startswith("00-") and len(rows[0][1]) == 55
    await ws.run_until_idle(timeout=30)
    ws.gc()  # (or the runtime's own pass already did)
    with pytest.raises(wiz.JobNotFound):
        ws.jobs.get(done.id)
    assert [r[0] for r in ws.store.read("SELECT job_id FROM job_trace")] == [kept.id]


TASKS_WITH_SDK = """
import json

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import wiz_jupyter as wiz


class FileExporter(SpanExporter):
    \"\"\"One JSON line per span, written when it ends.\"\"\"

    def export(self, spans):
        with open({out!r}, "a") as f:
            for s in spans:
                c, p = s.get_span_context(), s.parent
                f.write(json.dumps({{
                    "name": s.name, "trace_id": f"{{c.trace_id:032x}}",
                    "parent": p and f"{{p.span_id:016x}}", "remote": bool(p and p.is_remote),
                    "attributes": dict(s.attributes), "pid": __import__("os").getpid(),
                }}) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
trace.set_tracer_provider(provider)


@wiz.workspace().task
def report(day: str) -> str:
    return f"report for {{day}}"
"""


def test_a_job_added_under_a_span_and_run_by_wiz_worker_is_one_trace(db_path, tmp_path, otel):
    out = tmp_path / "spans.jsonl"
    tasks = tmp_path / "tasks.py"
    tasks.write_text(TASKS_WITH_SDK.format(out=str(out)))
    ws = wiz.Workspace(db_path)
    with trace.get_tracer("notebook").start_as_current_span("cell") as cell:
        job = ws.jobs.add("report", {"day": "2026-12-05"})
    env = {**os.environ, "PYTHONPATH": ROOT}
    worker = subprocess.Popen(
        [sys.executable, "-m", "wiz_jupyter", "worker", "--db", str(db_path),
         "--tasks", str(tasks), "--grace", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while job.status != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.status == "completed", worker.stderr.read() if worker.poll() else job.status
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
        ws.close()
    [span] = [json.loads(line) for line in out.read_text().splitlines()]
    ctx = cell.get_span_context()
    assert span["name"] == "wiz.job report" and span["pid"] == worker.pid != os.getpid()
    assert span["trace_id"] == f"{ctx.trace_id:032x}"
    assert span["parent"] == f"{ctx.span_id:016x}" and span["remote"]
    assert span["attributes"]["wiz.job.id"] == job.id
    assert span["attributes"]["wiz.job.status"] == "completed"


async def test_model_and_tool_calls_are_spans_with_the_genai_conventions(ws, spans):
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: the first number
            b: the second number
        """
        return a + b

    model = ScriptedModel([ToolCall("add", {"a": 20, "b": 22}), ToolCall("nope", {}), "42"])
    agent = ws.agent("adder", model=model, tools=[add])
    assert await agent.ask("What is 20 + 22?", timeout=20) == "42"
    found = spans()
    [job] = [s for s in found if s.name.startswith("wiz.job ")]
    chats = [s for s in found if s.name == f"chat {model.name}"]
    assert len(chats) == 3
    rows = ws.llm.history()
    assert len(rows) == 3
    for span, row in zip(sorted(chats, key=lambda s: s.start_time), rows):
        a = span.attributes
        assert span.kind is SpanKind.CLIENT
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == model.name
        assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "wiz"
        assert a["gen_ai.usage.input_tokens"] == row["tokens_in"] > 0
        assert a["gen_ai.usage.output_tokens"] == row["tokens_out"] > 0
        assert a["wiz.job.id"] == job.attributes["wiz.job.id"]
        assert span.parent.span_id == job.context.span_id  # inside the job's span
        assert span.end_time - span.start_time == pytest.approx(row["latency"] * 1e9, rel=0.01)
    tools = [s for s in found if s.name.startswith("execute_tool ")]
    assert [s.name for s in tools] == ["execute_tool add", "execute_tool nope"]
    good, bad = tools
    assert good.attributes["gen_ai.tool.name"] == "add"
    assert good.attributes["gen_ai.operation.name"] == "execute_tool"
    assert good.status.status_code is StatusCode.UNSET
    assert good.parent.span_id == job.context.span_id
    assert bad.status.status_code is StatusCode.ERROR and "no tool 'nope'" in bad.status.description


async def test_a_failed_model_call_is_an_error_span(ws, spans):
    llm = ws.llm
    llm.retries = 0
    model = ScriptedModel([wiz.LLMError("the provider is down", model="x", status=400)])
    with pytest.raises(wiz.LLMError):
        await llm.complete("hi", model=model)
    [span] = [s for s in spans() if s.name == f"chat {model.name}"]
    assert span.status.status_code is StatusCode.ERROR
    assert "the provider is down" in span.status.description
    assert span.attributes["error.type"] == "_OTHER"


async def test_metrics_count_attempts_by_status_and_time_waits_and_runs(ws, otel):
    reader = otel[1]

    @ws.task(attempts=2)
    def metered(ok: bool) -> None:
        if not ok:
            raise ValueError("no")

    ws.jobs.add_bulk([("metered", {"ok": True})] * 3 + [("metered", {"ok": False})])
    await ws.run_until_idle(timeout=30)
    counts = {
        p.attributes["wiz.job.status"]: p.value
        for p in points(reader, "wiz.jobs", **{"wiz.job.task": "metered"})
    }
    assert counts == {"completed": 3, "retry": 1, "failed": 1}
    [wait] = points(reader, "wiz.job.wait_time", **{"wiz.job.task": "metered"})
    assert wait.count == 4 and 0 <= wait.min <= wait.max < 30  # first attempts only
    runs = points(reader, "wiz.job.run_time", **{"wiz.job.task": "metered"})
    assert sum(p.count for p in runs) == 5 and all(p.min >= 0 for p in runs)


BLOCKED = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # `import opentelemetry...` raises ImportError

import wiz_jupyter as wiz
from wiz_jupyter import telemetry
from wiz_jupyter.agents import ScriptedModel, ToolCall


async def main():
    ws = wiz.Workspace({db!r})

    @ws.task
    def double(n: int) -> int:
        return 2 * n

    def add(a: int, b: int) -> int:
        \"\"\"Add.\"\"\"
        return a + b

    job = ws.jobs.add("double", {{"n": 21}})
    agent = ws.agent("a", model=ScriptedModel([ToolCall("add", {{"a": 1, "b": 2}}), "3"]), tools=[add])
    answer = await agent.ask("1 + 2?", timeout=30)
    await ws.run_until_idle(timeout=30)
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m])
    print(job.result, answer, telemetry.enabled(), loaded)
    await ws.stop()
    ws.close()


asyncio.run(main())
"""


def test_without_opentelemetry_wiz_works_and_imports_none_of_it(db_path, otel):
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED.format(db=str(db_path))],
        env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "42 3 False []"
    assert telemetry.enabled()  # and here, with the extra and an SDK, it is on


UNCONFIGURED = """
import asyncio

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import wiz_jupyter as wiz
from wiz_jupyter import telemetry


async def main():
    ws = wiz.Workspace({db!r})

    @ws.task
    def one() -> int:
        return 1

    ws.jobs.add("one")
    await ws.run_until_idle(timeout=30)
    before = telemetry.enabled()
    exporter = InMemorySpanExporter()  # the notebook configures an SDK later on
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    ws.jobs.add("one")
    await ws.run_until_idle(timeout=30)
    ids = [s.attributes["wiz.job.id"] for s in exporter.get_finished_spans()]
    print(before, telemetry.enabled(), ids)
    ws.close()


asyncio.run(main())
"""


def test_with_the_api_but_no_sdk_nothing_is_done_until_one_is_configured(db_path):
    out = subprocess.run(
        [sys.executable, "-c", UNCONFIGURED.format(db=str(db_path))],
        env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "False True [2]"
