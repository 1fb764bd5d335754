"""Report task: publish the run's outcome to the Prefect UI as artifacts (orders table, summary, rejects)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from orderly.settings import Settings
from orderly.store import open_store, queries

TABLE_LIMIT = 500  # the UI gets the latest orders and the counts, never a million rows


@task(cache_policy=NO_CACHE)
def publish_report(settings: Settings, run_id: str, flow: str, counts: dict[str, Any], problems: list[str]) -> None:
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, read_only=False) as con:
        orders = queries.orders_status(con, limit=TABLE_LIMIT)
        by_status = queries.status_counts(con)
        snapshot = queries.latest_snapshot(con)
        rejects = queries.rejects(con, limit=TABLE_LIMIT, run_id=run_id)
    total = sum(by_status.values())
    create_table_artifact(
        key="orders-status",
        table=[
            {"Order ID": o["order_id"], "Status": o["status"], "Items": o["items"],
             "Total Qty": o["total_qty"], "Reason": o["reason"] or ""}
            for o in orders
        ],
        description=f"Orders after `{flow}`: {', '.join(f'{k} {v}' for k, v in by_status.items()) or 'none'}"
        + (f" (latest {TABLE_LIMIT} of {total} shown)" if total > TABLE_LIMIT else ""),
    )
    age = "none yet" if snapshot is None else f"{snapshot['age_seconds']:.0f} s"
    lines = [
        f"# {flow}",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in counts.items()),
        f"| stock snapshot age | {age} |",
        *(f"| orders {status} | {n} |" for status, n in by_status.items()),
    ]
    if problems:
        lines += ["", "## Problems", *(f"- {p}" for p in problems)]
    create_markdown_artifact(key="orders-run-summary", markdown="\n".join(lines), description=f"Summary of {flow}")
    if rejects:
        create_table_artifact(
            key="orders-rejects",
            table=[{"Source": r["source"], "Key": r["record_key"] or "", "Reasons": r["reasons"]} for r in rejects],
            description=f"Records quarantined by this run ({len(rejects)} shown)",
        )
