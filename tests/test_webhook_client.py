"""The feed's HTTP boundary (orderly.feed.signing, orderly.feed.webhook) against a receiver that misbehaves on cue
(tests/receiver.py), over real loopback HTTP. Signatures are checked with the `standardwebhooks` package, the
spec's reference, never with our own verify alone. Pauses are measured through an injected clock and sleep, so
no test waits for a back-off; the time-outs are real and short."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import socket
import time
from datetime import UTC, datetime
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from receiver import ScriptedReceiver
from standardwebhooks import Webhook
from tiers import examples

from orderly import errors
from orderly.errors import SettingsError, WebhookRefused, WebhookUnavailable
from orderly.feed.signing import BadSignature, secret_key, signed_headers, verify
from orderly.feed.webhook import Posted, Receiver, WebhookPoster

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
KEY = secret_key(SECRET)
BODY = json.dumps({"events": [{"id": 17, "type": "order.processed", "order_id": 6}]}).encode()


class FakeTime:
    """A clock that moves only when slept on: every pause is recorded, none is waited."""

    def __init__(self) -> None:
        self.t, self.sleeps = 1000.0, []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def poster(url: str, fake: FakeTime | None = None, timeout_s: float = 5.0, **kwargs) -> WebhookPoster:
    fake = fake or FakeTime()
    return WebhookPoster(Receiver(url, KEY, timeout_s), clock=fake.clock, sleep=fake.sleep, **kwargs)


def refused_port() -> socket.socket:
    """A loopback port that refuses connections: bound, never listening, held until closed."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


# ---- signing -----------------------------------------------------------------------------------------------


def test_our_signature_is_the_spec_reference_one_and_verifies_with_it():
    headers = signed_headers(KEY, "msg_1-17", int(time.time()), BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    assert headers["content-type"] == "application/json"
    Webhook(SECRET).verify(BODY, headers)  # raises if it does not verify
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SECRET).verify(BODY + b" ", headers)


@settings(max_examples=examples(200), deadline=None)
@given(
    msg_id=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    timestamp=st.integers(0, 2**33),
    body=st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
def test_signatures_equal_the_reference_implementations(msg_id, timestamp, body):
    try:
        text = body.decode()
    except UnicodeDecodeError:  # the reference signs text: bodies are UTF-8 JSON, a lone surrogate is none
        return
    ours = signed_headers(KEY, msg_id, timestamp, body)
    reference = Webhook(SECRET).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), text)
    assert ours["webhook-signature"] == reference
    assert verify(KEY, ours, body, now=timestamp) == msg_id


def test_verify_accepts_the_reference_signature_and_any_one_of_several():
    now = int(time.time())
    good = Webhook(SECRET).sign("msg_9", datetime.fromtimestamp(now, UTC), BODY.decode())
    headers = {"Webhook-Id": "msg_9", "Webhook-Timestamp": str(now), "Webhook-Signature": f"v1,bm9wZQ== {good}"}
    assert verify(KEY, headers, BODY, now=now) == "msg_9"  # header names in any case; one match of two


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda h, b: ({**h, "webhook-signature": "v1,bm9wZQ=="}, b), "no signature"),
        (lambda h, b: (h, b + b"x"), "no signature"),
        (lambda h, b: ({**h, "webhook-id": "msg_other"}, b), "no signature"),
        (lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b), "no signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "are all required"),
        (lambda h, b: ({**h, "webhook-timestamp": "12.5"}, b), "whole seconds"),
        (lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 301)}, b), "from now"),
    ],
)
def test_verify_refuses_what_does_not_check_out_without_saying_what_it_expected(change, words):
    now = int(time.time())
    headers, body = change(signed_headers(KEY, "msg_1", now, BODY), BODY)
    with pytest.raises(BadSignature, match=words) as refused:
        verify(KEY, headers, body, now=now)
    assert "v1," not in str(refused.value) and str(headers.get("webhook-timestamp")) not in str(refused.value)


