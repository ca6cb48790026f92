"""What a job is added with, and what a task registers: the options, checked once.

- :class:`JobOptions`: the keywords of ``ws.jobs.add`` (and of ``add_bulk`` items,
  ``add_notebook`` and a schedule's job template), as a ``TypedDict`` so type
  checkers see them on ``add(task, data, **options: Unpack[JobOptions])``.
- :class:`JobSpec`: a job that passed every check, ready for ``Queue.insert_in``.
  :func:`job_spec` makes one; nothing else validates job options.
- :class:`TaskSpec`: a handler registered with ``@ws.task`` (or by the agents
  layer) and its defaults for new jobs; it checks its own options, so every way of
  registering a task (``Queue.register``) gets the same checks.
"""

from __future__ import annotations

import dataclasses
import inspect
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypedDict

from ..errors import InvalidJob
from . import rates, retention
from .models import TRIGGER_DATA, Job, dumps, epoch

Backoff = dict[str, Any]
EXECUTORS = ("auto", "loop", "thread", "dask")


class JobOptions(TypedDict, total=False):
    """The options of a new job (see ``Queue.add`` for what each does)."""

    priority: int
    delay: float
    run_at: Any  # a datetime, an ISO date-time or a Unix time
    attempts: int
    backoff: Any  # ("fixed", s), ("exponential", base_s[, {"jitter":, "max":}]) or a dict
    timeout: float
    depends_on: Iterable[Job | int]
    parent: Job | int
    key: str
    agent: str
    on_dep_failure: str  # "fail" | "ignore"
    fail_parent: bool
    notify: bool
    remove_on_complete: Any  # retention: True, a count to keep, or {"age": s, "count": n}
    remove_on_fail: Any
    group: str  # fairness: claims rotate between groups; @ws.task(group_concurrency=n)


JOB_OPTIONS = frozenset(JobOptions.__optional_keys__)


class JobSpec(NamedTuple):
    """A validated job, as its row will hold it (JSON already encoded)."""

    task: str
    data: str
    priority: int = 0
    run_at: float | None = None
    attempts: int = 1
    backoff: str | None = None
    timeout: float | None = None
    depends_on: tuple[int, ...] = ()
    parent: int | None = None
    key: str | None = None
    agent: str | None = None
    on_dep_failure: str = "fail"
    fail_parent: bool = True
    notify: bool = False
    keep: str | None = None  # the retention policies, as JSON (jobs/retention.py)
    group: str | None = None  # its group (jobs/groups.py)

    def with_data(self, data: str) -> JobSpec:
        """The same job with other (encoded) data: a bulk add checks options once per task."""
        return self._replace(data=data)


def normalise_backoff(backoff: Any) -> Backoff | None:
    """``None``, ``("fixed", s)``, ``("exponential", base)``, an optional third item
    ``{"jitter": 0.0-1.0, "max": seconds}``, or a dict with ``type`` and ``delay``."""
    if backoff is None:
        return None
    if isinstance(backoff, (int, float)):
        backoff = ("fixed", backoff)
    if isinstance(backoff, dict):
        b = dict(backoff)
    elif isinstance(backoff, (tuple, list)) and len(backoff) in (2, 3):
        b = {"type": backoff[0], "delay": backoff[1], **(backoff[2] if len(backoff) == 3 else {})}
    else:
        raise InvalidJob(
            f"backoff must be None, ('fixed', seconds) or ('exponential', seconds), not {backoff!r}"
        )
    if b.get("type") not in ("fixed", "exponential"):
        raise InvalidJob(f"backoff type must be 'fixed' or 'exponential', not {b.get('type')!r}")
    try:
        b["delay"] = float(b["delay"])
        b["jitter"] = float(b.get("jitter", 0.5))
        b["max"] = float(b.get("max", 3600.0))
    except (KeyError, TypeError, ValueError):
        raise InvalidJob(f"backoff needs a number of seconds: {backoff!r}") from None
    if b["delay"] < 0 or not 0 <= b["jitter"] <= 1:
        raise InvalidJob("backoff delay must be >= 0 and jitter between 0 and 1")
    return b


def backoff_delay(
    b: Backoff | None, attempts_made: int, rng: random.Random = random._inst
) -> float:
    """Seconds before the next attempt after ``attempts_made`` failed ones.

    Jitter takes up to ``jitter`` of the delay off at random (0.5 by default), so
    jobs that failed together do not all retry in the same instant.
    """
    if not b:
        return 0.0
    delay = b["delay"] * (2 ** (attempts_made - 1) if b["type"] == "exponential" else 1)
    delay = min(delay, b["max"])
    return delay * (1 - b["jitter"] * rng.random())


def job_id(value: Any, what: str) -> int:
    """A job's id from a :class:`Job` or an int; ``what`` names the option in the error."""
    if isinstance(value, Job):
        return value.id
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidJob(f"{what} must be a job or a job id, not {value!r}")


