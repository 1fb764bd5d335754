"""Process tasks: "Process All" (or a dry run of it) and "Reset State", each one transaction of orderly.service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import get_run_logger

from domain import stock_refusal
from orderly import service
from orderly.errors import StaleStock
from orderly.runtime import progress
from orderly.settings import Settings
from orderly.store import open_store
from tasks import step


@step
def process_new_orders(
    settings: Settings, run_id: str, order_ids: Sequence[int] | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Decide NEW orders (all, or those named) if the stock snapshot is complete and fresh enough.
    A dry run reads the store without writing to it and returns the changes it would make."""
    progress.advance("process")
    if dry_run and not settings.db_path.exists():
        raise StaleStock(stock_refusal(None, settings.max_stock_age))
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, read_only=dry_run) as con:
        outcome = service.process(con, run_id, order_ids, max_stock_age=settings.max_stock_age, dry_run=dry_run)
    progress.advance("process", records=outcome["processed"] + outcome["failed"])
    get_run_logger().info(
        "%s %d orders, failed %d, %d waiting",
        "would process" if dry_run else "processed",
        outcome["processed"],
        outcome["failed"],
        outcome["waiting"],
    )
    if outcome.get("note"):
        get_run_logger().warning("%s", outcome["note"])
    return outcome


def stock_is_stale(settings: Settings) -> bool:
    """Whether processing would refuse for want of a fresh stock snapshot (a read, not a task: no Prefect cost)."""
    if not settings.db_path.exists():
        return True
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        return service.stock_refusal(con, settings.max_stock_age) is not None


@step
def reset_orders_to_new(
    settings: Settings,
    run_id: str,
    order_ids: Sequence[int] | None = None,
    status: str | None = None,
    reason: str | None = None,
) -> dict[str, int]:
    """Put decided orders back to NEW: all, those named, and/or those with this status and reason."""
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        counts = service.reset(con, run_id, order_ids, status=status, reason=reason)
    get_run_logger().info("reset %(reset)d orders to NEW", counts)
    return counts
