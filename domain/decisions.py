"""`Decisions`: the status changes the rule makes, as columns, for process and reset alike.

One row per order whose status changes. Each row is what the seed called a domain event
(OrderProcessed, OrderFailed, OrderReset): the store writes it as one row of the order's history,
in the same transaction as the new status. A FAILED row carries its explanation, kept as columns
too: the unknown items of an UNKNOWN_INVENTORY order, or each short item of an INSUFFICIENT_STOCK
order with the quantity needed and the quantity available when the order's turn came.

Orders that wait (they need a stale item) are no row: their status does not change. `waiting` names them
with the stale items they need, for the run's `waiting` counter and its message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from domain.model import RESET, Reason, Status

# Every status change the rules make: (from, to, reason in the history, the order's reason afterwards).
# A row of `Decisions` holds the index of its change, so a million rows cost one byte each.
TRANSITIONS: tuple[tuple[Status, Status, str | None, Reason | None], ...] = (
    (Status.NEW, Status.PROCESSED, None, None),
    (Status.NEW, Status.FAILED, Reason.UNKNOWN_INVENTORY, Reason.UNKNOWN_INVENTORY),
    (Status.NEW, Status.FAILED, Reason.INSUFFICIENT_STOCK, Reason.INSUFFICIENT_STOCK),
    (Status.PROCESSED, Status.NEW, RESET, None),
    (Status.FAILED, Status.NEW, RESET, None),
)
PROCESSED, UNKNOWN, SHORT, RESET_PROCESSED, RESET_FAILED = range(len(TRANSITIONS))


def _ints(values: ArrayLike = ()) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Decisions:
    kind: str  # "process" or "reset": which counters the decisions fill
    order_ids: np.ndarray  # int64, ascending
    changes: np.ndarray  # int8, aligned with order_ids: the index of each order's TRANSITIONS entry
    unknown: dict[str, np.ndarray] = field(default_factory=lambda: {"order_id": _ints(), "inventory_id": _ints()})
    short: dict[str, np.ndarray] = field(
        default_factory=lambda: {"order_id": _ints(), "inventory_id": _ints(), "needed": _ints(), "available": _ints()}
    )
    # one row per stale item each waiting order needs, ascending by order then item
    waiting: dict[str, np.ndarray] = field(default_factory=lambda: {"order_id": _ints(), "inventory_id": _ints()})

    @classmethod
    def none(cls, kind: str) -> Decisions:
        return cls(kind, _ints(), np.zeros(0, dtype=np.int8))

    def __len__(self) -> int:
        return len(self.order_ids)

    @property
    def counts(self) -> dict[str, int]:
        """The run counters these decisions add: processed and failed, or reset."""
        per_change = np.bincount(self.changes, minlength=len(TRANSITIONS)).tolist()
        if self.kind == "reset":
            return {"reset": per_change[RESET_PROCESSED] + per_change[RESET_FAILED]}
        waiting = self.waiting["order_id"]
        return {
            "processed": per_change[PROCESSED],
            "failed": per_change[UNKNOWN] + per_change[SHORT],
            "waiting": int(np.count_nonzero(np.r_[True, waiting[1:] != waiting[:-1]])) if len(waiting) else 0,
        }

    def __iter__(self) -> Iterator[tuple[int, str, str, str | None]]:
        """(order_id, from, to, reason) per row: for readers of a few rows (tests, previews)."""
        for order_id, change in zip(self.order_ids.tolist(), self.changes.tolist(), strict=True):
            before, after, reason, _ = TRANSITIONS[change]
            yield order_id, str(before), str(after), None if reason is None else str(reason)

    def columns(self) -> dict[str, Any]:
        """Plain values for the store: the rows, the table of changes they index, the explanations."""
        names = ("from_status", "to_status", "reason", "order_reason")
        return {
            "order_ids": self.order_ids,
            "changes": self.changes,
            "labels": {
                name: [None if v is None else str(v) for v in column]
                for name, column in zip(names, zip(*TRANSITIONS, strict=True), strict=True)
            },
            "unknown": self.unknown,
            "short": self.short,
        }