def encode_data(data: Any) -> str:
    """A job's data as the JSON its row keeps; a dict, as handlers take it as keywords."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidJob(
            f"job data must be a dict (passed to the handler as keyword arguments), "
            f"not {type(data).__name__}"
        )
    try:
        return dumps(data)
    except (TypeError, ValueError) as e:
        raise InvalidJob(f"job data must be JSON-serialisable: {e}") from None


def job_spec(task: str, data: Any, options: JobOptions, defaults: TaskSpec | None) -> JobSpec:
    """Check a new job's task, data and options; ``defaults`` (the task's registration in
    this process, if any) fills ``attempts``, ``backoff`` and ``timeout`` not given."""
    unknown = options.keys() - JOB_OPTIONS
    if unknown:
        raise InvalidJob(f"unknown job option(s): {', '.join(sorted(unknown))}")
    if not isinstance(task, str) or not task:
        raise InvalidJob(f"task must be a non-empty name, not {task!r}")
    data_json = encode_data(data)
    get = options.get
    priority = get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidJob(f"priority must be an integer (higher runs sooner), not {priority!r}")
    attempts, backoff, timeout = get("attempts"), get("backoff"), get("timeout")
    if defaults is not None:
        attempts = defaults.attempts if attempts is None else attempts
        backoff = defaults.backoff if backoff is None else backoff
        timeout = defaults.timeout if timeout is None else timeout
    keep = retention.stamp(
        get("remove_on_complete", defaults and defaults.remove_on_complete),
        get("remove_on_fail", defaults and defaults.remove_on_fail),
    )
    attempts = 1 if attempts is None else attempts
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise InvalidJob(f"attempts must be an integer >= 1, not {attempts!r}")
    b = normalise_backoff(backoff)
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0
    ):
        raise InvalidJob(f"timeout must be a positive number of seconds, not {timeout!r}")
    on_dep_failure, key = get("on_dep_failure", "fail"), get("key")
    if on_dep_failure not in ("fail", "ignore"):
        raise InvalidJob(f"on_dep_failure must be 'fail' or 'ignore', not {on_dep_failure!r}")
    if key is not None and not isinstance(key, str):
        raise InvalidJob(f"key must be a string, not {key!r}")
    depends_on = get("depends_on", ())
    if isinstance(depends_on, (Job, int)):
        depends_on = [depends_on]
    parent, group = get("parent"), get("group")
    if group is not None and (not isinstance(group, str) or not group):
        raise InvalidJob(f"group must be a non-empty string (e.g. a user's name), not {group!r}")
    return JobSpec(
        task=task,
        data=data_json,
        priority=priority,
        run_at=_when(get("run_at"), get("delay", 0)),
        attempts=attempts,
        backoff=dumps(b) if b else None,
        timeout=float(timeout) if timeout is not None else None,
        depends_on=tuple(job_id(d, "depends_on") for d in depends_on),
        parent=None if parent is None else job_id(parent, "parent"),
        key=key,
        agent=get("agent"),
        on_dep_failure=on_dep_failure,
        fail_parent=bool(get("fail_parent", True)),
        notify=bool(get("notify", False)),
        keep=keep,
        group=group,
    )


def _when(run_at: Any, delay: Any) -> float | None:
    if run_at is not None:
        when = epoch(run_at)
        if when is None:
            raise InvalidJob(
                "run_at must be a datetime, an ISO date-time or a Unix time in seconds, "
                f"not {run_at!r:.60}"
            )
        return when
    if not delay:
        return None
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
        raise InvalidJob(f"delay must be a number of seconds >= 0, not {delay!r}")
    return time.time() + delay


@dataclasses.dataclass
class TaskSpec:
    """A handler registered with ``@ws.task`` (or by the agents layer), with its
    defaults for new jobs. Its options are checked here, so every registration gets
    the same checks; a bad one raises ``ValueError`` (or ``InvalidJob`` for a backoff,
    ``InvalidRate`` for a rate)."""

    name: str
    fn: Callable[..., Any]
    attempts: int | None = None
    backoff: Any = None
    timeout: float | None = None
    concurrency: int | None = None
    executor: str = "auto"
    resources: dict[str, float] | None = None  # Dask resource annotations, e.g. {"GPU": 1}
    remove_on_complete: Any = None  # retention defaults for its jobs (jobs/retention.py)
    remove_on_fail: Any = None
    #: at most this many starts in any window of seconds, ``(10, 1.0)``, counted across every
    #: process on the file (jobs/rates.py); a job over it waits, delayed, using no attempt
    rate: Any = None
    #: at most this many active jobs per group of this task, across processes (None: no limit)
    group_concurrency: int | None = None
    wants_job: bool = dataclasses.field(default=False, init=False)
    #: its parameter names; None: it takes **kwargs
    takes: frozenset[str] | None = dataclasses.field(default=None, init=False)

    def __post_init__(self) -> None:
        normalise_backoff(self.backoff)  # refuse a bad backoff now, not at add
        retention.stamp(self.remove_on_complete, self.remove_on_fail)  # and a bad policy
        self.rate = rates.parse(self.rate)  # InvalidRate, one line
        n = self.group_concurrency
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise InvalidJob(
                f"group_concurrency must be an integer >= 1 (active jobs per group), not {n!r}"
            )
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"executor must be 'auto', 'loop', 'thread' or 'dask', not {self.executor!r}"
            )
        if self.resources is not None:
            self.resources = _resources(self.resources, self.executor)
        if self.executor == "dask":
            from .executors import require_dask

            require_dask()
        if self.executor == "auto":
            self.executor = "loop" if inspect.iscoroutinefunction(self.fn) else "thread"
        try:
            params = inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            params = {}
        self.wants_job = "job" in params
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            self.takes = frozenset(params)

    def arguments(self, data: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments for a job's ``data``: what a trigger added (``payload``,
        ``changes``, ``upstream``) only if the handler takes it; it is always on
        ``job.trigger``. Everything else is passed as it is, so a typo still fails."""
        if self.takes is None or not any(k in data for k in TRIGGER_DATA):
            return data
        return {k: v for k, v in data.items() if k not in TRIGGER_DATA or k in self.takes}


def _resources(resources: Any, executor: str) -> dict[str, float]:
    if executor != "dask":
        raise ValueError('resources are Dask annotations: use them with executor="dask"')
    if not isinstance(resources, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
        for k, v in resources.items()
    ):
        raise ValueError(f'resources map names to amounts, e.g. {{"GPU": 1}}, not {resources!r}')
    return dict(resources)
