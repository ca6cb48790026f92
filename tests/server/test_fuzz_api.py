"""Issue 19: no request to the REST API or the webhook endpoint gives a 500 or hangs.

Every endpoint gets random and hostile values (ids past SQLite's range, NaN, huge and
deeply nested bodies, non-ASCII headers) from hypothesis against a real Jupyter server;
the answers must be 2xx or a 4xx with a JSON message, each within the client's timeout.
Bounded (derandomized, a few hundred requests) so CI stays quick.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wiz_jupyter as wiz
from wiz_jupyter.jobs.triggers import sign_webhook

SECRET = "fuzz-secret-0123456789"
HUGE = ["9223372036854775808", "-9223372036854775809", str(10**40), "1e400", "nan", "inf"]

ids = st.one_of(
    st.integers(min_value=0, max_value=10**19).map(str),
    st.sampled_from(["0", "1", "999999999999999999", "00000000000000001"]),
)
values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)
query_values = st.one_of(
    st.sampled_from([*HUGE, "", "-1", "0", "abc", "é", "\x00"]), st.text(max_size=20)
)
GETS = ["workspaces", "counts", "changes", "agents", "jobs", "notifications", "schedules"]
PARAMS = ["since", "timeout", "status", "task", "agent", "limit", "offset", "after"]


def nested(depth: int) -> bytes:
    return b'{"priority": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.fixture(scope="module")
def seeded(jupyter):
    """A job, a schedule and a signed webhook schedule in the server's workspace."""
    w = jupyter.workspace()
    job = w.jobs.add("fuzzed", {"x": 1})
    sched = w.schedules.add("fuzzed", {}, every=3600, name="fuzz-every")
    hook = w.schedules.add("fuzzed", {}, webhook="fuzz-hook", secret=SECRET)
    yield {"job": job.id, "schedule": sched.id, "hook": hook.trigger["name"]}
    w.close()


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.method, str(r.request.url), r.status_code, r.text)
    assert "Traceback" not in r.text
    if r.status_code >= 400 and r.headers.get("Content-Type", "").startswith("application/json"):
        assert isinstance(r.json()["message"], str)  # (a path no route matches: Jupyter's 404 page)


FUZZ = settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


def test_get_endpoints_with_random_query_values(api, seeded):
    @FUZZ
    @given(
        path=st.sampled_from(GETS),
        params=st.dictionaries(st.sampled_from(PARAMS), query_values, max_size=3),
    )
    def run(path, params):
        if path == "changes" and params.get("timeout") not in ("nan", "inf", "1e400"):
            params = {**params, "timeout": "0"}  # a valid long poll would wait: keep it short
        check(api.get(f"wiz/api/{path}", params=params))

    run()


def test_job_and_schedule_actions_with_random_ids_and_bodies(api, seeded):
    actions = [("jobs", a) for a in ("cancel", "retry", "priority")] + [
        ("schedules", a) for a in ("pause", "resume")
    ]

    @FUZZ
    @given(
        which=st.sampled_from(actions),
        ident=st.one_of(ids, st.just(str(seeded["job"]))),
        body=st.one_of(
            st.dictionaries(st.sampled_from(["priority", "x"]), values, max_size=2).map(json.dumps),
            st.sampled_from(["", "null", "[]", "{", '{"priority": NaN}', '{"priority": 1e999}']),
        ),
    )
    def run(which, ident, body):
        kind, action = which
        check(api.get(f"wiz/api/{kind}/{ident}"))
        check(api.post(f"wiz/api/{kind}/{ident}/{action}", content=body.encode()))

    run()


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_a_priority_past_sqlites_range_is_400(api, seeded, value):
    r = api.post(f"wiz/api/jobs/{seeded['job']}/priority", json={"priority": value})
    assert r.status_code == 400 and "between" in r.json()["message"]


def test_a_body_nested_thousands_deep_is_400(api, seeded):
    r = api.post(f"wiz/api/jobs/{seeded['job']}/priority", content=nested(5000))
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]


def test_webhooks_with_hostile_headers_and_bodies(jupyter, seeded):
    url = f"wiz/hooks/{seeded['hook']}"
    with jupyter.client(token=False) as outsider:
        # a non-ASCII signature header is a bad signature, not a 500
        r = outsider.post(url, content=b"{}", headers={"X-Wiz-Signature": "sha256=é".encode()})
        assert r.status_code == 403
        r = outsider.post(url, content=b"{}", headers={"X-Hub-Signature-256": b"\xff\xfe"})
        assert r.status_code == 403
        deep = nested(5000)
        r = outsider.post(
            url, content=deep, headers={"X-Wiz-Signature": sign_webhook(SECRET, deep)}
        )
        assert r.status_code == 400

        @FUZZ
        @given(
            name=st.one_of(
                st.just(seeded["hook"]), st.text(alphabet="abc-_é%", min_size=1, max_size=12)
            ),
            body=st.binary(max_size=64),
            # what can travel in a header: no control characters (HTTP refuses them),
            # anything else, non-ASCII and invalid UTF-8 included
            signature=st.one_of(
                st.none(),
                st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f"), max_size=40),
                st.lists(st.integers(0x20, 0xFF).filter(lambda b: b != 0x7F), max_size=20).map(
                    bytes
                ),
            ),
        )
        def run(name, body, signature):
            headers = {"Content-Type": "application/json"}
            if signature is not None:
                raw = signature if isinstance(signature, bytes) else signature.encode()
                raw = raw.strip(b" \t") or b"-"  # HTTP trims a header's ends
                headers["X-Wiz-Signature"] = raw  # type: ignore[assignment]
            check(outsider.post(f"wiz/hooks/{httpx.URL(name).path}", content=body, headers=headers))

        run()


def test_a_chunked_body_far_over_the_limit_is_413_not_an_empty_400(jupyter, seeded):
    def chunks():  # no Content-Length, 32 MiB: past the point where tornado gives up
        for _ in range(256):
            yield b" " * (128 * 1024)

    with jupyter.client(token=False) as outsider:
        r = outsider.post(f"wiz/hooks/{seeded['hook']}", content=chunks())
    assert r.status_code == 413 and "larger than" in r.json()["message"]


def test_the_workspace_still_works_after_the_fuzzing(api, seeded, jupyter):
    assert api.get("wiz/api/counts").status_code == 200
    w = jupyter.workspace()
    try:
        assert isinstance(w.jobs.get(seeded["job"]), wiz.Job)
    finally:
        w.close()
