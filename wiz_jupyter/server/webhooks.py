"""``POST /wiz/hooks/NAME``: outside services fire webhook schedules.

Outside callers have no Jupyter token, so this endpoint is not behind
Jupyter's authentication (nor its XSRF check, which protects cookie sessions
this endpoint does not use). The schedule's secret is the authentication:
the body must carry ``X-Wiz-Signature: sha256=<hex>`` (GitHub's
``X-Hub-Signature-256`` is accepted too), the HMAC-SHA256 of the raw body
with the secret, as ``wiz.sign_webhook(secret, body)`` makes it.

Answers, checked in this order:

- 413 when the body is larger than ``WizServer.max_webhook_body`` (1 MiB; a body up to
  twice that is read to its end first, so that its sender sees the 413);
- 404 when no active webhook schedule has that name;
- 403 when a schedule called so has no secret and ``WizServer.allow_unsigned_webhooks``
  is False (the default: an unsigned hook could be fired by anyone who can reach
  the server), or when the signature is missing or wrong;
- 400 when the body is not JSON (nor a form with a JSON ``payload`` field, as
  GitHub sends with ``application/x-www-form-urlencoded``);
- 202 with ``{"jobs": [ids], "duplicate": false}``; a repeated delivery
  (same ``X-Wiz-Delivery`` or ``X-GitHub-Delivery``) creates nothing and says
  ``"duplicate": true``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..errors import ScheduleNotFound, StoreError, WebhookRejected
from ..jobs.triggers import verify_webhook
from .backend import Backend, to_json
from .changes import ChangeFeed

SIGNATURE_HEADERS = ("X-Wiz-Signature", "X-Hub-Signature-256")
DELIVERY_HEADERS = ("X-Wiz-Delivery", "X-GitHub-Delivery")


@web.stream_request_body
class WebhookHandler(JupyterHandler):
    """Receives one webhook call. The body is streamed and never held beyond the limit."""

    def initialize(
        self, backend: Backend, feed: ChangeFeed, max_body: int, allow_unsigned: bool
    ) -> None:
        self.backend = backend
        self.feed = feed
        self.max_body = max_body
        self.allow_unsigned = allow_unsigned
        self._chunks: list[bytes] = []
        self._size = 0

    # The signature authenticates the call; there is no cookie session to protect,
    # and senders (GitHub, a CI job, curl) set no Origin.
    def check_xsrf_cookie(self) -> None:
        return None

    def check_origin(self, origin_to_satisfy_tornado: str = "") -> bool:
        return True

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        declared = self.request.headers.get("Content-Length")
        if declared is not None:
            try:
                far_too_large = int(declared) > 2 * self.max_body
            except ValueError:
                raise web.HTTPError(400, "malformed Content-Length") from None
            if far_too_large:
                raise self._too_large()
        # up to twice the limit the excess is read and dropped, and the answer is a clean
        # 413 once the body is in: answered while it still writes, a sender (curl, httpx)
        # may see its connection reset instead of the 413. Far past the limit: 413 at once
        # (data_received), and a chunked sender that goes on is cut off by tornado.
        self.request.connection.set_max_body_size(max(16 * self.max_body, 16 * 2**20))

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self.max_body:
            self._chunks.append(chunk)
            return
        self._chunks.clear()
        if self._size > 2 * self.max_body and not self._finished:
            # far past the limit: answer 413 now; tornado drops the rest of the body and
            # closes the connection (otherwise its own cap would answer an empty 400)
            self.send_error(413, exc_info=(web.HTTPError, self._too_large(), None))

    @allow_unauthenticated
    async def post(self, name: str) -> None:
        if self._finished:  # answered 413 while the body was arriving
            return
        if self._size > self.max_body:
            raise self._too_large()
        body = b"".join(self._chunks)
        try:
            secrets = await self.backend.run(self.backend.webhook_secrets, name)
        except StoreError as e:
            raise web.HTTPError(503, str(e)) from None
        if not secrets:
            raise web.HTTPError(404, f"no active webhook schedule named {name!r}")
        if not all(secrets) and not self.allow_unsigned:
            raise web.HTTPError(
                403,
                f"webhook {name!r} has no secret, and this server refuses unsigned webhooks: "
                "add one (ws.schedules.add(..., webhook=name, secret=...)) or set "
                "c.WizServer.allow_unsigned_webhooks = True",
            )
        signature = _first_header(self, SIGNATURE_HEADERS)
        for secret in secrets:
            if secret and not verify_webhook(secret, body, signature):
                raise web.HTTPError(403, f"bad or missing signature for webhook {name!r}")
        payload = _payload(body, self.request.headers.get("Content-Type", ""))
        delivery = _first_header(self, DELIVERY_HEADERS)
        try:
            jobs = await self.backend.run(
                self.backend.fire_webhook, name, payload, body, signature, delivery
            )
        except ScheduleNotFound as e:  # paused or removed since the check above
            raise web.HTTPError(404, str(e)) from None
        except WebhookRejected as e:
            raise web.HTTPError(403, str(e)) from None
        self.feed.poke()
        self.set_status(202)
        self.set_header("Content-Type", "application/json")
        self.finish(to_json({"jobs": jobs, "duplicate": not jobs}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message or self._reason}))

    def _too_large(self) -> web.HTTPError:
        return web.HTTPError(413, f"webhook body larger than {self.max_body} bytes")


def _first_header(handler: web.RequestHandler, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = handler.request.headers.get(name)
        if value:
            return value
    return None


def _payload(body: bytes, content_type: str) -> Any:
    """The JSON payload: the body itself, or a form's ``payload`` field (GitHub's
    form content type). An empty body is a null payload."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
            if "payload" not in fields:
                raise ValueError("no payload field")
            return json.loads(fields["payload"][0])
        return json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise web.HTTPError(400, "the webhook body is not valid JSON") from None
