"""An order's recorded explanation in an operator's words (for explain, history, previews and the UI)."""

from __future__ import annotations

from typing import Any

NOT_RECORDED = "explanation not recorded (decided before Orderly kept explanations)"


def describe(reason: str | None, details: dict[str, Any] | None) -> str:
    """One line: which items were unknown, or each short item with what it needed and what was available.
    Empty for a change that needs no explanation (PROCESSED, a reset)."""
    if details is None:
        return NOT_RECORDED if reason in ("UNKNOWN_INVENTORY", "INSUFFICIENT_STOCK") else ""
    if "unknown" in details:
        items = details["unknown"]
        return f"{_items(items)} {'is' if len(items) == 1 else 'are'} not in the stock snapshot"
    if "short" in details:
        return "; ".join(f"item {s['inventory_id']} short: needed {s['needed']}, available {s['available']}"
                         for s in details["short"])
    return str(details)


def _items(ids: list[int]) -> str:
    return ("item " if len(ids) == 1 else "items ") + ", ".join(map(str, ids))
