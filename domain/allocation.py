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


# ---- the same rule over columns: a million orders without a Python object per order -----------

PROCESSED_CODE, UNKNOWN_CODE, SHORT_CODE = 0, 1, 2  # codes of `allocate_columns`' outcomes
CODE_REASONS = (None, Reason.UNKNOWN_INVENTORY, Reason.INSUFFICIENT_STOCK)


class DemandColumns:
    """NEW orders' demand as three aligned columns, one row per (order, item) with the summed quantity,
    sorted by (order_id, inventory_id). Iterating yields (order_id, {item: quantity}) like `allocate` takes."""

    def __init__(self, order_ids, inventory_ids, quantities) -> None:
        import numpy as np  # pure computation, no I/O

        self.order_ids = np.asarray(order_ids, dtype=np.int64)
        self.inventory_ids = np.asarray(inventory_ids, dtype=np.int64)
        self.quantities = np.asarray(quantities, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.order_ids)

    def __iter__(self) -> Iterator[tuple[int, dict[int, int]]]:
        ids, items, quantities = self.order_ids.tolist(), self.inventory_ids.tolist(), self.quantities.tolist()
        n, i = len(ids), 0
        while i < n:
            order_id, demand = ids[i], {}
            while i < n and ids[i] == order_id:
                demand[items[i]] = quantities[i]
                i += 1
            yield order_id, demand


def allocate_columns(demands: DemandColumns, available: Mapping[int, int]):
    """`allocate` over columns, with the same outcome for every order: (order ids, outcome codes).

    Set-based where the rule allows it, sequential only where it must be:
    - an order naming an unknown item is UNKNOWN_INVENTORY whatever the stock, and never allocates;
    - an item whose total demand over the other orders fits in its availability ("safe") can never
      be short, for any order, at any point of the sequence;
    - so orders touching only safe items are PROCESSED, and the one-at-a-time loop runs only over
      the remaining orders and only over their unsafe items (safe lines always pass).
    `available` is not modified.
    """
    import numpy as np

    ids, items, qty = demands.order_ids, demands.inventory_ids, demands.quantities
    n_lines = len(ids)
    if n_lines == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
    if n_lines > 1 and bool((np.diff(ids) < 0).any()):
        raise ValueError("orders must come in ascending id")
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    order_ids = ids[starts]
    line_order = np.cumsum(np.r_[True, ids[1:] != ids[:-1]]) - 1  # order index of each line
    codes = np.zeros(len(order_ids), dtype=np.int8)

    keys = np.fromiter(available.keys(), dtype=np.int64, count=len(available))
    values = np.fromiter(available.values(), dtype=np.int64, count=len(available))
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    slot = np.searchsorted(keys, items)
    slot_ok = slot < len(keys)
    known = np.zeros(n_lines, dtype=bool)
    known[slot_ok] = keys[slot[slot_ok]] == items[slot_ok]
    unknown_orders = np.bincount(line_order[~known], minlength=len(order_ids)) > 0
    codes[unknown_orders] = UNKNOWN_CODE

    candidate = ~unknown_orders[line_order]  # lines of orders that may allocate (all their items known)
    if not candidate.any():  # e.g. an empty stock snapshot: every order is UNKNOWN_INVENTORY
        return order_ids, codes
    slot = np.where(known, slot, 0)
    total = np.bincount(slot[candidate], weights=qty[candidate], minlength=len(keys))
    safe_item = total <= values  # float weights are exact below 2**53
    contested_line = np.zeros(n_lines, dtype=bool)
    contested_line[candidate] = ~safe_item[slot[candidate]]
    lines = np.flatnonzero(contested_line)
    if len(lines):
        short = _sequential(line_order[lines].tolist(), slot[lines].tolist(), qty[lines].tolist(), values.tolist())
        codes[short] = SHORT_CODE
    return order_ids, codes


def _sequential(orders: list[int], slots: list[int], quantities: list[int], have: list[int]) -> list[int]:
    """The one-at-a-time rule over the contested lines (ascending order): the orders that are short."""
    short = []
    n, i = len(orders), 0
    while i < n:
        o, j = orders[i], i
        ok = True
        while j < n and orders[j] == o:
            if have[slots[j]] < quantities[j]:
                ok = False
            j += 1
        if ok:
            for k in range(i, j):
                have[slots[k]] -= quantities[k]
        else:
            short.append(o)
        i = j
    return short
