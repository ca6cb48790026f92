"""Notifications outside Jupyter: job ends POSTed to a webhook (signed) or mailed, each
delivery a durable ``wiz.notify`` job. Against a real HTTP server and a real SMTP server
(aiosmtpd) on 127.0.0.1, real SQLite files, and ``wiz worker`` in a subprocess."""

from __future__ import annotations

import asyncio
import email
import http.server
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

import wiz_jupyter as wiz
from wiz_jupyter.jobs import outbound
from wiz_jupyter.jobs.notebooks import BUILTIN_TASKS

FAST = {"attempts": 2, "backoff": ("fixed", 0.05)}


# -- a webhook receiver and a mail server on loopback --------------------------------------------


class Receiver:
    """An HTTP server that records every POST and answers with the next status of
    ``answers`` (then 204)."""

    def __init__(self, answers=()):
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.answers = list(answers)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, dict(self.headers), body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/wiz?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self):
        return [json.loads(b) for _, _, b in self.posts]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.mails = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append(envelope)
        return "250 OK"


class Refusing:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no mailbox here"


class RefusingData:
    async def handle_DATA(self, server, session, envelope):
        return "554 5.7.1 message rejected as spam"


def smtp_server(handler, **kwargs):
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


async def settle(ws, timeout=20.0):
    await ws.run_until_idle(timeout=timeout)


def deliveries(ws):
    return ws.jobs.list(task=outbound.TASK)


# -- webhooks ------------------------------------------------------------------------------------


