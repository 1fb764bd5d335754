"""The `orderly` command: data-changing commands run Prefect flows; query commands read DuckDB directly."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

import typer

from orderly import cli_args
from orderly.cli_output import STATUS_STYLES as STATUS_STYLE
from orderly.cli_output import Column, err, one_line, out, print_csv, print_json, short_run, table, when
from orderly.errors import OrderlyError
from orderly.settings import SandboxSettings, Settings, SettingsError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Orderly: orders and stock, decided on Prefect + DuckDB.")

TABLE_ROWS = 1000  # a person reads the latest thousand; programs use --json for everything

MAX_ID = 2**63 - 1  # domain.bounds.MAX_INT, spelled here so query commands import nothing of the domain
OrderOption = typer.Option(None, "--order", min=1, max=MAX_ID, help="Only this order id (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print JSON for programs.")
CsvOption = typer.Option(False, "--csv", help="Print CSV for spreadsheets: a header line, then the --json fields.")


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
    _check_prefect_api()  # a dead server is one line now, not Prefect's traceback after a second of imports
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")  # our own lines say what happened
    if not os.environ.get("PREFECT_API_URL"):
        err.print(
            "note: PREFECT_API_URL is not set, so Prefect starts a temporary server for this command (about 7 s). "
            "For speed and the UI: `make server`, then export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from orderly import progress
    from orderly.tempserver import temporary_server

    with temporary_server() as server, progress.shown_on(err):  # the server dies with us, even of SIGKILL
        from flows import orders

        server.use()
        flow = {"pipeline": orders.pipeline, "sync": orders.sync, "process": orders.process_all,
                "reset": orders.reset_state}[name]
        return flow(**params)


def _check_prefect_api() -> None:
    """PREFECT_API_URL must point at something that listens: checked with a bare socket, before importing Prefect."""
    import socket
    from urllib.parse import urlsplit

    api = os.environ.get("PREFECT_API_URL", "").strip()
    if not api:
        return
    advice = "start it with `make server`, or unset PREFECT_API_URL (each command then starts a temporary server)"
    try:
        parts = urlsplit(api)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        host = port = None
    if parts.scheme not in ("http", "https") or not host:
        raise Fail(f"PREFECT_API_URL is not an http:// or https:// URL with a host: {api!r}", 2)
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        why = error.strerror or "no answer within 2 s"
        raise Fail(f"no Prefect server answers at PREFECT_API_URL={api} ({why.lower()}): {advice}", 2) from None


def _named_orders(order: list[int] | None, wanted: str) -> list[int] | None:
    """Check the ids of --order against the store before any flow starts. An unknown id stops the command;
    an order that is not `wanted` (NEW for process, decided for reset) is named as skipped. The ids left."""
    if not order:
        return None
    from orderly.store import queries

    found = _read(lambda con: queries.order_statuses(con, sorted(set(order))), note=False)
    if found is None:
        raise Fail(f"no such order: {_ids(sorted(set(order)))} ({_no_database()})", 2)
    unknown = sorted(set(order) - set(found))
    if unknown:
        raise Fail(f"no such order: {_ids(unknown)}; nothing was changed", 2)
    skipped: dict[str, list[int]] = {}
    for order_id, status_now in sorted(found.items()):
        if (status_now == "NEW") != (wanted == "NEW"):
            skipped.setdefault(status_now, []).append(order_id)
    for status_now, ids in skipped.items():
        err.print(f"order{'s' if len(ids) > 1 else ''} {_ids(ids)} {'are' if len(ids) > 1 else 'is'} {status_now}"
                  f"{' already' if status_now == 'NEW' else ''}, skipped", markup=False)
    return sorted(order_id for order_id, status_now in found.items()
                  if (status_now == "NEW") == (wanted == "NEW"))


def _ids(ids: list[int], shown: int = 10) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(map(str, ids[:shown])) + more


def _summary(what: str, counts: dict[str, int]) -> None:
    shown = ", ".join(f"{name} {value}" for name, value in counts.items()) or "nothing to do"
    out.print(f"{what}: {shown}", markup=False)


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
    named = _named_orders(order, "NEW")
    if named == []:  # every order named is decided already: nothing for a flow to do
        result: dict[str, Any] = {"processed": 0, "failed": 0, **({"changes": []} if dry_run else {})}
    else:
        result = _run_flow("process", order_ids=named, dry_run=dry_run)
    if dry_run:
        return _preview(result, as_json)
    if as_json:
        return print_json(result)
    _summary("process", result)
    status(status_name=None, reason=None, since=None, limit=None, as_json=False, as_csv=False)


def _preview(preview: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return print_json({"dry_run": True, **preview})
    from orderly.explanations import describe

    changes = preview["changes"]
    err.print(f"dry run, nothing was written: would process {preview['processed']}, fail {preview['failed']}")
    table([Column("Order ID", "id"), Column("Now", "status"), Column("Would be", "status"), Column("Reason"),
           Column("Why", "wrap")],
          [[c["order_id"], c["from_status"], c["to_status"], c["reason"], describe(c["reason"], c["details"])]
           for c in changes[:TABLE_ROWS]])
    if len(changes) > TABLE_ROWS:
        out.print(f"(the first {TABLE_ROWS} of {len(changes)} changes; `--json` has them all)", markup=False)


@app.command()
def reset(
    order: Optional[list[int]] = OrderOption,
    status_name: Optional[str] = typer.Option(None, "--status", help="Only orders with this status: PROCESSED or FAILED."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Only FAILED orders with this reason: "
                                         "UNKNOWN_INVENTORY or INSUFFICIENT_STOCK."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before resetting every order."),
) -> None:
    """"Reset State": put orders back to NEW (all, those named, or those matching --status/--reason)."""
    status_name, reason = _status_and_reason(status_name, reason)
    _settings()
    if not (order or status_name or reason) and not yes and sys.stdin.isatty():
        import click

        try:
            sure = typer.confirm("Put every PROCESSED and FAILED order back to NEW?", default=False, err=True)
        except click.Abort:
            sure = False
        if not sure:
            raise Fail("nothing was reset", 1)
    named = _named_orders(order, "decided")
    if named == []:
        return _summary("reset", {"reset": 0})
    _summary("reset", _run_flow("reset", order_ids=named, status=status_name, reason=reason))


def _status_and_reason(status_name: str | None, reason: str | None) -> tuple[str | None, str | None]:
    from domain.model import parse_reason, parse_status

    try:
        return tuple(None if v is None else str(v) for v in (parse_status(status_name), parse_reason(reason)))
    except ValueError as error:
        raise Fail(str(error), 2) from None


# ---- query commands: DuckDB only, no Prefect import -------------------------------------------

def _read(query, *args: Any, note: bool = True) -> Any:
    """Run a read query. A store that does not exist yet reads as None (empty), and says so on stderr."""
    from orderly.store import open_store

    settings = _settings()
    if not settings.db_path.exists():
        if note:
            err.print(f"note: {_no_database()}", markup=False)
        return None
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, read_only=True) as con:
        return query(con, *args)


def _no_database() -> str:
    return f"no database at {_settings().db_path.absolute()} (ORDERLY_DB); run `orderly sync` first"


def _output(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise Fail("choose one of --json and --csv", 2)
    return "json" if as_json else "csv" if as_csv else "table"


def _run_id(con, text: str) -> str:
    """The one run whose id starts with `text` (a short id is enough), or one line saying why not."""
    from orderly.store import queries

    try:
        prefix = cli_args.run_prefix(text)
    except ValueError as error:
        raise Fail(str(error), 2) from None
    found = queries.run_ids_starting(con, prefix, limit=6)
    if not found:
        raise Fail(f"no run id starts with {prefix!r}: `orderly runs` lists them", 2)
    if len(found) > 1:
        shown = ", ".join(run_id[:13] for run_id in found[:5]) + (", ..." if len(found) > 5 else "")
        raise Fail(f"run id {prefix!r} is ambiguous: it starts {shown}; give more of it", 2)
    return found[0]


ORDER_FIELDS = ["order_id", "status", "items", "total_qty", "reason"]


@app.command()
def status(
    status_name: Optional[str] = typer.Option(None, "--status", help="Only orders with this status: NEW, PROCESSED "
                                              "or FAILED."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Only FAILED orders with this reason: "
                                         "UNKNOWN_INVENTORY or INSUFFICIENT_STOCK."),
    since: Optional[str] = typer.Option(None, "--since", help="Only orders placed at or after T: "
                                        + cli_args.SINCE_HELP + "."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, max=MAX_ID, help="Only the N latest (highest id) "
                                        "matching orders, still ascending."),
    as_json: bool = JsonOption, as_csv: bool = CsvOption,
) -> None:
    """The orders table, ascending by order id; the table ends with the count per status."""
    from orderly.store import queries

    output = _output(as_json, as_csv)
    status_name, reason = _status_and_reason(status_name, reason)
    try:
        after = None if since is None else cli_args.parse_since(since)
    except ValueError as error:
        raise Fail(str(error), 2) from None
    shown = limit if output != "table" else min(limit or TABLE_ROWS, TABLE_ROWS)
    rows, counts = _read(lambda con: queries.orders_matching(con, status=status_name, reason=reason, since=after,
                                                             limit=shown)) or ([], {})
    if output == "json":
        return print_json(rows)
    if output == "csv":
        return print_csv(ORDER_FIELDS, rows)
    table([Column("Order ID", "id"), Column("Status", "status"), Column("Items", "num"), Column("Total Qty", "num"),
           Column("Reason")], [[r[name] for name in ORDER_FIELDS] for r in rows])
    total = sum(counts.values())
    filtered = " matching" if (status_name or reason or since) else ""
    per_status = ", ".join(f"{counts[s]} [{STATUS_STYLE[s]}]{s}[/]" for s in ("NEW", "PROCESSED", "FAILED") if counts.get(s))
    out.print(f"{total}{filtered} order{'' if total == 1 else 's'}{': ' + per_status if per_status else ''}")
    if len(rows) < total:
        out.print(f"(the latest {len(rows)} shown; `--limit N` or `--json` for more)", markup=False)


STOCK_FIELDS = ["inventory_id", "product_id", "sku", "product_name", "warehouse_id", "on_hand", "allocated", "available"]


@app.command()
def stock(as_json: bool = JsonOption, as_csv: bool = CsvOption) -> None:
    """On-hand, allocated and available per inventory item, and the snapshot's age."""
    from orderly.store import queries

    output = _output(as_json, as_csv)
    found = _read(lambda con: (queries.latest_snapshot(con), queries.stock_levels(con)))
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
            f"{snapshot['age_seconds']:.0f} s ago; {snapshot['loaded']} items, {snapshot['rejected']} rejected",
            markup=False,
        )
    table([Column("Inventory ID", "id"), Column("SKU", max_width=20), Column("Product"), Column("Warehouse", "num"),
           Column("On hand", "num"), Column("Allocated", "num"), Column("Available", "num")],
          [[i["inventory_id"], i["sku"], i["product_name"], i["warehouse_id"], i["on_hand"], i["allocated"],
            i["available"]] for i in items[-TABLE_ROWS:]])
    if len(items) > TABLE_ROWS:
        out.print(f"(the last {TABLE_ROWS} of {len(items)} items; `--json` or `--csv` has them all)", markup=False)


