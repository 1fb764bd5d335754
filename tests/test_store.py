"""The DuckDB store on a real file: schema, snapshots, order ingestion, decisions, history, queries."""

from __future__ import annotations

import pytest

from domain import decide_orders, reset_orders
from orderly.store import open_store, queries, writes
from orderly.store.connection import migrate, schema_version
from orderly.store.schema import MIGRATIONS
from orderly.validation import validate_orders, validate_stock

STAMP = "2026-11-20T09:00:00Z"


def stock_rec(inv, qty, product=1, warehouse=1):
    return {"inventory_id": inv, "product_id": product, "sku": f"SKU-{inv}", "product_name": f"Item {inv}",
            "warehouse_id": warehouse, "quantity": qty, "updated_at": STAMP}


def order_rec(oid, *lines, customer="C-1"):
    return {"id": oid, "placed_at": "2026-11-20T09:15:00Z", "customer_id": customer,
            "items": [{"inventory_id": i, "quantity": q} for i, q in lines]}


def load_stock(con, records, run_id=None):
    v = validate_stock(records)
    return writes.load_stock_snapshot(con, run_id, v.items, v.rejects, v.received)


def load_orders(con, records, run_id=None, cursor_to=None):
    v = validate_orders(records)
    if cursor_to is None:
        cursor_to = max((r["id"] for r in records if isinstance(r.get("id"), int)), default=0)
    return writes.load_orders(con, run_id, v.orders, v.lines, v.rejects, v.received, cursor_to)


def on_hand(con):
    return dict(con.execute("SELECT inventory_id, quantity FROM stock_items ORDER BY 1").fetchall())


def statuses(con):
    return {r["order_id"]: (r["status"], r["reason"]) for r in queries.orders_status(con)}


@pytest.fixture
def con(tmp_path):
    with open_store(tmp_path / "store.duckdb") as c:
        yield c


def test_schema_is_created_versioned_and_migrate_is_idempotent(tmp_path):
    path = tmp_path / "fresh.duckdb"
    with open_store(path) as c:
        assert schema_version(c) == len(MIGRATIONS)
        tables = {r[0] for r in c.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"orders", "order_lines", "stock_items", "stock_snapshots", "status_changes", "runs", "rejects",
                "cursors", "schema_version"} <= tables
        migrate(c)
        migrate(c)
        assert c.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] == len(MIGRATIONS)
        c.execute("INSERT INTO cursors VALUES ('orders', 42)")
    with open_store(path) as c:  # reopening keeps the data and does not migrate again
        assert schema_version(c) == len(MIGRATIONS)
        assert writes.orders_cursor(c) == 42


def test_a_stock_snapshot_replaces_the_items(con):
    counts = load_stock(con, [stock_rec(101, 5), stock_rec(102, 0), stock_rec(103, 7)])
    assert counts["loaded"] == 3 and counts["rejected"] == 0
    assert on_hand(con) == {101: 5, 102: 0, 103: 7}
    load_stock(con, [stock_rec(101, 2), stock_rec(104, 1)])
    assert on_hand(con) == {101: 2, 104: 1}  # a clean snapshot drops the items it no longer has
    snap = queries.latest_snapshot(con)
    assert snap["snapshot_id"] == 2 and snap["loaded"] == 2 and snap["received"] == 2
    assert 0 <= writes.stock_snapshot_age(con) < 60


def test_a_quarantined_stock_record_keeps_the_last_good_value(con):
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3)])
    counts = load_stock(con, [stock_rec(101, -4), stock_rec(102, 1)])
    assert counts == {"received": 2, "loaded": 1, "rejected": 1, "snapshot_id": 2}
    assert on_hand(con) == {101: 5, 102: 1}
    rejects = queries.rejects(con)
    assert len(rejects) == 1 and rejects[0]["source"] == "stock" and rejects[0]["record_key"] == "101"
    assert "quantity -4 is below 0" in rejects[0]["reasons"]


def test_no_stock_snapshot_means_no_age(con):
    assert writes.stock_snapshot_age(con) is None
    assert queries.latest_snapshot(con) is None


def test_orders_append_and_the_cursor_advances_with_them(con):
    counts = load_orders(con, [order_rec(2, (101, 1), (205, 1)), order_rec(3, (999, 1))])
    assert counts["loaded"] == 2 and writes.orders_cursor(con) == 3
    counts = load_orders(con, [order_rec(4, (310, 4))])
    assert counts["loaded"] == 1 and writes.orders_cursor(con) == 4
    rows = queries.orders_status(con)
    assert [(r["order_id"], r["status"], r["items"], r["total_qty"], r["reason"]) for r in rows] == [
        (2, "NEW", 2, 2, None), (3, "NEW", 1, 1, None), (4, "NEW", 1, 4, None)]
    lines = con.execute("SELECT order_id, line_no, inventory_id, quantity FROM order_lines ORDER BY 1, 2").fetchall()
    assert lines == [(2, 0, 101, 1), (2, 1, 205, 1), (3, 0, 999, 1), (4, 0, 310, 4)]


