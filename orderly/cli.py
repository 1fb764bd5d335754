"""The `orderly` command: data-changing commands run Prefect flows; query commands read DuckDB directly."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from orderly.errors import OrderlyError
from orderly.settings import SandboxSettings, Settings, SettingsError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Orderly: orders and stock, decided on Prefect + DuckDB.")
# Piped output (CI logs, `| less`) gets room for whole run ids instead of rich's 80-column default.
out = Console(highlight=False) if sys.stdout.isatty() else Console(highlight=False, width=200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

TABLE_ROWS = 1000  # a person reads the latest thousand; programs use --json for everything

MAX_ID = 2**63 - 1  # domain.bounds.MAX_INT, spelled here so query commands import nothing of the domain
OrderOption = typer.Option(None, "--order", min=1, max=MAX_ID, help="Only this order id (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print JSON for programs.")


class Fail(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as error:
        raise Fail(str(error), 2) from None


# ---- data-changing commands: each one is a Prefect flow run ------------------------------------

def _run_flow(name: str, **params: Any) -> dict[str, int]:
    _settings()  # a bad setting is reported before Prefect spends seconds starting up
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")  # our own lines say what happened
    if not os.environ.get("PREFECT_API_URL"):
        err.print(
            "note: PREFECT_API_URL is not set, so Prefect starts a temporary server for this command (about 7 s). "
            "For speed and the UI: `make server`, then export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from orderly.tempserver import temporary_server

    with temporary_server() as server:  # on Linux it dies with us, even of SIGKILL; it boots while Prefect imports
        from flows import orders

        server.use()
        flow = {"pipeline": orders.pipeline, "sync": orders.sync, "process": orders.process_all,
                "reset": orders.reset_state}[name]
        return flow(**params)


def _summary(what: str, counts: dict[str, int]) -> None:
    shown = ", ".join(f"{name} {value}" for name, value in counts.items()) or "nothing to do"
    out.print(f"{what}: {shown}")


@app.command()
def run() -> None:
    """One full pass: sync stock, ingest new orders, process every NEW order."""
    _summary("run", _run_flow("pipeline"))


@app.command()
def sync() -> None:
    """Sync stock and ingest new orders only."""
    _summary("sync", _run_flow("sync"))


@app.command()
def process(
    order: Optional[list[int]] = OrderOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide exactly as a real run would, write nothing, "
                                 "and show the changes it would make."),
    as_json: bool = JsonOption,
) -> None:
    """"Process All": process NEW orders (all, or those named), then show the orders table."""
    result = _run_flow("process", order_ids=order or None, dry_run=dry_run)
    if dry_run:
        return _preview(result, as_json)
    if as_json:
        return _print_json(result)
    _summary("process", result)
    status(as_json=False)


def _preview(preview: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return _print_json({"dry_run": True, **preview})
    from orderly.explanations import describe

    changes = preview["changes"]
    err.print(f"dry run, nothing was written: would process {preview['processed']}, fail {preview['failed']}")
    _table(None, ["Order ID", "Now", "Would be", "Reason", "Why"],
           [[c["order_id"], c["from_status"], c["to_status"], c["reason"], describe(c["reason"], c["details"])]
            for c in changes[:TABLE_ROWS]])
    if len(changes) > TABLE_ROWS:
        out.print(f"(the first {TABLE_ROWS} of {len(changes)} changes; `--json` has them all)")


@app.command()
def reset(
    order: Optional[list[int]] = OrderOption,
    status_name: Optional[str] = typer.Option(None, "--status", help="Only orders with this status: PROCESSED or FAILED."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Only FAILED orders with this reason: "
                                         "UNKNOWN_INVENTORY or INSUFFICIENT_STOCK."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before resetting every order."),
) -> None:
    """"Reset State": put orders back to NEW (all, those named, or those matching --status/--reason)."""
    from domain.model import parse_reason, parse_status

    try:
        status_name, reason = (None if v is None else str(v) for v in (parse_status(status_name), parse_reason(reason)))
    except ValueError as error:
        raise Fail(str(error), 2) from None
    _settings()
    if not (order or status_name or reason) and not yes and sys.stdin.isatty():
        import click

        try:
            sure = typer.confirm("Put every PROCESSED and FAILED order back to NEW?", default=False, err=True)
        except click.Abort:
            sure = False
        if not sure:
            raise Fail("nothing was reset", 1)
    _summary("reset", _run_flow("reset", order_ids=order or None, status=status_name, reason=reason))


# ---- query commands: DuckDB only, no Prefect import -------------------------------------------

def _read(query, *args: Any) -> Any:
    """Run a read query; a store that does not exist yet reads as empty."""
    from orderly.store import open_store

    settings = _settings()
    if not settings.db_path.exists():
        return None
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, read_only=True) as con:
        return query(con, *args)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=_json_default) + "\n")


def _table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in {"Order ID", "Items", "Total Qty"} else "left")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else ("" if value is None else str(value))


@app.command()
def status(as_json: bool = JsonOption) -> None:
    """The orders table, ascending by order id."""
    from orderly.store import queries

    rows = _read(queries.orders_status) or []
    if as_json:
        return _print_json(rows)
    shown = rows[-TABLE_ROWS:]
    _table(None, ["Order ID", "Status", "Items", "Total Qty", "Reason"],
           [[r["order_id"], r["status"], r["items"], r["total_qty"], r["reason"]] for r in shown])
    if len(rows) > len(shown):
        out.print(f"(the latest {len(shown)} of {len(rows)} orders; `orderly status --json` has them all)")


@app.command()
def stock(as_json: bool = JsonOption) -> None:
    """On-hand, allocated and available per inventory item, and the snapshot's age."""
    from orderly.store import queries

    found = _read(lambda con: (queries.latest_snapshot(con), queries.stock_levels(con)))
    snapshot, items = found or (None, [])
    if as_json:
        return _print_json({"snapshot": snapshot, "items": items})
    if snapshot is None:
        out.print("no stock snapshot yet: run `orderly sync`")
    else:
        out.print(
            f"stock snapshot {snapshot['snapshot_id']}: completed {_when(snapshot['completed_at'])}, "
            f"{snapshot['age_seconds']:.0f} s ago; {snapshot['loaded']} items, {snapshot['rejected']} rejected"
        )
    _table(None, ["Inventory ID", "SKU", "Product", "Warehouse", "On hand", "Allocated", "Available"],
           [[i["inventory_id"], i["sku"], i["product_name"], i["warehouse_id"], i["on_hand"], i["allocated"],
             i["available"]] for i in items[-TABLE_ROWS:]])


