"""The write path: set-based over frames and columns; each function is one unit of work or part of the caller's."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # pandas is imported where a load needs it: the feed's delivery writes without it (50 MB)
    import pandas as pd

from orderly.store.connection import first_row, registered, scalar, transaction
from orderly.store.decided import decision_rows
from orderly.store.schema import ORDERS_CURSOR, RUN_COUNTERS

# ---- runs -----------------------------------------------------------------------------------


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, flow: str) -> list[str]:
    """Record a run as RUNNING; runs left RUNNING by a process that no longer exists become CRASHED (their ids
    are returned, so the caller can say so in Prefect too)."""
    with transaction(con):
        crashed = _crash_dead_runs(con)
        con.execute(
            "INSERT INTO runs (run_id, flow, pid, started_at, state) VALUES (?, ?, ?, now(), 'RUNNING') "
            "ON CONFLICT (run_id) DO UPDATE SET state = 'RUNNING', pid = excluded.pid",
            [run_id, flow, os.getpid()],
        )
    return crashed


def crash_dead_runs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Runs left RUNNING by a process that no longer exists (or by this one: a process runs one at a time)
    become CRASHED. Their ids."""
    with transaction(con):
        return _crash_dead_runs(con)


def _crash_dead_runs(con: duckdb.DuckDBPyConnection) -> list[str]:
    import psutil  # only writers need it

    stale = con.execute("SELECT run_id, pid FROM runs WHERE state = 'RUNNING'").fetchall()
    dead = [rid for rid, pid in stale if pid is None or not psutil.pid_exists(pid) or pid == os.getpid()]
    if dead:
        con.execute(
            "UPDATE runs SET state = 'CRASHED', ended_at = now(), "
            "message = 'the process ended before the run finished' WHERE list_contains(?, run_id)",
            [dead],
        )
    return dead


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


def record_reconciliation(con: duckdb.DuckDBPyConnection, run_id: str | None, found: Mapping[str, int]) -> None:
    """What a reconciliation found, as the run's reconcile_* counters (remote, stored, missing, added, changed)."""
    with transaction(con):
        _add_counts(con, run_id, {f"reconcile_{name}": int(value) for name, value in found.items()})


def _pandas() -> Any:
    import pandas

    return pandas


# ---- rejects --------------------------------------------------------------------------------

REJECT_COLUMNS = ["source", "record_key", "raw", "reasons"]


def _insert_rejects(con: duckdb.DuckDBPyConnection, run_id: str | None, rejects: pd.DataFrame) -> None:
    if rejects.empty:
        return
    with registered(con, incoming_rejects=rejects[REJECT_COLUMNS]):
        con.execute(
            "INSERT INTO rejects SELECT ?, source, record_key, raw, reasons, now() FROM incoming_rejects",
            [run_id],
        )


# ---- stock ----------------------------------------------------------------------------------


def load_stock_snapshot(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    items: pd.DataFrame,
    rejects: pd.DataFrame,
    received: int,
    repeated: int = 0,
    digest: str | None = None,
) -> dict[str, int]:
    """Replace the stock with a complete snapshot; a quarantined item keeps its last good value.

    An item absent from the snapshot is dropped only when every record of the snapshot was valid: a
    quarantined record may be that item in disguise (no id, an id that is not a number, a neighbour's id
    copied over its own), so while any record is quarantined the items not seen keep their last good value.
    `digest` (of the records as received) is kept when every record was valid, for `repeat_stock_snapshot`.

    Every item received valid is confirmed now, changed or not; an item whose record was quarantined (or that
    is absent from a snapshot that cannot drop it) keeps its old confirmation time, and processing never
    allocates from it once that is older than ORDERLY_MAX_STOCK_AGE.
    """
    every_record_valid = len(rejects) == 0
    with transaction(con):
        snapshot_id = scalar(con, "SELECT coalesce(max(snapshot_id), 0) + 1 FROM stock_snapshots")
        with registered(con, incoming_stock=items):
            if _stock_unchanged(con, every_record_valid=every_record_valid):
                _confirm_stock(con, every_item=every_record_valid)
            else:
                _replace_stock(con, snapshot_id, every_record_valid=every_record_valid)
        _insert_rejects(con, run_id, rejects)
        counts = {
            "stock_fetched": received,
            "stock_loaded": len(items),
            "stock_rejected": len(rejects),
            "stock_repeated": repeated,
        }
        _insert_snapshot(con, snapshot_id, run_id, counts, digest if len(rejects) == 0 else None)
    return counts