async def test_a_failed_job_is_posted_to_the_webhook_signed_with_its_secret(
    ws, receiver, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    target = ws.notifications.add_webhook(receiver.url, secret="s3cret-value")

    @ws.task(attempts=2)
    def nightly(token: str) -> None:
        raise RuntimeError("upstream said no to sk-test-0123456789abcdef")

    job = ws.jobs.add("nightly", {"token": "data-is-never-sent"})
    await settle(ws)
    assert job.status == "failed"
    [(path, headers, body)] = receiver.posts
    assert path == "/hooks/wiz?token=abc"
    # signed as incoming webhooks are checked: the project's one HMAC function
    assert wiz.verify_webhook("s3cret-value", body, headers["X-Wiz-Signature"])
    assert not wiz.verify_webhook("other", body, headers["X-Wiz-Signature"])
    sent = json.loads(body)
    assert sent["event"] == "job.failed" and sent["workspace"] == ws.path
    about = sent["job"]
    assert (about["id"], about["task"], about["status"]) == (job.id, "nightly", "failed")
    assert about["attempts"] == 2 and about["attempts_made"] == 2 and about["reason"] == "error"
    assert about["error"].startswith("RuntimeError: upstream said no to ***")
    assert about["finished_at"] and about["started_at"] and about["created_at"]
    assert b"sk-test-0123456789abcdef" not in body and b"data-is-never-sent" not in body
    # the delivery is a job like any other: on the board, completed, keyed per target/job/event
    [delivery] = deliveries(ws)
    assert delivery.status == "completed" and delivery.result["status"] == 204
    assert headers["X-Wiz-Delivery"] == sent["delivery"] == delivery.key
    assert delivery.key.startswith(f"wiz.notify:{target.id}:{job.id}:")
    assert "s3cret-value" not in json.dumps(delivery.as_dict())
    assert "s3cret" not in repr(target) and "token=abc" not in repr(target)


async def test_only_the_statuses_and_tasks_a_target_asks_for_are_sent(ws, receiver):
    ws.notifications.add_webhook(receiver.url, on="completed", tasks=["a"])
    ws.notifications.add_webhook(receiver.url, on=("failed", "cancelled"))

    @ws.task
    def a(ok: bool) -> dict:
        if not ok:
            raise ValueError("a broke")
        return {"rows": 3}

    @ws.task
    def b() -> int:
        return 1

    good, bad, other = (
        ws.jobs.add("a", {"ok": True}),
        ws.jobs.add("a", {"ok": False}),
        ws.jobs.add("b"),
    )
    cancelled = ws.jobs.add("b", delay=3600)
    ws.jobs.cancel(cancelled.id)
    await settle(ws)
    got = sorted((b["job"]["id"], b["job"]["status"]) for b in receiver.bodies())
    assert got == sorted([(good.id, "completed"), (bad.id, "failed"), (cancelled.id, "cancelled")])
    assert other.id not in {b["job"]["id"] for b in receiver.bodies()}
    done = next(b for b in receiver.bodies() if b["job"]["id"] == good.id)
    assert done["job"]["result_preview"] == '{"rows":3}' and done["job"]["error"] is None
    # unsigned targets send no signature
    assert all("X-Wiz-Signature" not in h for _, h, _ in receiver.posts)


async def test_a_webhook_that_errs_is_retried_and_one_that_refuses_fails_without_a_loop(ws):
    flaky, refusing = Receiver(answers=[503]), Receiver(answers=[404, 404])
    try:
        ws.notifications.add_webhook(flaky.url, secret="k", **FAST)
        ws.notifications.add_webhook(refusing.url, **FAST)

        @ws.task
        def boom() -> None:
            raise ValueError("boom")

        ws.jobs.add("boom")
        await settle(ws)
        # retried after the 503, with the same body, signature and delivery id
        assert len(flaky.posts) == 2 and flaky.posts[0][2] == flaky.posts[1][2]
        assert flaky.posts[0][1]["X-Wiz-Signature"] == flaky.posts[1][1]["X-Wiz-Signature"]
        # a 404 will not change: failed at once, with a short clear error
        assert len(refusing.posts) == 1
        by_target = {d.data["target"]: d for d in deliveries(ws)}
        assert len(by_target) == 2  # and no delivery about the failed delivery
        ok, failed = by_target[1], by_target[2]
        assert ok.status == "completed" and ok.attempts_made == 2
        assert failed.status == "failed" and failed.fail_reason == "unrecoverable"
        port = refusing.server.server_port
        assert (
            failed.error
            == f"Unrecoverable: webhook http://127.0.0.1:{port}/... answered 404 Not Found"
        )
        assert not ws.notifications.pending()
    finally:
        flaky.close()
        refusing.close()


# -- mail ----------------------------------------------------------------------------------------


async def test_a_failure_is_mailed_with_a_login_whose_password_is_never_stored(ws, monkeypatch):
    inbox, logins = Inbox(), []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"pa55-w0rd-from-env")

    server = smtp_server(inbox, authenticator=authenticator, auth_require_tls=False)
    monkeypatch.setenv("WIZ_TEST_SMTP_PW", "pa55-w0rd-from-env")
    try:
        ws.notifications.add_email(
            ["ops@example.org", "me@example.org"], smtp=f"127.0.0.1:{server.port}",
            sender="wiz@example.org", username="wiz", password_env="WIZ_TEST_SMTP_PW",
        )  # fmt: skip

        @ws.task
        def report(day: str) -> None:
            raise FileNotFoundError(f"no data for {day} (login pa55-w0rd-from-env)")

        job = ws.jobs.add("report", {"day": "2026-12-04"})
        await settle(ws)
    finally:
        server.stop()
    assert logins == [(b"wiz", b"pa55-w0rd-from-env")]
    [mail] = inbox.mails
    assert mail.mail_from == "wiz@example.org"
    assert sorted(mail.rcpt_tos) == ["me@example.org", "ops@example.org"]
    msg = email.message_from_bytes(mail.content, policy=policy.default)
    assert msg["Subject"].strip() == (  # a long subject is folded: its first line is empty
        f"[wiz] job {job.id} (report) failed: FileNotFoundError: no data for 2026-12-04 (login ***)"
    )
    [delivery] = deliveries(ws)
    assert msg["X-Wiz-Delivery"] == delivery.key and delivery.status == "completed"
    text = msg.get_content()
    assert f"Job {job.id} (task report) failed." in text
    assert "Error: FileNotFoundError: no data for 2026-12-04 (login ***)" in text
    assert "Attempts: 1 of 1" in text and "pa55-w0rd-from-env" not in mail.content.decode()
    assert json.loads(text.split("The job as JSON:", 1)[1])["id"] == job.id
    # the database keeps the variable's name, never the password (the failed job's own error
    # holds what its handler raised; what notifications keep and send is masked)
    settings = [tuple(r) for r in ws.store.read("SELECT key, value FROM settings")]
    kept = json.dumps(settings) + json.dumps([d.as_dict() for d in deliveries(ws)], default=str)
    assert "WIZ_TEST_SMTP_PW" in kept and "pa55-w0rd-from-env" not in kept