@app.command()
def history(order_id: int = typer.Argument(..., min=1, max=MAX_ID, help="The order id."),
            as_json: bool = JsonOption) -> None:
    """That order's status changes: run, time, from, to, reason, and why (the recorded explanation)."""
    from orderly.explanations import describe
    from orderly.store import queries

    found = _read(lambda con: (queries.order_exists(con, order_id), queries.order_history(con, order_id)))
    if not found or not found[0]:
        raise Fail(f"no such order: {order_id}", 2)
    rows = found[1]
    if as_json:
        return _print_json(rows)
    _table(f"Order {order_id}", ["When", "From", "To", "Reason", "Why", "Run"],
           [[_when(r["changed_at"]), r["from_status"], r["to_status"], r["reason"],
             describe(r["reason"], r["details"]) if r["to_status"] == "FAILED" else "", r["run_id"]] for r in rows])


@app.command()
def explain(order_id: int = typer.Argument(..., min=1, max=MAX_ID, help="The order id."), as_json: bool = JsonOption) -> None:
    """Why an order has its status: its lines, each item's stock now, and the explanation recorded when decided."""
    from orderly.explanations import describe
    from orderly.store import queries

    found = _read(queries.explain_order, order_id)
    if found is None:
        raise Fail(f"no such order: {order_id}", 2)
    if as_json:
        return _print_json(found)
    decided = "" if found["decided_at"] is None else f", decided {_when(found['decided_at'])} by run {found['decided_run']}"
    out.print(f"order {order_id}: {found['status']}{' ' + found['reason'] if found['reason'] else ''}{decided}")
    if found["status"] == "FAILED":
        out.print(f"why: {describe(found['reason'], found['explanation'])}"
                  + (" (when its turn came)" if found["explanation"] and "short" in found["explanation"] else ""))
    elif found["status"] == "PROCESSED":
        out.print("why: every item was available; its quantities are allocated to it")
    else:
        out.print(f"not decided yet: `orderly process --order {order_id} --dry-run` shows what would happen")
    _table(None, ["Line", "Item", "Quantity", "On hand", "Allocated", "Available"],
           [[line["line_no"], line["inventory_id"], line["quantity"],
             *(("not in the stock snapshot", "", "") if line["on_hand"] is None else
               (line["on_hand"], line["allocated"], line["available"]))] for line in found["lines"]])
    out.print("(on hand, allocated and available are the stock now)")


@app.command()
def runs(as_json: bool = JsonOption,
         limit: int = typer.Option(20, min=1, max=1_000_000, help="How many recent runs.")) -> None:
    """Recent runs (newest first) with their counts."""
    from orderly.store import queries
    from orderly.store.schema import RUN_COUNTERS

    rows = _read(queries.recent_runs, limit) or []
    if as_json:
        return _print_json(rows)
    _table(None, ["Run", "Flow", "Started", "Duration", "State", "Counts"],
           [[r["run_id"], r["flow"], _when(r["started_at"]),
             "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s", r["state"],
             ", ".join(f"{name} {r[name]}" for name in RUN_COUNTERS if r[name])] for r in rows])


