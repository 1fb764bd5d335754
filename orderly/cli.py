"""The `orderly` command: data-changing commands run Prefect flows; query commands (orderly.cli_queries) read
DuckDB directly. Output formatting lives in orderly.cli_output."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from domain.bounds import MAX_INT
from domain.model import DECIDED, Reason, Status, in_words
from orderly import settings as _settings
from orderly.cli_base import TABLE_ROWS, JsonOption, OrderOption, app, no_database, read, settings, status_and_reason
from orderly.cli_output import Column, counts_in_words, err, out, print_json, table
from orderly.errors import Declined, PrefectUnreachable, UnknownOrders, UsageError, explain, ids_in_words
from orderly.settings import SandboxSettings, mask_url

# ---- data-changing commands: each one is a Prefect flow run ------------------------------------


def _run_flow(name: str, **params: Any) -> dict[str, int]:
    current = settings()  # a bad setting is reported before Prefect spends seconds starting up
    from orderly.store.connection import probe

    probe(current.db_path)  # so is a store this version cannot open (or create): exit 2, before any flow
    api = current.prefect_api_url
    _check_prefect_api(api)  # a dead server is one line now, not Prefect's traceback after a second of imports
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")  # our own lines say what happened
    if api:  # `orderly serve` runs a worker: the run is decided there, warm, and Prefect is not imported here
        from flows import handoff

        key = handoff.worker_key(api, current)
        if key:
            return handoff.hand_off(name, params, api, current.db_path, key)["outcome"]
    else:
        err.print(
            "note: PREFECT_API_URL is not set, so Prefect starts a temporary server for this command (about 7 s). "
            "For speed and the UI: `make server`, then export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from orderly import ending, prefect_watch, progress, sigterm
    from orderly.tempserver import temporary_server

    # The server dies with us, even of SIGKILL; SIGTERM ends the command within seconds, with one line.
    with temporary_server(api) as server, sigterm.ends_the_command(), progress.shown_on(err):
        from flows import orders

        sigterm.also_during_flows()
        server.use()
        api = server.api_url  # the configured server's, or the temporary one's
        if api:
            prefect_watch.watch(api)  # a server that goes away ends the command in seconds, not minutes
        flow = orders.BY_COMMAND[name]
        try:
            result = flow(**params)
        except BaseException:
            ending.wait_if_ending()  # the ending says the last word (and exits)
            if api and prefect_watch.gone_now(api):  # Prefect's error would name a connection, not the cause
                prefect_watch.end_as_gone(api)
            raise
        ending.wait_if_ending()
        return result


def _check_prefect_api(api: str | None) -> None:
    """The settings' PREFECT_API_URL (its form checked with them) must answer: checked before importing Prefect."""
    from orderly.prefect_health import why_not_answering

    if not api:
        return
    advice = "start it with `make server`, or unset PREFECT_API_URL (each command then starts a temporary server)"
    why = why_not_answering(api, timeout=2)
    if why:
        raise PrefectUnreachable(f"no Prefect server answers at PREFECT_API_URL={mask_url(api)} ({why}): {advice}")


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
    _summary("run", _run_flow("pipeline"))


@app.command()
def sync() -> None:
    """Sync stock and ingest new orders only."""
    _summary("sync", _run_flow("sync"))


@app.command()
def reconcile() -> None:
    """Read the whole orders remote again, store any order missing locally, and say what was found."""
    _summary("reconcile", _run_flow("reconcile"))


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
        result = _run_flow("process", order_ids=named, dry_run=dry_run, sync_stale_stock=sync_stale_stock)
    if dry_run:
        return _preview(result, as_json)
    if as_json:
        return print_json(result)
    _summary("process", result)
    from orderly.cli_queries import status

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
    _summary("reset", _run_flow("reset", order_ids=named, status=status_name, reason=reason))


# The query commands register on the same app here, so `orderly --help` lists them after the data-changing ones.
from orderly import cli_queries  # noqa: E402,F401

# ---- the deployments ---------------------------------------------------------------------------


@app.command()
def serve(
    worker: bool = typer.Option(
        True,
        "--worker/--no-worker",
        help="Also run the Orderly worker, which decides the "
        "page's presses and the data-changing commands in this process, in about a second.",
    ),
) -> None:
    """Serve the deployments: the pipeline every ORDERLY_SCHEDULE_SECONDS (300), Process All and Reset State on demand."""  # noqa: E501 (the line is --help's)
    _check_prefect_api(settings().prefect_api_url)
    from flows.deployments import serve_all  # checks the server and the schedule before importing Prefect

    serve_all(settings(), worker=worker)


# ---- the sandbox -------------------------------------------------------------------------------


@app.command()
def sandbox(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8100, min=1, max=65535, help="Port to listen on (not 8000: `orderly ui` uses it)."),
    orders: int | None = typer.Option(
        None, min=0, max=100_000_000, help="Generate this many orders (default: the seed data set)."
    ),
    items: int | None = typer.Option(None, min=1, max=100_000_000, help="Inventory items in a generated data set."),
    seed: int = typer.Option(0, min=0, max=MAX_INT, help="Seed of the generated data set and of the faults."),
    fault_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of requests that fail (500, 503, 429, bad bodies, slow)."
    ),
    latency_ms: float = typer.Option(0.0, min=0.0, max=600_000.0, help="Delay of every answer, in milliseconds."),
    bad_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of records that break the schema."),
    token: str | None = typer.Option(
        None, envvar="ORDERLY_SANDBOX_TOKEN", show_default=False, help="Require this bearer token."
    ),
) -> None:
    """Serve the sandbox's two remote APIs (orders and stock) over HTTP."""
    from orderly.sandbox import serve
    from orderly.settings import secret

    token = secret({"ORDERLY_SANDBOX_TOKEN": token or ""}, "ORDERLY_SANDBOX_TOKEN")  # --token: checked alike
    _refuse_taken_port(host, port)
    serve(
        SandboxSettings(
            orders=orders,
            items=items,
            seed=seed,
            fault_rate=fault_rate,
            latency_ms=latency_ms,
            bad_rate=bad_rate,
            token=token,
        ),
        host=host,
        port=port,
    )


# ---- the web page ------------------------------------------------------------------------------


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (beyond loopback needs ORDERLY_UI_TOKEN)."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on."),
) -> None:
    """The seed's page: the orders table with Process All and Reset State, in a browser."""
    from orderly.ui import serve as serve_ui

    serve_ui(settings(), host=host, port=port)


def _refuse_taken_port(host: str, port: int) -> None:
    """One line instead of uvicorn's traceback when the address cannot be bound."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


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
        if not _HELP.intersection(args) and args[0] != "doctor":  # the doctor names every bad setting itself
            settings()  # every setting is checked once, before any command starts
        # Outside standalone mode typer *returns* an exit status (130 for Ctrl-C) instead of exiting with it.
        status = app(args, standalone_mode=False)
        if status == 130:
            raise KeyboardInterrupt
        if isinstance(status, int) and status:
            sys.exit(status)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (Exception, KeyboardInterrupt) as error:
        explained = explain(error)  # the one mapping of errors to lines and exit statuses (orderly.errors)
        if not explained.expected and _settings.debug_wanted():
            raise
        err.print(explained.on_terminal(), markup=False)
        sys.exit(explained.exit_code)
