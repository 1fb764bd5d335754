"""The read path: what the commands show and what the rule reads, as plain rows and columns (no pandas)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from orderly.store.connection import first_row, registered, scalar
from orderly.store.decided import decision_rows
from orderly.store.schema import ORDERS_CURSOR, RUN_COUNTERS

INT64_MIN = -(2**63)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@contextmanager
def _named_ids(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | None) -> Iterator[str]:
    """The SQL condition on `order_id` that keeps only the named ids (all when None)."""
    if order_ids is None:
        yield "TRUE"
        return
    with registered(con, named_ids=pa.table({"order_id": pa.array(list(order_ids), pa.int64())})):
        yield "order_id IN (SELECT order_id FROM named_ids)"


# ---- orders ---------------------------------------------------------------------------------


def orders_status(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> list[dict[str, Any]]:
    """The orders table, ascending by id (the latest `limit` orders when given)."""
    sql = "SELECT order_id, status, items, total_qty, reason FROM orders ORDER BY order_id"
    if limit is not None:
        sql = (
            "SELECT * FROM (SELECT order_id, status, items, total_qty, reason FROM orders "
            f"ORDER BY order_id DESC LIMIT {int(limit)}) ORDER BY order_id"
        )
    return _rows(con, sql)


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT status, count(*) FROM orders GROUP BY status ORDER BY status").fetchall())


def order_exists(con: duckdb.DuckDBPyConnection, order_id: int) -> bool:
    return bool(scalar(con, "SELECT count(*) FROM orders WHERE order_id = ?", [order_id]))


def orders_cursor(con: duckdb.DuckDBPyConnection) -> int:
    row = first_row(con, "SELECT after_id FROM cursors WHERE name = ?", [ORDERS_CURSOR])
    return row[0] if row else 0


def lookback_after_id(con: duckdb.DuckDBPyConnection, newest: int) -> int:
    """The after_id that reads the `newest` stored orders again, and every id between them: the id of the
    (newest+1)-th newest order, 0 when there are no more than `newest` (read everything again)."""
    row = first_row(con, "SELECT order_id FROM orders ORDER BY order_id DESC LIMIT 1 OFFSET ?", [newest])
    return row[0] if row else 0


def count_stored(con: duckdb.DuckDBPyConnection, order_ids: np.ndarray) -> int:
    """How many of these distinct ids are stored orders."""
    if len(order_ids) == 0:
        return 0
    with registered(con, counted_ids=pa.table({"order_id": pa.array(order_ids, pa.int64())})):
        return int(scalar(con, "SELECT count(*) FROM orders SEMI JOIN counted_ids USING (order_id)"))


# ---- what the rule reads --------------------------------------------------------------------


def new_order_lines_in_chunks(
    con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | None, orders_per_chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The lines of NEW orders (all, or those named) as int64 columns (order_id, inventory_id, quantity), sorted
    by order and item, in chunks of up to `orders_per_chunk` orders, each chunk's ids above the last one's. The
    chunks' id ranges are fixed before the first is read, so writing a chunk's decisions before the next chunk is
    read changes nothing in the chunks still to come."""
    with _named_ids(con, order_ids) as named:
        ids = con.execute(
            f"SELECT order_id FROM orders WHERE status = 'NEW' AND {named} ORDER BY order_id"
        ).fetchnumpy()["order_id"]
        for start in range(0, len(ids), orders_per_chunk):
            low, high = int(ids[start]), int(ids[min(start + orders_per_chunk, len(ids)) - 1])
            columns = con.execute(
                f"""
                SELECT l.order_id, l.inventory_id, l.quantity
                FROM order_lines l SEMI JOIN (SELECT order_id FROM orders
                                              WHERE status = 'NEW' AND {named} AND order_id BETWEEN ? AND ?) n
                     ON l.order_id = n.order_id
                WHERE l.order_id BETWEEN ? AND ?
                ORDER BY l.order_id, l.inventory_id
                """,
                [low, high, low, high],
            ).fetchnumpy()
            yield columns["order_id"], columns["inventory_id"], columns["quantity"]


