"""The DuckDB store on a real file: schema, snapshots, order ingestion, decisions, history, queries.
Decisions go through orderly.service, the one path production takes (read, decide, write in one transaction)."""

from __future__ import annotations

import pytest

from orderly import service
from orderly.boundary.records import records_digest
from orderly.boundary.validation import validate_orders, validate_stock
from orderly.errors import UnknownOrders
from orderly.store import open_store, queries, writes
from orderly.store.connection import migrate, schema_version
from orderly.store.schema import MIGRATIONS, RUN_COUNTERS

STAMP = "2026-11-20T09:00:00Z"


NO_RECONCILE = {
    f"reconcile_{name}": 0 for name in ("remote", "stored", "missing", "added", "changed")
}  # not a reconcile


def stock_rec(inv, qty, product=1, warehouse=1):
    return {
        "inventory_id": inv,
        "product_id": product,
        "sku": f"SKU-{inv}",
        "product_name": f"Item {inv}",
        "warehouse_id": warehouse,
        "quantity": qty,
        "updated_at": STAMP,
    }


def order_rec(oid, *lines, customer="C-1"):
    return {
        "id": oid,
        "placed_at": "2026-11-20T09:15:00Z",
        "customer_id": customer,
        "items": [{"inventory_id": i, "quantity": q} for i, q in lines],
    }


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


def process(con, run_id="r", order_ids=None):
    return service.process(con, run_id, order_ids, max_stock_age=900)


def available(con):
    items, amounts, _stale = queries.stock_to_decide(con, max_stock_age=900)
    return dict(zip(items.tolist(), amounts.tolist(), strict=True))


@pytest.fixture
def con(tmp_path):
    with open_store(tmp_path / "store.duckdb") as c:
        yield c


def test_schema_is_created_versioned_and_migrate_is_idempotent(tmp_path):
    path = tmp_path / "fresh.duckdb"
    with open_store(path) as c:
        assert schema_version(c) == len(MIGRATIONS)
        tables = {r[0] for r in c.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {
            "orders",
            "order_lines",
            "stock_items",
            "stock_snapshots",
            "status_changes",
            "runs",
            "rejects",
            "cursors",
            "schema_version",
        } <= tables
        migrate(c)
        migrate(c)
        assert c.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] == len(MIGRATIONS)
        c.execute("INSERT INTO cursors VALUES ('orders', 42)")
    with open_store(path) as c:  # reopening keeps the data and does not migrate again
        assert schema_version(c) == len(MIGRATIONS)
        assert queries.orders_cursor(c) == 42


def test_a_stock_snapshot_replaces_the_items(con):
    counts = load_stock(con, [stock_rec(101, 5), stock_rec(102, 0), stock_rec(103, 7)])
    assert counts["stock_loaded"] == 3 and counts["stock_rejected"] == 0
    assert on_hand(con) == {101: 5, 102: 0, 103: 7}
    load_stock(con, [stock_rec(101, 2), stock_rec(104, 1)])
    assert on_hand(con) == {101: 2, 104: 1}  # a clean snapshot drops the items it no longer has
    snap = queries.latest_snapshot(con)
    assert snap["snapshot_id"] == 2 and snap["loaded"] == 2 and snap["received"] == 2
    assert 0 <= queries.snapshot_age(con) < 60


