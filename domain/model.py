"""The vocabulary of the rules: an order's statuses and why one fails (CONTRACT.md section 2)."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar


class Status(StrEnum):
    NEW = "NEW"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"


class Reason(StrEnum):
    """Why an order failed; the first that applies wins, in this order."""

    UNKNOWN_INVENTORY = "UNKNOWN_INVENTORY"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"


RESET = "RESET"  # the reason recorded in the history when an order goes back to NEW

_Names = TypeVar("_Names", bound=StrEnum)


def parse_status(text: str | None) -> Status | None:
    """A status named by an operator (None: any), or ValueError with one line saying what is allowed."""
    return _parse(Status, "status", text)


def parse_reason(text: str | None) -> Reason | None:
    """A failure reason named by an operator (None: any), or ValueError with one line saying what is allowed."""
    return _parse(Reason, "reason", text)


def _parse(names: type[_Names], what: str, text: str | None) -> _Names | None:
    if text is None:
        return None
    try:
        return names(text.upper())
    except ValueError:
        raise ValueError(f"unknown {what} {text!r}: use one of {', '.join(names)}") from None
