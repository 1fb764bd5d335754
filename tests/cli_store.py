"""A real DuckDB store for the command line's tests, built in-process through the same code a run uses
(validation, store writes, the service's transactions) but without Prefect: a second instead of a flow run."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

from orderly import service
from orderly.boundary.validation import validate_orders, validate_stock
from orderly.sandbox import seed_dataset
from orderly.store import open_store, writes


def seed_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = seed_dataset()
    return data.stock_page(1, 1000)["items"], data.orders_page(0, 1000)["orders"]


def build_store(
    path: Path,
    stock: list[dict] | None = None,
    orders: list[dict] | None = None,
    *,
    run_id: str | None = None,
    decide: bool = True,
    failed_run: str | None = None,
) -> str:
    """Sync (stock, then orders) and, when `decide`, process, all as one recorded run; returns its run id.
    `failed_run`: also record a FAILED run with that message, as a run that stopped would leave."""
    seed_stock, seed_orders = seed_records()
    stock = copy.deepcopy(seed_stock if stock is None else stock)
    orders = copy.deepcopy(seed_orders if orders is None else orders)
    run_id = run_id or str(uuid.uuid4())
    with open_store(path) as con:
        writes.start_run(con, run_id, "pipeline")
        valid = validate_stock(stock)
        writes.load_stock_snapshot(con, run_id, valid.items, valid.rejects, valid.received)
        valid_orders = validate_orders(orders)
        cursor = max([o["id"] for o in orders if isinstance(o.get("id"), int)] or [0])
        writes.load_orders(
            con, run_id, valid_orders.orders, valid_orders.lines, valid_orders.rejects, valid_orders.received, cursor
        )
        if decide:
            service.process(con, run_id, max_stock_age=900)
        writes.finish_run(con, run_id, "COMPLETED")
        if failed_run:
            failed_id = str(uuid.uuid4())
            writes.start_run(con, failed_id, "process-all")
            writes.finish_run(con, failed_id, "FAILED", failed_run)
    return run_id
