"""Delivering the decision feed (orderly.feed.deliver) to a real HTTP receiver over loopback that misbehaves on cue
(tests/receiver.py): every event arrives, in ascending id, signed (checked with the `standardwebhooks` package);
every fault leaves no event lost and the backlog visible; a batch sent again carries the same webhook-id; and the
delivery never holds the store while it waits on the receiver. `kill -9` of the delivering process is at the end."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from cli_store import build_store
from conftest import ROOT
from receiver import ScriptedReceiver

from orderly import service
from orderly.errors import WebhookRefused
from orderly.feed import deliver as feed
from orderly.settings import Settings
from orderly.store import open_store, queries

SECRET = "whsec_" + base64.b64encode(b"orderly-tests-feed-secret-0123456789").decode()


def _settings(path, url: str, batch: int = 4, timeout: float = 2.0) -> Settings:
    return dataclasses.replace(
        Settings(),
        db_path=path,
        webhook_url=url,
        webhook_secret=SECRET,
        webhook_batch=batch,
        http_timeout=timeout,
        lock_timeout=5.0,
    )


@pytest.fixture
def store(tmp_path):
    """The seed, decided (15 events), then orders 6 and 2 reset and decided again: 19 events, two orders twice."""
    path = tmp_path / "orderly.duckdb"
    build_store(path)
    with open_store(path) as con:
        service.reset(con, "run-reset", [6, 2])
        service.process(con, "run-again", max_stock_age=900)
    return path


def _all_events(path) -> list[dict]:
    with open_store(path, read_only=True) as con:
        _, texts = queries.event_texts(con, 0, 10_000)
    return json.loads(b"[" + b"".join(t.as_py().encode() for t in texts)[:-1] + b"]")


def _delivered(receiver: ScriptedReceiver) -> list[dict]:
    events = []
    for arrival in receiver.arrivals:
        if arrival.kept:
            assert arrival.verified, arrival
            events += json.loads(arrival.body)["events"]
    return events


def assert_every_event_arrived(path, receiver: ScriptedReceiver) -> None:
    """The set of ids is the store's; each order's events in ascending id; an id that came twice came under one
    webhook-id each time."""
    expected = _all_events(path)
    got = _delivered(receiver)
    assert {e["id"] for e in got} == {e["id"] for e in expected}
    assert {e["id"]: e for e in got} == {e["id"]: e for e in expected}  # the same events, field for field
    per_order = defaultdict(list)
    for event in got:
        per_order[event["order_id"]].append(event["id"])
    assert all(ids == sorted(ids) for ids in per_order.values())
    ids_of_message: dict[int, set[str]] = defaultdict(set)
    for arrival in receiver.arrivals:
        if arrival.kept:
            for event in json.loads(arrival.body)["events"]:
                ids_of_message[event["id"]].add(arrival.msg_id)
    assert all(len(messages) == 1 for messages in ids_of_message.values()), ids_of_message


def _state(path) -> dict:
    with open_store(path, read_only=True) as con:
        return queries.feed_state(con)


def test_every_event_arrives_in_order_in_signed_batches(store):
    with ScriptedReceiver(SECRET) as receiver:
        done = feed.deliver(_settings(store, receiver.url), "run-x", budget_s=30)
        assert (done.delivered, done.backlog, done.problem) == (19, 0, None)
        assert_every_event_arrived(store, receiver)
        assert [len(json.loads(a.body)["events"]) for a in receiver.arrivals] == [4, 4, 4, 4, 3]
        assert [e["id"] for e in _delivered(receiver)] == list(range(1, 20))  # ascending overall
        assert len({a.port for a in receiver.arrivals}) == 1  # one kept-alive connection
        again = feed.deliver(_settings(store, receiver.url), "run-y", budget_s=30)
        assert again.delivered == 0 and len(receiver.arrivals) == 5  # nothing sent twice
    state = _state(store)
    assert (state["delivered_to"], state["backlog"], state["last_error"]) == (19, 0, None)


@pytest.mark.parametrize(
    "script",
    [
        ["status:500", "status:503", "hangup"],
        ["retry_after:429:1"],
        ["slow:2.5"],  # a 2xx after the client gave up: the batch arrives twice, under one webhook-id
    ],
    ids=["5xx-and-hangup", "429-retry-after", "2xx-too-late"],
)
def test_a_retried_fault_loses_nothing_and_resends_under_the_same_id(store, script):
    with ScriptedReceiver(SECRET, script) as receiver:
        started = time.monotonic()
        done = feed.deliver(_settings(store, receiver.url, timeout=1.0), None, budget_s=30)
        took = time.monotonic() - started
        assert (done.delivered, done.backlog) == (19, 0)
        assert_every_event_arrived(store, receiver)
        first = [a for a in receiver.arrivals if json.loads(a.body)["events"][0]["id"] == 1]
        assert len({a.msg_id for a in first}) == 1 and len(first) == len(script) + 1
        assert all(a.verified for a in receiver.arrivals)  # every attempt signed (afresh: test_webhook_client)
    if script == ["retry_after:429:1"]:
        assert took >= 1.0  # Retry-After honoured


def test_a_refusal_stops_at_the_batch_and_the_next_delivery_sends_it_again(store):
    with ScriptedReceiver(SECRET, ["ok", "status:410"]) as receiver:
        with pytest.raises(WebhookRefused) as refused:
            feed.deliver(_settings(store, receiver.url), None, budget_s=30)
        line = str(refused.value)
        assert "410" in line and receiver.url.split("/hook")[0] in line and SECRET not in line
        state = _state(store)
        assert state["delivered_to"] == 4 and state["backlog"] == 15 and "410" in state["last_error"]
        refused_batch = receiver.arrivals[1]
        done = feed.deliver(_settings(store, receiver.url), None, budget_s=30)
        assert done.delivered == 15
        assert receiver.arrivals[2].msg_id == refused_batch.msg_id and receiver.arrivals[2].body == refused_batch.body
        assert_every_event_arrived(store, receiver)
    assert _state(store)["last_error"] is None


def test_a_receiver_that_is_down_leaves_a_backlog_and_says_so(store, tmp_path):
    with ScriptedReceiver(SECRET) as receiver:
        url = receiver.url
    started = time.monotonic()  # nothing listens there now: refused connections, retried until the budget
    done = feed.deliver(_settings(store, url), None, budget_s=1.5)
    assert time.monotonic() - started < 5
    assert done.delivered == 0 and done.backlog == 19 and "did not take the batch" in done.problem
    state = _state(store)
    assert state["delivered_to"] == 0 and state["oldest_undelivered_at"] is not None and state["last_error"]
    assert SECRET not in state["last_error"]


def test_a_receiver_that_drops_the_body_moves_the_cursor_and_the_pull_feed_still_has_it(store):
    with ScriptedReceiver(SECRET, ["drop"]) as receiver:
        done = feed.deliver(_settings(store, receiver.url), None, budget_s=30)
        assert done.delivered == 19  # a 2xx is the receiver's word: the cursor moves
        assert sorted(receiver.kept_event_ids()) == list(range(5, 20))
    # what it dropped is still there to read, by id, as often as asked
    with open_store(store, read_only=True) as con:
        from orderly.feed.body import events_body

        page, last = events_body(con, 0, 4)
    assert [e["id"] for e in json.loads(page)["events"]] == [1, 2, 3, 4] and last == 4


def test_a_slow_receiver_never_holds_the_store(store):
    """While the delivery waits on a receiver that answers after 3 s, another process's transaction (a reset and
    a process run, as a press makes) opens the store and commits at once: processing is not slowed."""
    with ScriptedReceiver(SECRET, ["slow:3"]) as receiver:
        delivery = threading.Thread(
            target=feed.deliver, args=(_settings(store, receiver.url, timeout=10.0), None), kwargs={"budget_s": 30}
        )
        delivery.start()
        receiver.wait_for(1)
        code = (
            "import sys, time\n"
            "from orderly import service\n"
            "from orderly.store import open_store\n"
            "t = time.monotonic()\n"
            "with open_store(sys.argv[1], lock_timeout=2) as con:\n"
            "    service.reset(con, 'press', [10])\n"
            "    service.process(con, 'press', max_stock_age=900)\n"
            "print(time.monotonic() - t)\n"
        )
        pressed = subprocess.run(
            [sys.executable, "-c", code, str(store)], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert pressed.returncode == 0, pressed.stderr
        assert float(pressed.stdout) < 2.0  # not the receiver's 3 s
        delivery.join(30)
        feed.deliver(_settings(store, receiver.url), None, budget_s=30)  # the two new events too
        assert_every_event_arrived(store, receiver)


# ---- kill -9 -------------------------------------------------------------------------------------------------

_DELIVERING = """
import dataclasses, sys
from pathlib import Path
from orderly.feed.deliver import deliver
from orderly.settings import Settings
settings = dataclasses.replace(Settings(), db_path=Path(sys.argv[1]), webhook_url=sys.argv[2],
                               webhook_secret=sys.argv[3], webhook_batch=7, lock_timeout=10.0)
