"""OpenTelemetry traces and metrics, when the ``otel`` extra is installed.

``pip install 'wiz_jupyter[otel]'`` brings the OpenTelemetry API; wiz_jupyter then
reports to the API's *global* tracer and meter providers, which are no-ops until the
application configures an SDK (``opentelemetry-sdk``, ``opentelemetry-instrument``,
Logfire, ...). Without the extra nothing of OpenTelemetry is imported: the first
hook tries the import once, and from then on every hook is a check of one global.

What is reported:

- a span per job attempt, ``wiz.job <task>`` (kind CONSUMER), with ``wiz.job.id``,
  ``wiz.job.task``, ``wiz.job.attempt`` and ``wiz.job.status`` (what became of the
  attempt: ``completed``, ``retry``, ``failed`` or ``cancelled``); a failed attempt
  has an error status and the exception recorded. It is a *child* of the span that
  was current when the job was added: the W3C trace context is stored with the job
  (table ``job_trace``), so a job added in a notebook and run by ``wiz worker`` in
  another process is one trace, whose waterfall shows the cell and the jobs it made
  (a link would start a new trace per attempt, which trace viewers show apart). A job
  added under no span starts a trace of its own.
- a span per model call (every attempt, replay hits included), ``chat <model>``
  (kind CLIENT), with the GenAI semantic conventions: ``gen_ai.operation.name``,
  ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
  ``gen_ai.provider.name`` (and the older ``gen_ai.system``) when the model names its
  provider (``openai/gpt-4o``).
- a span per tool call, ``execute_tool <name>``, with ``gen_ai.tool.name``.
- metrics: the counter ``wiz.jobs`` (attempts ended, by ``wiz.job.status`` and
  ``wiz.job.task``), and the histograms ``wiz.job.wait_time`` (seconds from a job
  being added, or its ``run_at`` when later, to the start of its first attempt) and
  ``wiz.job.run_time`` (seconds per attempt).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

#: the instrumentation scope's name, for tracers and meters
SCOPE = "wiz_jupyter"

#: the loaded API (a namespace of what the hooks use), or False when opentelemetry
#: cannot be imported; None until the first hook asks
_api: Any = None
_loading = threading.Lock()


def _load() -> Any:
    global _api
    with _loading:  # once, even when a handler thread and the loop ask at the same moment
        if _api is None:
            _api = _import()
    return _api


def _import() -> Any:
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.context import Context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return False
    version = getattr(sys.modules.get("wiz_jupyter"), "__version__", None)
    meter = metrics.get_meter(SCOPE, version)
    return SimpleNamespace(
        trace=trace,
        metrics=metrics,
        Context=Context,
        # the API's proxies follow a provider set later (set_tracer_provider after import)
        tracer=trace.get_tracer(SCOPE, version),
        propagator=TraceContextTextMapPropagator(),
        jobs=meter.create_counter("wiz.jobs", "{attempt}", "Job attempts ended, by status"),
        wait_time=meter.create_histogram(
            "wiz.job.wait_time", "s", "From a job's enqueue (or run_at) to its first start"
        ),
        run_time=meter.create_histogram("wiz.job.run_time", "s", "How long an attempt ran"),
        unset=_unset_providers(trace, metrics),
        configured=False,
        globals=_provider_globals(trace),
    )


def _unset_providers(trace: Any, metrics: Any) -> tuple[type, ...]:
    """The API's stand-ins for providers nobody has set (its proxies, and the no-ops)."""
    kinds: list[type] = [trace.ProxyTracerProvider, trace.NoOpTracerProvider]
    kinds.append(metrics.NoOpMeterProvider)
    try:  # private in the API, so looked up with care: without it, a bit more work is done
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        kinds.append(_ProxyMeterProvider)
    except ImportError:
        pass
    return tuple(kinds)


def _provider_globals(trace: Any) -> tuple[Any, Any] | None:
    """The modules holding the API's global providers, when they can be read directly:
    ``get_tracer_provider()`` looks up an environment variable on every call while no
    provider is set, which at one claim per job was a measurable share of the queue's
    time. None (ask the public functions every time) when the API keeps them elsewhere,
    or when the environment names a provider (the API then loads it on first ask)."""
    import os

    try:
        from opentelemetry.metrics import _internal as metrics_internal
    except ImportError:
        return None
    if "OTEL_PYTHON_TRACER_PROVIDER" in os.environ or "OTEL_PYTHON_METER_PROVIDER" in os.environ:
        return None
    if not (hasattr(trace, "_TRACER_PROVIDER") and hasattr(metrics_internal, "_METER_PROVIDER")):
        return None
    return trace, metrics_internal


def enabled() -> bool:
    """Whether spans and metrics go anywhere: the OpenTelemetry API is importable (tried
    once) and a tracer or meter provider has been set (an SDK configured). Until then
    the job hooks are skipped, so the extra costs nothing where it is not used."""
    api = _api if _api is not None else _load()
    if api is False:
        return False
    if not api.configured:  # once set, a global provider stays: no need to look again
        g = api.globals
        if g is not None and g[0]._TRACER_PROVIDER is None and g[1]._METER_PROVIDER is None:
            return False  # nothing set yet: two attribute reads
        api.configured = not (
            isinstance(api.trace.get_tracer_provider(), api.unset)
            and isinstance(api.metrics.get_meter_provider(), api.unset)
        )
    return api.configured


