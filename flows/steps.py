"""The pipeline's steps as the flows use them: each task's outcome added to the run (counts, problems, notes)."""

from __future__ import annotations

from flows.run_record import Run
from orderly.errors import StaleStock
from orderly.ingest import Outcome
from tasks.deliver import deliver_events
from tasks.ingest import ingest_orders as ingest_orders_task
from tasks.ingest import reconcile_orders as reconcile_orders_task
from tasks.ingest import sync_stock as sync_stock_task
from tasks.process import process_new_orders

# The pipeline delivers what it decided for at most this long: a receiver that is down costs each run this, no
# more (the `deliver` deployment keeps trying every DELIVER_EVERY_S).
PIPELINE_DELIVERY_S = 3.0
DELIVER_EVERY_S = 30.0


def _count(run: Run, outcome: Outcome) -> Outcome:
    run.add(outcome.counts)
    if outcome.problem is not None:
        run.problems.append(outcome.problem)
    return outcome


def sync_stock(run: Run) -> None:
    """Replace the local stock with a complete snapshot; if the warehouse cannot give one, keep the last one."""
    _count(run, sync_stock_task(run.settings, run.id))


def ingest_orders(run: Run) -> None:
    """Append every order after the look-back start; a remote that fails stops it with what was read kept."""
    _count(run, ingest_orders_task(run.settings, run.id))


def process(run: Run, order_ids: list[int] | None = None) -> None:
    """Decide the NEW orders (all, or those named). A refusal for want of fresh stock after a sync that failed is
    said after its cause, the remote that could not be read (whose exit status the run then takes)."""
    try:
        run.add(process_new_orders(run.settings, run.id, order_ids))
    except StaleStock as refusal:
        if not run.problems:
            raise
        run.problems.append(str(refusal))


def reconcile_orders(run: Run) -> Outcome:
    """Read the whole orders remote again and store what is missing."""
    return _count(run, reconcile_orders_task(run.settings, run.id))


def deliver(run: Run, budget_s: float = PIPELINE_DELIVERY_S) -> None:
    """Deliver the decision feed's backlog to the webhook, when one is configured; a receiver that is down is a
    note of the run, not its failure (the backlog waits for the next delivery)."""
    if run.settings.webhook_url:
        run.add(deliver_events(run.settings, run.id, budget_s))
