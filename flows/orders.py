"""The flows an operator runs: pipeline (sync, process, deliver), sync, process_all ("Process All"), reset_state,
reconcile, and deliver (the decision feed)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from prefect import flow, runtime
from prefect.utilities.annotations import quote
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from domain.model import DECIDED, Reason
from flows import steps
from flows.run_record import recorded_run
from orderly.settings import current as current_settings
from tasks.process import process_new_orders, reset_orders_to_new, stock_is_stale
from tasks.report import publish_preview, publish_reconciliation

# The words are domain.model's; a reset selects among the decided statuses only (the UI's form offers no NEW).
DecidedName = Literal[tuple(str(status) for status in DECIDED)]  # type: ignore[misc] - built from the one source
ReasonName = Literal[tuple(str(reason) for reason in Reason)]  # type: ignore[misc]


# The UI's run form shows a list input (empty by default) titled "Order IDs"; the parameter's meaning comes from the
# flow's docstring (Prefect reads Google-style Args). None stays accepted from Python and the CLI but is hidden from
# the schema: a nullable parameter shows as a type picker saying 'Property is type "None"', without its description.
OrderIds = Annotated[list[int] | SkipJsonSchema[None], Field(json_schema_extra={"title": "Order IDs", "default": []})]
StatusChoice = Annotated[DecidedName | SkipJsonSchema[None], Field(json_schema_extra={"title": "Status"})]
ReasonChoice = Annotated[ReasonName | SkipJsonSchema[None], Field(json_schema_extra={"title": "Reason"})]


def _which(params: dict) -> str:
    order_ids = params.get("order_ids")
    which = "all" if not order_ids else "orders " + ",".join(map(str, sorted(order_ids)))
    matching = " ".join(str(params[name]) for name in ("status", "reason") if params.get(name))
    return f"{which} {matching}" if matching else which


@flow(name="pipeline", flow_run_name="pipeline: sync and process", log_prints=True)
def pipeline() -> dict[str, Any]:
    """One full pass: sync stock, ingest new orders, process every NEW order."""
    with recorded_run("pipeline") as run:
        steps.sync_stock(run)
        steps.ingest_orders(run)
        steps.process(run)
        steps.deliver(run)
    return run.outcome()


@flow(name="sync", flow_run_name="sync: stock and new orders")
def sync() -> dict[str, Any]:
    """Sync stock and ingest new orders; decide nothing."""
    with recorded_run("sync") as run:
        steps.sync_stock(run)
        steps.ingest_orders(run)
    return run.outcome()


@flow(name="reconcile", flow_run_name="reconcile: the whole orders remote")
def reconcile() -> dict[str, Any]:
    """Read the whole orders remote again under the same rules, store any order missing locally, and record what
    was found (the `orders-reconciliation` artifact; an alert when orders were missing)."""
    with recorded_run("reconcile") as run:
        outcome = steps.reconcile_orders(run)
        if outcome.reconcile is not None and outcome.problem is None:
            publish_reconciliation(run.id, outcome.reconcile)
    return run.outcome()


@flow(
    name="process-all",
    flow_run_name=lambda: "process " + _which(_params()) + (" (dry run)" if _params().get("dry_run") else ""),
)
def process_all(order_ids: OrderIds = None, dry_run: bool = False, sync_stale_stock: bool = False) -> dict[str, Any]:
    """ "Process All": decide NEW orders (all, or those named) in ascending id.

    Args:
        order_ids: The orders to decide; empty: all NEW orders. Orders that are not NEW are left as they are.
        dry_run: Decide exactly as a real run would but write nothing: the counts and every change it would
            make (with explanations) are published as the `orders-process-preview` artifact.
        sync_stale_stock: First sync stock from the warehouse when the local snapshot is missing or older than
            ORDERLY_MAX_STOCK_AGE (the web page's Process All does); otherwise such a run refuses and says why.
    """
    settings = current_settings()
    if dry_run:
        preview = process_new_orders(
            settings, str(runtime.flow_run.id or uuid.uuid4()), order_ids or None, dry_run=True
        )
        publish_preview(quote(preview))  # quote: Prefect would walk every row looking for futures
        return preview
    # A sync lets go of the store between its chunks, so a run that syncs first does not hold it (recorded_run).
    stale = sync_stale_stock and stock_is_stale(settings)
    with recorded_run("process-all", hold_store=not stale, settings=settings) as run:
        if stale:
            steps.sync_stock(run)
        steps.process(run, order_ids or None)
    return run.outcome()


@flow(name="reset-state", flow_run_name=lambda: "reset " + _which(_params()))
def reset_state(order_ids: OrderIds = None, status: StatusChoice = None, reason: ReasonChoice = None) -> dict[str, int]:
    """ "Reset State": put orders back to NEW (all, those named, and/or those with this status and failure
    reason); PROCESSED ones release their stock. status=FAILED, reason=INSUFFICIENT_STOCK, then Process All,
    retries the orders that lacked stock.

    Args:
        order_ids: The orders to put back to NEW; empty: every decided order (or every one matching status/reason).
        status: Only orders with this status (PROCESSED or FAILED); empty: both.
        reason: Only FAILED orders with this failure reason; empty: any.
    """
    with recorded_run("reset-state", hold_store=True) as run:
        run.add(reset_orders_to_new(run.settings, run.id, order_ids or None, status=status, reason=reason))
    return run.outcome()


@flow(name="deliver", flow_run_name="deliver: the decision feed")
def deliver() -> dict[str, Any]:
    """Deliver the decision feed: every event not yet delivered to ORDERLY_WEBHOOK_URL, in ascending id, signed,
    for at most about 25 s. It takes no write slot: it never waits for processing, nor processing for it."""
    with recorded_run("deliver", shares_write_slot=False) as run:
        steps.deliver(run, budget_s=steps.DELIVER_EVERY_S - 5)
    return run.outcome()


def _params() -> dict:
    return runtime.flow_run.parameters or {}


# Each data-changing command and the flow it runs: the command line's, and the worker's for the commands handed to it.
BY_COMMAND = {
    "pipeline": pipeline,
    "sync": sync,
    "process": process_all,
    "reset": reset_state,
    "reconcile": reconcile,
    "deliver": deliver,
}
