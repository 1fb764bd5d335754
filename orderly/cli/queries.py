"""The query commands: they read DuckDB directly and never import Prefect (a test holds them to it)."""

from __future__ import annotations

import textwrap
from typing import Any

import typer

from domain.bounds import MAX_INT
from domain.model import Reason, Status, in_words
from orderly.cli import args as cli_args
from orderly.cli.app import TABLE_ROWS, CsvOption, JsonOption, OrderIdArgument, app
from orderly.cli.args import output_format, status_and_reason
from orderly.cli.output import STATUS_STYLES as STATUS_STYLE
from orderly.cli.output import Column, counts_in_words, out, print_csv, print_json, short_run, table, visible, when
from orderly.cli.reads import no_database, read, settings
from orderly.errors import BadArgument, ProblemsFound, UnknownOrders, one_line


def _run_id(con, text: str) -> str:
    """The one run whose id starts with `text` (a short id is enough), or one line saying why not."""
    from orderly.store import queries

    prefix = cli_args.run_prefix(text)
    found = queries.runs_starting(con, prefix, limit=6)
    if not found:
        raise BadArgument(f"no run id starts with {prefix!r}: `orderly runs` lists them")
    if len(found) > 1:
        # Each candidate by the part of its id that tells it apart, with what a person remembers of a run.
        length = queries.short_run_length(con, [run["run_id"] for run in found[:5]])
        shown = ", ".join(
            f"{run['run_id'][:length]} ({run['flow']}, started {when(run['started_at'])})" for run in found[:5]
        ) + (", ..." if len(found) > 5 else "")
        raise BadArgument(f"run id {prefix!r} is ambiguous: it starts {visible(shown)}; give more of it")
    return found[0]["run_id"]


def _in_run(run: str | None, reading, note: bool):
    """`reading(con, run_id)` for the run whose id starts with `run` (None: every run). A bad prefix is one line
    (BadArgument) before the store is opened; one that names no run, or a store that is not there, is one line too."""
    if run is not None:
        cli_args.run_prefix(run)
    found = read(lambda con: reading(con, None if run is None else _run_id(con, run)), note=note)
    if found is None and run is not None:
        raise BadArgument(f"no run id starts with {run.strip().lower()!r} ({no_database()})")
    return found


ORDER_FIELDS = ["order_id", "status", "items", "total_qty", "reason"]


@app.command()
def status(
    status_name: str | None = typer.Option(
        None, "--status", metavar="S", help=f"Only orders with this status: {in_words(Status)}."
    ),
    reason: str | None = typer.Option(
        None, "--reason", metavar="R", help=f"Only FAILED orders with this reason: {in_words(Reason)}."
    ),
    since: str | None = typer.Option(
        None, "--since", metavar="TIME", help="Only orders placed at or after TIME: " + cli_args.SINCE_HELP + "."
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        metavar="N",
        min=1,
        max=MAX_INT,
        help="Only the N latest (highest id) matching orders, still ascending.",
    ),
    as_json: bool = JsonOption,
    as_csv: bool = CsvOption,
) -> None:
    """The orders table, ascending by order id; the table ends with the count per status."""
    from orderly.store import queries

    output = output_format(as_json, as_csv)
    status_name, reason = status_and_reason(status_name, reason)
    after = None if since is None else cli_args.parse_since(since)
    shown = limit if output != "table" else min(limit or TABLE_ROWS, TABLE_ROWS)
    rows, counts = read(
        lambda con: queries.orders_matching(con, status=status_name, reason=reason, since=after, limit=shown)
    ) or ([], {})
    if output == "json":
        return print_json([{name: r[name] for name in ORDER_FIELDS} for r in rows])
    if output == "csv":
        return print_csv(ORDER_FIELDS, rows)
    # When each order was placed: what --since filters on.
    table(
        [
            Column("Order ID", "id"),
            Column("Placed", "when"),
            Column("Status", "status"),
            Column("Items", "num"),
            Column("Total Qty", "num"),
            Column("Reason", "code"),
        ],
        [[r["order_id"], _minute(r["placed_at"]), r["status"], r["items"], r["total_qty"], r["reason"]] for r in rows],
    )
    total = sum(counts.values())
    filtered = " matching" if (status_name or reason or since) else ""
    per_status = ", ".join(f"{counts[s]:,} [{STATUS_STYLE[s]}]{s}[/]" for s in Status if counts.get(s))
    out.print(f"{total:,}{filtered} order{'' if total == 1 else 's'}{': ' + per_status if per_status else ''}")
    if len(rows) < total:
        out.print(f"(the latest {len(rows):,} shown; `--limit N` or `--json` for more)", markup=False)


