"""Load tasks: write validated batches to DuckDB, each batch one transaction with its cursor or snapshot row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from orderly import progress
from orderly.settings import Settings
from orderly.store import open_store, queries, writes
from orderly.validation import ValidOrders, ValidStock


@contextmanager
def _store(settings: Settings, store: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection the caller holds for a whole ingest (flows.steps), else one opened for this task alone."""
    if store is not None:
        yield store
        return
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        yield con


@task(cache_policy=NO_CACHE)
def read_orders_cursor(settings: Settings, store: duckdb.DuckDBPyConnection | None = None) -> int:
    with _store(settings, store) as con:
        return queries.orders_cursor(con)


@task(cache_policy=NO_CACHE)
def load_stock(settings: Settings, run_id: str, valid: ValidStock, digest: str | None = None) -> dict[str, int]:
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        counts = writes.load_stock_snapshot(con, run_id, valid.items, valid.rejects, valid.received, valid.repeated,
                                            digest)
    progress.advance("load stock", records=counts["stock_loaded"] + counts["stock_rejected"])
    get_run_logger().info("stock snapshot: %(stock_loaded)d items, %(stock_rejected)d rejected", counts)
    return counts


@task(cache_policy=NO_CACHE)
def repeat_stock(settings: Settings, run_id: str, digest: str) -> dict[str, int] | None:
    """The latest snapshot's records again: a new snapshot of the same items, or None to validate and load them."""
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        counts = writes.repeat_stock_snapshot(con, run_id, digest)
    if counts is not None:
        progress.advance("load stock", records=counts["stock_loaded"])
        get_run_logger().info("stock snapshot: the same %(stock_loaded)d items as the last one", counts)
    return counts


@task(cache_policy=NO_CACHE)
def load_orders(settings: Settings, run_id: str, valid: ValidOrders, cursor_to: int,
                store: duckdb.DuckDBPyConnection | None = None) -> dict[str, int]:
    """One chunk, one transaction with its cursor. `store`: the ingest's connection (no reopen per chunk)."""
    with _store(settings, store) as con:
        counts = writes.load_orders(
            con, run_id, valid.orders, valid.lines, valid.rejects, valid.received, cursor_to
        )
    progress.advance("load orders", records=valid.received)
    get_run_logger().info(
        "orders: %(orders_loaded)d new, %(orders_repeated)d unchanged repeats, %(orders_rejected)d rejected", counts
    )
    return counts