def repeat_stock_snapshot(con: duckdb.DuckDBPyConnection, run_id: str | None, digest: str) -> dict[str, int] | None:
    """Record the same records as the latest snapshot (every one of them valid) as a new complete snapshot, and
    return its counts; None when the latest snapshot is not those records. Validating and loading them again
    would find the same items and change nothing (stock_items changes only with a snapshot), so only the
    snapshot row is new: its age counts from now. An incremental run spent ~1 s re-validating 50,000 items."""
    with transaction(con):
        latest = first_row(
            con,
            """
            SELECT s.snapshot_id, s.received, s.loaded, d.digest
            FROM stock_snapshots s LEFT JOIN stock_snapshot_digests d USING (snapshot_id)
            ORDER BY s.snapshot_id DESC LIMIT 1
            """,
        )
        if latest is None or latest[3] != digest:
            return None
        snapshot_id, received, loaded, _ = latest
        counts = {
            "stock_fetched": received,
            "stock_loaded": loaded,
            "stock_rejected": 0,
            "stock_repeated": received - loaded,
        }
        _confirm_stock(con, every_item=True)  # the latest snapshot had every record valid: it named every stored item
        _insert_snapshot(con, snapshot_id + 1, run_id, counts, digest)
    return counts


def _insert_snapshot(
    con: duckdb.DuckDBPyConnection, snapshot_id: int, run_id: str | None, counts: dict[str, int], digest: str | None
) -> None:
    con.execute(
        "INSERT INTO stock_snapshots VALUES (?, ?, now(), ?, ?, ?)",
        [snapshot_id, run_id, counts["stock_fetched"], counts["stock_loaded"], counts["stock_rejected"]],
    )
    if digest is not None:
        con.execute("INSERT INTO stock_snapshot_digests VALUES (?, ?)", [snapshot_id, digest])
    _add_counts(con, run_id, counts)


_STOCK_VALUES = "inventory_id, product_id, sku, product_name, warehouse_id, quantity, updated_at"


def _stock_unchanged(con: duckdb.DuckDBPyConnection, *, every_record_valid: bool) -> bool:
    """Whether replacing the stock with `incoming_stock` would change no value: every incoming item is stored with
    exactly these values and, when the snapshot drops the items it does not name (every record valid), it names
    every stored item. Exact (a set comparison in SQL, no hash): an incremental run re-reads the whole 50,000-item
    snapshot, and rewriting an unchanged one was most of its load step. The snapshot row is written either way:
    a complete snapshot was read now, so its age counts from now."""
    row = first_row(
        con,
        f"""
        SELECT (SELECT count(*) FROM (SELECT {_STOCK_VALUES} FROM incoming_stock
                                      EXCEPT ALL SELECT {_STOCK_VALUES} FROM stock_items)),
               (SELECT count(*) FROM incoming_stock),
               (SELECT count(*) FROM stock_items)
        """,
    )
    assert row is not None  # an aggregate without GROUP BY gives one row
    missing, incoming, stored = row
    return bool(missing == 0 and (incoming == stored or not every_record_valid))


def _confirm_stock(con: duckdb.DuckDBPyConnection, *, every_item: bool) -> None:
    """Mark the items of `incoming_stock` (every stored item, when the snapshot named them all) confirmed now: one
    UPDATE of one column, not a rewrite of the rows."""
    if every_item:
        con.execute("UPDATE stock_items SET confirmed_at = now()")
    else:
        con.execute(
            "UPDATE stock_items SET confirmed_at = now() "
            "WHERE inventory_id IN (SELECT inventory_id FROM incoming_stock)"
        )