STOCK_FIELDS = [
    "inventory_id",
    "product_id",
    "sku",
    "product_name",
    "warehouse_id",
    "on_hand",
    "allocated",
    "available",
]


@app.command()
def stock(as_json: bool = JsonOption, as_csv: bool = CsvOption) -> None:
    """On-hand, allocated and available per inventory item, and the snapshot's age."""
    from orderly.store import queries

    output = output_format(as_json, as_csv)
    found = read(lambda con: (queries.latest_snapshot(con), queries.stock_levels(con)))
    snapshot, items = found or (None, [])
    if output == "json":
        return print_json({"snapshot": snapshot, "items": items})
    if output == "csv":
        return print_csv(STOCK_FIELDS, items)
    if snapshot is None:
        out.print("no stock snapshot yet: run `orderly sync`", markup=False)
    else:
        out.print(
            f"stock snapshot {snapshot['snapshot_id']}: completed {when(snapshot['completed_at'])}, "
            f"{snapshot['age_seconds']:,.0f} s ago; {snapshot['loaded']:,} items, {snapshot['rejected']:,} rejected",
            markup=False,
        )
    table(
        [
            Column("Item", "id"),
            Column("SKU", max_width=12),
            Column("Product"),
            Column("Warehouse", "id"),
            Column("On hand", "num"),
            Column("Allocated", "num"),
            Column("Available", "num"),
        ],
        [
            [
                i["inventory_id"],
                i["sku"],
                i["product_name"],
                i["warehouse_id"],
                i["on_hand"],
                i["allocated"],
                i["available"],
            ]
            for i in items[-TABLE_ROWS:]
        ],
    )
    if len(items) > TABLE_ROWS:
        out.print(f"(the last {TABLE_ROWS:,} of {len(items):,} items; `--json` or `--csv` has them all)", markup=False)


HISTORY_FIELDS = ["run_id", "changed_at", "from_status", "to_status", "reason", "details"]


@app.command()
def history(order_id: int = OrderIdArgument, as_json: bool = JsonOption, as_csv: bool = CsvOption) -> None:
    """That order's status changes: run, time, from, to, reason, and why (the recorded explanation)."""
    from orderly.explanations import change_why
    from orderly.store import queries

    output = output_format(as_json, as_csv)
    found = read(
        lambda con: (queries.order_exists(con, order_id), *_with_run_length(con, queries.order_history(con, order_id))),
        note=False,
    )
    if not found or not found[0]:
        raise UnknownOrders([order_id], "" if found else f" ({no_database()})")
    _, rows, length = found
    if output == "json":
        return print_json(rows)
    if output == "csv":
        return print_csv(HISTORY_FIELDS, rows)
    table(
        [
            Column("When", "when"),
            Column("From", "status"),
            Column("To", "status"),
            Column("Reason", "code"),
            Column("Why", "wrap"),
            Column("Run", "id"),
        ],
        [
            [
                r["changed_at"],
                r["from_status"],
                r["to_status"],
                r["reason"],
                change_why(r),
                short_run(r["run_id"], length),
            ]
            for r in rows
        ],
        title=f"Order {order_id}",
        empty=f"order {order_id} has had no status change yet",
    )


