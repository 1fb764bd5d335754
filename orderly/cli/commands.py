"""The data-changing commands (run, sync, reconcile, process, reset): each is a Prefect flow run (flow_run.py).
A dry run and every refusal of an argument answer here, before any flow starts."""

from __future__ import annotations

import sys
from typing import Any

import typer

from domain.model import DECIDED, Reason, Status, in_words
from orderly.cli.app import TABLE_ROWS, JsonOption, OrderOption, app
from orderly.cli.args import status_and_reason
from orderly.cli.flow_run import run_flow
from orderly.cli.output import Column, counts_in_words, err, out, print_json, table
from orderly.cli.reads import no_database, read, settings
from orderly.errors import Declined, SettingsError, UnknownOrders, ids_in_words


def _named_orders(order: list[int] | None, wanted: str) -> list[int] | None:
    """Check the ids of --order against the store before any flow starts. An unknown id stops the command;
    an order that is not `wanted` (NEW for process, decided for reset) is named as skipped. The ids left."""
    if not order:
        return None
    from orderly.service import named_orders

    found = read(named_orders, sorted(set(order)), note=False)
    if found is None:
        raise UnknownOrders(order, f" ({no_database()})")
    skipped: dict[str, list[int]] = {}
    for order_id, status_now in sorted(found.items()):
        if (status_now == Status.NEW) != (wanted == Status.NEW):
            skipped.setdefault(status_now, []).append(order_id)
    for status_now, ids in skipped.items():
        err.print(
            f"order{'s' if len(ids) > 1 else ''} {ids_in_words(ids)} {'are' if len(ids) > 1 else 'is'} {status_now}"
            f"{' already' if status_now == Status.NEW else ''}, skipped",
            markup=False,
        )
    return sorted(
        order_id for order_id, status_now in found.items() if (status_now == Status.NEW) == (wanted == Status.NEW)
    )


# The counters that say a run changed something, or left orders waiting (which its note explains).
_CHANGES = ("stock_loaded", "orders_loaded", "processed", "failed", "waiting", "reset", "reconcile_added")


def _summary(what: str, outcome: dict[str, Any]) -> None:
    """The run's counts on one line, then its notes (e.g. the orders that wait for stale stock), one line each.
    A note is not a failure: the exit status stays 0."""
    counts = {name: value for name, value in outcome.items() if isinstance(value, int)}
    if any(counts.get(name) for name in _CHANGES):
        shown = counts_in_words(counts, zeros=True)
    else:  # "processed 0, failed 0" reads like a result; say that there was nothing to do, and what was read
        read_only = counts_in_words(counts)
        shown = "nothing to do" + (f" ({read_only})" if read_only else "")
    out.print(f"{what}: {shown}", markup=False, soft_wrap=True)  # one line of data, whatever the width
    for note in outcome.get("notes") or ([outcome["note"]] if outcome.get("note") else []):
        out.print(note, markup=False, soft_wrap=True)


@app.command()
def run() -> None:
    """One full pass: sync stock, ingest new orders, process every NEW order."""
    _summary("run", run_flow("pipeline"))


@app.command()
def sync() -> None:
    """Sync stock and ingest new orders only."""
    _summary("sync", run_flow("sync"))


@app.command()
def reconcile() -> None:
    """Read the whole orders remote again, store any order missing locally, and say what was found."""
    _summary("reconcile", run_flow("reconcile"))


@app.command()
def process(
    order: list[int] | None = OrderOption,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Decide exactly as a real run would, write nothing, and show the changes it would make.",
    ),
    sync_stale_stock: bool = typer.Option(
        False,
        "--sync-stale-stock",
        help="First sync stock when the snapshot is "
        "missing or older than ORDERLY_MAX_STOCK_AGE (as the web page's press does).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """ "Process All": process NEW orders (all, or those named), then show the orders table."""
    named = _named_orders(order, Status.NEW)
    if named == [] or (dry_run and named is None and not _new_orders()):  # nothing for a flow to decide
        result: dict[str, Any] = {"processed": 0, "failed": 0, "waiting": 0, **({"changes": []} if dry_run else {})}
    else:
        result = run_flow("process", order_ids=named, dry_run=dry_run, sync_stale_stock=sync_stale_stock)
    if dry_run:
        return _preview(result, as_json)
    if as_json:
        return print_json(result)
    _summary("process", result)
    from orderly.cli.queries import status

    status(status_name=None, reason=None, since=None, limit=None, as_json=False, as_csv=False)


def _new_orders() -> int:
    """How many orders are NEW now (0 without a store): a dry run with none answers without starting Prefect."""
    from orderly.store import queries

    return (read(queries.status_counts) or {}).get(Status.NEW, 0)


def _preview(preview: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return print_json({"dry_run": True, **preview})
    from orderly.explanations import preview_why

    changes = preview["changes"]
    err.print(f"dry run, nothing was written: would process {preview['processed']:,}, fail {preview['failed']:,}")
    if preview.get("note"):
        err.print(preview["note"], markup=False)
    table(
        [
            Column("Order ID", "id"),
            Column("Now", "status"),
            Column("Would be", "status"),
            Column("Reason", "code"),
            Column("Why", "wrap"),
        ],
        [[c["order_id"], c["from_status"], c["to_status"], c["reason"], preview_why(c)] for c in changes[:TABLE_ROWS]],
        empty="nothing would change",
    )
    if len(changes) > TABLE_ROWS:
        out.print(f"(the first {TABLE_ROWS:,} of {len(changes):,} changes; `--json` has them all)", markup=False)


@app.command()
def reset(
    order: list[int] | None = OrderOption,
    status_name: str | None = typer.Option(
        None, "--status", metavar="S", help=f"Only orders with this status: {in_words(DECIDED)}."
    ),
    reason: str | None = typer.Option(
        None, "--reason", metavar="R", help=f"Only FAILED orders with this reason: {in_words(Reason)}."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before resetting every order."),
) -> None:
    """ "Reset State": put orders back to NEW (all, those named, or those matching --status/--reason)."""
    status_name, reason = status_and_reason(status_name, reason, decided_only=True)
    if not (order or status_name or reason) and not yes and sys.stdin.isatty():
        import click

        try:
            sure = typer.confirm("Put every PROCESSED and FAILED order back to NEW?", default=False, err=True)
        except click.Abort:
            sure = False
        if not sure:
            raise Declined("nothing was reset")
    named = _named_orders(order, "decided")
    if named == []:
        return _summary("reset", {"reset": 0})
    _summary("reset", run_flow("reset", order_ids=named, status=status_name, reason=reason))


@app.command()
def deliver() -> None:
    """Deliver the decisions not yet delivered to ORDERLY_WEBHOOK_URL now (the `deliver` deployment does it every
    30 s under `orderly serve`, the pipeline after each run)."""
    if not settings().webhook_url:
        raise SettingsError(
            "ORDERLY_WEBHOOK_URL is not set: there is no receiver to deliver to (`orderly events` reads the feed)",
            "ORDERLY_WEBHOOK_URL",
        )
    _summary("deliver", run_flow("deliver"))
