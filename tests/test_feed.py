"""The decision feed's outbox and pull feed: every status change is an event with an ascending id, written in the
same statement as the change; the events carry what a fulfilment or customer-service system needs; the pull feed
pages through them by id. Real DuckDB files, no HTTP (the delivery's tests are in test_feed_delivery.py)."""

from __future__ import annotations

import orjson
import pytest
from cli_store import build_store
from hypothesis import given, settings
from hypothesis import strategies as st
from tiers import examples

from orderly import service
from orderly.feed.body import EVENT_FIELDS, events_body
from orderly.store import open_store, queries, writes
from orderly.store.connection import transaction


def _events(con, after: int = 0, limit: int = 10_000) -> list[dict]:
    return orjson.loads(events_body(con, after, limit)[0])["events"]


@pytest.fixture
def seeded(tmp_path):
    path = tmp_path / "orderly.duckdb"
    build_store(path)
    return path


def test_every_status_change_is_one_event_with_an_ascending_id(seeded):
    with open_store(seeded) as con:
        history = con.execute("SELECT order_id, to_status, event_id FROM status_changes ORDER BY event_id").fetchall()
        assert [row[2] for row in history] == list(range(1, len(history) + 1))  # dense, from 1
        assert [row[0] for row in history] == sorted(row[0] for row in history)  # a decision's events by order id
        decided = len(history)
        statuses = dict(con.execute("SELECT order_id, status FROM orders").fetchall())
        assert {row[0]: row[1] for row in history} == statuses
        service.reset(con, "run-reset", [6, 2])
        service.process(con, "run-again", max_stock_age=900)
        later = con.execute(
            "SELECT event_id, order_id, to_status FROM status_changes WHERE event_id > ? ORDER BY event_id", [decided]
        ).fetchall()
    assert [row[0] for row in later] == list(range(decided + 1, decided + 5))
    assert [(row[1], row[2]) for row in later[:2]] == [(2, "NEW"), (6, "NEW")]
    assert {row[1] for row in later[2:]} == {2, 6}


def test_a_dry_run_writes_no_event(seeded):
    with open_store(seeded) as con:
        service.reset(con, "run-reset", [6])
        before = queries.feed_state(con)["newest"]
    with open_store(seeded, read_only=True) as con:
        preview = service.process(con, "dry", max_stock_age=900, dry_run=True)
        assert preview["processed"] + preview["failed"] == 1
        assert queries.feed_state(con)["newest"] == before


def test_a_decision_that_fails_leaves_neither_the_change_nor_its_event(seeded, monkeypatch):
    def die(*args, **kwargs):  # after the status and history statements, inside the same transaction
        raise RuntimeError("the process died mid-transaction")

    with open_store(seeded) as con:
        before = queries.feed_state(con)["newest"]
        monkeypatch.setattr(writes, "_add_counts", die)
        with pytest.raises(RuntimeError):
            service.reset(con, "run-reset", [6])
        assert queries.feed_state(con)["newest"] == before
        assert con.execute("SELECT status FROM orders WHERE order_id = 6").fetchone()[0] == "PROCESSED"
        assert con.execute("SELECT count(*) FROM status_changes WHERE event_id IS NULL").fetchone()[0] == 0


def test_an_event_carries_the_order_its_lines_and_the_explanation(seeded):
    with open_store(seeded) as con:
        events = _events(con)
        by_order = {event["order_id"]: event for event in events}
        for order_id, event in by_order.items():
            explained = queries.explain_order(con, order_id)
            lines = con.execute(
                "SELECT inventory_id, quantity FROM order_lines WHERE order_id = ? ORDER BY line_no", [order_id]
            ).fetchall()
            assert event["status"] == explained["status"] and event["previous_status"] == "NEW"
            assert event["type"] == f"order.{explained['status'].lower()}"
            assert event["reason"] == explained["reason"]
            assert event["explanation"] == explained["explanation"]
            assert [(line["inventory_id"], line["quantity"]) for line in event["lines"]] == lines
            customer = con.execute("SELECT customer_id FROM orders WHERE order_id = ?", [order_id]).fetchone()[0]
            assert event["customer_id"] == customer
            assert event["occurred_at"].endswith("Z") and event["placed_at"].endswith("Z")
        service.reset(con, "run-reset", [2])
        reset = _events(con, after=len(events))
    assert [(e["type"], e["status"], e["previous_status"]) for e in reset] == [("order.reset", "NEW", "FAILED")]
    assert tuple(events[0]) == EVENT_FIELDS  # every field, in the contract's order


def test_text_from_a_remote_stays_one_json_string(tmp_path):
    from cli_store import seed_records

    stock, orders = seed_records()
    orders[0]["customer_id"] = 'C-"quoted"\\ and \u2028 and é'
    path = tmp_path / "orderly.duckdb"
    build_store(path, stock, orders)
    with open_store(path) as con:
        found = {e["order_id"]: e["customer_id"] for e in _events(con)}
    assert found[orders[0]["id"]] == orders[0]["customer_id"]


@pytest.fixture(scope="module")
def decided_twice(tmp_path_factory):
    """The seed decided, then two orders reset and decided again: 19 events, read-only below."""
    path = tmp_path_factory.mktemp("feed") / "orderly.duckdb"
    build_store(path)
    with open_store(path) as con:
        service.reset(con, "run-reset", [6, 2])
        service.process(con, "run-again", max_stock_age=900)
    return path


@settings(max_examples=examples(20), deadline=None)
@given(limits=st.lists(st.integers(1, 7), min_size=1, max_size=20))
def test_the_pull_feed_pages_through_every_event_once_in_order(decided_twice, limits):
    with open_store(decided_twice, read_only=True) as con:
        newest = queries.feed_state(con)["newest"]
        seen, after = [], 0
        for limit in limits * 10:
            page, next_after = events_body(con, after, limit)
            ids = [event["id"] for event in orjson.loads(page)["events"]]
            assert len(ids) <= limit and ids == list(range(after + 1, after + 1 + len(ids)))
            assert next_after == (ids[-1] if ids else None)
            seen += ids
            after = next_after or after
    assert newest == 19 and seen == list(range(1, min(newest, len(seen)) + 1))


def test_a_plan_is_kept_until_delivered_so_a_batch_sent_again_is_the_same(seeded):
    with open_store(seeded) as con:
        newest = queries.feed_state(con)["newest"]
        with transaction(con):
            store_id, done, plan_to, batch = writes.plan_delivery(con, batch=4, window=10)
        assert (done, plan_to, batch) == (0, min(newest, 10), 4)
        service.reset(con, "run-reset", [6])  # decided since: not part of this plan
        with transaction(con):  # the same plan again, whatever the batch setting says now
            assert writes.plan_delivery(con, batch=2, window=100) == (store_id, 0, plan_to, 4)
            writes.record_delivered(con, None, 4)
        with transaction(con):
            assert writes.plan_delivery(con, batch=2, window=100) == (store_id, 4, plan_to, 4)
            writes.record_delivered(con, None, plan_to)
        with transaction(con):  # done: a new plan, with the batch size of now, up to the newest event
            assert writes.plan_delivery(con, batch=2, window=100) == (store_id, plan_to, newest + 1, 2)
        state = queries.feed_state(con)
    assert state["delivered_to"] == plan_to and state["backlog"] == newest + 1 - plan_to
