"""The exceptions of wiz_jupyter: one base class, a few specific kinds.

Every message is one line that says what went wrong and what to do next.
"""

from __future__ import annotations


class WizError(Exception):
    """Base class of every error wiz_jupyter raises on purpose."""


class StoreError(WizError):
    """The workspace database cannot be used (corrupt, foreign, or too new)."""


class WorkspaceBusy(StoreError):
    """Another process holds the workspace database's write lock for longer than this call
    may wait. Nothing was written; try again, or find what holds the file."""


class WorkspaceFull(StoreError):
    """The disk holding the workspace database is full: nothing more can be written."""


class JobNotFound(WizError, KeyError):
    """No job with that id in this workspace."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "job not found"


class InvalidJob(WizError, ValueError):
    """Arguments to ``jobs.add`` (or a job action) that cannot be accepted."""


class InvalidRate(InvalidJob):
    """A rate limit that cannot be used: ``rate=(0, 1)``, a negative or non-number count or
    window. A rate is ``(count >= 1, seconds > 0)``: at most ``count`` in any ``seconds``."""


class NotAwaitingInput(InvalidJob):
    """``approve``, ``deny`` or ``answer`` of a job that is not awaiting input (already
    answered, perhaps by another process), or whose request is of the other kind."""


class AwaitInput(Exception):
    """Raised by a handler to park its job in ``awaiting_input`` until a person replies
    (``ws.jobs.approve`` / ``deny`` / ``answer``); the job then runs again and finds the
    reply in ``job.input``. ``request`` is JSON: what is asked, shown to the person.
    The agent runtime raises it for tools that need approval and for ``ask_user``."""

    def __init__(self, request: dict):
        super().__init__(request.get("kind", "input"))
        self.request = request


class JobFailed(WizError):
    """Raised by ``await job.wait()`` when the job failed or was cancelled."""

    def __init__(self, job_id: int, status: str, error: str | None):
        self.job_id = job_id
        self.status = status
        self.error = error
        super().__init__(f"job {job_id} {status}: {error or 'no error recorded'}")


class JobCancelled(Exception):
    """Raised inside a sync handler's ``job.check_cancelled()`` once the job is cancelled."""


class Unrecoverable(WizError):
    """Raise it in a handler to fail the job at once, whatever attempts it has left:
    a bad input that no retry will fix. The job's ``fail_reason`` is ``"unrecoverable"``.

    ::

        @ws.task(attempts=5)
        def parse(path: str):
            if not path.endswith(".csv"):
                raise wiz.Unrecoverable(f"{path} is not a CSV file")
    """


class MissingExtra(WizError, ImportError):
    """An optional part of wiz_jupyter was asked for, and its extra is not installed."""


class InvalidSchedule(WizError, ValueError):
    """Arguments to ``schedules.add`` that cannot be accepted (a malformed cron, say)."""


class ScheduleNotFound(WizError, KeyError):
    """No schedule with that id or name in this workspace."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "schedule not found"


class WebhookRejected(WizError):
    """A webhook call whose signature does not match the schedule's secret."""


class InvalidNotification(WizError, ValueError):
    """Arguments to ``ws.notifications.add_webhook`` / ``add_email`` (or ``remove``) that
    cannot be accepted: a URL that is not http(s), an SMTP address without a port, a
    status a job does not end with."""


class DeliveryFailed(WizError):
    """A notification could not be delivered (the SMTP server refused, the webhook answered
    an error, nothing listens there); its delivery job retries with its backoff."""


class LLMError(WizError):
    """A model call failed. The message names the model and says what to do next.

    ``model`` is the model's name, ``status`` the provider's HTTP status when
    there was one.
    """

    def __init__(self, message: str, *, model: str | None = None, status: int | None = None):
        super().__init__(message)
        self.model = model
        self.status = status


class ModelNotFound(LLMError):
    """The model name is unknown to litellm, to the provider, or to the offline models."""


class LLMAuthError(LLMError):
    """The provider refused the API key (401/403), or no key is set for it."""


class ReplayMiss(LLMError):
    """Replay mode, and no recorded response matches this request."""


class InvalidOutput(LLMError):
    """A structured reply did not validate against its pydantic model, even after a repair."""


class NotebookFailed(WizError):
    """A notebook job's cell raised. The message names the cell and the error; ``output``
    is the executed copy (kept, with the error in it)."""

    def __init__(self, message: str, *, cell: int | None = None, output: str | None = None):
        self.cell = cell
        self.output = output
        super().__init__(message)


class BudgetExceeded(Unrecoverable):
    """A model call would pass (or has passed) a job's, an agent's or the workspace's
    budget: the job fails at once, without retries (``agents/budgets.py``)."""


class InvalidEndpoint(WizError, ValueError):
    """An ``api_base`` that is not an http(s) URL with a host."""


class InvalidPersona(WizError, ValueError):
    """A persona file that cannot be used; the message names the file and the field."""


class EmbeddingsError(WizError):
    """An embedding model for agent memory cannot be loaded or called (or none is chosen
    for a search that needs one)."""


class AgentNotFound(WizError, KeyError):
    """No agent of that name in this workspace."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "agent not found"


class AgentFailed(WizError):
    """An agent could not finish its job (steps exhausted, validation failed)."""


class ToolError(WizError):
    """A tool refused its input; the message goes back to the model."""