def test_an_unchanged_snapshot_is_a_new_snapshot_and_any_change_is_written(con):
    """An incremental run re-reads the same snapshot: it is not rewritten, but it is a new complete snapshot
    (its age counts from now). A change in any one field, a dropped item or a new one is written as before."""

    def full(con):
        return con.execute(
            "SELECT inventory_id, product_id, sku, product_name, warehouse_id, quantity, "
            "epoch_us(updated_at) FROM stock_items ORDER BY 1"
        ).fetchall()

    snapshot = [stock_rec(101, 5), stock_rec(102, 0), stock_rec(103, 7)]
    load_stock(con, snapshot)
    before = full(con)
    con.execute("UPDATE stock_snapshots SET completed_at = completed_at - INTERVAL 2 HOUR")
    assert queries.snapshot_age(con) > 7000
    counts = load_stock(con, snapshot)
    assert counts == {"stock_fetched": 3, "stock_loaded": 3, "stock_rejected": 0, "stock_repeated": 0}
    assert full(con) == before
    snap = queries.latest_snapshot(con)
    assert snap["snapshot_id"] == 2 and 0 <= queries.snapshot_age(con) < 60  # fresh: processing may use it

    def values(con):
        return con.execute(
            "SELECT inventory_id, product_id, warehouse_id, quantity, updated_at::VARCHAR FROM stock_items ORDER BY 1"
        ).fetchall()

    later = "2026-11-21T09:00:00Z"
    changes = [  # each differs from the one before it in one field of one item
        [stock_rec(101, 5, product=2), stock_rec(102, 0), stock_rec(103, 7)],
        [stock_rec(101, 5, product=2), stock_rec(102, 0), stock_rec(103, 7, warehouse=3)],
        [stock_rec(101, 5, product=2), stock_rec(102, 1), stock_rec(103, 7, warehouse=3)],
        [stock_rec(101, 5, product=2), stock_rec(102, 1), {**stock_rec(103, 7, warehouse=3), "updated_at": later}],
    ]
    for records in changes:
        load_stock(con, records)
        assert values(con) == [
            (
                r["inventory_id"],
                r["product_id"],
                r["warehouse_id"],
                r["quantity"],
                "2026-11-21 09:00:00+00" if r["updated_at"] == later else "2026-11-20 09:00:00+00",
            )
            for r in records
        ], records
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 1)])  # a clean snapshot without 103 drops it
    assert sorted(on_hand(con)) == [101, 102]
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 1), stock_rec(104, 2)])  # and one with a new item adds it
    assert on_hand(con) == {101: 5, 102: 1, 104: 2}
    load_stock(con, [stock_rec(101, -1), stock_rec(102, 1)])  # 101 quarantined: 101 and 104 keep their values
    assert on_hand(con) == {101: 5, 102: 1, 104: 2}


def test_the_same_clean_records_again_are_a_new_snapshot_without_a_load(con):
    """An incremental run re-reads the whole snapshot: the same records as the latest clean snapshot are recorded
    as a new snapshot (fresh, same counts) without validating or loading them; anything else is not."""
    records = [stock_rec(101, 5), stock_rec(102, 0), stock_rec(101, 5)]  # one identical repeat
    digest = records_digest(records)
    v = validate_stock(records)
    first = writes.load_stock_snapshot(con, "r1", v.items, v.rejects, v.received, v.repeated, digest)
    assert first == {"stock_fetched": 3, "stock_loaded": 2, "stock_rejected": 0, "stock_repeated": 1}
    writes.start_run(con, "r2", "pipeline")
    con.execute("UPDATE stock_snapshots SET completed_at = completed_at - INTERVAL 2 HOUR")
    assert writes.repeat_stock_snapshot(con, "r2", records_digest([stock_rec(101, 5), stock_rec(102, 1)])) is None
    assert queries.snapshot_age(con) > 7000  # a refused repeat writes nothing

    assert writes.repeat_stock_snapshot(con, "r2", digest) == first
    assert queries.latest_snapshot(con)["snapshot_id"] == 2 and 0 <= queries.snapshot_age(con) < 60
    assert on_hand(con) == {101: 5, 102: 0}
    assert con.execute(
        "SELECT stock_fetched, stock_loaded, stock_rejected, stock_repeated FROM runs WHERE run_id = 'r2'"
    ).fetchall() == [(3, 2, 0, 1)]

    load_stock(con, [stock_rec(101, 5), stock_rec(102, -1)])  # a snapshot with a quarantined record: no digest
    assert writes.repeat_stock_snapshot(con, None, digest) is None  # the latest snapshot is not those records
    v = validate_stock([stock_rec(102, -1)])
    writes.load_stock_snapshot(
        con, None, v.items, v.rejects, v.received, v.repeated, records_digest([stock_rec(102, -1)])
    )
    assert writes.repeat_stock_snapshot(con, None, records_digest([stock_rec(102, -1)])) is None  # kept only if clean


