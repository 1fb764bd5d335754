"""Report tasks: publish a run's outcome (orders table, summary, rejects) or a dry run's preview as artifacts."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from orderly.explanations import preview_why
from orderly.settings import Settings
from orderly.store import open_store, queries
from orderly.store.schema import RUN_COUNTERS
from tasks import step

TABLE_LIMIT = 500  # the UI gets the latest orders and the counts, never a million rows


def summary_markdown(
    flow: str,
    state: str,
    duration_s: float | None,
    counts: dict[str, Any],
    snapshot: dict[str, Any] | None,
    by_status: dict[str, int],
    problems: list[str],
    notes: list[str] = (),
) -> str:
    """The run's summary as markdown: every run counter under its one name, the stock's age, the orders."""
    age = "none yet" if snapshot is None else f"{snapshot['age_seconds']:.0f} s"
    lines = [
        f"# {flow}: {state.lower()}",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {int(counts.get(name, 0))} |" for name in RUN_COUNTERS),
        f"| stock snapshot age | {age} |",
        f"| duration | {'' if duration_s is None else f'{duration_s:.1f} s'} |",
        *(f"| orders {status} | {n} |" for status, n in by_status.items()),
    ]
    if problems:
        lines += ["", "## Problems", *(f"- {p}" for p in problems)]
    if notes:
        lines += ["", "## Notes", *(f"- {n}" for n in notes)]
    return "\n".join(lines)


def run_origin(flow_run: Any) -> str:
    """Who started a flow run, in the operator's words: the schedule, the UI or API (a deployment run someone
    asked for), an automation, or the command line (a run with no deployment)."""
    if flow_run is None or getattr(flow_run, "deployment_id", None) is None:
        return "the command line"
    if getattr(flow_run, "auto_scheduled", False):
        return "the schedule"
    created_by = getattr(flow_run, "created_by", None)
    if created_by is not None and created_by.display_value:  # e.g. an automation that ran the deployment
        return " ".join(filter(None, [(created_by.type or "").lower(), created_by.display_value]))
    return "the UI or API"


def run_label(flow: str) -> str:
    """The run as the operator saw it start: its flow run name, its flow, and who started it."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    name = getattr(flow_run, "name", None) or flow
    return f"`{name}` ({flow}, started by {run_origin(flow_run)})"


@step
def publish_report(
    settings: Settings,
    run_id: str,
    flow: str,
    counts: dict[str, Any],
    problems: list[str],
    state: str = "COMPLETED",
    duration_s: float | None = None,
    notes: list[str] = (),
) -> None:
    """Three artifacts: `orders-status` (latest orders + counts), `orders-run-summary`, and `orders-rejects` if any."""
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, read_only=False) as con:
        orders = queries.orders_status(con, limit=TABLE_LIMIT)
        by_status = queries.status_counts(con)
        snapshot = queries.latest_snapshot(con)
        rejects = queries.rejects(con, limit=TABLE_LIMIT, run_id=run_id)
    total = sum(by_status.values())
    label = run_label(flow)
    create_table_artifact(
        key="orders-status",
        table=[
            {
                "Order ID": o["order_id"],
                "Status": o["status"],
                "Items": o["items"],
                "Total Qty": o["total_qty"],
                "Reason": o["reason"] or "",
            }
            for o in orders
        ],
        description=f"Orders after {label}: {', '.join(f'{k} {v}' for k, v in by_status.items()) or 'none'}"
        + (f" (latest {TABLE_LIMIT} of {total} shown)" if total > TABLE_LIMIT else ""),
    )
    create_markdown_artifact(
        key="orders-run-summary",
        markdown=summary_markdown(flow, state, duration_s, counts, snapshot, by_status, problems, list(notes)),
        description=f"Summary of {label}: {state.lower()}",
    )
    if rejects:
        rejected = int(counts.get("orders_rejected", 0)) + int(counts.get("stock_rejected", 0))
        create_table_artifact(
            key="orders-rejects",
            table=[{"Source": r["source"], "Key": r["record_key"] or "", "Reasons": r["reasons"]} for r in rejects],
            description=f"Records quarantined by {label}: {max(rejected, len(rejects))}"
            + (
                f" (latest {len(rejects)} shown; `orderly rejects --json` has them all)"
                if rejected > len(rejects)
                else ""
            ),
        )
    get_run_logger().info("published the orders-status table (%d of %d orders) and the run summary", len(orders), total)


@step
def publish_preview(preview: dict[str, Any]) -> None:
    """A dry run's artifact `orders-process-preview`: what Process All would do, written nowhere else."""
    changes = preview["changes"]
    create_table_artifact(
        key="orders-process-preview",
        table=[
            {"Order ID": c["order_id"], "Would be": c["to_status"], "Reason": c["reason"] or "", "Why": preview_why(c)}
            for c in changes[:TABLE_LIMIT]
        ],
        description=f"Dry run of Process All (nothing was written): would process {preview['processed']:,}, "
        f"fail {preview['failed']:,}"
        + (f" (first {TABLE_LIMIT:,} of {len(changes):,} shown)" if len(changes) > TABLE_LIMIT else ""),
    )
    get_run_logger().info("published the preview: would process %d, fail %d", preview["processed"], preview["failed"])


RECONCILE_MISSING_EVENT = "orderly.reconcile.missing"


@step
def publish_reconciliation(run_id: str, found: dict[str, int]) -> None:
    """The `orders-reconciliation` artifact; and, when orders were missing locally (the incremental path lost
    them), the event `orderly.reconcile.missing` that the automation of the same name alerts on."""
    from prefect.events import emit_event

    label = run_label("reconcile")
    rows = [
        ("order ids at the remote", "remote"),
        ("already stored", "stored"),
        ("missing locally", "missing"),
        ("added now", "added"),
        ("changed at the remote (conflicts)", "changed"),
    ]
    create_markdown_artifact(
        key="orders-reconciliation",
        markdown="\n".join(
            [
                "# Reconciliation",
                "",
                "| found | orders |",
                "|---|---|",
                *(f"| {words} | {found[name]:,} |" for words, name in rows),
            ]
        ),
        description=f"Reconciliation by {label}: {found['missing']:,} missing, {found['added']:,} added",
    )
    if found["missing"]:
        emit_event(
            event=RECONCILE_MISSING_EVENT,
            resource={"prefect.resource.id": f"orderly.run.{run_id}", "prefect.resource.name": "reconcile"},
            payload=dict(found),
        )
    get_run_logger().info("reconciliation: %s", ", ".join(f"{words} {found[name]}" for words, name in rows))
