"""Spending caps on model calls: per job, per agent per period, per workspace per period.

- a job: ``max_cost=`` / ``max_tokens=`` on ``ask``, ``assign`` and ``submit`` (kept in
  the job's data);
- an agent: ``ws.agents.set_budget(name, cost=, tokens=, per="day")`` or
  ``ws.agent(..., budget={"cost": 1.0, "tokens": 200_000, "per": "day"})``;
- the workspace: ``ws.llm.set_budget(cost=20.0, per="month")``.

Agent and workspace caps are kept in the database's settings, so every process on the
file applies them. Spend is read from ``llm_calls`` (cost from litellm's price table,
tokens in and out), since the start of the period in local time (``per``: ``"hour"``,
``"day"``, ``"week"`` (from Monday), ``"month"``, or ``None``: all time).

Before each call the LLM layer adds what the request will cost at least (its prompt's
tokens, priced by litellm, and the ``max_tokens`` it asks for, if any) to what was spent:
a call that would pass a cap is never made, and the job fails with
:class:`~wiz_jupyter.errors.BudgetExceeded` (an ``Unrecoverable``: no retry). After each
call, spend past a cap fails the job too. A removed job's calls (retention) no longer
count towards its agent's or the workspace's period.
"""

from __future__ import annotations

import json
import math
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BudgetExceeded, InvalidJob
from ..jobs.models import current_job

if TYPE_CHECKING:
    from .llm_store import LLMStore

PERIODS = ("hour", "day", "week", "month", None)
WORKSPACE_KEY = "llm.budget"
AGENT_KEY = "llm.budget.agent."


@dataclass(frozen=True)
class Cap:
    """One budget that applies to a call: whose, its limits, and since when it counts."""

    who: str  # "job 12", "agent analyst", "the workspace"
    cost: float | None
    tokens: int | None
    per: str | None
    where: str  # SQL over llm_calls (aliased c) selecting this budget's calls
    params: tuple[Any, ...]

    def label(self) -> str:
        return f" per {self.per}" if self.per else ""


def check_budget(cost: Any = None, tokens: Any = None, per: Any = None) -> dict[str, Any] | None:
    """A budget as stored, or None when it has no limit; a bad one is one line."""
    if per not in PERIODS:
        raise InvalidJob(f"per must be one of hour, day, week, month or None, not {per!r}")
    for name, value in (("cost", cost), ("tokens", tokens)):
        ok = value is None or (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )
        if not ok:
            raise InvalidJob(f"a budget's {name} must be a number > 0, not {value!r}")
    if cost is None and tokens is None:
        return None
    return {"cost": cost, "tokens": tokens, "per": per}


def period_start(per: str | None, now: float | None = None) -> float:
    """The epoch seconds at which the current ``per`` began, in local time."""
    if per is None:
        return 0.0
    t = time.localtime(now if now is not None else time.time())
    if per == "hour":
        start = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, 0, 0)
    elif per == "month":
        start = (t.tm_year, t.tm_mon, 1, 0, 0, 0)
    else:
        back = t.tm_wday if per == "week" else 0
        start = (t.tm_year, t.tm_mon, t.tm_mday - back, 0, 0, 0)
    return time.mktime((*start, 0, 0, -1))


def money(value: float) -> str:
    """``$0.51``; an amount under a cent with two significant digits (``$0.000050``)."""
    if value <= 0:
        return "$0"
    if value >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.{1 - math.floor(math.log10(value))}f}"


