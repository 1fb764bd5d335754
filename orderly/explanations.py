"""An order's recorded explanation in an operator's words (for explain, history, previews and the UI)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.model import Reason, Status

NOT_RECORDED = "explanation not recorded (decided before Orderly kept explanations)"
PROCESSED_WHY = "every item was available; its quantities are allocated to it"
WOULD_PROCESS_WHY = "every item is available; its quantities would be allocated to it"


def describe(
    reason: str | None, details: dict[str, Any] | None, names: Mapping[int, tuple[str, str]] | None = None
) -> str:
    """One line: which items were unknown, or each short item with what it needed and what was available.
    Empty for a change that needs no explanation (PROCESSED, a reset). `names` (inventory id -> SKU and
    product name, from the stock snapshot) names each short item too, as the page shows it."""
    if details is None:
        return NOT_RECORDED if reason in tuple(Reason) else ""
    if "unknown" in details:
        # Never named: an unknown item had no SKU when decided, and a name found now would contradict the words.
        items = details["unknown"]
        return f"{_items(items)} {'is' if len(items) == 1 else 'are'} not in the stock snapshot"
    if "short" in details:
        return "; ".join(
            f"item {s['inventory_id']}{_named(s['inventory_id'], names)} short: "
            f"needed {_count(s['needed'])}, available {_count(s['available'])}"
            for s in details["short"]
        )
    return str(details)


def why_failed(
    reason: str | None, details: dict[str, Any] | None, names: Mapping[int, tuple[str, str]] | None = None
) -> str:
    """Why a FAILED order failed, as `orderly explain` and the page say it: a short item was short of the stock
    left when the order's turn came (orders are decided by id), not necessarily of the stock now."""
    return describe(reason, details, names) + (" (when its turn came)" if details and "short" in details else "")


def change_why(change: Mapping[str, Any], names: Mapping[int, tuple[str, str]] | None = None) -> str:
    """The words for one status change (a row of an order's history): its explanation when it made the order
    FAILED, nothing otherwise."""
    return describe(change["reason"], change["details"], names) if change["to_status"] == Status.FAILED else ""


def preview_why(change: Mapping[str, Any]) -> str:
    """Why a dry run would make this change: the failure's explanation, or that the order would be allocated."""
    if change["to_status"] == Status.PROCESSED:
        return WOULD_PROCESS_WHY
    return describe(change["reason"], change["details"])


def short_items(details: dict[str, Any] | None) -> list[int]:
    """The inventory ids of an explanation's short items: the ones `describe` names."""
    return [s["inventory_id"] for s in (details or {}).get("short", [])]


def _named(inventory_id: int, names: Mapping[int, tuple[str, str]] | None) -> str:
    found = (names or {}).get(inventory_id)
    return "" if found is None else f" ({found[0]}, {found[1]})"


def _count(value: Any) -> str:
    """A quantity with thousands separators, as the page shows every count (`needed 12,000`)."""
    return f"{value:,}" if isinstance(value, int) else str(value)


def _items(ids: list[int]) -> str:
    return ("item " if len(ids) == 1 else "items ") + ", ".join(map(str, ids))
