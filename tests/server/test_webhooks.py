"""POST /wiz/hooks/NAME: no Jupyter token, but the schedule's HMAC-SHA256 signature."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote, urlsplit

import httpx
import pytest

import wiz_jupyter as wiz

SECRET = "hook-secret-1"


@pytest.fixture
def outsider(jupyter):
    """A caller from outside: no token, no cookie."""
    with jupyter.client(token=False) as c:
        yield c


@pytest.fixture
def hook(ws, request):
    """A signed webhook schedule named after the test."""
    name = request.node.name.replace("[", "-").replace("]", "")
    return ws.schedules.add("deploy", {"env": "prod"}, webhook=name, secret=SECRET)


def signed(body: bytes, secret: str = SECRET, header: str = "X-Wiz-Signature") -> dict:
    return {header: wiz.sign_webhook(secret, body), "Content-Type": "application/json"}


def test_a_signed_call_fires_the_schedule(outsider, ws, hook):
    body = json.dumps({"ref": "refs/heads/main", "commits": 3}).encode()
    r = outsider.post(f"wiz/hooks/{hook.trigger['name']}", content=body, headers=signed(body))
    assert r.status_code == 202, r.text
    (job_id,) = r.json()["jobs"]
    assert r.json()["duplicate"] is False
    job = ws.jobs.get(job_id)
    assert job.task == "deploy" and job.status == "waiting"
    assert job.data == {"env": "prod", "payload": {"ref": "refs/heads/main", "commits": 3}}
    assert [j.id for j in ws.schedules.runs(hook)] == [job_id]


def test_github_headers_and_a_repeated_delivery(outsider, ws, hook):
    body = b'{"zen": "Keep it logically awesome."}'
    headers = {**signed(body, header="X-Hub-Signature-256"), "X-GitHub-Delivery": "d-1"}
    first = outsider.post(f"wiz/hooks/{hook.trigger['name']}", content=body, headers=headers)
    assert first.status_code == 202 and len(first.json()["jobs"]) == 1
    again = outsider.post(f"wiz/hooks/{hook.trigger['name']}", content=body, headers=headers)
    assert again.status_code == 202 and again.json() == {"jobs": [], "duplicate": True}
    assert len(ws.schedules.runs(hook)) == 1


def test_github_form_encoded_payload(outsider, ws, hook):
    body = ("payload=" + quote(json.dumps({"action": "opened"}))).encode()
    headers = {**signed(body), "Content-Type": "application/x-www-form-urlencoded"}
    r = outsider.post(f"wiz/hooks/{hook.trigger['name']}", content=body, headers=headers)
    assert r.status_code == 202, r.text
    assert ws.jobs.get(r.json()["jobs"][0]).data["payload"] == {"action": "opened"}


def test_an_empty_signed_body_is_a_null_payload(outsider, ws, hook):
    r = outsider.post(f"wiz/hooks/{hook.trigger['name']}", content=b"", headers=signed(b""))
    assert r.status_code == 202, r.text
    assert ws.jobs.get(r.json()["jobs"][0]).data["payload"] is None


@pytest.mark.parametrize(
    "headers",
    [
        {},  # missing
        {"X-Wiz-Signature": "sha256=" + "0" * 64},  # bad
        {"X-Wiz-Signature": wiz.sign_webhook("another-secret", b'{"a": 1}')},  # wrong secret
        {"X-Wiz-Signature": wiz.sign_webhook(SECRET, b'{"a": 2}')},  # another body
        {"X-Wiz-Signature": "not a signature"},
    ],
    ids=["missing", "bad", "wrong-secret", "other-body", "garbage"],
)
def test_a_bad_or_missing_signature_is_403(outsider, ws, hook, headers):
    r = outsider.post(f"wiz/hooks/{hook.trigger['name']}", content=b'{"a": 1}', headers=headers)
    assert r.status_code == 403, r.text
    assert "signature" in r.json()["message"]
    assert ws.schedules.runs(hook) == []


def test_an_unknown_or_paused_hook_is_404(outsider, ws, hook):
    body = b"{}"
    assert (
        outsider.post("wiz/hooks/no-such-hook", content=body, headers=signed(body)).status_code
        == 404
    )
    ws.schedules.pause(hook)
    r = outsider.post(f"wiz/hooks/{hook.trigger['name']}", content=body, headers=signed(body))
    assert r.status_code == 404 and "no active webhook" in r.json()["message"]


def test_an_oversized_body_is_413(outsider, ws, hook):
    url = f"wiz/hooks/{hook.trigger['name']}"
    limit = 1024 * 1024
    at_limit = b'"' + b"x" * (limit - 2) + b'"'
    assert outsider.post(url, content=at_limit, headers=signed(at_limit)).status_code == 202

    over = b'"' + b"x" * (limit - 1) + b'"'
    r = outsider.post(url, content=over, headers=signed(over))
    assert r.status_code == 413 and "larger than" in r.json()["message"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(9):
            yield b" " * (128 * 1024)

    r = outsider.post(url, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert len(ws.schedules.runs(hook)) == 1


def test_a_413_waits_for_a_body_just_over_the_limit(jupyter, ws, hook):
    """Answered while the sender still writes, the 413 could reach it as a reset connection
    (a flaky ReadError under load): a body up to twice the limit is read to its end first."""
    limit = 1024 * 1024
    url = urlsplit(jupyter.url)
    head = (
        f"POST {url.path}wiz/hooks/{hook.trigger['name']} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + b" " * (limit // 2))
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # no answer while half the body is unsent
            sock.recv(1)
        sock.settimeout(30)
        sock.sendall(b" " * (limit - limit // 2 + 1))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert ws.schedules.runs(hook) == []


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2"])
def test_malformed_json_is_400_once_signed(outsider, ws, hook, body):
    url = f"wiz/hooks/{hook.trigger['name']}"
    assert outsider.post(url, content=body).status_code == 403  # unsigned: refused first
    r = outsider.post(url, content=body, headers=signed(body))
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    assert ws.schedules.runs(hook) == []


def test_an_unsigned_hook_is_refused_by_default(outsider, ws):
    s = ws.schedules.add("notify", webhook="open-door")  # no secret
    r = outsider.post("wiz/hooks/open-door", content=b"{}")
    assert r.status_code == 403
    assert "allow_unsigned_webhooks" in r.json()["message"]
    assert ws.schedules.runs(s) == []


def test_a_name_shared_by_a_signed_and_an_unsigned_schedule_is_refused(outsider, ws):
    ws.schedules.add("deploy", webhook="shared-name", secret=SECRET)
    ws.schedules.add("notify", webhook="shared-name")
    body = b"{}"
    assert (
        outsider.post("wiz/hooks/shared-name", content=body, headers=signed(body)).status_code
        == 403
    )


def test_only_post(jupyter, hook):
    with httpx.Client(base_url=jupyter.url) as c:
        assert c.get(f"wiz/hooks/{hook.trigger['name']}").status_code == 405