@app.command()
def rejects(as_json: bool = JsonOption,
            limit: int = typer.Option(1000, min=1, max=10_000_000, help="How many recent rejects.")) -> None:
    """Quarantined records with their reasons (newest first)."""
    from orderly.store import queries

    rows = _read(queries.rejects, limit) or []
    if as_json:
        return _print_json(rows)
    _table(None, ["When", "Source", "Key", "Reasons"],
           [[_when(r["rejected_at"]), r["source"], r["record_key"], r["reasons"]] for r in rows])


# ---- the deployments ---------------------------------------------------------------------------

@app.command()
def serve() -> None:
    """Serve the deployments: the pipeline every ORDERLY_SCHEDULE_SECONDS (300), Process All and Reset State on demand."""
    _settings()
    from flows.deployments import serve_all  # checks the server and the schedule before importing Prefect

    try:
        serve_all()
    except SettingsError as error:
        raise Fail(str(error), 2) from None


# ---- the sandbox -------------------------------------------------------------------------------

@app.command()
def sandbox(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    orders: Optional[int] = typer.Option(None, min=0, max=100_000_000,
                                         help="Generate this many orders (default: the seed data set)."),
    items: Optional[int] = typer.Option(None, min=1, max=100_000_000, help="Inventory items in a generated data set."),
    seed: int = typer.Option(0, min=0, max=MAX_ID, help="Seed of the generated data set and of the faults."),
    fault_rate: float = typer.Option(0.0, min=0.0, max=1.0,
                                     help="Share of requests that fail (500, 503, 429, bad bodies, slow)."),
    latency_ms: float = typer.Option(0.0, min=0.0, max=600_000.0, help="Delay of every answer, in milliseconds."),
    bad_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of records that break the schema."),
    token: Optional[str] = typer.Option(None, envvar="ORDERLY_SANDBOX_TOKEN", show_default=False,
                                        help="Require this bearer token."),
) -> None:
    """Serve the sandbox's two remote APIs (orders and stock) over HTTP."""
    from orderly.sandbox import serve
    from orderly.settings import secret

    _settings()
    try:
        token = secret({"ORDERLY_SANDBOX_TOKEN": token or ""}, "ORDERLY_SANDBOX_TOKEN")
    except SettingsError as error:
        raise Fail(str(error), 2) from None
    _refuse_taken_port(host, port)
    serve(SandboxSettings(orders=orders, items=items, seed=seed, fault_rate=fault_rate, latency_ms=latency_ms,
                          bad_rate=bad_rate, token=token), host=host, port=port)


# ---- the web page ------------------------------------------------------------------------------

@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (beyond loopback needs ORDERLY_UI_TOKEN)."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
) -> None:
    """The seed's page: the orders table with Process All and Reset State, in a browser."""
    from orderly.ui import serve as serve_ui

    serve_ui(_settings(), host=host, port=port)


def _refuse_taken_port(host: str, port: int) -> None:
    """One line instead of uvicorn's traceback when the address cannot be bound."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise Fail(f"cannot listen on {host}:{port}: {error.strerror or error}", 2) from None


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"orderly {version('orderly')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Orderly: orders and stock, decided on Prefect + DuckDB."""


_HELP = {"--help", "-h", "--version"}


def main() -> None:
    args = sys.argv[1:]
    try:
        if not args:  # clig.dev: no arguments shows the help; it is still a usage error for scripts
            app(["--help"], standalone_mode=False)
            sys.exit(2)
        if not _HELP.intersection(args):
            _settings()  # every setting is checked once, before any command starts
        # Outside standalone mode typer *returns* an exit status (130 for Ctrl-C) instead of exiting with it.
        status = app(args, standalone_mode=False)
        if status == 130:
            raise KeyboardInterrupt
        if isinstance(status, int) and status:
            sys.exit(status)
    except Fail as error:
        err.print(f"error: {error}", markup=False)
        sys.exit(error.code)
    except OrderlyError as error:
        err.print(f"error: {error}", markup=False)
        sys.exit(error.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the promise is one line, never a traceback
        if os.environ.get("ORDERLY_DEBUG"):
            raise
        if hasattr(error, "format_message"):  # a usage error from typer's click: already one clear line
            err.print(f"error: {error.format_message()}", markup=False)
            sys.exit(getattr(error, "exit_code", 2))
        first = (str(error).strip().splitlines() or ["no message"])[0]
        err.print(f"error: unexpected failure: {first} (ORDERLY_DEBUG=1 shows the traceback)", markup=False)
        sys.exit(1)