def test_a_secret_is_whsec_and_base64_and_never_echoed():
    raw = bytes(range(24))
    unpadded = "whsec_" + base64.b64encode(raw).decode().rstrip("=")
    assert secret_key("whsec_" + base64.b64encode(raw).decode()) == raw == secret_key(f" {unpadded}\n")
    assert secret_key(SECRET) == bytes(range(32))
    for bad in ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not*base64!!", "whsec_" + "QUJD", "sk_live_1"):
        with pytest.raises(SettingsError) as refused:
            secret_key(bad)
        assert refused.value.variable == "ORDERLY_WEBHOOK_SECRET"
        assert "ORDERLY_WEBHOOK_SECRET" in str(refused.value)
        assert not bad.removeprefix("whsec_") or bad.removeprefix("whsec_") not in str(refused.value)


def test_a_receiver_needs_an_http_url_and_never_shows_its_key():
    receiver = Receiver("https://user:pw@example.com/hook?token=abc", KEY)
    assert receiver.shown_url == "https://***@example.com/hook?***"
    assert repr(KEY) not in repr(receiver) and "pw" not in repr(WebhookPoster(receiver))
    for bad in ("ftp://example.com/hook", "not a url", "http:///hook"):
        with pytest.raises(SettingsError, match="ORDERLY_WEBHOOK_URL"):
            Receiver(bad, KEY)


# ---- each fault, on its own ----------------------------------------------------------------------------------


def test_a_2xx_at_once_is_one_attempt_and_the_batch_arrives_signed():
    with ScriptedReceiver(SECRET) as receiver, poster(receiver.url) as p:
        assert p.post("msg_1-1", BODY, deadline=time.monotonic() + 60) == Posted(200, 1, ())
        (arrival,) = receiver.arrivals
        assert (arrival.msg_id, arrival.body, arrival.verified, arrival.kept) == ("msg_1-1", BODY, True, True)
        assert receiver.kept_event_ids() == [17]


def test_a_500_is_retried_after_a_jittered_pause():
    fake = FakeTime()
    with ScriptedReceiver(SECRET, ["status:500", "status:503"]) as receiver, poster(receiver.url, fake) as p:
        posted = p.post("msg_1", BODY, deadline=fake.t + 60)
        assert posted == Posted(200, 3, ("500 Internal Server Error", "503 Service Unavailable"))
        assert len(fake.sleeps) == 2 and 0 <= fake.sleeps[0] <= 0.5 and 0 <= fake.sleeps[1] <= 1.0
        assert {a.msg_id for a in receiver.arrivals} == {"msg_1"} and all(a.verified for a in receiver.arrivals)
        assert receiver.kept_event_ids() == [17]


def test_back_off_is_exponential_with_full_jitter_up_to_its_cap():
    fake = FakeTime()
    draws = iter([1.0, 1.0, 1.0, 1.0, 0.5, 0.0])
    with (
        ScriptedReceiver(SECRET, ["status:502"] * 6) as receiver,
        poster(receiver.url, fake, rng=lambda: next(draws), backoff_base_s=1.0, backoff_cap_s=5.0) as p,
    ):
        assert p.post("msg_1", BODY, deadline=fake.t + 60).attempts == 7
    assert fake.sleeps == [1.0, 2.0, 4.0, 5.0, 2.5, 0.0]


def test_429_waits_as_long_as_retry_after_says_in_seconds_or_as_a_date_capped():
    fake = FakeTime()
    wall = time.time()
    script = [
        "retry_after:429:2",
        f"retry_after:503:{formatdate(wall + 30, usegmt=True)}",
        "retry_after:429:100000",
        "retry_after:429:soon",  # unreadable: the back-off instead
    ]
    with (
        ScriptedReceiver(SECRET, script) as receiver,
        poster(receiver.url, fake, retry_after_cap_s=300.0, rng=lambda: 1.0, now=lambda: wall) as p,
    ):
        posted = p.post("msg_1", BODY, deadline=fake.t + 3600)
    assert posted.attempts == 5 and posted.problems[0] == "429 Too Many Requests"
    assert fake.sleeps[0] == 2.0 and 29.0 <= fake.sleeps[1] <= 30.0 and fake.sleeps[2:] == [300.0, 4.0]


