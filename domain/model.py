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
DECIDED = (Status.PROCESSED, Status.FAILED)  # the statuses a reset puts back to NEW


def in_words(names: tuple[StrEnum, ...] | type[StrEnum]) -> str:
    """ "NEW, PROCESSED or FAILED": the words as help texts and messages list them."""
    words = [str(name) for name in names]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


_Names = TypeVar("_Names", bound=StrEnum)


def parse_status(text: str | None) -> Status | None:
    """A status named by an operator (None: any), or ValueError with one line saying what is allowed."""
    return _parse(Status, "status", text)


def parse_decided(text: str | None) -> Status | None:
    """A status a reset may select (PROCESSED or FAILED; None: any), or ValueError: NEW orders have nothing to
    put back, so `--status NEW` is a mistake, said at once rather than a run that resets nothing."""
    status = parse_status(text)
    if status is not None and status not in DECIDED:
        raise ValueError(
            f"status {text!r} cannot be reset: a reset puts {in_words(DECIDED)} orders back to {Status.NEW}"
        )
    return status


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
