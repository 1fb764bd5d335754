"""How the `orderly` command prints: rich tables readable at 80 columns, JSON and CSV for programs.

Data goes to stdout, messages to stderr. Colour only on a terminal, never with NO_COLOR (rich checks both).
Tables never cut an id or a number: text columns give way instead, cut with an ellipsis (`--json` and
`--csv` always carry the full values).

Text may come from a remote, so it never reaches the terminal as control sequences: tables and CSV show every
control character escaped, visibly (ESC as \\x1b, a newline as \\n), and CSV guards a cell a spreadsheet
would run as a formula (OWASP's CSV injection advice: a leading ' before =, +, -, @, tab or carriage return).
`--json` escapes control characters by its nature.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from domain.model import Status

GAP = 2  # columns are set apart by two spaces and no rule: more room for the data at 80 columns

# An order's statuses (domain.model's words) and a run's states, each in the colour of its meaning.
STATUS_STYLES = {
    Status.PROCESSED: "green",
    Status.FAILED: "red",
    Status.NEW: "yellow",
    "COMPLETED": "green",
    "CRASHED": "red",
    "RUNNING": "yellow",
}


def _width() -> int | None:
    """COLUMNS when set; otherwise the terminal's width, or 200 when piped (room for whole lines in CI logs)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and 20 <= int(columns) <= 10_000:
        return int(columns)
    return None if sys.stdout.isatty() else 200


def counts_in_words(counts: dict[str, Any], *, zeros: bool = False) -> str:
    """A run's counters as a person reads them: "stock 8 fetched, 8 loaded; orders 15 fetched, 15 loaded;
    processed 6, failed 9". Zeros are left out (all of them, or with `zeros` only the rejected, repeated and
    waiting, which are news only when they happen)."""

    def shown(name: str) -> bool:
        return bool(counts[name]) or (zeros and not name.endswith(("_rejected", "_repeated")) and name != "waiting")

    parts = []
    for source in ("stock", "orders", "reconcile"):
        words = [
            f"{counts[name]:,} {name.split('_', 1)[1]}"
            for name in counts
            if name.startswith(f"{source}_") and shown(name)
        ]
        if words:
            parts.append(f"{source} " + ", ".join(words))
    rest = [
        f"{name} {counts[name]:,}"
        for name in counts
        if not name.startswith(("stock_", "orders_", "reconcile_")) and shown(name)
    ]
    if rest:
        parts.append(", ".join(rest))
    return "; ".join(parts)


out = Console(highlight=False, width=_width())
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Column:
    """A table column. kind: "id" and "num" (right-aligned, never cut), "when", "status" and "code" (a reason
    code: never cut), "text" (one line, cut with an ellipsis), "wrap" (long text, wrapped at spaces)."""

    header: str
    kind: str = "text"
    max_width: int | None = None


def table(
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    console: Console | None = None,
    empty: str | None = None,
) -> None:
    """The rows as a table; with no rows and `empty`, that one line instead (a header alone says nothing)."""
    console = console or out
    cells = [[_cell(value, column) for value, column in zip(row, columns, strict=True)] for row in rows]
    if not cells and empty:
        console.print(empty, markup=False)
        return
    shown = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    widths = _widths(columns, cells, console.width)
    needed = sum(widths) + GAP * (len(columns) - 1)
    for column, width in zip(columns, widths, strict=True):
        shown.add_column(
            column.header,
            justify="right" if column.kind in ("id", "num") else "left",
            no_wrap=column.kind != "wrap",
            overflow="fold" if column.kind == "wrap" else "ellipsis",
            width=width,
        )
    for row in cells:
        shown.add_row(*row)
    # Past the terminal's width only when the ids and numbers alone do not fit (19-digit quantities):
    # the terminal then wraps the lines, but no number is ever cut.
    if needed > console.width:
        console = Console(
            file=console.file,
            width=needed,
            highlight=False,
            no_color=console.no_color,
            color_system=console.color_system,
            force_terminal=console.is_terminal,
        )
    if console.is_terminal:
        return console.print(shown)
    # Piped: no cell padding after the last character of a line (a diff, a grep or a log reads it as noise).
    with console.capture() as captured:
        console.print(shown)
    console.file.write("".join(line.rstrip(" ") + "\n" for line in captured.get().splitlines()))


def _widths(columns: Sequence[Column], cells: list[list[Text]], total: int) -> list[int]:
    """Ids, numbers, times and statuses get their full width; text columns share what is left, the narrow
    ones whole and the wide ones an equal share each (cut with an ellipsis, or wrapped)."""
    natural = [max([len(column.header), *(row[i].cell_len for row in cells)]) for i, column in enumerate(columns)]
    natural = [min(width, column.max_width or width) for width, column in zip(natural, columns, strict=True)]
    flexible = [i for i, column in enumerate(columns) if column.kind in ("text", "wrap")]
    left = total - GAP * (len(columns) - 1) - sum(w for i, w in enumerate(natural) if i not in flexible)
    widths = list(natural)
    for n, i in enumerate(sorted(flexible, key=lambda i: natural[i])):
        # A wrapped column is never narrower than its longest word (up to WORD_CAP): words wrap whole, not cut.
        least = min(natural[i], _longest_word(cells, i) if columns[i].kind == "wrap" else 6)
        share = max(left // (len(flexible) - n), least)
        widths[i] = min(natural[i], share)
        left -= widths[i]
    return widths


WORD_CAP = 24  # a longer "word" (a URL, a run id) is folded rather than widen the table past the terminal


def _longest_word(cells: list[list[Text]], i: int) -> int:
    return min(max([len(word) for row in cells for word in row[i].plain.split()] or [1]), WORD_CAP)


# C0 and C1 controls and DEL, the line and paragraph separators, and the bidirectional overrides and isolates
# (which reorder what a terminal shows): none of them is ever written raw.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def visible(text: str) -> str:
    """`text` with every control character shown as its escape (as Python's repr writes it): safe to print."""
    return _UNSAFE.sub(_escaped, text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """A text cell for CSV: control characters escaped, and a leading ' when a spreadsheet would take the
    cell for a formula. Only text is guarded: a number such as -5 stays a number."""
    return ("'" if text.startswith(_FORMULA_START) else "") + visible(text)


def _cell(value: Any, column: Column) -> Text:
    if column.kind == "num" and isinstance(value, int) and not isinstance(value, bool):
        return Text(f"{value:,}")  # a count or a quantity: thousands apart (ids are kind "id", never grouped)
    text = "" if value is None else when(value) if isinstance(value, datetime) else visible(str(value))
    return Text(text, style=STATUS_STYLES.get(text, "") if column.kind == "status" else "")


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else ("" if value is None else str(value))


def short_run(run_id: str | None, length: int) -> str:
    """The first `length` characters of a run id: store.queries.short_run_length says how many tell runs apart."""
    return "" if run_id is None else run_id[:length]


# ---- for programs --------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=_json_default) + "\n")


def print_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """One header line, then one line per row: the same fields and values as --json (nested ones as JSON)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_csv_value(row.get(name)) for name in fields])


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_json_default)  # JSON escapes control characters; starts with { or [
    if isinstance(value, str):
        return csv_text(value)
    return value