HISTORY_FIELDS = ["run_id", "changed_at", "from_status", "to_status", "reason", "details"]


@app.command()
def history(order_id: int = typer.Argument(..., min=1, max=MAX_ID, help="The order id."),
            as_json: bool = JsonOption, as_csv: bool = CsvOption) -> None:
    """That order's status changes: run, time, from, to, reason, and why (the recorded explanation)."""
    from orderly.explanations import describe
    from orderly.store import queries

    output = _output(as_json, as_csv)
    found = _read(lambda con: (queries.order_exists(con, order_id), queries.order_history(con, order_id)), note=False)
    if not found or not found[0]:
        raise Fail(f"no such order: {order_id}" + ("" if found else f" ({_no_database()})"), 2)
    rows = found[1]
    if output == "json":
        return print_json(rows)
    if output == "csv":
        return print_csv(HISTORY_FIELDS, rows)
    table([Column("When", "when"), Column("From", "status"), Column("To", "status"), Column("Reason"),
           Column("Why", "wrap"), Column("Run", "id")],
          [[r["changed_at"], r["from_status"], r["to_status"], r["reason"],
            describe(r["reason"], r["details"]) if r["to_status"] == "FAILED" else "", short_run(r["run_id"])]
           for r in rows], title=f"Order {order_id}")


