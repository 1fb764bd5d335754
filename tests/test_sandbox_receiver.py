"""The sandbox's webhook receiver (orderly/sandbox/receiver.py), through httpx into the sandbox's ASGI app: what a
signed delivery keeps, what a duplicate, a bad signature, a bad body or a missing secret get. Deliveries are
signed with the `standardwebhooks` package (the spec's reference), and once over real loopback HTTP by Orderly's
own poster."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from orderly.errors import SettingsError
from orderly.feed.signing import secret_key
from orderly.feed.webhook import Receiver, WebhookPoster
from orderly.sandbox import create_app
from orderly.sandbox.receiver import Received
from orderly.settings import SandboxSettings

SECRET = "whsec_" + base64.b64encode(b"sandbox-receiver-test-key-32-byt").decode()


def event(event_id: int, order_id: int = 6) -> dict:
    return {"id": event_id, "type": "order.processed", "order_id": order_id, "lines": [{"inventory_id": 3}]}


def signed(msg_id: str, body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    """Headers as the spec's reference signs them."""
    stamp = int(time.time() if at is None else at)
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def batch(*ids: int) -> bytes:
    return orjson.dumps({"events": [event(i) for i in ids]})


def exchange(requests: list[tuple], secret: str | None = SECRET) -> list[httpx.Response]:
    """Each (method, path, body, headers) through one sandbox app, in order."""

    async def run() -> list[httpx.Response]:
        app = create_app(SandboxSettings(webhook_secret=secret))
        async with httpx.AsyncClient(base_url="http://sandbox", transport=httpx.ASGITransport(app=app)) as client:
            return [
                await client.request(method, path, content=body, headers=headers)
                for method, path, body, headers in requests
            ]

    return asyncio.run(run())


def received(after: int | None = None, **params) -> tuple:
    query = {**params, **({"after": after} if after is not None else {})}
    return ("GET", "/webhook/received?" + "&".join(f"{k}={v}" for k, v in query.items()), None, None)


def post(msg_id: str, body: bytes, headers: dict[str, str] | None = None) -> tuple:
    return ("POST", "/webhook", body, headers if headers is not None else signed(msg_id, body))


def test_a_signed_batch_is_kept_and_shown_in_id_order():
    answers = exchange([post("msg_1", batch(1, 2, 3)), post("msg_2", batch(5, 8)), received(), received(after=3)])
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    everything, after_3 = answers[2].json(), answers[3].json()
    assert {k: v for k, v in everything.items() if k != "events"} == {
        "deliveries": 2,
        "duplicates": 0,
        "bad_signatures": 0,
    }
    assert everything["events"] == [event(i) for i in (1, 2, 3, 5, 8)]
    assert [e["id"] for e in after_3["events"]] == [5, 8]


def test_a_batch_sent_again_and_events_sent_twice_are_kept_once():
    answers = exchange(
        [
            post("msg_1", batch(1, 2)),
            post("msg_1", batch(1, 2)),  # the same message: its answer was lost, so it came again
            post("msg_2", batch(2, 3)),  # another message that repeats an event
            received(),
        ]
    )
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    shown = answers[-1].json()
    assert (shown["deliveries"], shown["duplicates"]) == (3, 3)
    assert [e["id"] for e in shown["events"]] == [1, 2, 3]


def test_a_webhook_id_seen_before_is_a_duplicate_whatever_it_holds():
    # the spec's idempotency key: a receiver that has a message's id has that message
    answers = exchange([post("msg_1", batch(1)), post("msg_1", batch(2)), received()])
    shown = answers[-1].json()
    assert [e["id"] for e in shown["events"]] == [1] and (shown["deliveries"], shown["duplicates"]) == (2, 1)


@pytest.mark.parametrize(
    "headers",
    [
        signed("msg_1", batch(9)),  # signed for another body
        signed("msg_1", batch(1), secret="whsec_" + base64.b64encode(b"x" * 32).decode()),  # another secret
        signed("msg_1", batch(1), at=time.time() - 3600),  # an old request replayed
        {},  # not signed at all
    ],
)
def test_a_bad_or_missing_signature_is_401_and_keeps_nothing(headers):
    answers = exchange([post("msg_1", batch(1), headers), received()])
    assert answers[0].status_code == 401 and "error" in answers[0].json()
    assert answers[1].json() == {"deliveries": 0, "duplicates": 0, "bad_signatures": 1, "events": []}


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"events": {}}', b'{"orders": []}', b'{"events": [1]}', b'{"events": [{"id": "7"}]}'],
)
def test_a_signed_body_that_is_not_a_list_of_events_is_400(body):
    answers = exchange([post("msg_1", body), received()])
    assert answers[0].status_code == 400 and answers[1].json()["deliveries"] == 0


def test_without_a_secret_there_is_no_receiver():
    answers = exchange([post("msg_1", batch(1)), received()], secret=None)
    assert [a.status_code for a in answers] == [404, 404]
    assert "ORDERLY_WEBHOOK_SECRET" in answers[0].json()["error"]


def test_a_secret_that_is_not_one_stops_the_sandbox_at_start_and_is_not_shown():
    with pytest.raises(SettingsError, match="ORDERLY_WEBHOOK_SECRET") as refused:
        create_app(SandboxSettings(webhook_secret="hunter2hunter2"))
    assert "hunter2" not in str(refused.value)
    assert "whsec" not in repr(SandboxSettings(webhook_secret=SECRET))


def test_the_reader_pages_with_after_and_limit():
    answers = exchange([post("msg_1", batch(*range(1, 8))), received(after=2, limit=3), received(after="x")])
    assert [e["id"] for e in answers[1].json()["events"]] == [3, 4, 5]
    assert answers[2].status_code == 400


def test_what_is_kept_is_bounded_to_the_newest_events():
    kept = Received(max_events=3)
    kept.take("msg_1", [event(i) for i in (1, 2, 3, 4)])
    kept.take("msg_2", [event(5)])
    assert [e["id"] for e in kept.after(0, 10)] == [3, 4, 5]
    kept.take("msg_3", [event(1), event(2), event(6)])  # let go, so seen: duplicates, not kept again
    assert [e["id"] for e in kept.after(0, 10)] == [4, 5, 6] and kept.duplicates == 2


def test_orderlys_own_poster_delivers_to_the_sandbox_over_http():
    import uvicorn

    app = create_app(SandboxSettings(webhook_secret=SECRET))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with WebhookPoster(Receiver(f"{base}/webhook", secret_key(SECRET), 5.0)) as poster:
            for n in range(3):
                poster.post(f"msg_{n}", batch(2 * n + 1, 2 * n + 2), deadline=time.monotonic() + 30)
            poster.post("msg_0", batch(1, 2), deadline=time.monotonic() + 30)
        shown = httpx.get(f"{base}/webhook/received?after=2").json()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert [e["id"] for e in shown["events"]] == [3, 4, 5, 6]
    assert (shown["deliveries"], shown["duplicates"], shown["bad_signatures"]) == (4, 2, 0)