def _replace_stock(con: duckdb.DuckDBPyConnection, snapshot_id: int, *, every_record_valid: bool) -> None:
    con.execute(
        """
        DELETE FROM stock_items
        WHERE inventory_id IN (SELECT inventory_id FROM incoming_stock)
           OR (? AND inventory_id NOT IN (SELECT inventory_id FROM incoming_stock))
        """,
        [every_record_valid],
    )
    con.execute(
        """
        INSERT INTO stock_items (inventory_id, product_id, sku, product_name, warehouse_id, quantity, updated_at,
                                 snapshot_id, confirmed_at)
        SELECT inventory_id, product_id, sku, product_name, warehouse_id, quantity, updated_at, ?, now()
        FROM incoming_stock
        """,
        [snapshot_id],
    )


# ---- orders ---------------------------------------------------------------------------------


def _incoming_orders(
    orders: pa.Table, lines: pa.Table, page_starts: Sequence[int] | None = None
) -> tuple[pa.Table, pa.Table]:
    """The batch as two Arrow tables: one row per valid copy with its line count, total quantity and lines as a
    list of [inventory_id, quantity] in line order (what its fingerprint hashes), and its lines.

    Built with numpy from columns, not in SQL: grouping the lines per copy with `list(... ORDER BY line_no)` was
    the largest statement of a load (0.73 of 1.34 s of SQL at 300k orders). The hash over the same values and
    types is the same: checked against the stored fingerprints' query in tests/test_store.py. A copy with no line
    (the schema rejects those) and a line whose copy is not in the batch are left out, as the SQL join did."""
    o_rec = orders.column("rec").to_numpy()
    if len(o_rec) > 1 and bool((o_rec[1:] < o_rec[:-1]).any()):
        o_order = np.argsort(o_rec, kind="stable")
        orders, o_rec = orders.take(o_order), o_rec[o_order]
    l_rec = lines.column("rec").to_numpy()
    l_no = lines.column("line_no").to_numpy()
    if len(l_rec) > 1 and bool(((l_rec[1:] < l_rec[:-1]) | ((l_rec[1:] == l_rec[:-1]) & (l_no[1:] < l_no[:-1]))).any()):
        l_take = np.lexsort((l_no, l_rec))
        lines, l_rec, l_no = lines.take(l_take), l_rec[l_take], l_no[l_take]
    at = np.searchsorted(o_rec, l_rec)
    owned = at < len(o_rec)
    owned[owned] = o_rec[at[owned]] == l_rec[owned]
    if not owned.all():
        lines, l_rec, l_no, at = lines.filter(pa.array(owned)), l_rec[owned], l_no[owned], at[owned]
    counts = np.bincount(at, minlength=len(o_rec)) if len(at) else np.zeros(len(o_rec), dtype=np.int64)
    inventory = lines.column("inventory_id").to_numpy()
    quantity = lines.column("quantity").to_numpy()
    has_lines = counts > 0
    starts = (np.cumsum(counts) - counts)[has_lines]
    # Exact: the schema rejected every copy whose quantities sum past 2**63-1, so no int64 sum here wraps.
    total_qty = np.add.reduceat(quantity, starts) if len(starts) else np.zeros(0, dtype=np.int64)
    pairs = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 2 * len(quantity) + 1, 2, dtype=np.int32)),
        pa.array(np.column_stack([inventory, quantity]).ravel(), pa.int64()),
    )
    kept = orders if has_lines.all() else orders.filter(pa.array(has_lines))
    kept_rec = o_rec[has_lines]
    page = (
        kept_rec
        if page_starts is None
        else np.searchsorted(np.asarray(page_starts, dtype=np.int64), kept_rec, side="right") - 1
    )
    incoming = pa.table(
        {
            "rec": pa.array(kept_rec, pa.int64()),
            "page": pa.array(page, pa.int64()),
            "order_id": kept.column("order_id"),
            "placed_at": kept.column("placed_at"),
            "customer_id": kept.column("customer_id"),
            "items": pa.array(counts[has_lines], pa.int32()),
            "total_qty": pa.array(total_qty, pa.int64()),
            "item_list": pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(counts[has_lines])], pa.int32()), pairs),
        }
    )
    incoming_lines = pa.table(
        {
            "rec": pa.array(l_rec, pa.int64()),
            "order_id": lines.column("order_id"),
            "line_no": pa.array(l_no, pa.int32()),
            "inventory_id": pa.array(inventory, pa.int64()),
            "quantity": pa.array(quantity, pa.int64()),
        }
    )
    return incoming, incoming_lines