def stock_to_decide(con: duckdb.DuckDBPyConnection, max_stock_age: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stocked item, what is available of it, and whether it is stale, as columns (inventory_id and
    available int64, stale bool).

    available <= on-hand <= 2**63-1; below, it is bounded by the rule (an order is PROCESSED only within
    what is available), so it fits int64. Were a file ever over-allocated past that, the item would read
    as -2**63 available rather than stop every run: either way no order can take from it.
    Stale: the item's value was last confirmed by a snapshot more than `max_stock_age` seconds ago (its newer
    records were quarantined, or snapshots that could not drop it did not name it), or never. Processing does
    not allocate from a stale item."""
    columns = con.execute(
        f"""
        SELECT a.inventory_id, greatest(a.available, {INT64_MIN})::BIGINT AS available,
               coalesce(epoch(now()) - epoch(s.confirmed_at) > ?, true) AS stale
        FROM stock_available a JOIN stock_items s USING (inventory_id)
        """,
        [float(max_stock_age)],
    ).fetchnumpy()
    return columns["inventory_id"], columns["available"], np.asarray(columns["stale"], dtype=bool)


def decided_orders(
    con: duckdb.DuckDBPyConnection,
    order_ids: Sequence[int] | None = None,
    status: str | None = None,
    reason: str | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Orders that are not NEW (all, those named, those with this status and/or reason): (ids, statuses)."""
    with _named_ids(con, order_ids) as named:
        rows = con.execute(
            f"""
            SELECT order_id, status FROM orders
            WHERE status <> 'NEW' AND {named} AND (? IS NULL OR status = ?) AND (? IS NULL OR reason = ?)
            ORDER BY order_id
            """,
            [status, status, reason, reason],
        ).fetchnumpy()
    return rows["order_id"], rows["status"].tolist()


# ---- decisions: what a dry run would write ------------------------------------------------------


def preview_decisions(con: duckdb.DuckDBPyConnection, **columns: Any) -> list[dict[str, Any]]:
    """What a decision would write, row by row, ascending by order id: for a dry run (writes nothing)."""
    with decision_rows(con, **columns) as decided:
        preview = _rows(
            con, f"SELECT order_id, from_status, to_status, reason, details FROM {decided} ORDER BY order_id"
        )
    for row in preview:
        row["details"] = _parsed(row["details"])
    return preview


def _parsed(details: str | None) -> dict[str, Any] | None:
    return None if details is None else json.loads(details)


# ---- stock ----------------------------------------------------------------------------------


