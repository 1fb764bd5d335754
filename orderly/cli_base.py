"""What every part of the `orderly` command shares: the typer app, the one-line failure, settings, the store's reads."""

from __future__ import annotations

from typing import Any

import typer

from orderly.cli_output import err
from orderly.settings import Settings, SettingsError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Orderly: orders and stock, decided on Prefect + DuckDB."
)

TABLE_ROWS = 1000  # a person reads the latest thousand; programs use --json for everything

MAX_ID = 2**63 - 1  # domain.bounds.MAX_INT, spelled here so query commands import nothing of the domain
OrderOption = typer.Option(None, "--order", min=1, max=MAX_ID, help="Only this order id (repeatable).")
JsonOption = typer.Option(False, "--json", help="Print JSON for programs.")
CsvOption = typer.Option(False, "--csv", help="Print CSV for spreadsheets: a header line, then the --json fields.")


class Fail(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as error:
        raise Fail(str(error), 2) from None


def read(query, *args: Any, note: bool = True) -> Any:
    """Run a read query. A store that does not exist yet reads as None (empty), and says so on stderr."""
    from orderly.store import open_store

    current = settings()
    if not current.db_path.exists():
        if note:
            err.print(f"note: {no_database()}", markup=False)
        return None
    with open_store(current.db_path, lock_timeout=current.lock_timeout, read_only=True) as con:
        return query(con, *args)


def no_database() -> str:
    return f"no database at {settings().db_path.absolute()} (ORDERLY_DB); run `orderly sync` first"


def output_format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise Fail("choose one of --json and --csv", 2)
    return "json" if as_json else "csv" if as_csv else "table"


def status_and_reason(status_name: str | None, reason: str | None) -> tuple[str | None, str | None]:
    from domain.model import parse_reason, parse_status

    try:
        return tuple(None if v is None else str(v) for v in (parse_status(status_name), parse_reason(reason)))
    except ValueError as error:
        raise Fail(str(error), 2) from None