# The fingerprint of a copy as first seen: detects a changed re-send. Never change it: stored fingerprints
# (written by every earlier version) are compared with it.
_FINGERPRINT = "hash(placed_at, customer_id, item_list)"


def _only_new(con: duckdb.DuckDBPyConnection, incoming: pa.Table) -> bool:
    """Whether every copy in the batch is new: ids strictly ascending (so none repeats within the batch) and none
    stored yet in the batch's id range. The common case by far; a repeat or overlap anywhere takes the general path."""
    ids = incoming.column("order_id").to_numpy()
    if len(ids) == 0:
        return True
    if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
        return False
    return not scalar(con, "SELECT count(*) FROM orders WHERE order_id BETWEEN ? AND ?", [int(ids[0]), int(ids[-1])])


def load_orders(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    orders: pa.Table,
    lines: pa.Table,
    rejects: pd.DataFrame,
    received: int,
    cursor_to: int,
    page_starts: Sequence[int] | None = None,
) -> dict[str, int]:
    """Append new orders, skip unchanged repeats, quarantine changed repeats; advance the cursor with them.

    One rule for every copy of an id, wherever it falls (the same page, the same batch, a later run): the
    first valid copy received is kept; a later copy with the same content is a no-op ("unchanged"); one
    with different content is quarantined as a conflict. `rec` is a copy's position in the batch.

    `page_starts`: where each page of the batch begins (positions in the batch); two different copies of an
    unstored id on one page have no first, and neither is kept. None: every record came on a page of its own.

    A batch of only new ids (ascending, none stored: every chunk of a first sync) is inserted as it is; any other
    batch is judged copy by copy in SQL.
    """
    incoming, incoming_lines = _incoming_orders(orders, lines, page_starts)
    with transaction(con), registered(con, incoming_orders=incoming, incoming_lines=incoming_lines):
        if _only_new(con, incoming):
            con.execute(
                f"""
                INSERT INTO orders (order_id, placed_at, customer_id, items, total_qty, fingerprint,
                                    status, reason, loaded_run, loaded_at)
                SELECT order_id, placed_at, customer_id, items, total_qty, {_FINGERPRINT}, 'NEW', NULL, ?, now()
                FROM incoming_orders
                """,
                [run_id],
            )
            con.execute("INSERT INTO order_lines SELECT order_id, line_no, inventory_id, quantity FROM incoming_lines")
            loaded, repeats, conflicts = incoming.num_rows, 0, None
        else:
            loaded, repeats, conflicts = _load_judged(con, run_id)
        all_rejects = (
            _pandas().concat([rejects[REJECT_COLUMNS], conflicts], ignore_index=True)
            if conflicts is not None and len(conflicts)
            else rejects
        )
        _insert_rejects(con, run_id, all_rejects)
        con.execute(
            "INSERT INTO cursors VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET after_id = greatest(after_id, excluded.after_id)",
            [ORDERS_CURSOR, cursor_to],
        )
        counts = {
            "orders_fetched": received,
            "orders_loaded": loaded,
            "orders_rejected": len(all_rejects),
            "orders_repeated": repeats,
        }
        _add_counts(con, run_id, counts)
    return counts