def trace_context() -> tuple[str, str | None] | None:
    """``(traceparent, tracestate)`` of the current span in W3C form, stored with a job
    when it is added; None without the extra, without a configured provider (no span can
    be recording then: nothing would ever show the trace) or without a span."""
    if not enabled():
        return None
    api = _api
    sc = api.trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return None
    state = sc.trace_state.to_header() or None
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}", state


async def job_attempt(run: Awaitable[tuple[str, BaseException | None]],
                      row: dict[str, Any], origin: tuple[Any, Any, Any] | None) -> None:  # fmt: skip
    """Run one attempt (``run`` returns what became of it and its exception) inside its
    span, and count it. ``origin``: the job's ``(traceparent, tracestate, ready_at)``."""
    api = _api
    traceparent, tracestate, ready_at = origin or (None, None, None)
    carrier = {"traceparent": traceparent, "tracestate": tracestate or ""}
    # a stored parent, or a trace of its own: never the context the runtime started in
    parent = api.propagator.extract(carrier) if traceparent else api.Context()
    task, attempt = row["task"], row["attempts_made"]
    if attempt == 1 and ready_at is not None:
        api.wait_time.record(max(0.0, time.time() - ready_at), {"wiz.job.task": task})
    span = api.tracer.start_span(
        f"wiz.job {task}",
        context=parent,
        kind=api.trace.SpanKind.CONSUMER,
        attributes={"wiz.job.id": row["id"], "wiz.job.task": task, "wiz.job.attempt": attempt},
    )
    status, error, t0 = "cancelled", None, time.monotonic()
    try:
        with api.trace.use_span(span, record_exception=False, set_status_on_exception=False):
            status, error = await run
    finally:
        span.set_attribute("wiz.job.status", status)
        if error is not None and status in ("failed", "retry"):
            span.record_exception(error)
            span.set_status(api.trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
            span.set_attribute("error.type", type(error).__qualname__)
        span.end()
        labels = {"wiz.job.status": status, "wiz.job.task": task}
        api.jobs.add(1, labels)
        api.run_time.record(time.monotonic() - t0, labels)


def llm_call(model: str, *, job_id: int | None = None, **fields: Any) -> None:
    """A span for one model call that just ended (an attempt, or a replay hit), with the
    GenAI semantic conventions; ``fields`` are those of its ``llm_calls`` row."""
    if not enabled():
        return
    api = _api
    end = time.time_ns()
    provider = model.split("/", 1)[0] if "/" in model else None
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": fields.get("tokens_in", 0),
        "gen_ai.usage.output_tokens": fields.get("tokens_out", 0),
        "wiz.llm.attempt": fields.get("attempt", 1),
        "wiz.llm.cache_hit": bool(fields.get("cache_hit", False)),
        "wiz.llm.stream": bool(fields.get("stream", False)),
        "wiz.llm.cost": float(fields.get("cost", 0.0)),
    }
    if provider:
        attrs["gen_ai.provider.name"] = attrs["gen_ai.system"] = provider
    if job_id is not None:
        attrs["wiz.job.id"] = job_id
    span = api.tracer.start_span(
        f"chat {model}",
        kind=api.trace.SpanKind.CLIENT,
        attributes=attrs,
        start_time=end - int(fields.get("latency", 0.0) * 1e9),  # the call took this long
    )
    error = fields.get("error")
    if error:
        span.set_status(api.trace.StatusCode.ERROR, error)
        span.set_attribute("error.type", "_OTHER")
    span.end(end_time=end)


class _NoTool:
    """The tool-call hook without the extra: nothing, at the cost of a method call."""

    def __enter__(self) -> _NoTool:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def done(self, ok: bool, text: str) -> None:
        pass


_NO_TOOL = _NoTool()


class _ToolSpan(_NoTool):
    def __init__(self, api: Any, name: str, call_id: str | None):
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        if call_id:
            attrs["gen_ai.tool.call.id"] = call_id
        self.span = api.tracer.start_span(f"execute_tool {name}", attributes=attrs)
        self._api = api
        self._using = api.trace.use_span(self.span, end_on_exit=True)

    def __enter__(self) -> _ToolSpan:
        self._using.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._using.__exit__(*exc)

    def done(self, ok: bool, text: str) -> None:
        """The tool's outcome: a tool that failed (its error went to the model) is an error."""
        if not ok:
            self.span.set_status(self._api.trace.StatusCode.ERROR, text[:200])
            self.span.set_attribute("error.type", "_OTHER")


def tool_call(name: str, call_id: str | None = None) -> _NoTool:
    """``with tool_call(name, id) as t: ...; t.done(ok, text)``: a span around a tool call,
    current while it runs (what the tool does nests in it)."""
    return _ToolSpan(_api, name, call_id) if enabled() else _NO_TOOL