def test_the_digest_tells_apart_what_validation_tells_apart():
    base = [stock_rec(101, 5)]
    assert records_digest(base) == records_digest([stock_rec(101, 5)])
    variants = [[{**base[0], "quantity": value}] for value in (True, 5.0, "5", None, 6)]
    variants.append([dict(reversed(base[0].items()))])  # same fields, another order
    variants.append(base * 2)
    assert len({records_digest(v) for v in [base, *variants]}) == len(variants) + 1
    from orderly.boundary.remote import NotUnicode

    assert records_digest([{**base[0], "sku": NotUnicode("\ud800")}]) is None
    assert records_digest([{**base[0], "quantity": 2**64}]) is None


def test_a_quarantined_stock_record_keeps_the_last_good_value(con):
    load_stock(con, [stock_rec(101, 5), stock_rec(102, 3)])
    counts = load_stock(con, [stock_rec(101, -4), stock_rec(102, 1)])
    assert counts == {"stock_fetched": 2, "stock_loaded": 1, "stock_rejected": 1, "stock_repeated": 0}
    assert on_hand(con) == {101: 5, 102: 1}
    rejects = queries.rejects(con)
    assert len(rejects) == 1 and rejects[0]["source"] == "stock" and rejects[0]["record_key"] == "101"
    assert "quantity -4 is below 0" in rejects[0]["reasons"]


def test_no_stock_snapshot_means_no_age(con):
    assert queries.snapshot_age(con) is None
    assert queries.latest_snapshot(con) is None


def test_orders_append_and_the_cursor_advances_with_them(con):
    counts = load_orders(con, [order_rec(2, (101, 1), (205, 1)), order_rec(3, (999, 1))])
    assert counts["orders_loaded"] == 2 and queries.orders_cursor(con) == 3
    counts = load_orders(con, [order_rec(4, (310, 4))])
    assert counts["orders_loaded"] == 1 and queries.orders_cursor(con) == 4
    rows = queries.orders_status(con)
    assert [(r["order_id"], r["status"], r["items"], r["total_qty"], r["reason"]) for r in rows] == [
        (2, "NEW", 2, 2, None),
        (3, "NEW", 1, 1, None),
        (4, "NEW", 1, 4, None),
    ]
    lines = con.execute("SELECT order_id, line_no, inventory_id, quantity FROM order_lines ORDER BY 1, 2").fetchall()
    assert lines == [(2, 0, 101, 1), (2, 1, 205, 1), (3, 0, 999, 1), (4, 0, 310, 4)]


def test_the_cursor_never_goes_back(con):
    load_orders(con, [order_rec(5, (1, 1))])
    load_orders(con, [], cursor_to=2)
    assert queries.orders_cursor(con) == 5


def test_an_unchanged_repeat_is_a_no_op(con):
    load_orders(con, [order_rec(2, (101, 1))])
    before = con.execute("SELECT * FROM orders").fetchall(), con.execute("SELECT * FROM order_lines").fetchall()
    counts = load_orders(con, [order_rec(2, (101, 1))])
    assert counts == {"orders_fetched": 1, "orders_loaded": 0, "orders_rejected": 0, "orders_repeated": 1}
    after = con.execute("SELECT * FROM orders").fetchall(), con.execute("SELECT * FROM order_lines").fetchall()
    assert after == before
    assert queries.rejects(con) == []


@pytest.mark.parametrize(
    "changed",
    [
        order_rec(2, (101, 2)),  # another quantity
        order_rec(2, (101, 1), (205, 1)),  # another line
        order_rec(2, (101, 1), customer="C-9"),  # another customer
    ],
)
def test_a_changed_repeat_keeps_the_first_copy_and_is_a_conflict(con, changed):
    load_orders(con, [order_rec(2, (101, 1))])
    counts = load_orders(con, [changed, order_rec(3, (101, 1))])
    assert counts["orders_loaded"] == 1 and counts["orders_rejected"] == 1
    assert con.execute("SELECT customer_id, items, total_qty FROM orders WHERE order_id = 2").fetchall() == [
        ("C-1", 1, 1)
    ]
    assert con.execute("SELECT inventory_id, quantity FROM order_lines WHERE order_id = 2").fetchall() == [(101, 1)]
    (reject,) = queries.rejects(con)
    assert reject["record_key"] == "2" and "conflict" in reject["reasons"]


