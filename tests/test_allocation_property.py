"""Property: domain.rule decides every order exactly as tests/reference.py, the plain statement of the rule:
the same status, the same reason, the same explanation, and never more stock than there is; an order that
needs a stale item waits (undecided) and takes nothing, in both. Two worlds:
small numbers (many orders fight over little stock) and hostile ones (quantities at and around 2**31, 2**32,
2**53 and 2**63-1, so that totals pass what int64 and float64 hold)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from reference import WAITING, demand_of
from reference import decide as reference_decide
from tiers import examples

from domain import decide, reset
from domain.rule import decide_in_turn

BIG = 2**63 - 1
ITEMS = [1, 2, 3, 4]  # known items; 9 is never stocked

EDGES = [1, 2, 3, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**53 - 1, 2**53, 2**53 + 1, 2**62, BIG - 1, BIG]
big_quantity = st.one_of(st.sampled_from(EDGES), st.integers(1, BIG))
big_stock = st.one_of(st.sampled_from([0, *EDGES]), st.integers(0, BIG))


def orders_of(
    quantity: st.SearchStrategy[int], items: list[int], unknown: int = 9
) -> st.SearchStrategy[dict[int, list[tuple[int, int]]]]:
    """{order id: lines}; each order's total stays within 2**63-1, as the schema guarantees."""
    lines = st.lists(st.tuples(st.sampled_from([*items, unknown]), quantity), min_size=1, max_size=4)

    def within_bound(order_lines):
        kept, total = [], 0
        for item, qty in order_lines:
            if total + qty <= BIG:
                kept.append((item, qty))
                total += qty
        return kept

    return st.dictionaries(st.integers(0, BIG), lines.map(within_bound), max_size=25)


small_world = st.tuples(
    st.dictionaries(st.sampled_from(ITEMS), st.integers(-2, 6), max_size=4), orders_of(st.integers(1, 4), ITEMS)
)
# Two items only, so that hostile values meet on one item often; ids far apart (and an unknown one between
# them), so that items are found by search, not by a dense lookup table.
FAR = [3, BIG - 1]
big_world = st.tuples(
    st.dictionaries(st.sampled_from(FAR), big_stock, max_size=2), orders_of(big_quantity, FAR, unknown=2**40)
)