@app.command()
def explain(order_id: int = OrderIdArgument, as_json: bool = JsonOption) -> None:
    """Why an order has its status: its lines, each item's stock now, and the explanation recorded when decided."""
    from orderly.explanations import PROCESSED_WHY, why_failed
    from orderly.store import queries

    def query(con):
        found = queries.explain_order(con, order_id)
        if found is None:
            return None
        items = [line["inventory_id"] for line in found["lines"]]
        return found, queries.item_names(con, items), queries.short_run_length(con, [found["decided_run"]])

    read_back = read(query, note=False)
    if read_back is None:
        raise UnknownOrders([order_id], "" if settings().db_path.exists() else f" ({no_database()})")
    found, names, length = read_back
    if as_json:
        return print_json(found)
    style = STATUS_STYLE.get(found["status"], "")
    # The status on one line and when it was decided on the next: each fits 80 columns whatever the ids.
    out.print(f"order {order_id}: [{style}]{found['status']}[/]{' ' + found['reason'] if found['reason'] else ''}")
    if found["decided_at"] is not None:
        out.print(f"decided {when(found['decided_at'])} by run {short_run(found['decided_run'], length)}", markup=False)
    if found["status"] == Status.FAILED:
        out.print(
            f"why: {visible(why_failed(found['reason'], found['explanation']))}", markup=False
        )  # items named below
    elif found["status"] == Status.PROCESSED:
        out.print(f"why: {PROCESSED_WHY}", markup=False)
    else:
        out.print(
            f"not decided yet: `orderly process --order {order_id} --dry-run` shows what would happen", markup=False
        )
    table(
        [
            Column("Line", "num"),
            Column("Item", "id"),
            Column("SKU", max_width=14),
            Column("Product"),
            Column("Quantity", "num"),
            Column("On hand", "num"),
            Column("Allocated", "num"),
            Column("Available", "num"),
        ],
        [
            [
                line["line_no"] + 1,
                line["inventory_id"],  # stored from 0, as the record lists them; read from 1
                *(names.get(line["inventory_id"]) or ("", "not in the stock snapshot")),
                line["quantity"],
                *(("", "", "") if line["on_hand"] is None else (line["on_hand"], line["allocated"], line["available"])),
            ]
            for line in found["lines"]
        ],
    )
    out.print("(on hand, allocated and available are the stock now)")


def _run_fields() -> list[str]:
    from orderly.store.schema import RUN_COUNTERS

    return ["run_id", "flow", "started_at", "ended_at", "duration_s", "state", *RUN_COUNTERS, "message"]


@app.command()
def runs(
    run: str | None = typer.Argument(
        None, metavar="RUN", help="Only this run: its id, or the first characters of it (the short id the table shows)."
    ),
    limit: int = typer.Option(20, metavar="N", min=1, max=1_000_000, help="How many recent runs."),
    as_json: bool = JsonOption,
    as_csv: bool = CsvOption,
) -> None:
    """Recent runs (newest first) with their counts; a FAILED run with its reason."""
    from orderly.store import queries
    from orderly.store.schema import RUN_COUNTERS

    output = output_format(as_json, as_csv)
    if run is not None:
        found = _in_run(run, lambda con, run_id: [queries.run_by_id(con, run_id)], note=False)
        rows = [{name: _duration(r) if name == "duration_s" else r[name] for name in _run_fields()} for r in found]
        if output == "table":
            return _one_run(rows[0])
    else:
        rows, length = read(lambda con: _with_run_length(con, queries.recent_runs(con, limit))) or ([], 0)  # no store
    if output == "json":
        return print_json(rows)
    if output == "csv":
        return print_csv(_run_fields(), rows)
    table(
        [
            Column("Run", "id"),
            Column("Flow"),
            Column("Started", "when"),
            Column("Took", "num"),
            Column("State", "status"),
            Column("Counts or reason", "wrap"),
        ],
        [
            [
                short_run(r["run_id"], length),
                r["flow"],
                _minute(r["started_at"]),
                "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s",
                r["state"],
                one_line(r["message"])
                if r["state"] in ("FAILED", "CRASHED") and r["message"]
                else counts_in_words({name: r[name] for name in RUN_COUNTERS}),
            ]
            for r in rows
        ],
        empty="no runs yet: `orderly run` makes the first",
    )
    if run is None:
        from orderly.cli.feed import feed_line

        line = feed_line(read(queries.feed_state, note=False), bool(settings().webhook_url))
        if line:
            out.print(line, markup=False, soft_wrap=True)


