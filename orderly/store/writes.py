"""The write path: each function is one unit of work in one transaction, set-based over frames."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from domain.allocation import DemandColumns
from orderly.store.connection import first_row, scalar, transaction

ORDERS_CURSOR = "orders"


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


_COUNTS = ("fetched", "loaded", "rejected", "processed", "failed", "reset")


def _add_counts(con: duckdb.DuckDBPyConnection, run_id: str | None, counts: dict[str, int]) -> None:
    """Add to a run's counters; called inside the caller's transaction so counts commit with the data."""
    if run_id is None:
        return
    unknown = set(counts) - set(_COUNTS)
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
    con: duckdb.DuckDBPyConnection, run_id: str | None, items: pd.DataFrame, rejects: pd.DataFrame, received: int
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
        _add_counts(con, run_id, {"fetched": received, "loaded": len(items), "rejected": len(rejects)})
    return {"received": received, "loaded": len(items), "rejected": len(rejects), "snapshot_id": snapshot_id}


# ---- orders ---------------------------------------------------------------------------------

def orders_cursor(con: duckdb.DuckDBPyConnection) -> int:
    row = first_row(con, "SELECT after_id FROM cursors WHERE name = ?", [ORDERS_CURSOR])
    return row[0] if row else 0


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
        _add_counts(con, run_id, {"fetched": received, "loaded": loaded, "rejected": len(all_rejects)})
    return {"received": received, "loaded": loaded, "rejected": len(all_rejects), "unchanged": repeats}


# ---- processing -----------------------------------------------------------------------------

def stock_snapshot_age(con: duckdb.DuckDBPyConnection) -> float | None:
    """Seconds since the last complete stock snapshot was loaded here, or None if there is none."""
    age = scalar(con, "SELECT epoch(now()) - epoch(max(completed_at)) FROM stock_snapshots")
    return None if age is None else float(age)


def available_stock(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """available(item) = on-hand in the latest snapshot - quantities in orders PROCESSED now."""
    rows = con.execute(
        """
        SELECT s.inventory_id, s.quantity - coalesce(a.allocated, 0)
        FROM stock_items s LEFT JOIN (
            SELECT l.inventory_id, sum(l.quantity) AS allocated
            FROM order_lines l JOIN orders o USING (order_id)
            WHERE o.status = 'PROCESSED' GROUP BY l.inventory_id
        ) a USING (inventory_id)
        """
    ).fetchnumpy()
    keys = next(iter(rows.values())).tolist() if rows else []
    values = list(rows.values())[1].tolist() if rows else []
    return dict(zip(keys, values))


def _filter_ids(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | None) -> str:
    """Register the named ids (if any) and return the SQL condition that keeps only them."""
    if order_ids is None:
        return "TRUE"
    con.register("named_ids", pa.table({"order_id": pa.array(list(order_ids), pa.int64())}))
    return "order_id IN (SELECT order_id FROM named_ids)"


def unknown_order_ids(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int]) -> list[int]:
    condition = _filter_ids(con, order_ids)
    try:
        return [
            row[0]
            for row in con.execute(
                f"SELECT order_id FROM named_ids WHERE {condition} "
                "AND order_id NOT IN (SELECT order_id FROM orders) ORDER BY 1"
            ).fetchall()
        ]
    finally:
        con.unregister("named_ids")


def new_order_demands(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | None = None) -> DemandColumns:
    """NEW orders ascending by id as columns (order_id, inventory_id, summed quantity), one row per
    (order, item); iterating the result yields (order_id, {item: summed quantity})."""
    condition = _filter_ids(con, order_ids)
    try:
        # Lines sorted, not grouped: summing an order's repeated item in numpy is cheaper than a GROUP BY.
        columns = con.execute(
            f"""
            SELECT l.order_id, l.inventory_id, l.quantity
            FROM order_lines l SEMI JOIN (SELECT order_id FROM orders WHERE status = 'NEW' AND {condition}) n
                 ON l.order_id = n.order_id
            ORDER BY l.order_id, l.inventory_id
            """
        ).fetchnumpy()
    finally:
        if order_ids is not None:
            con.unregister("named_ids")
    ids, items, quantities = columns["order_id"], columns["inventory_id"], columns["quantity"]
    if len(ids) > 1:
        first = np.r_[True, (ids[1:] != ids[:-1]) | (items[1:] != items[:-1])]
        if not first.all():  # lines naming the same item are summed
            starts = np.flatnonzero(first)
            ids, items, quantities = ids[starts], items[starts], np.add.reduceat(quantities, starts)
    return DemandColumns(ids, items, quantities)


def _decided_orders(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | None) -> list[tuple[int, str]]:
    condition = _filter_ids(con, order_ids)
    try:
        return con.execute(
            f"SELECT order_id, status FROM orders WHERE status <> 'NEW' AND {condition} ORDER BY order_id"
        ).fetchall()
    finally:
        if order_ids is not None:
            con.unregister("named_ids")


def decide_new_orders(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    order_ids: Sequence[int] | None,
    decide: Callable[[Iterator[tuple[int, dict[int, int]]], dict[int, int]], list],
) -> dict[str, int]:
    """One unit of work: read availability and the NEW orders, let `decide` rule, write statuses and history."""
    with transaction(con):
        changes = decide(new_order_demands(con, order_ids), available_stock(con))
        if hasattr(changes, "codes"):  # a columnar decision (domain.services.StatusChanges)
            processed = changes.processed
        else:
            processed = sum(1 for change in changes if change[2] == "PROCESSED")
        counts = {"processed": processed, "failed": len(changes) - processed}
        _record_status_changes(con, run_id, changes, counts)
    return counts


def reset_decided_orders(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    order_ids: Sequence[int] | None,
    reset: Callable[[list[tuple[int, str]]], list],
) -> dict[str, int]:
    """One unit of work: every PROCESSED or FAILED order (all, or those named) back to NEW, with history."""
    with transaction(con):
        changes = reset(_decided_orders(con, order_ids))
        counts = {"reset": len(changes)}
        _record_status_changes(con, run_id, changes, counts)
    return counts


def _record_status_changes(
    con: duckdb.DuckDBPyConnection, run_id: str | None, changes: list, counts: dict[str, int]
) -> None:
    """Apply status changes (order_id, from, to, reason rows) and their history; the caller holds the transaction."""
    if len(changes) and hasattr(changes, "codes"):  # columnar (domain.services.StatusChanges): no row objects
        codes = pa.array(changes.codes)
        labels = changes.LABELS
        table = pa.table(
            {
                "order_id": pa.array(changes.order_ids, pa.int64()),
                "from_status": pa.array(["NEW"] * len(labels), pa.string()).take(codes),
                "to_status": pa.array([label[0] for label in labels], pa.string()).take(codes),
                "reason": pa.array([label[1] for label in labels], pa.string()).take(codes),
            }
        )
    elif changes:
        order_id, from_status, to_status, reason = (list(column) for column in zip(*changes))
        table = pa.table(
            {
                "order_id": pa.array(order_id, pa.int64()),
                "from_status": pa.array(from_status, pa.string()),
                "to_status": pa.array(to_status, pa.string()),
                "reason": pa.array(reason, pa.string()),
            }
        )
    if len(changes):
        con.register("changes", table)
        try:
            con.execute(
                """
                UPDATE orders SET status = c.to_status,
                                  reason = CASE WHEN c.to_status = 'FAILED' THEN c.reason END
                FROM changes c WHERE orders.order_id = c.order_id
                """
            )
            con.execute(
                "INSERT INTO status_changes SELECT ?, order_id, now(), from_status, to_status, reason FROM changes",
                [run_id or "local"],
            )
        finally:
            con.unregister("changes")
    _add_counts(con, run_id, counts)