def _tight(on_hand: int):
    """One item of `on_hand`, and orders of quantities just around it: the totals land on either side of
    what is available by 1, where float64 (above 2**53) and a wrapped int64 sum would misjudge them."""
    near = sorted(
        {q for q in (on_hand, on_hand - 1, on_hand + 1, on_hand // 2, on_hand // 2 + 1, 1, 2) if 1 <= q <= BIG}
    )
    return st.tuples(st.just({FAR[1]: on_hand}), orders_of(st.sampled_from(near), FAR[1:], unknown=2**40))


tight_world = big_stock.flatmap(_tight)


def _flags(stock: dict[int, int], stale: set[int] | None):
    return None if stale is None else [item in stale for item in stock]


def domain_outcome(stock: dict[int, int], orders: dict[int, list[tuple[int, int]]], stale: set[int] | None = None):
    rows = [(oid, item, qty) for oid, lines in orders.items() for item, qty in lines]
    d = decide(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        list(stock),
        list(stock.values()),
        _flags(stock, stale),
    )
    explained: dict[int, dict] = {}
    waiting: dict[int, dict] = {}
    for oid, item in zip(*(d.waiting[k].tolist() for k in ("order_id", "inventory_id")), strict=True):
        waiting.setdefault(oid, {"stale": []})["stale"].append(item)
    for oid, item in zip(*(d.unknown[k].tolist() for k in ("order_id", "inventory_id")), strict=True):
        explained.setdefault(oid, {"unknown": []})["unknown"].append(item)
    for oid, item, needed, available in zip(
        *(d.short[k].tolist() for k in ("order_id", "inventory_id", "needed", "available")), strict=True
    ):
        explained.setdefault(oid, {"short": []})["short"].append(
            {"inventory_id": item, "needed": needed, "available": available}
        )
    decided = [(oid, reason, explained.get(oid)) for oid, _, _, reason in d]
    return sorted(decided + [(oid, WAITING, why) for oid, why in waiting.items()]), d


def check(stock, orders, stale=None):
    got, d = domain_outcome(stock, orders, stale)
    left = dict(stock)
    expected = reference_decide(sorted((oid, demand_of(lines)) for oid, lines in orders.items()), left, stale or ())
    assert got == expected
    assert d.counts == {
        "processed": sum(r is None for _, r, _ in expected),
        "failed": sum(r not in (None, WAITING) for _, r, _ in expected),
        "waiting": sum(r == WAITING for _, r, _ in expected),
    }
    # a waiting order is no row: its status does not change
    assert not {oid for oid, r, _ in expected if r == WAITING} & set(d.order_ids.tolist())
    # never more stock than there is, and none from a stale item: what the PROCESSED orders take fits in what
    # each item had
    taken: dict[int, int] = {}
    for oid, reason, _ in expected:
        if reason is None:
            for item, qty in demand_of(orders[oid]).items():
                taken[item] = taken.get(item, 0) + qty
    assert all(taken.get(item, 0) <= max(on_hand, 0) for item, on_hand in stock.items())
    assert left == {item: stock[item] - taken.get(item, 0) for item in stock}
    assert not set(taken) & set(stale or ())


def with_stale(world: st.SearchStrategy, items: list[int]) -> st.SearchStrategy:
    """A world and some of its stocked items stale (ids that are not stocked may be named too: they stay unknown)."""
    return st.tuples(world, st.sets(st.sampled_from([*items, 9]))).map(lambda w: (*w[0], w[1]))


@settings(max_examples=examples(300), deadline=None)
@given(small_world)
def test_small_numbers_decide_as_the_reference(world):
    check(*world)


@settings(max_examples=examples(300), deadline=None)
@given(big_world)
def test_hostile_numbers_decide_as_the_reference_exactly(world):
    check(*world)


@settings(max_examples=examples(300), deadline=None)
@given(with_stale(small_world, ITEMS))
def test_orders_needing_a_stale_item_wait_and_the_rest_decide_as_the_reference(world):
    check(*world)


@settings(max_examples=examples(200), deadline=None)
@given(with_stale(big_world, FAR))
def test_hostile_numbers_with_stale_items_decide_as_the_reference(world):
    check(*world)


@settings(max_examples=examples(100), deadline=None)
@given(st.dictionaries(st.integers(0, BIG), st.sampled_from(["NEW", "PROCESSED", "FAILED"]), max_size=30))
def test_reset_moves_every_decided_order_and_only_those(statuses):
    d = reset(list(statuses), list(statuses.values()))
    assert list(d) == [(oid, statuses[oid], "NEW", "RESET") for oid in sorted(statuses) if statuses[oid] != "NEW"]
    assert d.counts == {"reset": sum(s != "NEW" for s in statuses.values())}


@settings(max_examples=examples(300), deadline=None)
@given(tight_world)
def test_totals_one_off_what_is_available_decide_as_the_reference(world):
    check(*world)


def _explained(d) -> tuple:
    return (
        list(d),
        *(d.unknown[k].tolist() for k in ("order_id", "inventory_id")),
        *(d.short[k].tolist() for k in ("order_id", "inventory_id", "needed", "available")),
        *(d.waiting[k].tolist() for k in ("order_id", "inventory_id")),
    )


@settings(max_examples=examples(300), deadline=None)
@given(
    st.one_of(with_stale(small_world, ITEMS), with_stale(big_world, FAR), tight_world.map(lambda w: (*w, set()))),
    st.lists(st.integers(0, BIG), max_size=4),
)
def test_deciding_in_chunks_of_ascending_ids_is_deciding_at_once(world, cuts):
    """The process step decides a big backlog in chunks, each from what the chunks before it left: any cut of
    the ascending ids gives the same rows and explanations as one pass (which equals the reference)."""
    stock, orders, stale = world
    rows = sorted((oid, item, qty) for oid, lines in orders.items() for item, qty in lines)
    bounds = [-1, *sorted(set(cuts)), BIG]
    chunks = [[r for r in rows if low < r[0] <= high] for low, high in itertools.pairwise(bounds)]
    columns = [([r[0] for r in chunk], [r[1] for r in chunk], [r[2] for r in chunk]) for chunk in chunks]
    in_turn = [_explained(d) for d in decide_in_turn(columns, list(stock), list(stock.values()), _flags(stock, stale))]
    assert len(in_turn) == len(chunks)
    joined = tuple(list(itertools.chain.from_iterable(part[i] for part in in_turn)) for i in range(9))
    at_once = decide(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        list(stock),
        list(stock.values()),
        _flags(stock, stale),
    )
    assert joined == _explained(at_once)