def test_a_2xx_sent_after_the_client_gave_up_is_retried_with_the_same_id_and_a_fresh_signature():
    seconds = itertools.count(int(time.time()))  # a new second for each attempt: its own timestamp
    with ScriptedReceiver(SECRET, ["slow:1.5"]) as receiver:
        with poster(receiver.url, timeout_s=0.3, now=lambda: next(seconds)) as p:
            started = time.monotonic()
            posted = p.post("msg_7", BODY, deadline=time.monotonic() + 60)
            took = time.monotonic() - started
        time.sleep(1.3)  # the slow answer is written (to a closed socket) before the receiver stops
    assert posted == Posted(200, 2, ("timed out after 0.3 s",)) and took < 1.2
    first, second = receiver.arrivals
    assert first.msg_id == second.msg_id == "msg_7" and first.verified and second.verified
    assert first.timestamp != second.timestamp and first.signature != second.signature
    assert receiver.kept_event_ids() == [17, 17]  # at least once: the receiver deduplicates by id


def test_the_time_out_bounds_the_whole_attempt_not_each_read():
    # 38 bytes of answer, 0.05 s apart: no single read waits long, the whole answer takes about 2 s
    with ScriptedReceiver(SECRET, ["trickle:0.05"]) as receiver, poster(receiver.url, timeout_s=0.5) as p:
        started = time.monotonic()
        posted = p.post("msg_1", BODY, deadline=time.monotonic() + 60)
        assert posted == Posted(200, 2, ("timed out after 0.5 s",))
        assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("status", [301, 307, 400, 401, 403, 404, 410, 413, 422])
def test_a_final_status_refuses_at_once_in_one_line_that_holds_no_secret(status, caplog):
    caplog.set_level(logging.DEBUG)
    with ScriptedReceiver(SECRET, [f"status:{status}"]) as receiver:
        url = receiver.url.replace("http://", "http://user:hunter2@") + "?token=abc"
        with poster(url) as p, pytest.raises(WebhookRefused) as refused:
            p.post("msg_1", BODY, deadline=time.monotonic() + 60)
        (arrival,) = receiver.arrivals
    line = str(refused.value)
    shown = receiver.url.replace("http://", "http://***@") + "?***"
    assert line.startswith(f"the webhook receiver {shown} answered {status} ") and "\n" not in line
    assert line.endswith("the next delivery sends the same batch again")
    explained = errors.explain(refused.value)
    assert explained.exit_code == 5 and explained.line == line
    for secret in (SECRET, SECRET.removeprefix("whsec_"), arrival.signature, arrival.signature[3:], "hunter2", "abc"):
        assert secret not in line and secret not in repr(refused.value) and secret not in caplog.text
    assert BODY.decode() not in line and BODY.decode() not in caplog.text


def test_410_says_what_the_issue_says():
    with (
        ScriptedReceiver(SECRET, ["status:410"]) as receiver,
        poster(receiver.url) as p,
        pytest.raises(WebhookRefused) as refused,
    ):
        p.post("msg_1", BODY, deadline=time.monotonic() + 60)
    assert str(refused.value) == (
        f"the webhook receiver {receiver.url} answered 410 Gone: delivery stops here; fix the receiver and the "
        "next delivery sends the same batch again"
    )


def test_a_hangup_and_a_408_are_retried():
    with ScriptedReceiver(SECRET, ["hangup", "status:408", "hangup"]) as receiver, poster(receiver.url) as p:
        posted = p.post("msg_1", BODY, deadline=time.monotonic() + 60)
    assert posted.problems == (
        "connection closed with no answer",
        "408 Request Timeout",
        "connection closed with no answer",
    )
    assert [a.status for a in receiver.arrivals] == [None, 408, None, 200]


