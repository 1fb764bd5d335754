"""The decision feed on the command line: `orderly events` (the pull feed: the same JSON as the webhook body) and
the feed's line in `orderly runs`. (`orderly deliver`, which changes data, is with the other flows' commands.)"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import typer

from domain.bounds import MAX_INT
from orderly.cli.app import CsvOption, JsonOption, app
from orderly.cli.args import output_format
from orderly.cli.output import Column, err, print_csv, table, when
from orderly.cli.reads import read


@app.command()
def events(
    after: int = typer.Option(0, "--after", metavar="ID", min=0, max=MAX_INT, help="Only events after this id."),
    limit: int = typer.Option(1000, "--limit", metavar="N", min=1, max=10_000, help="At most this many events."),
    as_json: bool = JsonOption,
    as_csv: bool = CsvOption,
) -> None:
    """The decision events after --after, ascending by id, as the webhook delivers them (--json: the same body)."""
    from orderly.feed.body import EVENT_FIELDS, events_body

    output = output_format(as_json, as_csv)
    found = read(events_body, after, limit)
    page = b'{"events":[]}' if found is None else found[0]
    if output == "json":
        sys.stdout.write(page.decode() + "\n")  # the webhook's bytes, as they are
        return
    rows = orjson.loads(page)["events"]
    if output == "csv":
        return print_csv(EVENT_FIELDS, [_flat(row) for row in rows])
    table(
        [
            Column("Event", "id"),
            Column("When"),
            Column("Order ID", "id"),
            Column("Change", "status"),
            Column("Reason", "code"),
        ],
        [
            [
                row["id"],
                when(row["occurred_at"]),
                row["order_id"],
                f"{row['previous_status']} → {row['status']}",
                row["reason"] or "",
            ]
            for row in rows
        ],
        empty=f"no events after {after:,}" + ("" if after else ": nothing has been decided yet"),
    )
    if rows and len(rows) == limit:
        err.print(f"more after event {rows[-1]['id']}: orderly events --after {rows[-1]['id']}", markup=False)


def _flat(event: dict[str, Any]) -> dict[str, Any]:
    """A CSV row: the nested fields (explanation, lines) as their JSON text."""
    return {
        name: orjson.dumps(value).decode() if isinstance(value, dict | list) else value for name, value in event.items()
    }


def feed_line(state: dict[str, Any] | None, configured: bool) -> str | None:
    """How far delivery has got, in one line for `orderly runs` (None: no feed to speak of)."""
    if not state or (not configured and not state["delivered_to"]):
        return None
    line = f"decision feed: delivered up to event {state['delivered_to']:,} of {state['newest']:,}"
    if state["backlog"]:
        line += f"; {state['backlog']:,} wait"
        if state["oldest_undelivered_at"] is not None:
            line += f" (the oldest since {when(state['oldest_undelivered_at'])})"
    if not configured:
        line += "; ORDERLY_WEBHOOK_URL is not set"
    if state["last_error"]:
        line += f"; last error {when(state['last_error_at'])}: {state['last_error']}"
    return line
