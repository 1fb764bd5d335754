"""The long-running commands: `serve` (the deployments and the worker), `sandbox` (the two remotes over HTTP) and
`ui` (the seed's page)."""

from __future__ import annotations

import typer

from domain.bounds import MAX_INT
from orderly.cli.app import app
from orderly.cli.flow_run import check_prefect_api
from orderly.cli.reads import settings
from orderly.errors import UsageError
from orderly.settings import SandboxSettings

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
    check_prefect_api(settings().prefect_api_url)
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
            webhook_secret=settings().webhook_secret,  # a receiver at /webhook, for the feed's demo
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