async def test_a_refusing_smtp_server_fails_the_delivery_after_its_retries_and_nothing_loops(ws):
    server, spam = smtp_server(Refusing()), smtp_server(RefusingData())
    plain = smtp_server(Inbox())  # offers no STARTTLS
    closed = free_port()  # nothing listens there
    try:
        ws.notifications.add_email("ops@example.org", smtp=f"127.0.0.1:{server.port}", **FAST)
        ws.notifications.add_email("ops@example.org", smtp=f"127.0.0.1:{closed}", **FAST)
        ws.notifications.add_email("ops@example.org", smtp=f"127.0.0.1:{spam.port}", **FAST)
        ws.notifications.add_email(
            "ops@example.org", smtp=f"127.0.0.1:{plain.port}", starttls=True, **FAST
        )

        @ws.task
        def nightly() -> None:
            raise RuntimeError("disk full")

        ws.jobs.add("nightly")
        await settle(ws)
    finally:
        for s in (server, spam, plain):
            s.stop()
    by_target = {d.data["target"]: d for d in deliveries(ws)}
    assert len(by_target) == 4  # the failed deliveries made no deliveries of their own
    refused, unreachable, rejected, no_tls = (by_target[i] for i in (1, 2, 3, 4))
    for d in (refused, unreachable, rejected, no_tls):
        assert d.status == "failed" and d.attempts_made == 2
        assert [e["event"] for e in d.events()].count("job.active") == 2  # retried once
    assert refused.error == (
        f"DeliveryFailed: SMTP server 127.0.0.1:{server.port} refused every recipient: "
        "ops@example.org (550 5.1.1 no mailbox here)"
    )
    assert unreachable.error == (
        f"DeliveryFailed: SMTP server 127.0.0.1:{closed} unreachable: Connection refused"
    )
    assert rejected.error == (
        f"DeliveryFailed: SMTP server 127.0.0.1:{spam.port} refused the mail: "
        "554 5.7.1 message rejected as spam"
    )
    assert no_tls.error == (
        f"DeliveryFailed: SMTP server 127.0.0.1:{plain.port} failed: "
        "STARTTLS extension not supported by server."
    )
    assert not ws.notifications.pending()


# -- exactly once, across processes --------------------------------------------------------------


TASKS_FILE = """
import wiz_jupyter as wiz
ws = wiz.workspace()

@ws.task
def nightly(n: int = 0) -> None:
    raise RuntimeError(f"nightly {n} broke")
"""


def start_worker(db_path, tmp_path, name="worker"):
    tasks = tmp_path / "tasks.py"
    tasks.write_text(textwrap.dedent(TASKS_FILE))
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wiz_jupyter", "worker", "--db", str(db_path), "--tasks", str(tasks)],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "Ctrl-C to stop" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return proc, log


