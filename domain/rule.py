"""The rule of CONTRACT.md section 2, stated once, in the form production runs: over columns.

- Only NEW orders are decided, one at a time in ascending order id.
- Lines naming the same item are summed: an order needs its total of each item.
- An order naming an item that is not in the stock snapshot is FAILED, UNKNOWN_INVENTORY.
- Otherwise it is PROCESSED, and takes its quantities from `available`, when available covers
  every item it needs; else it is FAILED, INSUFFICIENT_STOCK, and takes nothing.
- Every FAILED decision carries its explanation (domain.decisions).
- Reset puts PROCESSED and FAILED orders back to NEW; since available counts only the orders
  PROCESSED now, that alone releases their stock.
- Processing refuses to run without a complete stock snapshot fresh enough to trust; and an order that
  needs a stale item (one whose last good value is older than ORDERLY_MAX_STOCK_AGE: its newer records were
  quarantined) is not decided at all: it waits, NEW, takes nothing, and the orders after it are decided as if
  it were not there. It waits even when another of its items is unknown: the stale item means the stock it
  would be judged on is in doubt, and the next good snapshot decides it (CONTRACT.md: "an order that needs it
  stays NEW").

All arithmetic on quantities is exact integer arithmetic: int64 columns (a quantity is at most
2**63-1, and so is one order's sum) and Python ints where a sum of many orders could pass that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import ArrayLike

from domain.decisions import PROCESSED, RESET_FAILED, RESET_PROCESSED, SHORT, UNKNOWN, Decisions
from domain.model import Status


def decide(
    line_orders: ArrayLike,
    line_items: ArrayLike,
    line_quantities: ArrayLike,
    stock_items: ArrayLike,
    stock_available: ArrayLike,
    stock_stale: ArrayLike | None = None,
) -> Decisions:
    """Decide NEW orders given their lines (three aligned columns: order id, inventory id, quantity;
    any order) and the stock (inventory ids and what is available of each, aligned; and, aligned too,
    whether each item is stale: None, none is). An order needing a stale item waits (`Decisions.waiting`).

    The outcome is that of the one-at-a-time rule for every order. It gets there set-based where the
    rule allows, and walks one order at a time only where it must:
    - an order naming an unknown item fails whatever the stock, and takes nothing;
    - a line is "covered" when the demand for its item of every order up to and including its own
      fits in what is available: whatever the orders before it did, it finds enough. An order whose
      lines are all covered is PROCESSED, and takes its quantities, without a walk;
    - the others are walked in ascending id over the items they share with a line that is not covered
      (an item whose lines are all covered is never short for anyone), starting from what the orders
      processed without a walk left. Every order before a covered order is covered on the items it
      shares with it, so taking the covered orders' quantities first changes no outcome.
    """
    keys = _ints(stock_items)
    return _decided(
        line_orders, line_items, line_quantities, keys, _ints(stock_available), _stale(stock_stale, len(keys))
    )[0]


def decide_in_turn(
    chunks: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]],
    stock_items: ArrayLike,
    stock_available: ArrayLike,
    stock_stale: ArrayLike | None = None,
) -> Iterator[Decisions]:
    """`decide` over chunks of NEW orders given in ascending order id (each chunk's ids above the last one's):
    each chunk is decided from what the chunks before it left available, which is the one-at-a-time rule over
    all of them. Memory then follows the chunk, not the backlog (a million NEW orders' working arrays were the
    process step's 2-second peak)."""
    keys, available = _ints(stock_items), _ints(stock_available)
    stale = _stale(stock_stale, len(keys))
    for line_orders, line_items, line_quantities in chunks:
        decisions, available = _decided(line_orders, line_items, line_quantities, keys, available, stale)
        yield decisions


def _decided(
    line_orders: ArrayLike,
    line_items: ArrayLike,
    line_quantities: ArrayLike,
    keys: np.ndarray,
    available: np.ndarray,
    stale: np.ndarray | None = None,
) -> tuple[Decisions, np.ndarray]:
    """The decisions, and what is available of each stock item after them."""
    orders, items, quantities = _summed_by_order_and_item(_ints(line_orders), _ints(line_items), _ints(line_quantities))
    if len(orders) == 0:
        return Decisions.none("process"), available
    if bool((quantities < 1).any()):
        raise ValueError("an order line has a quantity below 1 (the schema keeps those out)")
    slot, known = _stock_rows(keys, items)
    waiting = _no_waiting()
    if stale is not None:
        orders, items, quantities, slot, known, waiting = _without_waiting(
            orders, items, quantities, slot, known, stale
        )
        if len(orders) == 0:
            return Decisions("process", _ints(()), np.zeros(0, dtype=np.int8), waiting=waiting), available
    first_line = np.r_[True, orders[1:] != orders[:-1]]
    order_ids = orders[first_line]
    order_of_line = np.cumsum(first_line) - 1

    unknown_order = np.zeros(len(order_ids), dtype=bool)
    unknown_order[order_of_line[~known]] = True
    changes = np.where(unknown_order, UNKNOWN, PROCESSED).astype(np.int8)

    deciding = np.flatnonzero(~unknown_order[order_of_line])  # the lines of orders whose items are all known
    covered, item_covered = _covered(slot[deciding], quantities[deciding], available)
    walked_order = np.zeros(len(order_ids), dtype=bool)
    walked_order[order_of_line[deciding[~covered]]] = True
    sure = ~walked_order[order_of_line[deciding]]
    left = available.copy()
    np.subtract.at(left, slot[deciding[sure]], quantities[deciding[sure]])  # within what was available: exact
    walk = deciding[~sure & ~item_covered[slot[deciding]]]
    short_order, short_slot, needed, had = (
        _ints(column)
        for column in _one_at_a_time(
            order_of_line[walk].tolist(), slot[walk].tolist(), quantities[walk].tolist(), left.tolist()
        )
    )
    changes[short_order] = SHORT
    taken = deciding[changes[order_of_line[deciding]] == PROCESSED]
    after = available.copy()
    np.subtract.at(after, slot[taken], quantities[taken])  # each took at most what was available: exact

    return Decisions(
        "process",
        order_ids,
        changes,
        unknown={"order_id": orders[~known], "inventory_id": items[~known]},
        short={
            "order_id": order_ids[short_order],
            "inventory_id": keys[short_slot],
            "needed": needed,
            "available": had,
        },
        waiting=waiting,
    ), after


def _stale(stock_stale: ArrayLike | None, n: int) -> np.ndarray | None:
    """The stale flags as a bool column aligned with the stock; None when no item is stale (nothing waits)."""
    if stock_stale is None:
        return None
    stale = np.asarray(stock_stale, dtype=bool)
    if len(stale) != n:
        raise ValueError(f"{len(stale)} stale flags for {n} stock items")
    return stale if bool(stale.any()) else None


def _no_waiting() -> dict[str, np.ndarray]:
    return {"order_id": _ints(()), "inventory_id": _ints(())}


def _without_waiting(
    orders: np.ndarray,
    items: np.ndarray,
    quantities: np.ndarray,
    slot: np.ndarray,
    known: np.ndarray,
    stale: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The lines of the orders that need no stale item, and the waiting ones' stale lines (order_id, inventory_id).
    A waiting order is set aside whole, before anything is decided: it takes nothing, so the orders after it are
    decided as if it were not there."""
    stale_line = known & stale[slot]
    if not stale_line.any():
        return orders, items, quantities, slot, known, _no_waiting()
    order_of_line = np.cumsum(np.r_[True, orders[1:] != orders[:-1]]) - 1  # the lines are sorted by order
    waits = np.zeros(int(order_of_line[-1]) + 1, dtype=bool)
    waits[order_of_line[stale_line]] = True
    kept = ~waits[order_of_line]
    waiting = {"order_id": orders[stale_line], "inventory_id": items[stale_line]}
    return orders[kept], items[kept], quantities[kept], slot[kept], known[kept], waiting


def reset(order_ids: ArrayLike, statuses: ArrayLike) -> Decisions:
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
        return (
            f"the last complete stock snapshot is {snapshot_age_s:.0f} s old (ORDERLY_MAX_STOCK_AGE={max_age_s:g}), "
            "so no order was processed: sync stock first"
        )
    return None


# ---- how -----------------------------------------------------------------------------------------


def _ints(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _summed_by_order_and_item(
    orders: np.ndarray, items: np.ndarray, quantities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _stock_rows(keys: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each item's row in the stock (0 where unknown) and whether it is known at all."""
    if len(keys) == 0:
        return np.zeros(len(items), dtype=np.int64), np.zeros(len(items), dtype=bool)
    low, high = int(keys.min()), int(keys.max())
    if high - low < max(32 * len(keys), 1 << 20):  # ids close enough for a lookup table (<= 8 MB or 256 B an item)
        row_of = np.full(high - low + 1, -1, dtype=np.int64)
        row_of[keys - low] = np.arange(len(keys))
        in_range = (items >= low) & (items <= high)
        slot = np.full(len(items), -1, dtype=np.int64)
        slot[in_range] = row_of[items[in_range] - low]
        known = slot >= 0
        return np.where(known, slot, 0), known
    by_item = np.argsort(keys, kind="stable")
    slot = by_item[np.minimum(np.searchsorted(keys[by_item], items), len(keys) - 1)]
    return slot, keys[slot] == items


def _covered(slots: np.ndarray, quantities: np.ndarray, available: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For lines in ascending order id: is each one covered (its item's demand over this line and every line
    before it fits in what is available)? And per stock item: are all its lines covered?

    A running sum of many orders can pass 2**63-1, so it is never formed in one int64 (nor in float64,
    which is exact only below 2**53): each quantity is split into its high 31 and low 32 bits, the halves
    summed apart (exact for fewer than 2**31 lines) and compared with `available` split alike.
    """
    by_item = _stable_order(slots, len(available))  # each item's lines, still in ascending order id
    item, quantity = slots[by_item], quantities[by_item]
    high, low = np.cumsum(quantity >> 32), np.cumsum(quantity & 0xFFFFFFFF)
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    sizes = np.diff(np.r_[starts, len(item)])
    high -= np.repeat(np.r_[0, high][starts], sizes)  # running sums restart at each item
    low -= np.repeat(np.r_[0, low][starts], sizes)
    high += low >> 32
    low &= 0xFFFFFFFF
    have = available[item]
    have_high, have_low = have >> 32, have & 0xFFFFFFFF  # a floor split: right for negative values too
    fits = (high < have_high) | ((high == have_high) & (low <= have_low))
    covered = np.empty(len(slots), dtype=bool)
    covered[by_item] = fits
    item_covered = np.ones(len(available), dtype=bool)
    item_covered[item[~fits]] = False
    return covered, item_covered


def _stable_order(rows: np.ndarray, n: int) -> np.ndarray:
    """A stable argsort of stock rows (ints in 0..n-1), 16 bits a pass: numpy radix-sorts 16-bit keys,
    4x faster than a merge sort of int64 keys."""
    order = np.argsort((rows & 0xFFFF).astype(np.uint16), kind="stable")
    shift = 16
    while (n - 1) >> shift > 0:
        order = order[np.argsort(((rows[order] >> shift) & 0xFFFF).astype(np.uint16), kind="stable")]
        shift += 16
    return order


def _one_at_a_time(
    orders: list[int], slots: list[int], quantities: list[int], have: list[int]
) -> tuple[list[int], list[int], list[int], list[int]]:
    """The rule, order after order, over the contested lines (grouped by order, ascending), on
    Python ints: an order takes its quantities only if every one is covered. Returns four columns,
    one row per short line of each order that is short: order, slot, needed, available then."""
    short_orders: list[int] = []
    short_slots: list[int] = []
    needed: list[int] = []
    had: list[int] = []
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
            for k in range(i, j):
                slot = slots[k]
                if have[slot] < quantities[k]:
                    short_orders.append(order)
                    short_slots.append(slot)
                    needed.append(quantities[k])
                    had.append(have[slot])
        i = j
    return short_orders, short_slots, needed, had
