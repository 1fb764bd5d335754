"""What every part of the `orderly` command shares: the typer app, settings, the store's reads."""

from __future__ import annotations

from typing import Any

import typer

from domain.bounds import MAX_INT
from orderly import settings as _settings
from orderly.cli_output import err
from orderly.errors import BadArgument
from orderly.settings import Settings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Orderly: orders and stock, decided on Prefect + DuckDB."
)


def _plain_help() -> None:
    """Typer (0.29) shows a Python type beside every parameter (`<list[int]>`, `<bool>` beside a flag, `<str>`), each
    bound as `[1<=x<=9223372036854775807]`, and a required argument as `{ORDER_ID}`. The help shows the metavars
    we give (ID, N, TIME) and nothing beside a flag; a bound is said in words when a value breaks it
    (orderly.errors.explain). Typer has no option for this, so its display methods are replaced here, once."""
    from typer.core import TyperArgument, TyperOption

    TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else (self.metavar or self.name.upper())
    TyperArgument.display_type_rich = lambda self, ctx: None
    TyperArgument._usage_display_name = lambda self: (
        self.display_name_raw if self.required else f"[{self.display_name_raw}]"
    )
    for kind in (TyperOption, TyperArgument):
        kind._get_number_range_help_str = lambda self: None


_plain_help()

TABLE_ROWS = 1000  # a person reads the latest thousand; programs use --json for everything

OrderOption = typer.Option(None, "--order", metavar="ID", min=1, max=MAX_INT, help="Only this order id (repeatable).")
OrderIdArgument = typer.Argument(..., metavar="ORDER_ID", min=1, max=MAX_INT, help="The order id.")
JsonOption = typer.Option(False, "--json", help="Print JSON for programs.")
CsvOption = typer.Option(False, "--csv", help="Print CSV for spreadsheets: a header line, then the --json fields.")


def settings() -> Settings:
    """The command's settings, read and checked once (orderly.settings.current): a bad one is a SettingsError."""
    return _settings.current()


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
        raise BadArgument("choose one of --json and --csv")
    return "json" if as_json else "csv" if as_csv else "table"


def status_and_reason(
    status_name: str | None, reason: str | None, *, decided_only: bool = False
) -> tuple[str | None, str | None]:
    """The --status and --reason an operator typed, as the domain spells them; `decided_only`: a reset's, which
    cannot select NEW orders."""
    from domain.model import parse_decided, parse_reason, parse_status

    status = parse_decided if decided_only else parse_status
    try:
        return tuple(None if v is None else str(v) for v in (status(status_name), parse_reason(reason)))
    except ValueError as error:
        raise BadArgument(str(error)) from None