def stop_worker(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_wiz_worker_delivers_the_failure_of_a_job_added_by_another_process(
    db_path, tmp_path, receiver
):
    adder = wiz.Workspace(db_path)  # no runtime here: like a notebook that only adds jobs
    adder.notifications.add_webhook(receiver.url, secret="nightly-secret", tasks="nightly")
    proc, log = start_worker(db_path, tmp_path)
    try:
        job = adder.jobs.add("nightly", {"n": 7})
        await wait_for(lambda: receiver.posts)
        await wait_for(lambda: deliveries(adder) and deliveries(adder)[0].status == "completed")
    finally:
        stop_worker(proc)
    assert "1 notification targets" in log.read_text()
    [(_, headers, body)] = receiver.posts
    assert wiz.verify_webhook("nightly-secret", body, headers["X-Wiz-Signature"])
    sent = json.loads(body)["job"]
    assert (sent["id"], sent["status"], sent["error"]) == (
        job.id,
        "failed",
        "RuntimeError: nightly 7 broke",
    )
    adder.close()


async def test_two_processes_on_one_file_deliver_each_end_once(db_path, tmp_path, receiver):
    ws = wiz.Workspace(db_path, poll_interval=0.02)
    ws.notifications.add_webhook(receiver.url)
    proc, _ = start_worker(db_path, tmp_path)

    @ws.task
    def nightly(n: int = 0) -> None:
        raise RuntimeError(f"nightly {n} broke")

    try:
        await ws.start()  # both runtimes feed deliveries and run nightly and wiz.notify jobs
        jobs = ws.jobs.add_bulk([("nightly", {"n": i}) for i in range(30)])
        await wait_for(lambda: len(receiver.posts) >= 30)
        await wait_for(lambda: all(d.status == "completed" for d in deliveries(ws)))
        await asyncio.sleep(1.0)  # time for a second delivery, were there one
    finally:
        await ws.stop()
        stop_worker(proc)
    ids = sorted(b["job"]["id"] for b in receiver.bodies())
    assert ids == sorted(j.id for j in jobs)  # each once
    assert len({h["X-Wiz-Delivery"] for _, h, _ in receiver.posts}) == 30
    assert len(deliveries(ws)) == 30
    ws.close()


async def test_feeding_again_after_a_crash_makes_no_second_delivery(ws, receiver):
    ws.notifications.add_webhook(receiver.url)
    ws.runtime.chores.clear()  # feed by hand here

    @ws.task
    def boom() -> None:
        raise ValueError("x")

    ws.jobs.add_bulk([("boom", {}), ("boom", {})])
    await settle(ws)
    start = ws.notifications.cursor()
    first = ws.notifications.feed()
    assert len(first) == 2 and ws.notifications.cursor() > start
    # a process that died after making the jobs but before the cursor moved on (or a
    # second process reading the same ends): the keys give back the same jobs
    ws.store.conn.execute(
        "UPDATE settings SET value = ? WHERE key = 'notifications.cursor'", (str(start),)
    )
    assert ws.notifications.feed() == first
    assert ws.notifications.feed() == []
    await settle(ws)
    assert len(receiver.posts) == 2 and len(deliveries(ws)) == 2


# -- retention -----------------------------------------------------------------------------------


async def test_gc_keeps_a_job_until_its_end_is_turned_into_deliveries(ws, receiver):
    ws.notifications.add_webhook(receiver.url, on="completed")
    ws.runtime.chores.clear()  # no process has fed the ends yet

    @ws.task
    def t() -> str:
        return "done"

    job = ws.jobs.add("t", remove_on_complete=True)
    await settle(ws)
    assert ws.gc(dry_run=True)["removed"] == 0 and ws.gc()["removed"] == 0
    assert ws.jobs.get(job.id).status == "completed"
    [delivery_id] = ws.notifications.feed()
    assert ws.gc()["removed"] == 1  # announced: now it may go
    with pytest.raises(wiz.JobNotFound):
        ws.jobs.get(job.id)
    # the delivery carries its description: it is sent after the job itself is gone
    await settle(ws)
    assert ws.jobs.get(delivery_id).status == "completed"
    assert [b["job"]["id"] for b in receiver.bodies()] == [job.id]


async def test_event_ids_keep_rising_when_gc_removes_the_newest_events(ws, receiver):
    ws.notifications.add_webhook(receiver.url)  # failures only: a completed job makes no delivery
    ws.runtime.chores.clear()

    @ws.task
    def t() -> int:
        return 1

    ws.jobs.add("t", remove_on_complete=True)
    await settle(ws)
    top = ws.store.read("SELECT MAX(id) FROM job_events")[0][0]
    assert ws.notifications.feed() == [] and ws.notifications.cursor() == top
    assert ws.gc()["removed"] == 1  # all its events, the newest ones, went with it
    marks = ws.store.read("SELECT id, job_id, event FROM job_events")
    assert [tuple(r) for r in marks] == [(top, None, "gc.mark")]
    # SQLite would have given the next event id 1, behind every cursor on the log
    later = ws.jobs.add("t")
    ids = [r[0] for r in ws.store.read("SELECT id FROM job_events WHERE job_id = ?", (later.id,))]
    assert ids and min(ids) > top
    ws.jobs.cancel(later.id)
    assert ws.notifications.pending()  # its end is seen past the cursor


async def test_without_targets_nothing_is_followed_and_gc_is_not_held(ws):
    assert ws.notifications.cursor() is None and ws.notifications.list() == []
    target = ws.notifications.add_email("a@example.org", smtp="localhost:25")
    assert ws.notifications.cursor() is not None and ws.notifications.list() == [target]
    ws.notifications.remove(target)
    assert ws.notifications.cursor() is None and ws.notifications.list() == []
    assert outbound.TASK in BUILTIN_TASKS and "wiz.notify" not in repr(ws)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda n: n.add_webhook("ftp://example.org/x"),
            "a webhook URL must be http:// or https://",
        ),
        (lambda n: n.add_webhook("example.org/hook"), "a webhook URL must be http:// or https://"),
        (lambda n: n.add_email("a@example.org", smtp="smtp.example.org"), "smtp= is 'host:port'"),
        (lambda n: n.add_email("a@example.org", smtp="smtp.example.org:x"), "smtp= is 'host:port'"),
        (lambda n: n.add_email("nobody", smtp="h:25"), "to= takes e-mail addresses"),
        (
            lambda n: n.add_webhook("http://h/x", on=("exploded",)),
            "unknown status 'exploded' in on=",
        ),
        (lambda n: n.add_webhook("http://h/x", on="waiting"), "'waiting' is not an end status"),
        (lambda n: n.add_webhook("http://h/x", on=()), "on= needs at least one end status"),
        (lambda n: n.add_webhook("http://h/x", tasks=["wiz.notify"]), "never follow their own"),
        (lambda n: n.add_webhook("http://h/x", attempts=0), "attempts must be an integer >= 1"),
        (lambda n: n.add_email("a@b.org", smtp="h:25", password="hunter2"), "password_env="),
        (lambda n: n.add_email("a@b.org", smtp="h:25", username="me"), "username and password_env"),
        (lambda n: n.remove(42), "no notification target 42"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_nothing_is_stored(db_path, call, message):
    ws = wiz.Workspace(db_path)
    with pytest.raises((wiz.InvalidNotification, wiz.InvalidJob)) as e:
        call(ws.notifications)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert ws.notifications.list() == [] and ws.notifications.cursor() is None
    ws.close()