@app.command()
def explain(order_id: int = typer.Argument(..., min=1, max=MAX_ID, help="The order id."), as_json: bool = JsonOption) -> None:
    """Why an order has its status: its lines, each item's stock now, and the explanation recorded when decided."""
    from orderly.explanations import describe
    from orderly.store import queries

    found = _read(queries.explain_order, order_id, note=False)
    if found is None:
        raise Fail(f"no such order: {order_id}" + ("" if _settings().db_path.exists() else f" ({_no_database()})"), 2)
    if as_json:
        return print_json(found)
    decided = "" if found["decided_at"] is None else f", decided {when(found['decided_at'])} by run {found['decided_run']}"
    style = STATUS_STYLE.get(found["status"], "")
    out.print(f"order {order_id}: [{style}]{found['status']}[/]{' ' + found['reason'] if found['reason'] else ''}"
              f"{decided}")
    if found["status"] == "FAILED":
        out.print(f"why: {describe(found['reason'], found['explanation'])}"
                  + (" (when its turn came)" if found["explanation"] and "short" in found["explanation"] else ""),
                  markup=False)
    elif found["status"] == "PROCESSED":
        out.print("why: every item was available; its quantities are allocated to it")
    else:
        out.print(f"not decided yet: `orderly process --order {order_id} --dry-run` shows what would happen",
                  markup=False)
    table([Column("Line", "num"), Column("Item", "id"), Column("Quantity", "num"), Column("On hand", "num"),
           Column("Allocated", "num"), Column("Available", "num")],
          [[line["line_no"], line["inventory_id"], line["quantity"],
            *(("not in the stock snapshot", "", "") if line["on_hand"] is None else
              (line["on_hand"], line["allocated"], line["available"]))] for line in found["lines"]])
    out.print("(on hand, allocated and available are the stock now)")