def stock_levels(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """On-hand, allocated (to PROCESSED orders) and available per inventory item."""
    return _rows(
        con,
        """
        SELECT s.inventory_id, s.product_id, s.sku, s.product_name, s.warehouse_id,
               a.on_hand, a.allocated, a.available
        FROM stock_items s JOIN stock_available a USING (inventory_id)
        ORDER BY s.inventory_id
        """,
    )


def item_names(con: duckdb.DuckDBPyConnection, inventory_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """The SKU and product name of each named item in the stock snapshot (an item not in it is absent)."""
    ids = sorted({int(i) for i in inventory_ids})
    if not ids:
        return {}
    rows = con.execute(
        "SELECT inventory_id, sku, product_name FROM stock_items WHERE list_contains(?, inventory_id)", [ids]
    ).fetchall()
    return {inventory_id: (sku, name) for inventory_id, sku, name in rows}


def latest_snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The last complete stock snapshot, with its age in seconds (None: there is none yet)."""
    rows = _rows(
        con,
        """
        SELECT snapshot_id, completed_at, received, loaded, rejected,
               epoch(now()) - epoch(completed_at) AS age_seconds
        FROM stock_snapshots ORDER BY snapshot_id DESC LIMIT 1
        """,
    )
    return rows[0] if rows else None


def snapshot_age(con: duckdb.DuckDBPyConnection) -> float | None:
    snapshot = latest_snapshot(con)
    return None if snapshot is None else float(snapshot["age_seconds"])


# ---- one order ------------------------------------------------------------------------------


def order_history(con: duckdb.DuckDBPyConnection, order_id: int) -> list[dict[str, Any]]:
    """That order's status changes, oldest first; `details` is the recorded explanation (None: not recorded)."""
    rows = _rows(
        con,
        """
        SELECT run_id, changed_at, from_status, to_status, reason, details
        FROM status_changes WHERE order_id = ? ORDER BY changed_at, rowid
        """,
        [order_id],
    )
    for row in rows:
        row["details"] = _parsed(row["details"])
    return rows


def explain_order(con: duckdb.DuckDBPyConnection, order_id: int) -> dict[str, Any] | None:
    """Why an order has its status: its lines with each item's stock now, and the explanation recorded when
    it was decided (None for a PROCESSED or NEW order, and for one decided before explanations were kept).
    None when the store has no order `order_id`."""
    order = _rows(con, "SELECT order_id, status, reason, items, total_qty FROM orders WHERE order_id = ?", [order_id])
    if not order:
        return None
    (explained,) = order
    explained["lines"] = _rows(
        con,
        """
        SELECT l.line_no, l.inventory_id, l.quantity, a.on_hand, a.allocated, a.available
        FROM order_lines l LEFT JOIN stock_available a USING (inventory_id)
        WHERE l.order_id = ? ORDER BY l.line_no
        """,
        [order_id],
    )
    decided = _rows(
        con,
        """
        SELECT changed_at, run_id, details FROM status_changes
        WHERE order_id = ? AND to_status = ? AND to_status <> 'NEW'
        ORDER BY changed_at DESC, rowid DESC LIMIT 1
        """,
        [order_id, explained["status"]],
    )
    change = decided[0] if decided else {"changed_at": None, "run_id": None, "details": None}
    explained["explanation"] = _parsed(change["details"]) if explained["status"] == "FAILED" else None
    explained["decided_at"], explained["decided_run"] = change["changed_at"], change["run_id"]
    return explained


# ---- runs and rejects -----------------------------------------------------------------------


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    return _rows(
        con,
        f"""
        SELECT run_id, flow, started_at, ended_at,
               epoch(ended_at) - epoch(started_at) AS duration_s, state,
               {", ".join(RUN_COUNTERS)}, message
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
        rows = _rows(
            con,
            f"SELECT {columns} FROM orders WHERE {where}{bound} ORDER BY order_id DESC LIMIT ?",
            [*params, *([] if before is None else [before]), limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit][::-1]
    else:
        bound = "" if after is None else " AND order_id > ?"
        rows = _rows(
            con,
            f"SELECT {columns} FROM orders WHERE {where}{bound} ORDER BY order_id LIMIT ?",
            [*params, *([] if after is None else [after]), limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
    matching = con.execute(f"SELECT count(*) FROM orders WHERE {where}", params).fetchall()[0][0]
    if rows:
        first, final = rows[0]["order_id"], rows[-1]["order_id"]
        has_prev = more if backward else _exists(con, f"{where} AND order_id < ?", [*params, first])
        has_next = more if not backward else _exists(con, f"{where} AND order_id > ?", [*params, final])
        offset = con.execute(
            f"SELECT count(*) FROM orders WHERE {where} AND order_id < ?", [*params, first]
        ).fetchall()[0][0]
    else:
        has_prev = has_next = False
        offset = matching if not backward else 0
    return {"orders": rows, "matching": matching, "offset": offset, "has_prev": has_prev, "has_next": has_next}


def run_of_process(con: duckdb.DuckDBPyConnection, pid: int, flow: str, since: Any) -> dict[str, Any] | None:
    """The run a given process started for `flow` at or after `since` (how the page finds the run of the
    `orderly process` / `orderly reset` it started), or None while it has not started one yet."""
    rows = _rows(
        con,
        f"""
        SELECT run_id, flow, started_at, ended_at, state, {", ".join(RUN_COUNTERS)}, message
        FROM runs WHERE pid = ? AND flow = ? AND started_at >= ? ORDER BY started_at DESC LIMIT 1
        """,
        [pid, flow, since],
    )
    return rows[0] if rows else None


def run_by_id(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    rows = _rows(
        con,
        f"""
        SELECT run_id, flow, started_at, ended_at, state, {", ".join(RUN_COUNTERS)}, message
        FROM runs WHERE run_id = ?
        """,
        [run_id],
    )
    return rows[0] if rows else None


# ---- the command line's filters and look-ups (orderly status, runs, rejects, process/reset --order) ----


def orders_matching(
    con: duckdb.DuckDBPyConnection,
    *,
    status: str | None = None,
    reason: str | None = None,
    since: Any = None,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The orders matching the filters, ascending by id (the latest `limit` of them when given), and how many
    match per status. `since` keeps orders placed at or after that instant."""
    where, params = _order_filter(status, reason)
    if since is not None:
        where += " AND placed_at >= ?"
        params.append(since)
    columns = "order_id, placed_at, status, items, total_qty, reason"
    if limit is None:
        rows = _rows(con, f"SELECT {columns} FROM orders WHERE {where} ORDER BY order_id", params)
    else:
        rows = _rows(
            con,
            f"SELECT * FROM (SELECT {columns} FROM orders WHERE {where} ORDER BY order_id DESC "
            "LIMIT ?) ORDER BY order_id",
            [*params, limit],
        )
    counts = dict(con.execute(f"SELECT status, count(*) FROM orders WHERE {where} GROUP BY status", params).fetchall())
    return rows, counts


def order_statuses(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int]) -> dict[int, str]:
    """The status of each named order that exists (an id that is not in the store is absent)."""
    with _named_ids(con, order_ids):
        rows = con.execute(
            "SELECT order_id, status FROM orders WHERE order_id IN (SELECT order_id FROM named_ids)"
        ).fetchall()
    return dict(rows)


def runs_starting(con: duckdb.DuckDBPyConnection, prefix: str, limit: int = 5) -> list[dict[str, Any]]:
    """The runs (id, flow, start) whose id starts with `prefix` (a short id as `orderly runs` shows it), newest
    first, at most `limit` of them."""
    return _rows(
        con,
        "SELECT run_id, flow, started_at FROM runs WHERE starts_with(run_id, ?) ORDER BY started_at DESC LIMIT ?",
        [prefix, limit],
    )


SHORT_RUN = 8  # a run id is shown by its first 8 characters, as the Prefect UI shortens it, unless they collide


def short_run_length(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str | None]) -> int:
    """How many leading characters to show of each of `run_ids` (one length for them all, so a column of ids
    lines up) for every one of them to tell its run apart from every recorded run, so what a table shows can be
    typed back (`orderly runs ID`). At least SHORT_RUN. More are needed because Prefect's flow run ids are
    UUIDv7: their first 8 hex digits are the start time in 65-second steps, so runs started within a minute
    share them, and the next 4 digits (the start's millisecond) tell such runs apart. The length never ends
    on a dash: `01a23ac7-` would read as cut."""
    named = sorted({run_id for run_id in run_ids if run_id})
    if not named:
        return SHORT_RUN
    # Each id's neighbours among all the ids, in sort order: the longest prefix it shares is with one of them.
    neighbours = con.execute(
        """
        WITH named AS (SELECT unnest(?::VARCHAR[]) AS run_id),
             every AS (SELECT run_id FROM runs UNION SELECT run_id FROM named),
             ordered AS (SELECT run_id, lag(run_id) OVER w AS before, lead(run_id) OVER w AS after
                         FROM every WINDOW w AS (ORDER BY run_id))
        SELECT run_id, before, after FROM ordered WHERE run_id IN (SELECT run_id FROM named)
        """,
        [named],
    ).fetchall()
    length = SHORT_RUN
    for run_id, *others in neighbours:
        for other in filter(None, others):
            shared = next(
                (i for i, (a, b) in enumerate(zip(run_id, other, strict=False)) if a != b), min(len(run_id), len(other))
            )
            length = max(length, shared + 1)
    while any(len(run_id) > length and run_id[length - 1] == "-" for run_id in named):
        length += 1
    return length


# ---- the decision feed ----------------------------------------------------------------------

# One event as the webhook and the pull feed carry it (CONTRACT.md, "The decision feed"), written in SQL so a
# million events cost no Python object each (to_json of a struct cost 7.5 s a million, this 2-3 s): exact
# integers, times in UTC with a Z, the recorded explanation as JSON, and the order's lines, which the fulfilment
# side needs to pick it. Each text ends with a comma, so a run of events is one slice of the Arrow buffer.
_EVENT_TEXTS = """
    WITH e AS (
        SELECT event_id, order_id, run_id, changed_at, from_status, to_status, reason, details
        FROM status_changes WHERE event_id > $after AND event_id <= $upto  -- a range: the zone maps skip the rest
    ),
    l AS (
        SELECT order_id,
               '[' || string_agg('{"inventory_id":' || inventory_id || ',"quantity":' || quantity || '}', ','
                                 ORDER BY line_no) || ']' AS lines
        FROM order_lines
        WHERE order_id BETWEEN (SELECT min(order_id) FROM e) AND (SELECT max(order_id) FROM e)
          AND order_id IN (SELECT order_id FROM e)
        GROUP BY order_id
    )
    SELECT e.event_id, '{"id":' || e.event_id
        || ',"type":"' || CASE e.to_status WHEN 'NEW' THEN 'order.reset' ELSE 'order.' || lower(e.to_status) END
        || '","occurred_at":"' || strftime(e.changed_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')
        || '","run_id":' || to_json(e.run_id)
        || ',"order_id":' || e.order_id
        || ',"status":"' || e.to_status || '","previous_status":"' || e.from_status
        || '","reason":' || coalesce('"' || e.reason || '"', 'null')
        || ',"explanation":' || coalesce(e.details, 'null')
        || ',"customer_id":' || to_json(o.customer_id)
        || ',"placed_at":"' || strftime(o.placed_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ')
        || '","lines":' || coalesce(l.lines, '[]') || '},' AS text
    FROM e
    JOIN (SELECT order_id, customer_id, placed_at FROM orders
          WHERE order_id BETWEEN (SELECT min(order_id) FROM e) AND (SELECT max(order_id) FROM e)) o USING (order_id)
    LEFT JOIN l USING (order_id)
    ORDER BY e.event_id
"""


def event_texts(
    con: duckdb.DuckDBPyConnection, after: int, limit: int, upto: int | None = None
) -> tuple[np.ndarray, pa.StringArray]:
    """At most `limit` events after `after` (and up to `upto`), ascending: their ids, and each one's JSON text
    followed by a comma. Ids ascend without gaps."""
    # Ids ascend without gaps, so the `limit` events after `after` are a range of ids (clamped to BIGINT).
    last = min(after + limit, upto if upto is not None else after + limit, int(np.iinfo(np.int64).max))
    table = con.sql(_EVENT_TEXTS, params={"after": after, "upto": last}).to_arrow_table()
    texts = table.column("text").combine_chunks()
    if texts.type != pa.string():
        texts = texts.cast(pa.string())
    return table.column("event_id").to_numpy(), texts


def feed_state(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """How far delivery has got: delivered up to, the newest event, the backlog, the oldest undelivered event's
    time, and the last success and failure."""
    return _rows(
        con,
        """
        SELECT f.delivered_to, n.newest, n.newest - f.delivered_to AS backlog,
               (SELECT min(changed_at) FROM status_changes WHERE event_id = f.delivered_to + 1)
                   AS oldest_undelivered_at,
               f.last_ok_at, f.last_error, f.last_error_at
        FROM feed f, (SELECT coalesce(max(event_id), 0) AS newest FROM status_changes) n
        """,
    )[0]
