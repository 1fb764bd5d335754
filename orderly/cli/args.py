"""Values the operator types that typer cannot check alone: a time (`--since`), a run id or its prefix, a
status or reason, one output format.

Each bad value is a BadArgument (exit 2) with one line that says what is accepted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orderly.errors import BadArgument

_AGE = re.compile(r"([0-9]{1,9})\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_RUN_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{0,35}")

SINCE_HELP = (
    "a date or time (2026-11-20, 2026-11-20T09:00, UTC unless it carries an offset such as Z or +02:00) "
    "or an age (90s, 30m, 2h, 7d, 2w)"
)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An instant, from an ISO date or time or from an age counted back from now. Always timezone-aware."""
    raw = text.strip()
    age = _AGE.fullmatch(raw.lower())
    try:
        if age:
            return (now or datetime.now(UTC)) - timedelta(**{_UNITS[age[2]]: int(age[1])})
        when = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.upper().endswith("Z") else raw)
    except (ValueError, OverflowError):
        raise BadArgument(f"--since {text!r} is not {SINCE_HELP}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run_prefix(text: str) -> str:
    """A run id as typed: the whole Prefect flow run id or its first hex digits (as `orderly runs` shows them)."""
    prefix = text.strip().lower()
    if not _RUN_PREFIX.fullmatch(prefix):
        raise BadArgument(f"{text!r} is not a run id: give the hex digits `orderly runs` shows (or more of them)")
    return prefix


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
