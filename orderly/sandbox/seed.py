"""The seed data set: the original shop's demo, record for record.

Other tests check the statuses the pipeline reaches on it, so every number here
is fixed: do not "tidy" it.
"""

from __future__ import annotations

import bisect
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from .base import DataSet, check_page_size

STOCK_UPDATED_AT = "2026-11-20T09:00:00Z"

# (inventory_id, product_id, sku, product_name, warehouse_id, quantity)
_STOCK = [
    (101, 1, "MUG-BLK", "Black mug", 1, 5),
    (102, 1, "MUG-BLK", "Black mug", 2, 0),
    (205, 2, "TEE-WHT-M", "White T-shirt (M)", 2, 0),
    (206, 2, "TEE-WHT-L", "White T-shirt (L)", 1, 2),
    (310, 3, "PST-A2", "Poster A2", 1, 3),
    (420, 4, "TOTE-NAT", "Tote bag", 1, 1),
    (530, 5, "NB-A5", "Notebook A5", 1, 2),
    (640, 6, "PEN-SET", "Pen set", 2, 1),
]

# order id -> lines as (inventory_id, quantity); 999, 777 and 888 are not in stock on purpose.
_ORDERS: dict[int, list[tuple[int, int]]] = {
    2: [(101, 1), (205, 1)],
    3: [(999, 1)],
    4: [(310, 4)],
    5: [(102, 2)],
    6: [(101, 2)],
    7: [(777, 1)],
    8: [(310, 2)],
    9: [(206, 1)],
    10: [(420, 1)],
    11: [(420, 1)],
    12: [(530, 1)],
    13: [(888, 1)],
    14: [(205, 1)],
    15: [(640, 1), (640, 3)],  # the same item on two lines: the pipeline must sum them
    16: [(640, 1)],
}

_FIRST_PLACED = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)


def _order(order_id: int, lines: list[tuple[int, int]]) -> dict[str, Any]:
    # Matches the contract's example: order 2 placed 09:15 by C-1001, one minute per id after.
    placed = _FIRST_PLACED + timedelta(minutes=order_id - 2)
    return {
        "id": order_id,
        "placed_at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "customer_id": f"C-{1000 + order_id - 1}",
        "items": [{"inventory_id": inv, "quantity": qty} for inv, qty in lines],
    }


class SeedDataSet(DataSet):
    """15 orders (ids 2..16) and 8 inventory items; always valid, never generated."""

    def __init__(self) -> None:
        self._orders = [_order(oid, lines) for oid, lines in sorted(_ORDERS.items())]
        self._ids = [o["id"] for o in self._orders]
        self._stock = [
            {
                "inventory_id": inv,
                "product_id": pid,
                "sku": sku,
                "product_name": name,
                "warehouse_id": wh,
                "quantity": qty,
                "updated_at": STOCK_UPDATED_AT,
            }
            for inv, pid, sku, name, wh, qty in _STOCK
        ]
        self.order_count = len(self._orders)
        self.stock_count = len(self._stock)

    def orders_page(self, after_id: int, limit: int) -> dict[str, Any]:
        check_page_size("limit", limit)
        start = bisect.bisect_right(self._ids, after_id)
        stop = min(len(self._orders), start + limit)
        # Copies, so a caller that edits a record cannot change what the next page serves.
        orders = copy.deepcopy(self._orders[start:stop])
        reaches_end = stop >= len(self._orders)
        return {"orders": orders, "next_after_id": None if reaches_end else orders[-1]["id"]}

    def _stock_slice(self, start: int, stop: int) -> list[dict[str, Any]]:
        return copy.deepcopy(self._stock[start:stop])
