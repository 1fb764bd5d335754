"""`orderly`: every command registered on one typer app, in the order `--help` lists them, and the one place an
error becomes its line and exit status (orderly.errors.explain)."""

from __future__ import annotations

import sys

import typer

from orderly import settings as _settings
from orderly.cli import commands, feed, queries, servers  # noqa: F401 - each registers its commands on the app
from orderly.cli.app import app
from orderly.cli.output import err, out
from orderly.cli.reads import settings
from orderly.errors import explain


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