def _load_judged(con: duckdb.DuckDBPyConnection, run_id: str | None) -> tuple[int, int, pd.DataFrame]:
    """The general path: each copy against the copy that stands (the stored one, else the batch's first).
    Copies of an unstored id that differ on one page ("torn") have no first: all of that page's copies are
    quarantined, and a copy on a later page may stand. Returns (new, unchanged repeats, the conflicts as rejects)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE judged AS
        WITH staged AS (
            SELECT rec, page, order_id, placed_at, customer_id, items, total_qty, {_FINGERPRINT} AS fingerprint
            FROM incoming_orders
        ),
        torn AS (SELECT order_id, page FROM staged GROUP BY order_id, page HAVING count(DISTINCT fingerprint) > 1),
        first_copy AS (
            SELECT order_id, min(rec) AS first_rec, arg_min(fingerprint, rec) AS fingerprint
            FROM staged ANTI JOIN torn USING (order_id, page) GROUP BY order_id
        )
        SELECT s.*,
               CASE WHEN k.order_id IS NOT NULL THEN
                        CASE WHEN s.fingerprint = k.fingerprint THEN 'unchanged' ELSE 'conflict' END
                    WHEN t.order_id IS NOT NULL THEN 'torn'
                    WHEN s.rec = f.first_rec THEN 'new'
                    WHEN s.fingerprint = f.fingerprint THEN 'unchanged'
                    ELSE 'conflict' END AS verdict
        FROM staged s
        LEFT JOIN first_copy f USING (order_id)
        LEFT JOIN torn t USING (order_id, page)
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
               CASE WHEN j.verdict = 'torn'
                    THEN 'conflict: order ' || j.order_id || ' came twice on one page with different content; '
                         || 'neither copy is kept'
                    ELSE 'conflict: order ' || j.order_id || ' arrived again with different content; '
                         || 'the first copy is kept' END AS reasons
        FROM judged j JOIN incoming_lines l USING (rec)
        WHERE j.verdict IN ('conflict', 'torn')
        GROUP BY j.rec, j.order_id, j.placed_at, j.customer_id, j.verdict
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
    con.execute("DROP TABLE judged")  # rolled back with the transaction if a statement failed
    return verdicts.get("new", 0), verdicts.get("unchanged", 0), conflicts


# ---- decisions ------------------------------------------------------------------------------


def record_decisions(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    counts: Mapping[str, int],
    *,
    order_ids: np.ndarray,
    changes: np.ndarray,
    labels: Mapping[str, Sequence[str | None]],
    unknown: Mapping[str, np.ndarray],
    short: Mapping[str, np.ndarray],
) -> None:
    """Write decided status changes, process and reset alike: each order's new status and reason, one history
    row each with its explanation and its event id (the decision feed's outbox: ids ascend by order within a
    decision, and past every id before it), and the run's counters. Part of the caller's transaction."""
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
                INSERT INTO status_changes (run_id, order_id, changed_at, from_status, to_status, reason, details,
                                            event_id)
                SELECT ?, order_id, now(), from_status, to_status, reason, details,
                       (SELECT coalesce(max(event_id), 0) FROM status_changes)
                       + row_number() OVER (ORDER BY order_id)
                FROM {decided}
                """,
                [run_id or "local"],
            )
    _add_counts(con, run_id, dict(counts))


# ---- the decision feed ------------------------------------------------------------------------


def plan_delivery(con: duckdb.DuckDBPyConnection, batch: int, window: int) -> tuple[str, int, int, int]:
    """(store id, delivered up to, plan up to, batch size): the plan in progress, or, when it is done, a new one
    of at most `window` events cut in batches of `batch`. Part of the caller's transaction. A plan is kept until
    every batch of it is delivered, so a batch sent again after a crash or a failure is the same batch."""
    row = first_row(con, "SELECT store_id, delivered_to, plan_to, plan_batch FROM feed")
    assert row is not None  # migration 7 inserts the row
    store_id, delivered_to, plan_to, plan_batch = row
    if delivered_to >= plan_to:
        newest = scalar(con, "SELECT coalesce(max(event_id), 0) FROM status_changes")
        plan_to, plan_batch = min(int(newest), delivered_to + window), batch
        con.execute("UPDATE feed SET plan_to = ?, plan_batch = ?", [plan_to, plan_batch])
    return str(store_id), int(delivered_to), int(plan_to), int(plan_batch)


def record_delivered(con: duckdb.DuckDBPyConnection, run_id: str | None, delivered_to: int) -> None:
    """Every event up to `delivered_to` was answered 2xx; the run's `delivered` counter grows by the new ones."""
    before = int(scalar(con, "SELECT delivered_to FROM feed"))
    if delivered_to <= before:
        return
    con.execute(
        "UPDATE feed SET delivered_to = ?, last_ok_at = now(), last_error = NULL, last_error_at = NULL",
        [delivered_to],
    )
    _add_counts(con, run_id, {"delivered": delivered_to - before})


def record_delivery_error(con: duckdb.DuckDBPyConnection, message: str) -> None:
    """The delivery's last failure, one line (the receiver's URL masked, never the secret)."""
    con.execute("UPDATE feed SET last_error = ?, last_error_at = now()", [message])
