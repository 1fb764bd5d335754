"""The flows an operator runs: pipeline (sync then process), sync, process_all ("Process All"), reset_state."""

from __future__ import annotations

from prefect import flow

from flows import steps
from flows.run_record import recorded_run
from orderly.errors import StaleStock
from tasks.process import process_new_orders, reset_orders_to_new


def _which(order_ids: list[int] | None) -> str:
    return "all" if not order_ids else "orders " + ",".join(map(str, sorted(order_ids)))


@flow(name="pipeline", flow_run_name="pipeline: sync and process", log_prints=True)
def pipeline() -> dict[str, int]:
    """One full pass: sync stock, ingest new orders, process every NEW order."""
    with recorded_run("pipeline") as run:
        steps.sync_stock(run)
        steps.ingest_orders(run)
        try:
            run.add(process_new_orders(run.settings, run.id))
        except StaleStock as refusal:
            if not run.problems:
                raise
            run.problems.append(str(refusal))  # after its cause: the remote that could not be read
    return run.counts


@flow(name="sync", flow_run_name="sync: stock and new orders")
def sync() -> dict[str, int]:
    """Sync stock and ingest new orders; decide nothing."""
    with recorded_run("sync") as run:
        steps.sync_stock(run)
        steps.ingest_orders(run)
    return run.counts


@flow(name="process-all", flow_run_name=lambda: "process " + _which(_params().get("order_ids")))
def process_all(order_ids: list[int] | None = None) -> dict[str, int]:
    """"Process All": decide NEW orders (all, or those named) in ascending id."""
    with recorded_run("process-all") as run:
        run.add(process_new_orders(run.settings, run.id, order_ids or None))
    return run.counts


@flow(name="reset-state", flow_run_name=lambda: "reset " + _which(_params().get("order_ids")))
def reset_state(order_ids: list[int] | None = None) -> dict[str, int]:
    """"Reset State": put orders (all, or those named) back to NEW; PROCESSED ones release their stock."""
    with recorded_run("reset-state") as run:
        run.add(reset_orders_to_new(run.settings, run.id, order_ids or None))
    return run.counts


def _params() -> dict:
    from prefect.runtime import flow_run

    return flow_run.parameters or {}