def test_copies_in_one_batch_follow_the_same_rule_as_copies_across_runs(con):
    # An overlap of one (each page re-sends the previous page's last order) and a changed re-send in one batch.
    batch = [
        order_rec(1, (101, 1)),
        order_rec(2, (101, 2)),
        order_rec(2, (101, 2)),
        order_rec(3, (101, 3)),
        order_rec(3, (101, 9)),
        order_rec(3, (101, 3)),
    ]
    counts = load_orders(con, batch)
    assert counts == {"orders_fetched": 6, "orders_loaded": 3, "orders_repeated": 2, "orders_rejected": 1}
    assert con.execute("SELECT order_id, total_qty FROM orders ORDER BY 1").fetchall() == [(1, 1), (2, 2), (3, 3)]
    assert con.execute("SELECT order_id, quantity FROM order_lines ORDER BY 1").fetchall() == [(1, 1), (2, 2), (3, 3)]
    (reject,) = queries.rejects(con)
    assert reject["record_key"] == "3" and '"quantity":9' in reject["raw"].replace(" ", "")
    again = load_orders(con, batch)  # a later run: every copy now meets the stored one
    assert again == {"orders_fetched": 6, "orders_loaded": 0, "orders_repeated": 5, "orders_rejected": 1}


def test_the_fingerprint_is_the_one_earlier_versions_stored(con):
    """Files written before issue 13 hold fingerprints computed in SQL over the lines grouped per copy; the loader
    now builds the lines list in Arrow. The two must agree bit for bit, or every later unchanged repeat of an old
    order would be quarantined as a conflict. Awkward values on purpose: sub-microsecond and offset timestamps,
    repeated items, the largest integers, lines given out of order, a unicode customer."""
    records = [
        order_rec(1, (101, 1)),
        {**order_rec(2, (7, 2**63 - 1)), "placed_at": "2026-11-20T09:15:00.123456789Z"},
        {**order_rec(4, (7, 1)), "placed_at": "1900-01-01T00:00:00.000000500Z"},
        {**order_rec(3, (5, 1), (5, 1), (2, 3)), "placed_at": "2026-11-20T11:15:00+02:00", "customer_id": "Zoë ☃"},
        order_rec(2**63 - 1, *[(i, i) for i in range(1, 40)]),
    ]
    v = validate_orders(records)
    lines = v.lines.take(list(range(v.lines.num_rows - 1, -1, -1)))  # the loader must not depend on the lines' order
    writes.load_orders(con, None, v.orders, lines, v.rejects, v.received, 5)
    con.register("o", v.orders)
    con.register("l", v.lines)
    expected = con.execute(
        """
        SELECT o.order_id, hash(o.placed_at, o.customer_id, list([l.inventory_id, l.quantity] ORDER BY l.line_no))
        FROM o JOIN l USING (rec) GROUP BY o.rec, o.order_id, o.placed_at, o.customer_id ORDER BY 1
        """
    ).fetchall()
    assert con.execute("SELECT order_id, fingerprint FROM orders ORDER BY 1").fetchall() == expected
    assert len(expected) == 5
    stored = con.execute("SELECT order_id, epoch_us(placed_at) FROM orders ORDER BY 1").fetchall()
    assert stored == con.execute("SELECT order_id, epoch_us(placed_at) FROM o ORDER BY 1").fetchall()


def test_the_largest_values_fit_every_column_and_sum(con):
    top = 2**63 - 1
    load_stock(con, [stock_rec(101, top)])
    counts = load_orders(con, [order_rec(top, (101, top)), order_rec(5, (101, 2**62), (101, 2**62 - 2), (102, 1))])
    assert counts["orders_loaded"] == 2 and counts["orders_rejected"] == 0
    assert con.execute("SELECT order_id, total_qty FROM orders ORDER BY 1").fetchall() == [(5, top), (top, top)]
    assert queries.orders_cursor(con) == top


