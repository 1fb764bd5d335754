"""Property: domain.allocate / decide_orders (both paths) agree with a tiny independent model of the rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import Reason, allocate, decide_orders
from domain.allocation import DemandColumns

ITEMS = [1, 2, 3, 4]  # known items; 9 is never stocked

stock_st = st.dictionaries(st.sampled_from(ITEMS), st.integers(0, 6), min_size=0, max_size=4)
line_st = st.tuples(st.sampled_from(ITEMS + [9]), st.integers(1, 4))
orders_st = st.lists(st.lists(line_st, min_size=1, max_size=4), min_size=0, max_size=25)


def model(on_hand: dict[int, int], orders: list[list[tuple[int, int]]]) -> list[str | None]:
    """The contract's rule, written plainly: ascending id, summed lines, unknown first, all or nothing."""
    left = dict(on_hand)
    outcome = []
    for lines in orders:
        want: dict[int, int] = {}
        for item, qty in lines:
            want[item] = want.get(item, 0) + qty
        if any(item not in left for item in want):
            outcome.append("UNKNOWN_INVENTORY")
        elif any(left[item] < qty for item, qty in want.items()):
            outcome.append("INSUFFICIENT_STOCK")
        else:
            for item, qty in want.items():
                left[item] -= qty
            outcome.append(None)
    return outcome


def demands(orders):
    out = []
    for index, lines in enumerate(orders):
        want: dict[int, int] = {}
        for item, qty in lines:
            want[item] = want.get(item, 0) + qty
        out.append((10 * index + 3, want))  # ascending ids with gaps
    return out


def columns(orders) -> DemandColumns:
    rows = sorted((oid, item, qty) for oid, want in demands(orders) for item, qty in want.items())
    if not rows:
        return DemandColumns([], [], [])
    return DemandColumns(*zip(*rows))


@settings(max_examples=200, deadline=None)
@given(stock_st, orders_st)
def test_allocate_matches_the_model_and_never_goes_negative(on_hand, orders):
    available = dict(on_hand)
    decisions = list(allocate(demands(orders), available))
    got = [None if d.reason is None else str(d.reason) for d in decisions]
    assert got == model(on_hand, orders)

    # never negative, and exactly the processed orders' quantities were taken (all or nothing)
    assert all(v >= 0 for v in available.values())
    taken: dict[int, int] = {}
    for (oid, want), d in zip(demands(orders), decisions):
        assert d.order_id == oid
        if d.processed:
            for item, qty in want.items():
                taken[item] = taken.get(item, 0) + qty
    assert available == {item: on_hand[item] - taken.get(item, 0) for item in on_hand}


@settings(max_examples=200, deadline=None)
@given(stock_st, orders_st)
def test_fifo_an_order_fails_only_if_the_orders_before_it_left_too_little(on_hand, orders):
    decisions = list(allocate(demands(orders), dict(on_hand)))
    for k, ((oid, want), d) in enumerate(zip(demands(orders), decisions)):
        # what the processed orders before k left over
        left = dict(on_hand)
        for (_, earlier), e in zip(demands(orders)[:k], decisions[:k]):
            if e.processed:
                for item, qty in earlier.items():
                    left[item] -= qty
        could = all(item in left and left[item] >= qty for item, qty in want.items())
        assert d.processed == could, (oid, want, left)
        if not d.processed:
            unknown = any(item not in on_hand for item in want)
            assert d.reason is (Reason.UNKNOWN_INVENTORY if unknown else Reason.INSUFFICIENT_STOCK)


@settings(max_examples=200, deadline=None)
@given(stock_st, orders_st)
def test_decide_orders_both_paths_equal_the_model(on_hand, orders):
    expected = {oid: r for (oid, _), r in zip(demands(orders), model(on_hand, orders))}
    loop = decide_orders(demands(orders), dict(on_hand))
    untouched = dict(on_hand)
    columnar = decide_orders(columns(orders), untouched)
    for changes in (loop, columnar):
        got = {c.order_id: c.reason for c in changes}
        assert got == expected
        assert all(c.from_status == "NEW" and c.to_status == ("PROCESSED" if c.reason is None else "FAILED")
                   for c in changes)
    assert untouched == on_hand