class Budgets:
    """The caps of the workspace (see the module doc), read and enforced for each call."""

    def __init__(self, db: LLMStore):
        self.db = db
        self._cache: tuple[Any, dict[str, Any]] | None = None
        self._jobs: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()

    # -- setting ---------------------------------------------------------------------------

    def set_workspace(self, cost: Any = None, tokens: Any = None, per: Any = "month") -> None:
        self.db.set_setting(WORKSPACE_KEY, check_budget(cost, tokens, per))

    def set_agent(self, name: str, budget: dict[str, Any] | None) -> None:
        if budget is not None and not isinstance(budget, dict):
            raise InvalidJob(
                f"an agent's budget is a dict like {{'cost': 1.0, 'per': 'day'}}, not {budget!r}"
            )
        unknown = set(budget or {}) - {"cost", "tokens", "per"}
        if unknown:
            raise InvalidJob(f"unknown budget field(s): {', '.join(sorted(unknown))}")
        value = check_budget(**budget) if budget else None
        self.db.set_setting(AGENT_KEY + name, value)

    def _settings(self) -> dict[str, Any]:
        """Every stored budget by settings key, re-read when the file changed."""
        seen = self.db.settings_version()
        if self._cache is None or self._cache[0] != seen:
            rows = self.db.store.read(
                "SELECT key, value FROM settings WHERE key = ? OR key LIKE ?",
                (WORKSPACE_KEY, AGENT_KEY + "%"),
            )
            self._cache = (seen, {r[0]: json.loads(r[1]) for r in rows})
        return self._cache[1]

    # -- which caps, and what was spent -------------------------------------------------------

    def caps(self, job_id: int | None) -> list[Cap]:
        """The caps a call of ``job_id`` (or of no job) is under."""
        stored = self._settings()
        out: list[Cap] = []
        agent = None
        if job_id is not None:
            rows = self._job(job_id)
            if rows:
                max_cost, max_tokens, agent = rows[0]
                if max_cost is not None or max_tokens is not None:
                    out.append(Cap(f"job {job_id}", max_cost, max_tokens, None,
                                   "c.job_id = ?", (job_id,)))  # fmt: skip
        for key in (AGENT_KEY + agent if agent else None, WORKSPACE_KEY):
            if key in stored:
                out.append(_stored_cap(key, stored[key]))
        return out

    def _job(self, job_id: int) -> list[Any]:
        """The job's own caps and agent: read once per run of the job (an agent's every
        model call asks), then kept with the running job's context."""
        ctx = current_job.get()
        if ctx is not None and ctx.id == job_id and ctx in self._jobs:
            return self._jobs[ctx]
        rows = self.db.store.read(
            "SELECT json_extract(data, '$.max_cost'), json_extract(data, '$.max_tokens'), "
            "agent FROM jobs WHERE id = ?",
            (job_id,),
        )
        if ctx is not None and ctx.id == job_id:
            self._jobs[ctx] = [tuple(r) for r in rows]
        return rows

    def spent(self, cap: Cap) -> tuple[float, int]:
        """(cost, tokens) of the calls ``cap`` counts."""
        row = self.db.store.read(
            "SELECT COALESCE(SUM(c.cost), 0.0), COALESCE(SUM(c.tokens_in + c.tokens_out), 0) "
            f"FROM llm_calls c WHERE {cap.where}",
            cap.params,
        )[0]
        return float(row[0]), int(row[1])

    # -- enforcing ------------------------------------------------------------------------------

    def check(self, caps: list[Cap], estimate: tuple[float, int]) -> None:
        """Raise if spend so far plus ``estimate`` (cost, tokens) would pass a cap."""
        for cap in caps:
            self._check(cap, estimate)

    def after(self, job_id: int | None) -> None:
        """Raise if spend, the last call included, has passed a cap."""
        for cap in self.caps(job_id):
            self._check(cap, (0.0, 0))

    def _check(self, cap: Cap, extra: tuple[float, int]) -> None:
        cost, tokens = self.spent(cap)
        if cap.cost is not None and cost + extra[0] > cap.cost:
            would = f" (the next call would add {money(extra[0])})" if extra[0] else ""
            raise BudgetExceeded(
                f"{cap.who} spent {money(cost)} of its {money(cap.cost)}{cap.label()}{would}"
            )
        if cap.tokens is not None and tokens + extra[1] > cap.tokens:
            would = f" (the next call would add {extra[1]:,})" if extra[1] else ""
            raise BudgetExceeded(
                f"{cap.who} used {tokens:,} of its {cap.tokens:,} tokens{cap.label()}{would}"
            )

    def report(self) -> list[dict[str, Any]]:
        """Spend against each agent and workspace budget (for ``%wiz status``)."""
        out = []
        for key, b in sorted(self._settings().items()):
            cap = _stored_cap(key, b)
            cost, tokens = self.spent(cap)
            out.append({"who": cap.who, "per": b["per"], "cost": cost, "max_cost": b["cost"],
                        "tokens": tokens, "max_tokens": b["tokens"]})  # fmt: skip
        return out


def _stored_cap(key: str, b: dict[str, Any]) -> Cap:
    """The cap of a stored agent or workspace budget, counting from its period's start."""
    since = period_start(b["per"])
    if key == WORKSPACE_KEY:
        return Cap("the workspace", b["cost"], b["tokens"], b["per"], "c.created_at >= ?", (since,))
    name = key[len(AGENT_KEY) :]
    return Cap(f"agent {name}", b["cost"], b["tokens"], b["per"],
               "c.created_at >= ? AND c.job_id IN (SELECT id FROM jobs WHERE agent = ?)",
               (since, name))  # fmt: skip


def budget_line(b: dict[str, Any]) -> str:
    """``budget of agent analyst per day: $0.12 of $1.00, 3,200 of 200,000 tokens``."""
    parts = []
    if b["max_cost"] is not None:
        parts.append(f"{money(b['cost'])} of {money(b['max_cost'])}")
    if b["max_tokens"] is not None:
        parts.append(f"{b['tokens']:,} of {b['max_tokens']:,} tokens")
    per = f" per {b['per']}" if b["per"] else ""
    return f"budget of {b['who']}{per}: {', '.join(parts)}"