def _seedish(con):
    load_stock(con, [stock_rec(101, 5), stock_rec(205, 0), stock_rec(420, 1)])
    load_orders(
        con,
        [
            order_rec(2, (101, 1), (205, 1)),
            order_rec(3, (999, 1)),
            order_rec(6, (101, 2)),
            order_rec(10, (420, 1)),
            order_rec(11, (420, 1)),
            order_rec(12, (101, 1), (101, 2)),
        ],
    )


def test_processing_writes_statuses_history_with_explanations_and_run_counts(con):
    _seedish(con)
    writes.start_run(con, "run-1", "process-all")
    counts = process(con, "run-1")
    assert counts == {"processed": 3, "failed": 3, "waiting": 0}
    assert statuses(con) == {
        2: ("FAILED", "INSUFFICIENT_STOCK"),
        3: ("FAILED", "UNKNOWN_INVENTORY"),
        6: ("PROCESSED", None),
        10: ("PROCESSED", None),
        11: ("FAILED", "INSUFFICIENT_STOCK"),
        12: ("PROCESSED", None),
    }
    history = con.execute(
        "SELECT run_id, order_id, from_status, to_status, reason, details FROM status_changes ORDER BY order_id"
    ).fetchall()
    assert history == [
        (
            "run-1",
            2,
            "NEW",
            "FAILED",
            "INSUFFICIENT_STOCK",
            '{"short":[{"inventory_id":205,"needed":1,"available":0}]}',
        ),
        ("run-1", 3, "NEW", "FAILED", "UNKNOWN_INVENTORY", '{"unknown":[999]}'),
        ("run-1", 6, "NEW", "PROCESSED", None, None),
        ("run-1", 10, "NEW", "PROCESSED", None, None),
        (
            "run-1",
            11,
            "NEW",
            "FAILED",
            "INSUFFICIENT_STOCK",
            '{"short":[{"inventory_id":420,"needed":1,"available":0}]}',
        ),
        ("run-1", 12, "NEW", "PROCESSED", None, None),
    ]
    writes.finish_run(con, "run-1", "COMPLETED")
    (run,) = queries.recent_runs(con)
    assert (run["run_id"], run["state"], run["processed"], run["failed"]) == ("run-1", "COMPLETED", 3, 3)
    stock = {s["inventory_id"]: (s["on_hand"], s["allocated"], s["available"]) for s in queries.stock_levels(con)}
    assert stock == {101: (5, 5, 0), 205: (0, 0, 0), 420: (1, 1, 0)}
    # a second pass has nothing NEW to decide
    assert process(con, "run-2") == {"processed": 0, "failed": 0, "waiting": 0}


def test_history_and_explain_read_the_recorded_explanation(con):
    _seedish(con)
    process(con, "run-1")
    (change,) = queries.order_history(con, 2)
    assert change["details"] == {"short": [{"inventory_id": 205, "needed": 1, "available": 0}]}
    assert set(change) == {"run_id", "changed_at", "from_status", "to_status", "reason", "details"}
    explained = queries.explain_order(con, 2)
    assert list(explained) == [
        "order_id",
        "status",
        "reason",
        "items",
        "total_qty",
        "lines",
        "explanation",
        "decided_at",
        "decided_run",
    ]
    assert (explained["status"], explained["reason"], explained["items"], explained["total_qty"]) == (
        "FAILED",
        "INSUFFICIENT_STOCK",
        2,
        2,
    )
    assert explained["lines"] == [
        {"line_no": 0, "inventory_id": 101, "quantity": 1, "on_hand": 5, "allocated": 5, "available": 0},
        {"line_no": 1, "inventory_id": 205, "quantity": 1, "on_hand": 0, "allocated": 0, "available": 0},
    ]
    assert explained["explanation"] == {"short": [{"inventory_id": 205, "needed": 1, "available": 0}]}
    assert explained["decided_run"] == "run-1" and explained["decided_at"] == change["changed_at"]
    unknown = queries.explain_order(con, 3)
    assert unknown["explanation"] == {"unknown": [999]}
    assert unknown["lines"] == [
        {"line_no": 0, "inventory_id": 999, "quantity": 1, "on_hand": None, "allocated": None, "available": None}
    ]
    processed = queries.explain_order(con, 6)
    assert processed["explanation"] is None and processed["decided_run"] == "run-1"
    assert queries.explain_order(con, 999) is None
    service.reset(con, "run-2", [2])
    again_new = queries.explain_order(con, 2)
    assert again_new["status"] == "NEW" and again_new["explanation"] is None and again_new["decided_at"] is None


