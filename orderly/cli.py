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

OrderOption = typer.Option(None, "--order", help="Only this order id (repeatable).")
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
    from flows import orders

    flow = {"pipeline": orders.pipeline, "sync": orders.sync, "process": orders.process_all, "reset": orders.reset_state}[name]
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
def process(order: Optional[list[int]] = OrderOption) -> None:
    """"Process All": process NEW orders (all, or those named), then show the orders table."""
    _summary("process", _run_flow("process", order_ids=order or None))
    status(as_json=False)


@app.command()
def reset(order: Optional[list[int]] = OrderOption) -> None:
    """"Reset State": put orders back to NEW (all, or those named)."""
    _summary("reset", _run_flow("reset", order_ids=order or None))


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
def history(order_id: int = typer.Argument(..., help="The order id."), as_json: bool = JsonOption) -> None:
    """That order's status changes: run, time, from, to, reason."""
    from orderly.store import queries

    found = _read(lambda con: (queries.order_exists(con, order_id), queries.order_history(con, order_id)))
    if not found or not found[0]:
        raise Fail(f"no such order: {order_id}", 2)
    rows = found[1]
    if as_json:
        return _print_json(rows)
    _table(f"Order {order_id}", ["When", "From", "To", "Reason", "Run"],
           [[_when(r["changed_at"]), r["from_status"], r["to_status"], r["reason"], r["run_id"]] for r in rows])


@app.command()
def runs(as_json: bool = JsonOption, limit: int = typer.Option(20, help="How many recent runs.")) -> None:
    """Recent runs (newest first) with their counts."""
    from orderly.store import queries

    rows = _read(queries.recent_runs, limit) or []
    if as_json:
        return _print_json(rows)
    _table(None, ["Run", "Flow", "Started", "Duration", "State", "Fetched", "Loaded", "Rejected", "Processed",
                  "Failed", "Reset"],
           [[r["run_id"], r["flow"], _when(r["started_at"]),
             "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s", r["state"], r["fetched"], r["loaded"],
             r["rejected"], r["processed"], r["failed"], r["reset"]] for r in rows])


@app.command()
def rejects(as_json: bool = JsonOption, limit: int = typer.Option(1000, help="How many recent rejects.")) -> None:
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
    port: int = typer.Option(8000, help="Port to listen on."),
    orders: Optional[int] = typer.Option(None, help="Generate this many orders (default: the seed data set)."),
    items: Optional[int] = typer.Option(None, help="Inventory items in a generated data set."),
    seed: int = typer.Option(0, help="Seed of the generated data set and of the faults."),
    fault_rate: float = typer.Option(0.0, help="Share of requests that fail (500, 503, 429, bad bodies, slow)."),
    latency_ms: float = typer.Option(0.0, help="Delay of every answer, in milliseconds."),
    bad_rate: float = typer.Option(0.0, help="Share of records that break the schema."),
    token: Optional[str] = typer.Option(None, envvar="ORDERLY_SANDBOX_TOKEN", show_default=False,
                                        help="Require this bearer token."),
) -> None:
    """Serve the sandbox's two remote APIs (orders and stock) over HTTP."""
    from orderly.sandbox import serve

    if not 0 <= fault_rate <= 1 or not 0 <= bad_rate <= 1:
        raise Fail("--fault-rate and --bad-rate must be between 0 and 1", 2)
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


def main() -> None:
    try:
        app(standalone_mode=False)
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
        first = (str(error).strip().splitlines() or [""])[0]
        err.print(f"error: {type(error).__name__}: {first} (ORDERLY_DEBUG=1 shows the traceback)", markup=False)
        sys.exit(1)
