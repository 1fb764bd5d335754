"""The flows an operator runs: pipeline (sync then process), sync, process_all ("Process All"), reset_state."""

from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from flows import steps
from flows.run_record import recorded_run
from orderly.errors import StaleStock
from tasks.process import process_new_orders, reset_orders_to_new


# The UI's run form shows a list input (empty by default) titled "Order IDs"; the parameter's meaning comes from the
# flow's docstring (Prefect reads Google-style Args). None stays accepted from Python and the CLI but is hidden from
# the schema: a nullable parameter shows as a type picker saying 'Property is type "None"'.
OrderIds = Annotated[list[int] | SkipJsonSchema[None], Field(json_schema_extra={"title": "Order IDs", "default": []})]


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
def process_all(order_ids: OrderIds = None) -> dict[str, int]:
    """"Process All": decide NEW orders (all, or those named) in ascending id.

    Args:
        order_ids: The orders to decide; empty: all NEW orders. Orders that are not NEW are left as they are.
    """
    with recorded_run("process-all") as run:
        run.add(process_new_orders(run.settings, run.id, order_ids or None))
    return run.counts


@flow(name="reset-state", flow_run_name=lambda: "reset " + _which(_params().get("order_ids")))
def reset_state(order_ids: OrderIds = None) -> dict[str, int]:
    """"Reset State": put orders (all, or those named) back to NEW; PROCESSED ones release their stock.

    Args:
        order_ids: The orders to put back to NEW; empty: every order.
    """
    with recorded_run("reset-state") as run:
        run.add(reset_orders_to_new(run.settings, run.id, order_ids or None))
    return run.counts


def _params() -> dict:
    from prefect.runtime import flow_run

    return flow_run.parameters or {}