def test_reset_releases_stock_and_a_second_pass_decides_the_same(con):
    _seedish(con)
    process(con, "run-1")
    first = statuses(con)
    writes.start_run(con, "run-2", "reset-state")
    assert service.reset(con, "run-2") == {"reset": 6}
    assert set(statuses(con).values()) == {("NEW", None)}
    assert all(s["allocated"] == 0 for s in queries.stock_levels(con))
    assert available(con) == {101: 5, 205: 0, 420: 1}
    assert queries.recent_runs(con)[0]["reset"] == 6
    process(con, "run-3")
    assert statuses(con) == first
    history = queries.order_history(con, 6)
    assert [(h["run_id"], h["from_status"], h["to_status"], h["reason"]) for h in history] == [
        ("run-1", "NEW", "PROCESSED", None),
        ("run-2", "PROCESSED", "NEW", "RESET"),
        ("run-3", "NEW", "PROCESSED", None),
    ]


def test_a_targeted_reset_puts_back_only_the_matching_orders(con):
    _seedish(con)
    process(con, "run-1")
    assert service.reset(con, "r", status="FAILED", reason="INSUFFICIENT_STOCK") == {"reset": 2}
    assert statuses(con) == {
        2: ("NEW", None),
        3: ("FAILED", "UNKNOWN_INVENTORY"),
        6: ("PROCESSED", None),
        10: ("PROCESSED", None),
        11: ("NEW", None),
        12: ("PROCESSED", None),
    }
    assert service.reset(con, "r", status="PROCESSED", order_ids=[6, 2]) == {"reset": 1}  # 2 is NEW already
    assert statuses(con)[6] == ("NEW", None) and statuses(con)[10] == ("PROCESSED", None)
    assert service.reset(con, "r", reason="unknown_inventory") == {"reset": 1}
    assert statuses(con)[3] == ("NEW", None)
    from orderly.errors import BadArgument

    with pytest.raises(BadArgument, match="status 'NEW' cannot be reset"):  # a mistake, not a run resetting nothing
        service.reset(con, "r", status="NEW")
    with pytest.raises(BadArgument, match="unknown status 'DONE'"):
        service.reset(con, "r", status="DONE")
    with pytest.raises(BadArgument, match="unknown reason"):
        service.reset(con, "r", reason="LATE")


def test_retry_what_lacked_stock_once_stock_arrives(con):
    _seedish(con)
    process(con, "run-1")
    load_stock(con, [stock_rec(101, 6), stock_rec(205, 3), stock_rec(420, 2)])  # a delivery
    service.reset(con, "r", status="FAILED", reason="INSUFFICIENT_STOCK")
    assert process(con, "run-2") == {"processed": 2, "failed": 0, "waiting": 0}
    assert statuses(con)[2] == ("PROCESSED", None) and statuses(con)[11] == ("PROCESSED", None)
    assert statuses(con)[3] == ("FAILED", "UNKNOWN_INVENTORY")


def test_a_dry_run_decides_as_the_real_run_and_writes_nothing(con, tmp_path):
    _seedish(con)
    path = tmp_path / "store.duckdb"
    con.close()
    before = path.read_bytes()
    with open_store(path, read_only=True) as ro:
        preview = service.process(ro, "dry", max_stock_age=900, dry_run=True)
    assert path.read_bytes() == before and not path.with_suffix(".duckdb.wal").exists()
    with open_store(path) as rw:
        assert statuses(rw) == dict.fromkeys((2, 3, 6, 10, 11, 12), ("NEW", None))
        counts = process(rw, "real")
        history = queries.order_history(rw, 2) + queries.order_history(rw, 3)
        real = [{k: h[k] for k in ("from_status", "to_status", "reason", "details")} for h in history]
        decided = statuses(rw)
    assert {k: preview[k] for k in ("processed", "failed")} == {"processed": 3, "failed": 3}
    assert counts == {"processed": 3, "failed": 3, "waiting": 0}
    assert {c["order_id"]: (c["to_status"], c["reason"]) for c in preview["changes"]} == decided
    assert [
        {k: c[k] for k in ("from_status", "to_status", "reason", "details")}
        for c in preview["changes"]
        if c["order_id"] in (2, 3)
    ] == real


