"""The contract's rule (CONTRACT.md section 2) as plain Python: the one reference every check compares with.

Used by the property tests, tests/test_bench_small.py, the end-to-end checkers and bench/run.py's floor
(which imports this file by path). It is deliberately the obvious loop: dicts, Python ints, no shortcut.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, MutableMapping

UNKNOWN_INVENTORY = "UNKNOWN_INVENTORY"
INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
WAITING = "WAITING"  # not a decision: the order stays NEW (it needs a stale item)


def demand_of(lines: Iterable[tuple[int, int]]) -> dict[int, int]:
    """(inventory_id, quantity) lines -> the order's total per item (lines naming the same item are summed)."""
    demand: dict[int, int] = {}
    for item, quantity in lines:
        demand[item] = demand.get(item, 0) + quantity
    return demand


def decide(
    demands: Iterable[tuple[int, Mapping[int, int]]],
    available: MutableMapping[int, int],
    stale: Collection[int] = frozenset(),
) -> list[tuple[int, str | None, dict | None]]:
    """Decide (order_id, {item: summed quantity}) in the order given (ascending id), consuming `available`.

    Returns (order_id, reason, explanation): reason None for PROCESSED; for FAILED the explanation is
    {"unknown": [item ids]} or {"short": [{"inventory_id", "needed", "available"}, ...]}, items ascending.
    An order needing a stocked item in `stale` is not decided: (order_id, WAITING, {"stale": [item ids]}),
    and it takes nothing.
    """
    decided = []
    for order_id, demand in demands:
        waits_for = sorted(item for item in demand if item in stale and item in available)
        if waits_for:
            decided.append((order_id, WAITING, {"stale": waits_for}))
            continue
        reason = None
        for item, quantity in demand.items():
            have = available.get(item)
            if have is None:
                reason = UNKNOWN_INVENTORY  # the first reason that applies: no need to look further
                break
            if have < quantity:
                reason = INSUFFICIENT_STOCK
        if reason is None:
            for item, quantity in demand.items():
                available[item] -= quantity
            decided.append((order_id, None, None))
        elif reason == UNKNOWN_INVENTORY:
            decided.append((order_id, reason, {"unknown": sorted(item for item in demand if item not in available)}))
        else:
            decided.append(
                (
                    order_id,
                    reason,
                    {
                        "short": [
                            {"inventory_id": item, "needed": quantity, "available": available[item]}
                            for item, quantity in sorted(demand.items())
                            if available[item] < quantity
                        ]
                    },
                )
            )
    return decided


def decide_records(orders: Iterable[Mapping], stock: Iterable[Mapping]) -> dict[int, tuple[str, str | None]]:
    """The rule over records as the remotes serve them: order id -> (status, reason)."""
    available = {s["inventory_id"]: s["quantity"] for s in stock}
    demands = [
        (o["id"], demand_of((line["inventory_id"], line["quantity"]) for line in o["items"]))
        for o in sorted(orders, key=lambda o: o["id"])
    ]
    return {
        oid: ("PROCESSED", None) if reason is None else ("FAILED", reason)
        for oid, reason, _ in decide(demands, available)
    }
