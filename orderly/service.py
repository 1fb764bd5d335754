"""The use cases that change order statuses: read from the store, let the domain decide, hand the decisions to
the store to write, in a transaction (a big backlog: one per chunk of orders). The Prefect tasks
(tasks/process.py) call these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from domain import rule
from domain.model import parse_decided, parse_reason
from orderly.errors import BadArgument, StaleStock, UnknownOrders
from orderly.store import queries, writes
from orderly.store.connection import transaction

# NEW orders are decided and written a chunk at a time, in ascending id, each chunk from what the ones before it
# left, and each in a transaction of its own. Deciding a million NEW orders at once, in one transaction, peaked
# 405-424 MB above the imports (DuckDB held every update until the commit; the rule's working arrays); 100,000
# a chunk peaks 163-186 MB above them (bench/README.md).
ORDERS_PER_CHUNK = 100_000


def process(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    order_ids: Sequence[int] | None = None,
    *,
    max_stock_age: float,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Decide the NEW orders (all, or those named). Returns the counts (processed, failed, waiting); a dry run
    decides exactly the same way, writes nothing and adds `changes`: each row it would write, with its explanation.

    An order that needs a stale item (its value last confirmed more than `max_stock_age` seconds ago) waits: it
    stays NEW, no history row, counted as `waiting`. When any waited, the outcome also holds `waiting_items` (the
    stale items they need) and `note`, the one line that says so. Waiting is not a refusal of the run.

    Each order is decided all or nothing (its status, its history row and its share of the run's counters commit
    together); a run stopped half-way leaves the orders after its last chunk NEW, for the next run to decide from
    the stock the earlier ones took, as if the run had been asked for those orders alone."""
    with transaction(con):
        _refuse_unknown(con, order_ids)
        refusal = stock_refusal(con, max_stock_age)
        if refusal:
            raise StaleStock(refusal)
        stock = queries.stock_to_decide(con, max_stock_age)
    counts = {"processed": 0, "failed": 0, "waiting": 0}
    changes: list[dict[str, Any]] = []
    waited_for: set[int] = set()
    chunks = queries.new_order_lines_in_chunks(con, order_ids, ORDERS_PER_CHUNK)
    for decisions in rule.decide_in_turn(chunks, *stock):
        counts = {name: counts[name] + value for name, value in decisions.counts.items()}
        waited_for.update(decisions.waiting["inventory_id"].tolist())
        if dry_run:
            changes += queries.preview_decisions(con, **decisions.columns())
            continue
        with transaction(con):
            writes.record_decisions(con, run_id, decisions.counts, **decisions.columns())
    outcome: dict[str, Any] = dict(counts)
    if counts["waiting"]:
        outcome["waiting_items"] = sorted(waited_for)
        outcome["note"] = waiting_note(counts["waiting"], outcome["waiting_items"], max_stock_age, dry_run=dry_run)
    return {**outcome, "changes": changes} if dry_run else outcome


def stock_refusal(con: duckdb.DuckDBPyConnection, max_stock_age: float) -> str | None:
    """Why processing would refuse now (no complete stock snapshot, or one too old), or None."""
    return rule.stock_refusal(queries.snapshot_age(con), max_stock_age)


def waiting_note(orders: int, items: list[int], max_stock_age: float, *, dry_run: bool = False, shown: int = 10) -> str:
    """The run's line about the orders left NEW for stale stock: how many, and for which items."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    which = ", ".join(map(str, items[:shown])) + more
    verb = "would wait" if dry_run else "wait" if orders > 1 else "waits"
    return (
        f"{orders} order{'s' if orders > 1 else ''} {verb} for stale stock: item{'s' if len(items) > 1 else ''} "
        f"{which} (last good value older than ORDERLY_MAX_STOCK_AGE={max_stock_age:g} s)"
    )


def reset(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    order_ids: Sequence[int] | None = None,
    *,
    status: str | None = None,
    reason: str | None = None,
) -> dict[str, int]:
    """Put decided orders back to NEW: all, those named, and/or those with this status and failure reason."""
    try:
        status, reason = parse_decided(status), parse_reason(reason)
    except ValueError as error:
        raise BadArgument(str(error)) from None
    with transaction(con):
        _refuse_unknown(con, order_ids)
        decisions = rule.reset(*queries.decided_orders(con, order_ids, status and str(status), reason and str(reason)))
        writes.record_decisions(con, run_id, decisions.counts, **decisions.columns())
    return decisions.counts


def named_orders(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int]) -> dict[int, str]:
    """The status of each named order, or UnknownOrders naming those the store does not have: the one check, run
    by the command line before any flow starts and by the use cases inside their transaction."""
    found = queries.order_statuses(con, order_ids)
    if len(found) < len(set(order_ids)):
        raise UnknownOrders(set(order_ids) - set(found))
    return found


def _refuse_unknown(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | None) -> None:
    if order_ids:
        named_orders(con, order_ids)
