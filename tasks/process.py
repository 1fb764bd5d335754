"""Process tasks: apply the domain's allocation rule (or reset) to the stored orders in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from domain import decide_orders, reset_orders
from orderly.errors import StaleStock, UnknownOrders
from orderly.settings import Settings
from orderly.store import open_store, writes


def _refuse_unknown(con, order_ids: Sequence[int] | None) -> None:
    if order_ids:
        unknown = writes.unknown_order_ids(con, order_ids)
        if unknown:
            raise UnknownOrders(f"no such order: {', '.join(map(str, unknown))}; nothing was changed")


@task(cache_policy=NO_CACHE)
def process_new_orders(settings: Settings, run_id: str, order_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Decide NEW orders (all, or those named) if the stock snapshot is complete and fresh enough."""
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        _refuse_unknown(con, order_ids)
        age = writes.stock_snapshot_age(con)
        if age is None:
            raise StaleStock("no complete stock snapshot yet, so no order was processed: run `orderly sync` first")
        if age > settings.max_stock_age:
            raise StaleStock(
                f"the last complete stock snapshot is {age:.0f} s old (ORDERLY_MAX_STOCK_AGE={settings.max_stock_age:g}), "
                "so no order was processed: sync stock first"
            )
        counts = writes.decide_new_orders(con, run_id, order_ids, decide_orders)
    get_run_logger().info("processed %(processed)d orders, failed %(failed)d", counts)
    return counts


@task(cache_policy=NO_CACHE)
def reset_orders_to_new(settings: Settings, run_id: str, order_ids: Sequence[int] | None = None) -> dict[str, int]:
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        _refuse_unknown(con, order_ids)
        counts = writes.reset_decided_orders(con, run_id, order_ids, reset_orders)
    get_run_logger().info("reset %(reset)d orders to NEW", counts)
    return counts
