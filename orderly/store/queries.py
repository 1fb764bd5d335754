"""The read path: what the query commands show, as plain rows (no pandas, so they answer fast)."""

from __future__ import annotations

from typing import Any

import duckdb


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def orders_status(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> list[dict[str, Any]]:
    """The orders table, ascending by id (the latest `limit` orders when given)."""
    sql = "SELECT order_id, status, items, total_qty, reason FROM orders ORDER BY order_id"
    if limit is not None:
        sql = f"SELECT * FROM (SELECT order_id, status, items, total_qty, reason FROM orders ORDER BY order_id DESC LIMIT {int(limit)}) ORDER BY order_id"
    return _rows(con, sql)


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT status, count(*) FROM orders GROUP BY status ORDER BY status").fetchall())


def stock_levels(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """On-hand, allocated (to PROCESSED orders) and available per inventory item."""
    return _rows(
        con,
        """
        SELECT s.inventory_id, s.product_id, s.sku, s.product_name, s.warehouse_id,
               s.quantity AS on_hand,
               coalesce(a.allocated, 0)::BIGINT AS allocated,
               (s.quantity - coalesce(a.allocated, 0))::BIGINT AS available
        FROM stock_items s LEFT JOIN (
            SELECT l.inventory_id, sum(l.quantity) AS allocated
            FROM order_lines l JOIN orders o USING (order_id)
            WHERE o.status = 'PROCESSED' GROUP BY l.inventory_id
        ) a USING (inventory_id)
        ORDER BY s.inventory_id
        """,
    )


def latest_snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    rows = _rows(
        con,
        """
        SELECT snapshot_id, completed_at, received, loaded, rejected,
               epoch(now()) - epoch(completed_at) AS age_seconds
        FROM stock_snapshots ORDER BY snapshot_id DESC LIMIT 1
        """,
    )
    return rows[0] if rows else None


def order_history(con: duckdb.DuckDBPyConnection, order_id: int) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        SELECT run_id, changed_at, from_status, to_status, reason
        FROM status_changes WHERE order_id = ? ORDER BY changed_at, rowid
        """,
        [order_id],
    )


def order_exists(con: duckdb.DuckDBPyConnection, order_id: int) -> bool:
    return bool(con.execute("SELECT count(*) FROM orders WHERE order_id = ?", [order_id]).fetchall()[0][0])


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        SELECT run_id, flow, started_at, ended_at,
               epoch(ended_at) - epoch(started_at) AS duration_s, state,
               fetched, loaded, rejected, processed, failed, reset, message
        FROM runs ORDER BY started_at DESC LIMIT ?
        """,
        [limit],
    )


def rejects(con: duckdb.DuckDBPyConnection, limit: int = 1000, run_id: str | None = None) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        SELECT run_id, rejected_at, source, record_key, reasons, raw
        FROM rejects WHERE ? IS NULL OR run_id = ?
        ORDER BY rejected_at DESC, rowid DESC LIMIT ?
        """,
        [run_id, run_id, limit],
    )


# ---- the web page's reads (orderly ui): pages by primary key, never the whole table ----------------

STATUSES = ("NEW", "PROCESSED", "FAILED")
REASONS = ("UNKNOWN_INVENTORY", "INSUFFICIENT_STOCK")


def _order_filter(status: str | None, reason: str | None) -> tuple[str, list[Any]]:
    """SQL condition and parameters for the page's filters; values are bound, never spliced."""
    conditions, params = ["TRUE"], []
    if status is not None:
        conditions.append("status = ?")
        params.append(status)
    if reason is not None:
        conditions.append("reason = ?")
        params.append(reason)
    return " AND ".join(conditions), params


def _exists(con: duckdb.DuckDBPyConnection, condition: str, params: list[Any]) -> bool:
    return bool(con.execute(f"SELECT EXISTS (SELECT 1 FROM orders WHERE {condition})", params).fetchall()[0][0])


def orders_page(
    con: duckdb.DuckDBPyConnection,
    *,
    status: str | None = None,
    reason: str | None = None,
    after: int | None = None,
    before: int | None = None,
    last: bool = False,
    limit: int = 50,
) -> dict[str, Any]:
    """One page of the orders table, ascending by id, by keyset on the primary key: the orders after `after`
    (or the first ones), or the ones before `before` (or the last ones, `last`). Also how many match the
    filter and how many matching orders come before this page, so a reader knows where it is."""
    where, params = _order_filter(status, reason)
    columns = "order_id, status, items, total_qty, reason"
    backward = before is not None or last
    if backward:
        bound = "" if before is None else " AND order_id < ?"
        rows = _rows(con, f"SELECT {columns} FROM orders WHERE {where}{bound} ORDER BY order_id DESC LIMIT ?",
                     [*params, *([] if before is None else [before]), limit + 1])
        more = len(rows) > limit
        rows = rows[:limit][::-1]
    else:
        bound = "" if after is None else " AND order_id > ?"
        rows = _rows(con, f"SELECT {columns} FROM orders WHERE {where}{bound} ORDER BY order_id LIMIT ?",
                     [*params, *([] if after is None else [after]), limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
    matching = con.execute(f"SELECT count(*) FROM orders WHERE {where}", params).fetchall()[0][0]
    if rows:
        first, final = rows[0]["order_id"], rows[-1]["order_id"]
        has_prev = more if backward else _exists(con, f"{where} AND order_id < ?", [*params, first])
        has_next = more if not backward else _exists(con, f"{where} AND order_id > ?", [*params, final])
        offset = con.execute(f"SELECT count(*) FROM orders WHERE {where} AND order_id < ?",
                             [*params, first]).fetchall()[0][0]
    else:
        has_prev = has_next = False
        offset = matching if not backward else 0
    return {"orders": rows, "matching": matching, "offset": offset, "has_prev": has_prev, "has_next": has_next}


def explain_order(con: duckdb.DuckDBPyConnection, order_id: int) -> dict[str, Any] | None:
    """Why an order has its status: its lines with each item's current stock, and when it was decided.
    `explanation` (the unknown or short items recorded at decision time) is None until the store keeps it."""
    found = _rows(con, "SELECT order_id, status, reason, items, total_qty FROM orders WHERE order_id = ?",
                  [order_id])
    if not found:
        return None
    order = found[0]
    lines = _rows(
        con,
        """
        WITH mine AS (SELECT line_no, inventory_id, quantity FROM order_lines WHERE order_id = ?),
        allocated AS (
            SELECT l.inventory_id, sum(l.quantity)::BIGINT AS allocated
            FROM order_lines l JOIN orders o USING (order_id)
            WHERE o.status = 'PROCESSED' AND l.inventory_id IN (SELECT inventory_id FROM mine)
            GROUP BY l.inventory_id
        )
        SELECT m.line_no, m.inventory_id, m.quantity, s.quantity AS on_hand,
               CASE WHEN s.inventory_id IS NULL THEN NULL ELSE coalesce(a.allocated, 0) END AS allocated,
               (s.quantity - coalesce(a.allocated, 0))::BIGINT AS available
        FROM mine m LEFT JOIN stock_items s USING (inventory_id) LEFT JOIN allocated a USING (inventory_id)
        ORDER BY m.line_no
        """,
        [order_id],
    )
    decided = _rows(
        con,
        """
        SELECT changed_at AS decided_at, run_id AS decided_run FROM status_changes
        WHERE order_id = ? AND to_status = ? AND to_status <> 'NEW'
        ORDER BY changed_at DESC, rowid DESC LIMIT 1
        """,
        [order_id, order["status"]],
    )
    return {
        **order,
        "lines": lines,
        "explanation": None,
        "decided_at": decided[0]["decided_at"] if decided else None,
        "decided_run": decided[0]["decided_run"] if decided else None,
    }


def run_of_process(con: duckdb.DuckDBPyConnection, pid: int, flow: str, since: Any) -> dict[str, Any] | None:
    """The run a given process started for `flow` at or after `since` (how the page finds the run of the
    `orderly process` / `orderly reset` it started), or None while it has not started one yet."""
    rows = _rows(
        con,
        """
        SELECT run_id, flow, started_at, ended_at, state, fetched, loaded, rejected, processed, failed, reset, message
        FROM runs WHERE pid = ? AND flow = ? AND started_at >= ? ORDER BY started_at DESC LIMIT 1
        """,
        [pid, flow, since],
    )
    return rows[0] if rows else None


def run_by_id(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    rows = _rows(
        con,
        """
        SELECT run_id, flow, started_at, ended_at, state, fetched, loaded, rejected, processed, failed, reset, message
        FROM runs WHERE run_id = ?
        """,
        [run_id],
    )
    return rows[0] if rows else None