def test_a_200_that_drops_the_batch_is_a_delivery_as_far_as_the_sender_can_tell():
    with ScriptedReceiver(SECRET, ["drop"]) as receiver, poster(receiver.url) as p:
        assert p.post("msg_1", BODY, deadline=time.monotonic() + 60) == Posted(200, 1, ())
        assert p.post("msg_2", BODY, deadline=time.monotonic() + 60) == Posted(200, 1, ())  # a new connection
    assert [a.kept for a in receiver.wait_for(2)] == [False, True]


def test_a_refused_connection_is_retried_until_the_deadline(caplog):
    caplog.set_level(logging.INFO, logger="orderly.feed")
    fake = FakeTime()
    with refused_port() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        with poster(url, fake, rng=lambda: 1.0) as p, pytest.raises(WebhookUnavailable) as unavailable:
            p.post("msg_1", BODY, deadline=fake.t + 5)
    assert fake.sleeps == [0.5, 1.0, 2.0]  # a 4 s pause would end past the deadline
    assert str(unavailable.value) == (
        f"the webhook receiver {url} did not take the batch before the delivery's deadline: connection refused "
        "(4 attempts); delivery stops here and the next one sends the same batch again"
    )
    assert errors.explain(unavailable.value).exit_code == 5
    assert caplog.text.count("connection refused; attempt") == 3 and SECRET not in caplog.text


def test_one_attempt_is_made_however_close_the_deadline():
    fake = FakeTime()
    with ScriptedReceiver(SECRET, ["status:500"]) as receiver, poster(receiver.url, fake) as p:
        with pytest.raises(WebhookUnavailable, match=r"500 Internal Server Error \(1 attempt\)"):
            p.post("msg_1", BODY, deadline=fake.t - 1)
        assert p.post("msg_1", BODY, deadline=fake.t - 1) == Posted(200, 1, ())
    assert len(receiver.arrivals) == 2


def test_keep_alive_carries_every_post_over_one_connection_and_redirects_are_not_followed():
    with ScriptedReceiver(SECRET) as receiver, poster(receiver.url) as p:
        for n in range(5):
            p.post(f"msg_{n}", BODY, deadline=time.monotonic() + 60)
        assert not p._client.follow_redirects  # a 3xx is refused (above), never followed to another host
    assert len(receiver.arrivals) == 5 and len({a.port for a in receiver.arrivals}) == 1


# ---- any script of faults --------------------------------------------------------------------------------------

RETRYABLE = ["status:500", "status:502", "status:503", "status:504", "status:408", "retry_after:429:0", "hangup"]
TAKEN = {"ok": 200, "drop": 200, "status:202": 202, "status:204": 204}
FINAL = [301, 302, 400, 401, 403, 404, 405, 409, 410, 413, 422]


@pytest.fixture(scope="module")
def scripted():
    with ScriptedReceiver(SECRET) as receiver:
        yield receiver


@settings(max_examples=examples(100), deadline=None)
@given(
    faults=st.lists(st.sampled_from(RETRYABLE), max_size=6),
    last=st.sampled_from([*TAKEN, *(f"status:{status}" for status in FINAL)]),
    msg_id=st.from_regex(r"msg_[0-9]{1,6}-[0-9]{1,6}", fullmatch=True),
)
def test_the_poster_takes_a_2xx_after_exactly_the_retryable_faults_or_refuses_at_the_first_final_status(
    scripted, faults, last, msg_id
):
    scripted.reset([*faults, last])
    fake = FakeTime()
    with poster(scripted.url, fake) as p:
        if last in TAKEN:
            posted = p.post(msg_id, BODY, deadline=fake.t + 3600)
            assert posted.status == TAKEN[last] and posted.attempts == len(faults) + 1
            assert len(posted.problems) == len(fake.sleeps) == len(faults)
        else:
            with pytest.raises(WebhookRefused, match=f" answered {last.removeprefix('status:')} "):
                p.post(msg_id, BODY, deadline=fake.t + 3600)
    arrivals = scripted.wait_for(len(faults) + 1)
    assert len(arrivals) == len(faults) + 1
    assert all(a.msg_id == msg_id and a.verified and a.body == BODY for a in arrivals)
    assert scripted.kept_event_ids() == ([17] if last == "ok" else [])
