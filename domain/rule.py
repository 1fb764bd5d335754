"""The rule of CONTRACT.md section 2, stated once, in the form production runs: over columns.

- Only NEW orders are decided, one at a time in ascending order id.
- Lines naming the same item are summed: an order needs its total of each item.
- An order naming an item that is not in the stock snapshot is FAILED, UNKNOWN_INVENTORY.
- Otherwise it is PROCESSED, and takes its quantities from `available`, when available covers
  every item it needs; else it is FAILED, INSUFFICIENT_STOCK, and takes nothing.
- Every FAILED decision carries its explanation (domain.decisions).
- Reset puts PROCESSED and FAILED orders back to NEW; since available counts only the orders
  PROCESSED now, that alone releases their stock.
- Processing refuses to run without a complete stock snapshot fresh enough to trust.

All arithmetic on quantities is exact integer arithmetic: int64 columns (a quantity is at most
2**63-1, and so is one order's sum) and Python ints where a sum of many orders could pass that.
"""

from __future__ import annotations

import numpy as np

from domain.decisions import PROCESSED, RESET_FAILED, RESET_PROCESSED, SHORT, UNKNOWN, Decisions
from domain.model import Status


def decide(line_orders, line_items, line_quantities, stock_items, stock_available) -> Decisions:
    """Decide NEW orders given their lines (three aligned columns: order id, inventory id, quantity;
    any order) and the stock (inventory ids and what is available of each, aligned).

    The outcome is that of the one-at-a-time rule for every order. It gets there set-based where the
    rule allows: an order naming an unknown item fails whatever the stock, and an item whose demand
    over all the orders fits in what is available can never be short for any of them. Only the
    remaining items ("contested") are walked one order at a time.
    """
    orders, items, quantities = _summed_by_order_and_item(
        _ints(line_orders), _ints(line_items), _ints(line_quantities))
    if len(orders) == 0:
        return Decisions.none("process")
    if bool((quantities < 1).any()):
        raise ValueError("an order line has a quantity below 1 (the schema keeps those out)")
    first_line = np.r_[True, orders[1:] != orders[:-1]]
    order_ids = orders[first_line]
    order_of_line = np.cumsum(first_line) - 1

    keys, available = _ints(stock_items), _ints(stock_available)
    by_item = np.argsort(keys, kind="stable")
    keys, available = keys[by_item], available[by_item]
    slot = np.minimum(np.searchsorted(keys, items), max(len(keys) - 1, 0))  # the item's row in the stock
    known = keys[slot] == items if len(keys) else np.zeros(len(items), dtype=bool)

    unknown_order = np.zeros(len(order_ids), dtype=bool)
    unknown_order[order_of_line[~known]] = True
    changes = np.where(unknown_order, UNKNOWN, PROCESSED).astype(np.int8)

    deciding = ~unknown_order[order_of_line]  # the lines of orders whose items are all known
    contested = np.zeros(len(items), dtype=bool)
    contested[deciding] = ~_demand_fits(slot[deciding], quantities[deciding], available)[slot[deciding]]
    lines = np.flatnonzero(contested)
    short_lines = _one_at_a_time(
        order_of_line[lines].tolist(), slot[lines].tolist(), quantities[lines].tolist(), available.tolist())
    short_order, short_slot, needed, had = zip(*short_lines) if short_lines else ((), (), (), ())
    short_order = list(short_order)
    changes[short_order] = SHORT

    return Decisions(
        "process", order_ids, changes,
        unknown={"order_id": orders[~known], "inventory_id": items[~known]},
        short={"order_id": order_ids[_ints(short_order)], "inventory_id": keys[_ints(short_slot)],
               "needed": _ints(needed), "available": _ints(had)},
    )


def reset(order_ids, statuses) -> Decisions:
    """Put each PROCESSED or FAILED order back to NEW (a NEW one is left alone)."""
    order_ids, statuses = _ints(order_ids), np.asarray(statuses, dtype=object)
    changes = np.full(len(order_ids), -1, dtype=np.int8)
    changes[statuses == Status.PROCESSED] = RESET_PROCESSED
    changes[statuses == Status.FAILED] = RESET_FAILED
    moved = changes >= 0
    order = np.argsort(order_ids[moved], kind="stable")
    return Decisions("reset", order_ids[moved][order], changes[moved][order])


def stock_refusal(snapshot_age_s: float | None, max_age_s: float) -> str | None:
    """Why processing must not run on the local stock, or None when it may."""
    if snapshot_age_s is None:
        return "no complete stock snapshot yet, so no order was processed: run `orderly sync` first"
    if snapshot_age_s > max_age_s:
        return (f"the last complete stock snapshot is {snapshot_age_s:.0f} s old (ORDERLY_MAX_STOCK_AGE={max_age_s:g}), "
                "so no order was processed: sync stock first")
    return None


# ---- how -----------------------------------------------------------------------------------------

def _ints(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _summed_by_order_and_item(orders, items, quantities):
    """One row per (order, item), sorted by both, with the order's summed quantity of the item.
    One order's sum fits in int64 (the schema bounds it), so this sum is exact."""
    if len(orders) > 1:
        ascending = (orders[1:] > orders[:-1]) | ((orders[1:] == orders[:-1]) & (items[1:] >= items[:-1]))
        if not ascending.all():
            by_order = np.lexsort((items, orders))
            orders, items, quantities = orders[by_order], items[by_order], quantities[by_order]
        first = np.r_[True, (orders[1:] != orders[:-1]) | (items[1:] != items[:-1])]
        if not first.all():
            starts = np.flatnonzero(first)
            orders, items, quantities = orders[starts], items[starts], np.add.reduceat(quantities, starts)
    return orders, items, quantities


def _demand_fits(slots, quantities, available) -> np.ndarray:
    """Per stock item: does the summed quantity of these lines fit in what is available?

    The sum of many orders can pass 2**63-1, so it is never formed in one int64 (nor in float64,
    which is exact only below 2**53): each quantity is split into its high 31 and low 32 bits,
    summed apart (exact for fewer than 2**31 lines), and compared with `available` split alike.
    """
    high = np.zeros(len(available), dtype=np.int64)
    low = np.zeros(len(available), dtype=np.int64)
    np.add.at(high, slots, quantities >> 32)
    np.add.at(low, slots, quantities & 0xFFFFFFFF)
    high += low >> 32
    low &= 0xFFFFFFFF
    have_high, have_low = available >> 32, available & 0xFFFFFFFF  # floor split: right for negatives too
    return (high < have_high) | ((high == have_high) & (low <= have_low))


def _one_at_a_time(orders: list[int], slots: list[int], quantities: list[int], have: list[int]):
    """The rule, order after order, over the contested lines (grouped by order, ascending), on
    Python ints: an order takes its quantities only if every one is covered. Returns
    (order, slot, needed, available then) for each short line of each order that is short."""
    short = []
    n, i = len(orders), 0
    while i < n:
        order, j, covered = orders[i], i, True
        while j < n and orders[j] == order:
            if have[slots[j]] < quantities[j]:
                covered = False
            j += 1
        if covered:
            for k in range(i, j):
                have[slots[k]] -= quantities[k]
        else:
            short.extend((order, slots[k], quantities[k], have[slots[k]]) for k in range(i, j)
                         if have[slots[k]] < quantities[k])
        i = j
    return short
