"""The typer app every command registers on, and the options several commands share."""

from __future__ import annotations

import typer

from domain.bounds import MAX_INT

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