@pytest.mark.parametrize("per_chunk", [1, 2, 4])
def test_a_backlog_decided_in_chunks_is_decided_as_in_one_pass(tmp_path, monkeypatch, per_chunk):
    """The process step decides NEW orders a chunk at a time (service.ORDERS_PER_CHUNK), each chunk from what
    the ones before it left: statuses, history with explanations, counts and dry-run preview as in one pass."""

    def outcome(path, chunk, order_ids=None):
        monkeypatch.setattr(service, "ORDERS_PER_CHUNK", chunk)
        with open_store(path) as c:
            _seedish(c)
            load_orders(c, [order_rec(13, (101, 1)), order_rec(14, (101, 1), (420, 1)), order_rec(15, (205, 1))])
            preview = service.process(c, "dry", order_ids, max_stock_age=900, dry_run=True)
            counts = process(c, "real", order_ids)
            history = [
                (h["order_id"], h["to_status"], h["reason"], h["details"])
                for h in c.execute("SELECT * FROM status_changes ORDER BY order_id").df().to_dict("records")
            ]
            return counts, preview, statuses(c), history, available(c)

    chunked = outcome(tmp_path / "chunked.duckdb", per_chunk)
    assert chunked == outcome(tmp_path / "one-pass.duckdb", 10**6)
    assert chunked[0] == {"processed": 3, "failed": 6, "waiting": 0}
    named = [14, 2, 12, 3]
    assert outcome(tmp_path / "named-chunked.duckdb", per_chunk, named) == outcome(
        tmp_path / "named.duckdb", 10**6, named
    )


def test_named_orders_only(con):
    _seedish(con)
    process(con, "r", [11])
    assert statuses(con)[11] == ("PROCESSED", None)  # 10 is still NEW, so 11 gets the tote
    assert statuses(con)[10] == ("NEW", None)
    process(con, "r")
    assert statuses(con)[10] == ("FAILED", "INSUFFICIENT_STOCK")
    service.reset(con, "r", [11])
    assert statuses(con)[11] == ("NEW", None) and statuses(con)[10] == ("FAILED", "INSUFFICIENT_STOCK")
    with pytest.raises(UnknownOrders) as unknown:  # the one check: the command line's and the use cases'
        service.named_orders(con, [10, 999, 11, 5])
    assert unknown.value.order_ids == [5, 999] and str(unknown.value) == "no such order: 5, 999; nothing was changed"


def test_available_counts_only_processed_orders(con):
    _seedish(con)
    assert available(con) == {101: 5, 205: 0, 420: 1}
    process(con, "r", [6])
    assert available(con) == {101: 3, 205: 0, 420: 1}


def test_a_stale_running_run_becomes_crashed(con):
    con.execute(
        "INSERT INTO runs (run_id, flow, pid, started_at, state) VALUES ('old', 'pipeline', NULL, now(), 'RUNNING')"
    )
    writes.start_run(con, "new", "pipeline")
    states = {r["run_id"]: r["state"] for r in queries.recent_runs(con)}
    assert states == {"old": "CRASHED", "new": "RUNNING"}


