"""The write path: set-based over frames and columns; each function is one unit of work or part of the caller's."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import duckdb
import numpy as np
import pandas as pd

from orderly.store.connection import scalar, transaction
from orderly.store.queries import ORDERS_CURSOR, decision_rows
from orderly.store.schema import RUN_COUNTERS


# ---- runs -----------------------------------------------------------------------------------

def start_run(con: duckdb.DuckDBPyConnection, run_id: str, flow: str) -> None:
    """Record a run as RUNNING; runs left RUNNING by a process that no longer exists become CRASHED."""
    import psutil  # only writers need it

    with transaction(con):
        stale = con.execute("SELECT run_id, pid FROM runs WHERE state = 'RUNNING'").fetchall()
        dead = [rid for rid, pid in stale if pid is None or not psutil.pid_exists(pid) or pid == os.getpid()]
        if dead:
            con.execute(
                "UPDATE runs SET state = 'CRASHED', message = 'the process ended before the run finished' "
                "WHERE list_contains(?, run_id)",
                [dead],
            )
        con.execute(
            "INSERT INTO runs (run_id, flow, pid, started_at, state) VALUES (?, ?, ?, now(), 'RUNNING') "
            "ON CONFLICT (run_id) DO UPDATE SET state = 'RUNNING', pid = excluded.pid",
            [run_id, flow, os.getpid()],
        )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, state: str, message: str | None = None) -> None:
    with transaction(con):
        con.execute(
            "UPDATE runs SET state = ?, ended_at = now(), message = coalesce(?, message) WHERE run_id = ?",
            [state, message, run_id],
        )


def _add_counts(con: duckdb.DuckDBPyConnection, run_id: str | None, counts: dict[str, int]) -> None:
    """Add to a run's counters; called inside the caller's transaction so counts commit with the data."""
    if run_id is None:
        return
    unknown = set(counts) - set(RUN_COUNTERS)
    if unknown:
        raise ValueError(f"unknown run counters: {sorted(unknown)}")
    if not counts:
        return
    assignments = ", ".join(f"{name} = {name} + ?" for name in counts)
    con.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*counts.values(), run_id])


# ---- rejects --------------------------------------------------------------------------------

REJECT_COLUMNS = ["source", "record_key", "raw", "reasons"]


def _insert_rejects(con: duckdb.DuckDBPyConnection, run_id: str | None, rejects: pd.DataFrame) -> None:
    if rejects.empty:
        return
    con.register("incoming_rejects", rejects[REJECT_COLUMNS])
    try:
        con.execute(
            "INSERT INTO rejects SELECT ?, source, record_key, raw, reasons, now() FROM incoming_rejects",
            [run_id],
        )
    finally:
        con.unregister("incoming_rejects")


# ---- stock ----------------------------------------------------------------------------------

def load_stock_snapshot(
    con: duckdb.DuckDBPyConnection, run_id: str | None, items: pd.DataFrame, rejects: pd.DataFrame, received: int,
    repeated: int = 0,
) -> dict[str, int]:
    """Replace the stock with a complete snapshot; a quarantined item keeps its last good value.

    An item absent from the snapshot is dropped only when every record of the snapshot was valid: a
    quarantined record may be that item in disguise (no id, an id that is not a number, a neighbour's id
    copied over its own), so while any record is quarantined the items not seen keep their last good value.
    """
    with transaction(con):
        snapshot_id = scalar(con, "SELECT coalesce(max(snapshot_id), 0) + 1 FROM stock_snapshots")
        con.register("incoming_stock", items)
        try:
            con.execute(
                """
                DELETE FROM stock_items
                WHERE inventory_id IN (SELECT inventory_id FROM incoming_stock)
                   OR (? AND inventory_id NOT IN (SELECT inventory_id FROM incoming_stock))
                """,
                [len(rejects) == 0],
            )
            con.execute(
                """
                INSERT INTO stock_items
                SELECT inventory_id, product_id, sku, product_name, warehouse_id, quantity, updated_at, ?
                FROM incoming_stock
                """,
                [snapshot_id],
            )
        finally:
            con.unregister("incoming_stock")
        _insert_rejects(con, run_id, rejects)
        con.execute(
            "INSERT INTO stock_snapshots VALUES (?, ?, now(), ?, ?, ?)",
            [snapshot_id, run_id, received, len(items), len(rejects)],
        )
        counts = {"stock_fetched": received, "stock_loaded": len(items), "stock_rejected": len(rejects),
                  "stock_repeated": repeated}
        _add_counts(con, run_id, counts)
    return counts


# ---- orders ---------------------------------------------------------------------------------

def load_orders(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    orders: pd.DataFrame,
    lines: pd.DataFrame,
    rejects: pd.DataFrame,
    received: int,
    cursor_to: int,
) -> dict[str, int]:
    """Append new orders, skip unchanged repeats, quarantine changed repeats; advance the cursor with them.

    One rule for every copy of an id, wherever it falls (the same page, the same batch, a later run): the
    first valid copy received is kept; a later copy with the same content is a no-op ("unchanged"); one
    with different content is quarantined as a conflict. `rec` is a copy's position in the batch.
    """
    with transaction(con):
        con.register("incoming_orders", orders)
        con.register("incoming_lines", lines)
        try:
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE staged AS
                SELECT o.rec, o.order_id, o.placed_at, o.customer_id,
                       count(*)::INTEGER AS items, sum(l.quantity)::BIGINT AS total_qty,
                       hash(o.placed_at, o.customer_id,
                            list([l.inventory_id, l.quantity] ORDER BY l.line_no)) AS fingerprint
                FROM incoming_orders o JOIN incoming_lines l USING (rec)
                GROUP BY o.rec, o.order_id, o.placed_at, o.customer_id
                """
            )
            # Each copy against the copy that stands: the stored one, else the batch's first.
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE judged AS
                SELECT s.*,
                       CASE WHEN k.order_id IS NULL AND s.rec = f.first_rec THEN 'new'
                            WHEN s.fingerprint = coalesce(k.fingerprint, f.fingerprint) THEN 'unchanged'
                            ELSE 'conflict' END AS verdict
                FROM staged s
                JOIN (SELECT order_id, min(rec) AS first_rec, arg_min(fingerprint, rec) AS fingerprint
                      FROM staged GROUP BY order_id) f USING (order_id)
                LEFT JOIN orders k USING (order_id)
                """
            )
            # The record as JSON only for conflicts (rare): building it for every order cost a third of a load.
            conflicts = con.execute(
                """
                SELECT 'order' AS source, j.order_id::VARCHAR AS record_key,
                       to_json({'id': j.order_id, 'placed_at': j.placed_at, 'customer_id': j.customer_id,
                                'items': list({'inventory_id': l.inventory_id, 'quantity': l.quantity}
                                              ORDER BY l.line_no)})::VARCHAR AS raw,
                       'conflict: order ' || j.order_id || ' arrived again with different content; '
                       || 'the first copy is kept' AS reasons
                FROM judged j JOIN incoming_lines l USING (rec)
                WHERE j.verdict = 'conflict'
                GROUP BY j.rec, j.order_id, j.placed_at, j.customer_id
                ORDER BY j.rec
                """
            ).df()
            verdicts = dict(con.execute("SELECT verdict, count(*) FROM judged GROUP BY verdict").fetchall())
            con.execute(
                """
                INSERT INTO orders (order_id, placed_at, customer_id, items, total_qty, fingerprint,
                                    status, reason, loaded_run, loaded_at)
                SELECT order_id, placed_at, customer_id, items, total_qty, fingerprint, 'NEW', NULL, ?, now()
                FROM judged WHERE verdict = 'new' ORDER BY order_id
                """,
                [run_id],
            )
            con.execute(
                """
                INSERT INTO order_lines
                SELECT l.order_id, l.line_no, l.inventory_id, l.quantity
                FROM incoming_lines l SEMI JOIN (SELECT rec FROM judged WHERE verdict = 'new') j ON j.rec = l.rec
                ORDER BY l.order_id, l.line_no
                """
            )
        finally:
            con.unregister("incoming_orders")
            con.unregister("incoming_lines")
        loaded, repeats = verdicts.get("new", 0), verdicts.get("unchanged", 0)
        all_rejects = pd.concat([rejects[REJECT_COLUMNS], conflicts], ignore_index=True) if len(conflicts) else rejects
        _insert_rejects(con, run_id, all_rejects)
        con.execute(
            "INSERT INTO cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET after_id = greatest(after_id, excluded.after_id)",
            [ORDERS_CURSOR, cursor_to],
        )
        con.execute("DROP TABLE staged; DROP TABLE judged")
        counts = {"orders_fetched": received, "orders_loaded": loaded, "orders_rejected": len(all_rejects),
                  "orders_repeated": repeats}
        _add_counts(con, run_id, counts)
    return counts


# ---- decisions ------------------------------------------------------------------------------

def record_decisions(
    con: duckdb.DuckDBPyConnection, run_id: str | None, counts: Mapping[str, int], *,
    order_ids: np.ndarray, changes: np.ndarray, labels: Mapping[str, Sequence[str | None]],
    unknown: Mapping[str, np.ndarray], short: Mapping[str, np.ndarray],
) -> None:
    """Write decided status changes, process and reset alike: each order's new status and reason, one history
    row each with its explanation, and the run's counters. Part of the caller's transaction."""
    if len(order_ids):
        with decision_rows(con, order_ids, changes, labels, unknown, short) as decided:
            con.execute(
                f"""
                UPDATE orders SET status = d.to_status, reason = d.order_reason
                FROM {decided} d WHERE orders.order_id = d.order_id
                """
            )
            con.execute(
                f"""
                INSERT INTO status_changes (run_id, order_id, changed_at, from_status, to_status, reason, details)
                SELECT ?, order_id, now(), from_status, to_status, reason, details FROM {decided}
                """,
                [run_id or "local"],
            )
    _add_counts(con, run_id, dict(counts))