def _with_run_length(con, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The rows, and how much of their run ids to show so each tells its run apart (queries.short_run_length)."""
    from orderly.store import queries

    return rows, queries.short_run_length(con, [row["run_id"] for row in rows])


def _duration(run: dict[str, Any]) -> float | None:
    if run.get("ended_at") is None or run.get("started_at") is None:
        return None
    return (run["ended_at"] - run["started_at"]).total_seconds()


def _minute(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else when(value)


def _one_run(run: dict[str, Any]) -> None:
    from orderly.store.schema import RUN_COUNTERS

    style = STATUS_STYLE.get(run["state"], "")
    out.print(f"run {run['run_id']}: {run['flow']}, [{style}]{run['state']}[/]")
    took = "" if run["duration_s"] is None else f", took {run['duration_s']:.1f} s"
    out.print(f"started {when(run['started_at'])}{took}", markup=False)
    if run["message"]:
        out.print(f"message: {visible(run['message'])}", markup=False)  # it may quote a remote
    out.print(
        counts_in_words({name: run[name] for name in RUN_COUNTERS}, zeros=True) or "no counts",
        markup=False,
        soft_wrap=True,
    )  # one line: the terminal wraps it, a program reads it whole


REJECT_FIELDS = ["run_id", "rejected_at", "source", "record_key", "reasons", "raw"]


@app.command()
def rejects(
    run: str | None = typer.Option(
        None,
        "--run",
        metavar="RUN",
        help="Only the records this run quarantined: its id or the first characters of it.",
    ),
    limit: int = typer.Option(1000, metavar="N", min=1, max=10_000_000, help="How many recent rejects."),
    as_json: bool = JsonOption,
    as_csv: bool = CsvOption,
) -> None:
    """Quarantined records with their reasons (newest first)."""
    from orderly.store import queries

    output = output_format(as_json, as_csv)
    found = _in_run(
        run, lambda con, run_id: _with_run_length(con, queries.rejects(con, limit, run_id)), note=run is None
    )
    rows, length = found or ([], 0)
    if output == "json":
        return print_json(rows)
    if output == "csv":
        return print_csv(REJECT_FIELDS, rows)
    table(
        [
            Column("When", "when"),
            Column("Run", "id"),
            Column("Source"),
            Column("Key", max_width=20),
            Column("Reasons", "wrap"),
        ],
        [[r["rejected_at"], short_run(r["run_id"], length), r["source"], r["record_key"], r["reasons"]] for r in rows],
        empty="no quarantined records" + (f" in run {run.strip().lower()}" if run is not None else ""),
    )


@app.command()
def doctor() -> None:
    """The resolved settings and database, and whether Prefect and each remote answer; exit 1 on any problem."""
    from orderly.cli.doctor import diagnose

    shown, checks = diagnose()
    for check in checks:
        line = visible(f"{'ok' if check.ok else 'PROBLEM':<8} {check.name}: {check.text}")  # a remote's words too
        out.print(
            textwrap.fill(
                line, width=out.width, subsequent_indent=" " * 9, break_on_hyphens=False, break_long_words=False
            ),
            markup=False,
            soft_wrap=True,
        )
    table([Column("Setting"), Column("Value", "wrap"), Column("Source")], shown, title="Effective settings")
    problems = [check for check in checks if not check.ok]
    if problems:
        raise ProblemsFound(
            f"{len(problems)} problem{'s' if len(problems) > 1 else ''}: "
            + "; ".join(check.name for check in problems)
            + " (advice above)"
        )
