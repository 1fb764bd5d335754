"""The use cases that change order statuses. Each is one transaction: read from the store, let the domain
decide, hand the decisions to the store to write. The Prefect tasks (tasks/process.py) call these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from domain import parse_reason, parse_status, rule
from orderly.errors import BadArgument, StaleStock, UnknownOrders
from orderly.store import queries, writes
from orderly.store.connection import transaction


def process(
    con: duckdb.DuckDBPyConnection, run_id: str | None, order_ids: Sequence[int] | None = None, *,
    max_stock_age: float, dry_run: bool = False,
) -> dict[str, Any]:
    """Decide the NEW orders (all, or those named). Returns the counts (processed, failed); a dry run decides
    exactly the same way, writes nothing and adds `changes`: each row it would write, with its explanation."""
    with transaction(con):
        _refuse_unknown(con, order_ids)
        refusal = rule.stock_refusal(queries.snapshot_age(con), max_stock_age)
        if refusal:
            raise StaleStock(refusal)
        decisions = rule.decide(*queries.new_order_lines(con, order_ids), *queries.available_stock(con))
        if dry_run:
            return {**decisions.counts, "changes": queries.preview_decisions(con, **decisions.columns())}
        writes.record_decisions(con, run_id, decisions.counts, **decisions.columns())
    return decisions.counts


def reset(
    con: duckdb.DuckDBPyConnection, run_id: str | None, order_ids: Sequence[int] | None = None, *,
    status: str | None = None, reason: str | None = None,
) -> dict[str, int]:
    """Put decided orders back to NEW: all, those named, and/or those with this status and failure reason."""
    try:
        status, reason = parse_status(status), parse_reason(reason)
    except ValueError as error:
        raise BadArgument(str(error)) from None
    with transaction(con):
        _refuse_unknown(con, order_ids)
        decisions = rule.reset(*queries.decided_orders(con, order_ids, status and str(status), reason and str(reason)))
        writes.record_decisions(con, run_id, decisions.counts, **decisions.columns())
    return decisions.counts


def _refuse_unknown(con: duckdb.DuckDBPyConnection, order_ids: Sequence[int] | None) -> None:
    if order_ids:
        unknown = queries.unknown_order_ids(con, order_ids)
        if unknown:
            raise UnknownOrders(f"no such order: {', '.join(map(str, unknown))}; nothing was changed")
