"""Ingest tasks: sync stock, ingest new orders, reconcile the orders remote; each one use case of orderly.ingest.

No task-level retries: orderly.boundary.remote already retries each page ORDERLY_HTTP_RETRIES times with back-off;
retrying a whole task on top would re-read every page and double the bound the operator set."""

from __future__ import annotations

from prefect import get_run_logger

from orderly import ingest
from orderly.settings import Settings
from tasks import step


@step
def sync_stock(settings: Settings, run_id: str) -> ingest.Outcome:
    outcome = ingest.sync_stock(settings, run_id)
    if outcome.problem is None:
        get_run_logger().info(
            "stock snapshot: %(stock_loaded)d items, %(stock_rejected)d rejected, %(stock_repeated)d repeated",
            outcome.counts,
        )
    else:
        get_run_logger().warning("%s", outcome.problem)
    return outcome


@step
def ingest_orders(settings: Settings, run_id: str) -> ingest.Outcome:
    return _logged(ingest.ingest_orders(settings, run_id))


@step
def reconcile_orders(settings: Settings, run_id: str) -> ingest.Outcome:
    outcome = _logged(ingest.reconcile_orders(settings, run_id))
    get_run_logger().info(
        "reconcile: %(remote)d orders at the remote, %(stored)d already stored, %(missing)d "
        "missing, %(added)d added now, %(changed)d changed",
        outcome.reconcile,
    )
    return outcome


def _logged(outcome: ingest.Outcome) -> ingest.Outcome:
    counts = {name: outcome.counts.get(name, 0) for name in ("orders_loaded", "orders_repeated", "orders_rejected")}
    get_run_logger().info(
        "orders: %(orders_loaded)d new, %(orders_repeated)d unchanged repeats, %(orders_rejected)d rejected", counts
    )
    if outcome.problem is not None:
        get_run_logger().warning("%s", outcome.problem)
    return outcome