def test_a_short_run_id_is_as_long_as_it_takes_to_tell_the_runs_apart(con):
    """Prefect's UUIDv7 run ids share 8 hex digits when started within a minute; the length holds for every
    recorded run (not only those named), so a short id typed back names one run."""
    far, near, twin = (
        "0a1b2c3d-0000-7000-8000-000000000000",
        "01a23ac7-1f2e-7c3d-8a4b-5c6d7e8f9a01",
        "01a23ac7-1f2e-7d00-9000-000000000000",
    )  # twin: the same millisecond as near
    assert queries.short_run_length(con, []) == queries.short_run_length(con, [None]) == 8
    for run_id in (far, near):
        writes.start_run(con, run_id, "pipeline")
    assert queries.short_run_length(con, [far, near]) == 8
    writes.start_run(con, "01a23ac7-9b80-7e21-b3c4-d5e6f7a8b902", "process-all")
    assert queries.short_run_length(con, [far]) == 8
    assert queries.short_run_length(con, [far, near]) == 10  # past the dash: 01a23ac7-1, not 01a23ac7-
    writes.start_run(con, twin, "reset-state")
    assert queries.short_run_length(con, [near]) == 16  # 01a23ac7-1f2e-7c: never ends on a dash either
    assert queries.short_run_length(con, ["01a23ac7-1f2e-7c3d-8a4b-5c6d7e8f9a01"[:-1] + "2"]) == 36  # not recorded
    assert [r["run_id"] for r in queries.runs_starting(con, "01a23ac7-1f2e-7")] == [twin, near]  # newest first


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
    assert process(con) == {"processed": 0, "failed": 2, "waiting": 0}
    assert statuses(con) == {2: ("FAILED", "UNKNOWN_INVENTORY"), 3: ("FAILED", "UNKNOWN_INVENTORY")}
    assert queries.order_history(con, 3)[0]["details"] == {"unknown": [101, 102]}


def test_run_counters_have_one_name_each_from_load_to_runs(con):
    writes.start_run(con, "run-1", "pipeline")
    load_stock(con, [stock_rec(101, 5), stock_rec(102, -1)], run_id="run-1")
    load_orders(con, [order_rec(2, (101, 1)), order_rec(3, (101, 0))], run_id="run-1")
    load_orders(con, [order_rec(2, (101, 1)), order_rec(4, (101, 9))], run_id="run-1")
    process(con, "run-1")
    (run,) = queries.recent_runs(con)
    assert {name: run[name] for name in RUN_COUNTERS} == {
        "stock_fetched": 2,
        "stock_loaded": 1,
        "stock_rejected": 1,
        "stock_repeated": 0,
        "orders_fetched": 4,
        "orders_loaded": 2,
        "orders_rejected": 1,
        "orders_repeated": 1,
        "processed": 1,
        "failed": 1,
        "waiting": 0,
        "reset": 0,
        **NO_RECONCILE,
        "delivered": 0,
    }


# ---- exact integers end to end through the store (issue 9, case 3) ------------------------------

BIG = 2**63 - 1


@pytest.mark.parametrize(
    "on_hand, quantities, expected",
    [
        (2**53 + 1, [2**53 + 1, 1], ["PROCESSED", "FAILED"]),
        (2**53, [2**53, 1], ["PROCESSED", "FAILED"]),
        (BIG, [BIG, 1], ["PROCESSED", "FAILED"]),
        (BIG, [2**62, 2**62, 2**62, 2**62], ["PROCESSED", "FAILED", "FAILED", "FAILED"]),  # demand 2**64
        (BIG, [2**62 - 1, 2**62, 1], ["PROCESSED", "PROCESSED", "FAILED"]),
    ],
)
def test_huge_quantities_are_decided_exactly_through_the_store(con, on_hand, quantities, expected):
    load_stock(con, [stock_rec(7, on_hand)])
    load_orders(con, [order_rec(i, (7, q)) for i, q in enumerate(quantities, start=1)])
    process(con)
    assert [statuses(con)[i][0] for i in range(1, len(quantities) + 1)] == expected
    (item,) = queries.stock_levels(con)
    taken = sum(q for q, status in zip(quantities, expected, strict=True) if status == "PROCESSED")
    assert (item["on_hand"], item["allocated"], item["available"]) == (on_hand, taken, on_hand - taken)
    assert type(item["available"]) is int and item["available"] >= 0
    failed = expected.index("FAILED") + 1
    assert queries.explain_order(con, failed)["explanation"] == {
        "short": [{"inventory_id": 7, "needed": quantities[failed - 1], "available": on_hand - taken}]
    }
