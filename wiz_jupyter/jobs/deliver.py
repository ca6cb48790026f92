"""The built-in ``wiz.notify`` task: send one notification (a webhook POST or a mail).

Its jobs are made by ``jobs/outbound.py`` when a job ends. The handler is a plain
function, so the runtime runs it in a thread: ``urllib`` and ``smtplib`` block, and the
event loop (the kernel's) never waits for a slow server. A failure raises a one-line
:class:`~wiz_jupyter.errors.DeliveryFailed` and the job retries with its backoff; a
webhook that answers a client error (4xx other than 408, 409, 425, 429) or a redirect
would answer the same again, so that fails at once (``wiz.Unrecoverable``).

A delivery is made at least once: a process killed after the server took it but
before the job was marked completed sends it again when the job is retried. The
``X-Wiz-Delivery`` header (a mail's too) is the same on every attempt, so a receiver
can drop the repeat (a wiz webhook schedule does).
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

from ..errors import DeliveryFailed, Unrecoverable
from .outbound import TASK, Target, stored_target
from .triggers import sign_webhook

if TYPE_CHECKING:
    from .outbound import Notifications

HTTP_TIMEOUT = 15.0
SMTP_TIMEOUT = 20.0
#: client errors a retry may fix (timeout, conflict, too early, too many requests)
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect of a POST with a GET without the body: a delivery
    that looks made and is not. A redirect is an error instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class Deliverer:
    """The handler of ``wiz.notify`` jobs (registered in every workspace)."""

    def __init__(self, notifications: Notifications, workspace: str):
        self.notifications = notifications
        self.workspace = workspace

    def __call__(self, target: int, event: int, ended: dict[str, Any]) -> dict[str, Any]:
        # ``ended``: the job that ended, as outbound.describe said (``job`` would be the
        # running delivery job's own context)
        job = ended
        t = stored_target(self.notifications.queue, target)
        if t is None:
            raise Unrecoverable(f"notification target {target} was removed; nothing sent")
        key = f"{TASK}:{t.id}:{job['id']}:{event}"
        if t.kind == "webhook":
            return post_webhook(t, self.body(job, key), key, f"job.{job['status']}")
        return send_mail(t, self.mail(t, job, key), self.notifications.redact)

    def body(self, job: dict[str, Any], key: str) -> bytes:
        """The webhook's JSON body: the same bytes on every attempt of a delivery."""
        return json.dumps(
            {
                "event": f"job.{job['status']}",
                "job": job,
                "workspace": self.workspace,
                "host": socket.gethostname(),
                "delivery": key,
            },
            sort_keys=True,
        ).encode()

    def mail(self, t: Target, job: dict[str, Any], key: str) -> EmailMessage:
        """A short plain-text mail: what ended, how, when, where; then the job as JSON."""
        host = socket.gethostname()
        msg = EmailMessage()
        first = (job.get("error") or "").splitlines()[0][:120] if job.get("error") else ""
        subject = f"[wiz] job {job['id']} ({job['task']}) {job['status']}" + (
            f": {first}" if first else ""
        )
        msg["Subject"] = " ".join(subject.split())  # a header is one line
        msg["From"] = t.config.get("sender") or f"wiz@{host}"
        msg["To"] = ", ".join(t.config["to"])
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid("wiz", domain=host)
        msg["X-Wiz-Delivery"] = key
        lines = [f"Job {job['id']} (task {job['task']}) {job['status']}.", ""]
        if job.get("error"):
            lines += [f"Error: {job['error']}", f"Reason: {job.get('reason')}"]
        lines.append(f"Attempts: {job.get('attempts_made')} of {job.get('attempts')}")
        for label, field in (("Added", "created_at"), ("Started", "started_at"),
                             ("Finished", "finished_at")):  # fmt: skip
            if job.get(field):
                lines.append(f"{label}: {job[field]}")
        if job.get("result_preview") is not None:
            lines.append(f"Result: {job['result_preview']}")
        lines += [f"Workspace: {self.workspace} on {host}", "", "-- ", "The job as JSON:"]
        lines.append(json.dumps(job, indent=2, sort_keys=True))
        msg.set_content("\n".join(lines) + "\n")
        return msg


def post_webhook(t: Target, body: bytes, key: str, event: str) -> dict[str, Any]:
    """POST ``body`` to the target's URL, signed with its secret; the answer's status."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "wiz_jupyter",
        "X-Wiz-Delivery": key,
        "X-Wiz-Event": event,
    }
    secret = t.config.get("secret")
    if secret:
        headers["X-Wiz-Signature"] = sign_webhook(secret, body)
    request = urllib.request.Request(t.config["url"], data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=HTTP_TIMEOUT) as answer:
            return {"target": t.id, "status": answer.status}
    except urllib.error.HTTPError as e:
        said = f"webhook {t.where} answered {e.code} {e.reason}"
        if 300 <= e.code < 500 and e.code not in _RETRYABLE_4XX:
            raise Unrecoverable(said) from None
        raise DeliveryFailed(said) from None
    except (urllib.error.URLError, OSError) as e:
        why = getattr(e, "reason", e)
        raise DeliveryFailed(f"webhook {t.where} unreachable: {_why(why)}") from None


def send_mail(t: Target, msg: EmailMessage, redact: Any) -> dict[str, Any]:
    """Send ``msg`` through the target's SMTP server (STARTTLS and login as it says)."""
    cfg = t.config
    server = cfg["smtp"]
    host, _, port = server.rpartition(":")
    password = None
    if cfg.get("password_env"):
        password = os.environ.get(cfg["password_env"])
        if password is None:
            raise DeliveryFailed(
                f"the SMTP password's environment variable {cfg['password_env']} is not set "
                "in this process (the kernel or wiz worker that sends the mail)"
            )
    try:
        with smtplib.SMTP(host.strip("[]"), int(port), timeout=SMTP_TIMEOUT) as smtp:
            if cfg.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if cfg.get("username"):
                smtp.login(cfg["username"], password or "")
            refused = smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as e:
        said = "; ".join(f"{a} ({_reply(c, m)})" for a, (c, m) in e.recipients.items())
        raise DeliveryFailed(f"SMTP server {server} refused every recipient: {said}") from None
    except smtplib.SMTPAuthenticationError as e:
        raise DeliveryFailed(
            f"SMTP server {server} refused the login of {cfg['username']!r}: "
            f"{_reply(e.smtp_code, e.smtp_error)}"
        ) from None
    except smtplib.SMTPResponseException as e:
        said = redact(_reply(e.smtp_code, e.smtp_error), [password])
        raise DeliveryFailed(f"SMTP server {server} refused the mail: {said}") from None
    except smtplib.SMTPException as e:  # no STARTTLS offered, a connection cut short
        raise DeliveryFailed(f"SMTP server {server} failed: {_why(e)}") from None
    except OSError as e:
        raise DeliveryFailed(f"SMTP server {server} unreachable: {_why(e)}") from None
    return {"target": t.id, "to": cfg["to"], "refused": sorted(refused)}


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"[:200]


def _why(error: Any) -> str:
    """An OS error's words without its errno prefix ('Connection refused')."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
