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
