"""Upgrades keep data: a file written with schema version 1 (the schema before explanations and one-name
counters) opens with nothing lost; its old FAILED orders read as "explanation not recorded"."""

from __future__ import annotations

import json
import os

import duckdb
import pytest
from conftest import run_cli

from orderly import service
from orderly.explanations import NOT_RECORDED
from orderly.store import open_store, queries
from orderly.store.connection import schema_version
from orderly.store.schema import MIGRATIONS, RUN_COUNTERS

TABLES = ("orders", "order_lines", "stock_items", "stock_snapshots", "status_changes", "rejects", "cursors")


NO_RECONCILE = {
    f"reconcile_{name}": 0 for name in ("remote", "stored", "missing", "added", "changed")
}  # not a reconcile


def build_version_1(path) -> None:
    """What a pipeline run and a reset, then a process run, left in a version-1 file: one snapshot of three
    items, four orders decided, their history, a quarantined record, the cursor, and the runs' counters."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.execute("""
        INSERT INTO runs VALUES
          ('run-1', 'pipeline', NULL, now() - INTERVAL 3 MINUTE, now() - INTERVAL 2 MINUTE, 'COMPLETED',
           3 + 6, 3 + 4, 0 + 1, 2, 2, 0, NULL),
          ('run-2', 'reset-state', NULL, now() - INTERVAL 2 MINUTE, now() - INTERVAL 1 MINUTE, 'COMPLETED',
           0, 0, 0, 0, 0, 4, NULL),
          ('run-3', 'process-all', NULL, now() - INTERVAL 1 MINUTE, now(), 'FAILED', 0, 0, 0, 0, 0, 0,
           'no complete stock snapshot yet');
        INSERT INTO stock_snapshots VALUES (1, 'run-1', now() - INTERVAL 170 SECOND, 3, 3, 0);
        INSERT INTO stock_items VALUES
          (101, 1, 'MUG', 'Mug', 1, 5, '2026-11-20T09:00:00Z', 1),
          (205, 2, 'CAP', 'Cap', 1, 0, '2026-11-20T09:00:00Z', 1),
          (420, 3, 'TOTE', 'Tote', 1, 1, '2026-11-20T09:00:00Z', 1);
        INSERT INTO orders VALUES
          (2, '2026-11-20T09:15:00Z', 'C-1', 2, 2, 11, 'FAILED', 'INSUFFICIENT_STOCK', 'run-1', now()),
          (3, '2026-11-20T09:16:00Z', 'C-2', 1, 1, 12, 'FAILED', 'UNKNOWN_INVENTORY', 'run-1', now()),
          (6, '2026-11-20T09:17:00Z', 'C-3', 1, 2, 13, 'PROCESSED', NULL, 'run-1', now()),
          (10, '2026-11-20T09:18:00Z', 'C-4', 1, 1, 14, 'PROCESSED', NULL, 'run-1', now());
        INSERT INTO order_lines VALUES (2, 0, 101, 1), (2, 1, 205, 1), (3, 0, 999, 1), (6, 0, 101, 2), (10, 0, 420, 1);
        INSERT INTO status_changes VALUES
          ('run-1', 2, now() - INTERVAL 150 SECOND, 'NEW', 'FAILED', 'INSUFFICIENT_STOCK'),
          ('run-1', 3, now() - INTERVAL 150 SECOND, 'NEW', 'FAILED', 'UNKNOWN_INVENTORY'),
          ('run-1', 6, now() - INTERVAL 150 SECOND, 'NEW', 'PROCESSED', NULL),
          ('run-1', 10, now() - INTERVAL 150 SECOND, 'NEW', 'PROCESSED', NULL);
        INSERT INTO rejects VALUES ('run-1', 'order', '5', '{"id": 5, "items": []}', 'items: no lines', now());
        INSERT INTO cursors VALUES ('orders', 10);
    """)
    con.close()


def snapshot(path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in TABLES}
    finally:
        con.close()


def test_a_version_1_file_upgrades_with_nothing_lost(tmp_path):
    path = tmp_path / "old.duckdb"
    build_version_1(path)
    before = snapshot(path)

    with open_store(path, read_only=True) as con:  # a query command is the first to open it
        assert schema_version(con) == len(MIGRATIONS)
        runs = {r["run_id"]: r for r in queries.recent_runs(con)}
        history_2 = queries.order_history(con, 2)
        explained = queries.explain_order(con, 2)
        stock = {s["inventory_id"]: (s["on_hand"], s["allocated"], s["available"]) for s in queries.stock_levels(con)}
        assert len(queries.rejects(con)) == 1

    after = snapshot(path)
    for table in TABLES:
        if table == "status_changes":  # the explanations were not recorded then (NULL); each change is an event,
            # its id in the order the changes were made (the same time here: then as written)
            assert after[table] == [(*row, None, n) for n, row in enumerate(before[table], start=1)]
        elif table == "stock_items":  # one more column: each value was confirmed when its snapshot completed
            completed_at = before["stock_snapshots"][0][2]
            assert after[table] == [(*row, completed_at) for row in before[table]]
        else:
            assert after[table] == before[table], table

    # the old mixed counters split exactly: the stock's share is in its snapshot, repeats are what is left
    assert {k: runs["run-1"][k] for k in RUN_COUNTERS} == {
        "stock_fetched": 3,
        "stock_loaded": 3,
        "stock_rejected": 0,
        "stock_repeated": 0,
        "orders_fetched": 6,
        "orders_loaded": 4,
        "orders_rejected": 1,
        "orders_repeated": 1,
        "processed": 2,
        "failed": 2,
        "waiting": 0,
        "reset": 0,
        **NO_RECONCILE,
        "delivered": 0,
    }
    assert runs["run-2"]["reset"] == 4 and runs["run-2"]["orders_fetched"] == 0
    assert (runs["run-3"]["state"], runs["run-3"]["message"]) == ("FAILED", "no complete stock snapshot yet")
    assert "fetched" not in runs["run-1"]

    assert history_2[0]["details"] is None and history_2[0]["reason"] == "INSUFFICIENT_STOCK"
    assert explained["status"] == "FAILED" and explained["explanation"] is None
    assert explained["decided_run"] == "run-1"
    assert stock == {101: (5, 2, 3), 205: (0, 0, 0), 420: (1, 1, 0)}

    # the upgraded file works on: a reset and a new decision record explanations from now on
    with open_store(path) as con:
        service.reset(con, "run-4", [2])
        service.process(con, "run-5", max_stock_age=900)
        assert queries.explain_order(con, 2)["explanation"] == {
            "short": [{"inventory_id": 205, "needed": 1, "available": 0}]
        }
        assert queries.explain_order(con, 3)["explanation"] is None  # still the old decision


@pytest.mark.slow  # runs the `orderly` executable (tests/tiers.py)
def test_the_command_line_says_an_old_explanation_was_not_recorded(tmp_path):
    path = tmp_path / "old.duckdb"
    build_version_1(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env["ORDERLY_DB"] = str(path)
    human = run_cli(["explain", "3"], env).stdout
    assert f"why: {NOT_RECORDED}" in human
    assert json.loads(run_cli(["explain", "3", "--json"], env).stdout)["explanation"] is None
    assert NOT_RECORDED.split(" (")[0] in run_cli(["history", "2"], env).stdout


@pytest.mark.parametrize("latest_rejected, confirmed_by", [(0, 2), (1, 1)])
def test_an_upgrade_confirms_each_item_no_later_than_a_snapshot_proves(tmp_path, latest_rejected, confirmed_by):
    """An item's value was confirmed when the snapshot that wrote it completed, or later by the latest snapshot
    when that one had every record valid (it named every stored item): an unchanged snapshot never rewrote the
    rows. A latest snapshot with a quarantined record proves nothing about the items it did not write."""
    path = tmp_path / "old.duckdb"
    build_version_1(path)
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO stock_snapshots VALUES (2, 'run-3', now() - INTERVAL 10 SECOND, ?, 3, ?)",
        [3 + latest_rejected, latest_rejected],
    )  # three items loaded either way
    con.close()
    with open_store(path) as con:
        expected = con.execute(
            "SELECT completed_at FROM stock_snapshots WHERE snapshot_id = ?", [confirmed_by]
        ).fetchone()[0]
        confirmed = {row[0] for row in con.execute("SELECT confirmed_at FROM stock_items").fetchall()}
    assert confirmed == {expected}


def test_an_upgraded_store_gives_its_past_decisions_their_events_in_the_order_they_were_made(tmp_path):
    import orjson

    from orderly.feed.body import events_body

    path = tmp_path / "old.duckdb"
    build_version_1(path)
    con = duckdb.connect(str(path))  # a later change written first: ids follow time, not the order rows were written
    con.execute("UPDATE status_changes SET changed_at = changed_at - INTERVAL 1 HOUR WHERE order_id = 10")
    con.close()
    with open_store(path) as con:
        events = orjson.loads(events_body(con, 0, 100)[0])["events"]
        service.reset(con, "run-4", [6])
        after = orjson.loads(events_body(con, 4, 100)[0])["events"]
    assert [(e["id"], e["order_id"], e["status"]) for e in events] == [
        (1, 10, "PROCESSED"),
        (2, 2, "FAILED"),
        (3, 3, "FAILED"),
        (4, 6, "PROCESSED"),
    ]
    assert all(e["explanation"] is None and e["run_id"] == "run-1" for e in events)
    assert [(e["id"], e["order_id"], e["type"]) for e in after] == [(5, 6, "order.reset")]
