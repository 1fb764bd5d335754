"""The allocation service: decides NEW orders one at a time in ascending id, all or nothing per order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import NamedTuple

from domain.model import Order, Reason


class Decision(NamedTuple):
    order_id: int
    reason: Reason | None  # None: PROCESSED, stock allocated

    @property
    def processed(self) -> bool:
        return self.reason is None


def decide(demand: Mapping[int, int], available: MutableMapping[int, int]) -> Reason | None:
    """Decide one order's demand (item -> summed quantity) and, if it passes, take it from `available`.

    UNKNOWN_INVENTORY outranks INSUFFICIENT_STOCK, so every item is checked for existence before
    any shortage is reported. Nothing is taken unless every item is covered (all or nothing).
    """
    short = False
    for item, quantity in demand.items():
        have = available.get(item)
        if have is None:
            return Reason.UNKNOWN_INVENTORY
        if have < quantity:
            short = True
    if short:
        return Reason.INSUFFICIENT_STOCK
    for item, quantity in demand.items():
        available[item] -= quantity
    return None


def allocate(
    demands: Iterable[tuple[int, Mapping[int, int]]], available: MutableMapping[int, int]
) -> Iterator[Decision]:
    """Decide each (order_id, demand) in ascending order id; `available` is consumed as orders pass.

    The caller hands orders already sorted (the store reads them ORDER BY id); sorting here would
    cost a full copy of a million-order backlog. A descending id is refused rather than mis-decided.
    """
    last = None
    for order_id, demand in demands:
        if last is not None and order_id <= last:
            raise ValueError(f"orders must come in ascending id: {order_id} after {last}")
        last = order_id
        yield Decision(order_id, decide(demand, available))


def process_orders(orders: Iterable[Order], available: MutableMapping[int, int]) -> list[Order]:
    """Apply the rule to Order aggregates (NEW only), recording a domain event on each."""
    decided = []
    for order in sorted(orders, key=lambda o: o.id):
        reason = decide(order.demand, available)
        if reason is None:
            order.mark_processed()
        else:
            order.mark_failed(reason)
        decided.append(order)
    return decided