print(deliver(settings, None, budget_s=120).delivered)
"""


@pytest.mark.slow  # a dozen delivering processes, each killed (tests/tiers.py)
def test_kill_9_of_the_delivering_process_loses_nothing_and_resends_under_the_same_ids(tmp_path):
    from cli_store import seed_records

    stock, orders = seed_records()
    many = [{**orders[i % len(orders)], "id": 1000 + i} for i in range(600)]  # 600 orders: ~86 batches of 7
    path = tmp_path / "orderly.duckdb"
    build_store(path, stock, many)
    rng = random.Random(21)
    kills = 0
    with ScriptedReceiver(SECRET, default="slow:0.01") as receiver:  # ~10 ms a batch: kills land mid-delivery
        for _ in range(12):
            process = subprocess.Popen(
                [sys.executable, "-c", _DELIVERING, str(path), receiver.url, SECRET],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            arrived = len(receiver.arrivals)
            deadline = time.monotonic() + 30
            while len(receiver.arrivals) < arrived + rng.randint(1, 6) and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.002)
            time.sleep(rng.random() * 0.03)  # anywhere: before, during or after a post, or recording the cursor
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(30)
        finished = subprocess.run(
            [sys.executable, "-c", _DELIVERING, str(path), receiver.url, SECRET],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert finished.returncode == 0, finished.stderr
        assert kills >= 10
        assert_every_event_arrived(path, receiver)
        resent = len(receiver.arrivals) - len({a.msg_id for a in receiver.arrivals})
        assert resent > 0  # some kill landed after a post and before its cursor was recorded: sent again
    assert _state(path)["backlog"] == 0