def _run_fields() -> list[str]:
    from orderly.store.schema import RUN_COUNTERS

    return ["run_id", "flow", "started_at", "ended_at", "duration_s", "state", *RUN_COUNTERS, "message"]


@app.command()
def runs(run: Optional[str] = typer.Argument(None, help="Only this run: its id, or the first characters of it "
                                             "(the short id the table shows)."),
         limit: int = typer.Option(20, min=1, max=1_000_000, help="How many recent runs."),
         as_json: bool = JsonOption, as_csv: bool = CsvOption) -> None:
    """Recent runs (newest first) with their counts; a FAILED run with its reason."""
    from orderly.store import queries
    from orderly.store.schema import RUN_COUNTERS

    output = _output(as_json, as_csv)
    if run is not None:
        _check_run_prefix(run)
        found = _read(lambda con: [queries.run_by_id(con, _run_id(con, run))], note=False)
        if found is None:
            raise Fail(f"no run id starts with {run.strip().lower()!r} ({_no_database()})", 2)
        rows = [{**r, "duration_s": _duration(r)} for r in found]
    else:
        rows = _read(queries.recent_runs, limit) or []
    if output == "json":
        return print_json(rows)
    if output == "csv":
        return print_csv(_run_fields(), rows)
    if run is not None:
        return _one_run(rows[0])
    table([Column("Run", "id"), Column("Flow"), Column("Started", "when"), Column("Took", "num"),
           Column("State", "status"), Column("Counts, or why it failed", "wrap")],
          [[short_run(r["run_id"]), r["flow"], _minute(r["started_at"]),
            "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s", r["state"],
            one_line(r["message"]) if r["state"] in ("FAILED", "CRASHED") and r["message"] else
            ", ".join(f"{name} {r[name]}" for name in RUN_COUNTERS if r[name])] for r in rows])


def _check_run_prefix(run: str) -> None:
    try:
        cli_args.run_prefix(run)
    except ValueError as error:
        raise Fail(str(error), 2) from None


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
        out.print(f"message: {run['message']}", markup=False)
    out.print(", ".join(f"{name} {run[name]}" for name in RUN_COUNTERS) or "no counts", markup=False)


REJECT_FIELDS = ["run_id", "rejected_at", "source", "record_key", "reasons", "raw"]


@app.command()
def rejects(run: Optional[str] = typer.Option(None, "--run", help="Only the records this run quarantined: its id "
                                              "or the first characters of it."),
            limit: int = typer.Option(1000, min=1, max=10_000_000, help="How many recent rejects."),
            as_json: bool = JsonOption, as_csv: bool = CsvOption) -> None:
    """Quarantined records with their reasons (newest first)."""
    from orderly.store import queries

    output = _output(as_json, as_csv)
    if run is not None:
        _check_run_prefix(run)
    found = _read(lambda con: queries.rejects(con, limit, None if run is None else _run_id(con, run)),
                  note=run is None)
    if found is None and run is not None:
        raise Fail(f"no run id starts with {run.strip().lower()!r} ({_no_database()})", 2)
    rows = found or []
    if output == "json":
        return print_json(rows)
    if output == "csv":
        return print_csv(REJECT_FIELDS, rows)
    table([Column("When", "when"), Column("Run", "id"), Column("Source"), Column("Key", max_width=20),
           Column("Reasons", "wrap")],
          [[r["rejected_at"], short_run(r["run_id"]), r["source"], r["record_key"], r["reasons"]] for r in rows])


# ---- the deployments ---------------------------------------------------------------------------

@app.command()
def serve() -> None:
    """Serve the deployments: the pipeline every ORDERLY_SCHEDULE_SECONDS (300), Process All and Reset State on demand."""
    _settings()
    _check_prefect_api()
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