def test_the_cursor_never_goes_back(con):
    load_orders(con, [order_rec(5, (1, 1))])
    load_orders(con, [], cursor_to=2)
    assert writes.orders_cursor(con) == 5


def test_an_unchanged_repeat_is_a_no_op(con):
    load_orders(con, [order_rec(2, (101, 1))])
    before = con.execute("SELECT * FROM orders").fetchall(), con.execute("SELECT * FROM order_lines").fetchall()
    counts = load_orders(con, [order_rec(2, (101, 1))])
    assert counts["loaded"] == 0 and counts["unchanged"] == 1 and counts["rejected"] == 0
    after = con.execute("SELECT * FROM orders").fetchall(), con.execute("SELECT * FROM order_lines").fetchall()
    assert after == before
    assert queries.rejects(con) == []


@pytest.mark.parametrize("changed", [
    order_rec(2, (101, 2)),                 # another quantity
    order_rec(2, (101, 1), (205, 1)),       # another line
    order_rec(2, (101, 1), customer="C-9"),  # another customer
])
def test_a_changed_repeat_keeps_the_first_copy_and_is_a_conflict(con, changed):
    load_orders(con, [order_rec(2, (101, 1))])
    counts = load_orders(con, [changed, order_rec(3, (101, 1))])
    assert counts["loaded"] == 1 and counts["rejected"] == 1
    assert con.execute("SELECT customer_id, items, total_qty FROM orders WHERE order_id = 2").fetchall() == [
        ("C-1", 1, 1)]
    assert con.execute("SELECT inventory_id, quantity FROM order_lines WHERE order_id = 2").fetchall() == [(101, 1)]
    (reject,) = queries.rejects(con)
    assert reject["record_key"] == "2" and "conflict" in reject["reasons"]


def test_copies_in_one_batch_follow_the_same_rule_as_copies_across_runs(con):
    # An overlap of one (each page re-sends the previous page's last order) and a changed re-send in one batch.
    batch = [order_rec(1, (101, 1)), order_rec(2, (101, 2)), order_rec(2, (101, 2)), order_rec(3, (101, 3)),
             order_rec(3, (101, 9)), order_rec(3, (101, 3))]
    counts = load_orders(con, batch)
    assert counts == {"received": 6, "loaded": 3, "unchanged": 2, "rejected": 1}
    assert con.execute("SELECT order_id, total_qty FROM orders ORDER BY 1").fetchall() == [(1, 1), (2, 2), (3, 3)]
    assert con.execute("SELECT order_id, quantity FROM order_lines ORDER BY 1").fetchall() == [(1, 1), (2, 2), (3, 3)]
    (reject,) = queries.rejects(con)
    assert reject["record_key"] == "3" and '"quantity":9' in reject["raw"].replace(" ", "")
    again = load_orders(con, batch)  # a later run: every copy now meets the stored one
    assert again == {"received": 6, "loaded": 0, "unchanged": 5, "rejected": 1}


def test_the_largest_values_fit_every_column_and_sum(con):
    top = 2**63 - 1
    load_stock(con, [stock_rec(101, top)])
    counts = load_orders(con, [order_rec(top, (101, top)), order_rec(5, (101, 2**62), (101, 2**62 - 2), (102, 1))])
    assert counts["loaded"] == 2 and counts["rejected"] == 0
    assert con.execute("SELECT order_id, total_qty FROM orders ORDER BY 1").fetchall() == [(5, top), (top, top)]
    assert writes.orders_cursor(con) == top


def _seedish(con):
    load_stock(con, [stock_rec(101, 5), stock_rec(205, 0), stock_rec(420, 1)])
    load_orders(con, [order_rec(2, (101, 1), (205, 1)), order_rec(3, (999, 1)), order_rec(6, (101, 2)),
                      order_rec(10, (420, 1)), order_rec(11, (420, 1)), order_rec(12, (101, 1), (101, 2))])


