"""The pipeline's steps as task compositions shared by several flows: sync stock, ingest orders."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.utilities.annotations import quote

from flows.run_record import Run
from orderly.errors import RemoteError
from orderly.store import open_store
from tasks.fetch import fetch_orders, fetch_stock
from tasks.load import load_orders, load_stock, read_orders_cursor
from tasks.validate import validate_order_records, validate_stock_records

ORDER_PAGES_PER_CHUNK = 50  # 50 pages of 1,000 orders: memory stays bounded however large the backlog

# Big task arguments (raw records, validated frames) go in quote(): otherwise Prefect walks every
# record and field looking for futures before the task starts, which cost ~4x the tasks' own work.


def sync_stock(run: Run) -> None:
    """Replace the local stock with a complete snapshot; if the warehouse is down, keep the last one."""
    try:
        records = fetch_stock(run.settings)
    except RemoteError as error:
        run.problems.append(f"stock not synced: {error}")
        get_run_logger().warning("stock not synced, the last snapshot stays: %s", error)
        return
    run.add(load_stock(run.settings, run.id, quote(validate_stock_records(quote(records)))))


def ingest_orders(run: Run) -> None:
    """Append every order after the cursor, chunk by chunk, each chunk committed with its cursor.

    One connection for the whole ingest, checkpointed once when it closes: reopening the store per chunk (and so
    checkpointing it, which rewrites the primary-key index) made the load step twice its bulk-insert floor."""
    settings = run.settings
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, bulk=True) as con:
        store = quote(con)  # handed to each task as it is (Prefect would otherwise inspect it)
        after_id = read_orders_cursor(settings, store)
        while True:
            try:
                chunk = fetch_orders(settings, after_id, ORDER_PAGES_PER_CHUNK)
            except RemoteError as error:
                run.problems.append(f"orders not fully ingested: {error}")
                get_run_logger().warning("orders not fully ingested: %s", error)
                return
            run.add(load_orders(
                settings, run.id, quote(validate_order_records(quote(chunk.records))), chunk.cursor_to, store
            ))
            if chunk.last:
                return
            after_id = chunk.cursor_to