def test_decide_new_orders_writes_statuses_history_and_run_counts(con):
    _seedish(con)
    writes.start_run(con, "run-1", "process-all")
    counts = writes.decide_new_orders(con, "run-1", None, decide_orders)
    assert counts == {"processed": 3, "failed": 3}
    assert statuses(con) == {
        2: ("FAILED", "INSUFFICIENT_STOCK"), 3: ("FAILED", "UNKNOWN_INVENTORY"), 6: ("PROCESSED", None),
        10: ("PROCESSED", None), 11: ("FAILED", "INSUFFICIENT_STOCK"), 12: ("PROCESSED", None)}
    history = con.execute(
        "SELECT run_id, order_id, from_status, to_status, reason FROM status_changes ORDER BY order_id").fetchall()
    assert history == [("run-1", 2, "NEW", "FAILED", "INSUFFICIENT_STOCK"),
                       ("run-1", 3, "NEW", "FAILED", "UNKNOWN_INVENTORY"),
                       ("run-1", 6, "NEW", "PROCESSED", None), ("run-1", 10, "NEW", "PROCESSED", None),
                       ("run-1", 11, "NEW", "FAILED", "INSUFFICIENT_STOCK"), ("run-1", 12, "NEW", "PROCESSED", None)]
    writes.finish_run(con, "run-1", "COMPLETED")
    (run,) = queries.recent_runs(con)
    assert (run["run_id"], run["state"], run["processed"], run["failed"]) == ("run-1", "COMPLETED", 3, 3)
    stock = {s["inventory_id"]: (s["on_hand"], s["allocated"], s["available"]) for s in queries.stock_levels(con)}
    assert stock == {101: (5, 5, 0), 205: (0, 0, 0), 420: (1, 1, 0)}
    # a second pass has nothing NEW to decide
    assert writes.decide_new_orders(con, "run-2", None, decide_orders) == {"processed": 0, "failed": 0}


def test_reset_releases_stock_and_a_second_pass_decides_the_same(con):
    _seedish(con)
    writes.decide_new_orders(con, "run-1", None, decide_orders)
    first = statuses(con)
    writes.start_run(con, "run-2", "reset-state")
    assert writes.reset_decided_orders(con, "run-2", None, reset_orders) == {"reset": 6}
    assert set(statuses(con).values()) == {("NEW", None)}
    assert all(s["allocated"] == 0 for s in queries.stock_levels(con))
    assert writes.available_stock(con) == {101: 5, 205: 0, 420: 1}
    assert queries.recent_runs(con)[0]["reset"] == 6
    writes.decide_new_orders(con, "run-3", None, decide_orders)
    assert statuses(con) == first
    history = queries.order_history(con, 6)
    assert [(h["run_id"], h["from_status"], h["to_status"], h["reason"]) for h in history] == [
        ("run-1", "NEW", "PROCESSED", None), ("run-2", "PROCESSED", "NEW", "RESET"),
        ("run-3", "NEW", "PROCESSED", None)]


def test_named_orders_only(con):
    _seedish(con)
    writes.decide_new_orders(con, "r", [11], decide_orders)
    assert statuses(con)[11] == ("PROCESSED", None)  # 10 is still NEW, so 11 gets the tote
    assert statuses(con)[10] == ("NEW", None)
    writes.decide_new_orders(con, "r", None, decide_orders)
    assert statuses(con)[10] == ("FAILED", "INSUFFICIENT_STOCK")
    writes.reset_decided_orders(con, "r", [11], reset_orders)
    assert statuses(con)[11] == ("NEW", None) and statuses(con)[10] == ("FAILED", "INSUFFICIENT_STOCK")
    assert writes.unknown_order_ids(con, [10, 999, 11, 5]) == [5, 999]


def test_available_counts_only_processed_orders(con):
    _seedish(con)
    assert writes.available_stock(con) == {101: 5, 205: 0, 420: 1}
    writes.decide_new_orders(con, "r", [6], decide_orders)
    assert writes.available_stock(con) == {101: 3, 205: 0, 420: 1}


def test_a_stale_running_run_becomes_crashed(con):
    con.execute("INSERT INTO runs (run_id, flow, pid, started_at, state) VALUES ('old', 'pipeline', NULL, now(), 'RUNNING')")
    writes.start_run(con, "new", "pipeline")
    states = {r["run_id"]: r["state"] for r in queries.recent_runs(con)}
    assert states == {"old": "CRASHED", "new": "RUNNING"}


def test_queries_on_an_order_without_history(con):
    _seedish(con)
    assert queries.order_exists(con, 2) and not queries.order_exists(con, 999)
    assert queries.order_history(con, 2) == []
    assert queries.status_counts(con) == {"NEW": 6}
    assert [r["order_id"] for r in queries.orders_status(con, limit=2)] == [11, 12]


def test_an_empty_snapshot_makes_every_order_unknown(con):
    load_stock(con, [stock_rec(101, 5)])
    load_orders(con, [order_rec(2, (101, 1)), order_rec(3, (101, 1), (102, 1))])
    load_stock(con, [])  # a complete, clean, empty snapshot: the warehouse has nothing any more
    assert on_hand(con) == {}
    assert writes.decide_new_orders(con, "r", None, decide_orders) == {"processed": 0, "failed": 2}
    assert statuses(con) == {2: ("FAILED", "UNKNOWN_INVENTORY"), 3: ("FAILED", "UNKNOWN_INVENTORY")}
