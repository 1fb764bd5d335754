"""The rules of CONTRACT.md section 2, as the domain package states them (no I/O, no Prefect)."""

from __future__ import annotations

import pytest

from domain import (
    IllegalTransition,
    InvalidOrder,
    InventoryItem,
    MessageBus,
    Order,
    OrderFailed,
    OrderLine,
    OrderProcessed,
    OrderReset,
    Product,
    Reason,
    Status,
    StatusChange,
    StatusHistoryRecorder,
    allocate,
    decide,
    decide_orders,
    reset_orders,
)
from domain.allocation import DemandColumns, process_orders
from domain.model import available_stock, demand_of


def order(order_id: int, *lines: tuple[int, int]) -> Order:
    return Order(order_id, tuple(OrderLine(item, qty) for item, qty in lines))


# ---- Order and OrderLine invariants ------------------------------------------------------------

def test_an_order_needs_at_least_one_line():
    with pytest.raises(InvalidOrder, match="no lines"):
        Order(1, ())


@pytest.mark.parametrize("quantity", [0, -1, -100])
def test_a_line_quantity_below_one_is_refused(quantity):
    with pytest.raises(InvalidOrder, match="below 1"):
        OrderLine(101, quantity)


def test_a_line_of_quantity_one_is_fine_and_lines_are_values():
    assert OrderLine(101, 1) == OrderLine(101, 1)
    assert OrderLine(101, 1) != OrderLine(101, 2)


def test_a_new_order_starts_new_without_reason():
    o = order(1, (101, 1))
    assert o.status is Status.NEW and o.reason is None and o.events == []


def test_a_reason_goes_with_failed_only():
    with pytest.raises(InvalidOrder):
        Order(1, (OrderLine(101, 1),), status=Status.FAILED)
    with pytest.raises(InvalidOrder):
        Order(1, (OrderLine(101, 1),), status=Status.PROCESSED, reason=Reason.INSUFFICIENT_STOCK)


def test_lines_on_the_same_item_are_summed_in_the_demand():
    o = order(15, (640, 1), (640, 3), (101, 2))
    assert o.demand == {640: 4, 101: 2}
    assert o.total_quantity == 6
    assert demand_of([OrderLine(1, 2), OrderLine(1, 5)]) == {1: 7}


def test_new_to_processed_and_new_to_failed_are_legal():
    a = order(1, (101, 1))
    a.mark_processed()
    assert a.status is Status.PROCESSED and a.reason is None
    b = order(2, (101, 1))
    b.mark_failed(Reason.INSUFFICIENT_STOCK)
    assert b.status is Status.FAILED and b.reason is Reason.INSUFFICIENT_STOCK


@pytest.mark.parametrize("first", ["processed", "failed"])
@pytest.mark.parametrize("second", ["processed", "failed"])
def test_only_new_orders_are_decided(first, second):
    o = order(1, (101, 1))
    getattr(o, f"mark_{first}")(*([] if first == "processed" else [Reason.UNKNOWN_INVENTORY]))
    before = (o.status, o.reason, list(o.events))
    with pytest.raises(IllegalTransition):
        getattr(o, f"mark_{second}")(*([] if second == "processed" else [Reason.INSUFFICIENT_STOCK]))
    assert (o.status, o.reason, o.events) == before  # an illegal move changes nothing


@pytest.mark.parametrize("how", ["processed", "failed"])
def test_reset_puts_a_decided_order_back_to_new_and_it_can_be_decided_again(how):
    o = order(1, (101, 1))
    if how == "processed":
        o.mark_processed()
    else:
        o.mark_failed(Reason.INSUFFICIENT_STOCK)
    o.reset()
    assert o.status is Status.NEW and o.reason is None
    assert o.events[-1] == OrderReset(1, Status.PROCESSED if how == "processed" else Status.FAILED)
    o.mark_processed()
    assert o.status is Status.PROCESSED


def test_resetting_a_new_order_records_nothing():
    o = order(1, (101, 1))
    o.reset()
    assert o.status is Status.NEW and o.events == []


# ---- Product and InventoryItem ---------------------------------------------------------------

def test_a_product_holds_one_inventory_item_per_warehouse():
    mug = Product(1, "MUG-BLK", "Black mug")
    mug.add(InventoryItem(101, 1, warehouse_id=1, on_hand=5))
    mug.add(InventoryItem(102, 1, warehouse_id=2, on_hand=0))
    assert {w: i.inventory_id for w, i in mug.items.items()} == {1: 101, 2: 102}
    assert mug.on_hand == 5
    with pytest.raises(ValueError, match="already has item 101 in warehouse 1"):
        mug.add(InventoryItem(103, 1, warehouse_id=1, on_hand=1))
    mug.add(InventoryItem(101, 1, warehouse_id=1, on_hand=7))  # the same item again is a new value, not a second item
    assert mug.on_hand == 7 and len(mug.items) == 2


def test_a_product_refuses_another_products_item():
    with pytest.raises(ValueError, match="belongs to product 2"):
        Product(1, "MUG-BLK", "Black mug").add(InventoryItem(205, 2, warehouse_id=2, on_hand=0))


def test_on_hand_is_never_negative():
    with pytest.raises(ValueError):
        InventoryItem(101, 1, 1, -1)
    assert InventoryItem(101, 1, 1, 0).on_hand == 0


# ---- allocation -----------------------------------------------------------------------------

def test_an_order_covered_by_stock_is_processed_and_takes_it():
    available = {101: 5}
    assert decide({101: 2}, available) is None
    assert available == {101: 3}


def test_summed_lines_decide_not_each_line():
    # each line alone (1 and 3) fits in 3, their sum (4) does not: order 15 of the seed
    available = {640: 3}
    assert decide(order(15, (640, 1), (640, 3)).demand, available) is Reason.INSUFFICIENT_STOCK
    assert available == {640: 3}


def test_all_or_nothing_a_short_line_allocates_nothing():
    available = {101: 5, 205: 0}
    assert decide({101: 1, 205: 1}, available) is Reason.INSUFFICIENT_STOCK
    assert available == {101: 5, 205: 0}


def test_unknown_inventory_is_reported_before_insufficient_stock_even_when_listed_after():
    available = {205: 0, 101: 9}
    # the short item (205) comes first in the demand, the unknown one (999) after it
    assert decide({205: 1, 101: 1, 999: 1}, available) is Reason.UNKNOWN_INVENTORY
    assert available == {205: 0, 101: 9}


def test_unknown_inventory_alone():
    assert decide({999: 1}, {101: 5}) is Reason.UNKNOWN_INVENTORY


def test_exactly_enough_is_enough():
    available = {420: 1}
    assert decide({420: 1}, available) is None and available == {420: 0}
    assert decide({420: 1}, available) is Reason.INSUFFICIENT_STOCK


def test_orders_are_decided_in_ascending_id_the_earlier_order_wins():
    available = {420: 1}
    decisions = list(allocate([(10, {420: 1}), (11, {420: 1})], available))
    assert [(d.order_id, d.reason) for d in decisions] == [(10, None), (11, Reason.INSUFFICIENT_STOCK)]
    assert decisions[0].processed and not decisions[1].processed


def test_a_descending_id_is_refused():
    with pytest.raises(ValueError, match="ascending"):
        list(allocate([(11, {420: 1}), (10, {420: 1})], {420: 1}))


def test_a_failed_order_leaves_stock_for_later_orders():
    available = {310: 3}
    decisions = list(allocate([(4, {310: 4}), (8, {310: 2})], available))
    assert [d.reason for d in decisions] == [Reason.INSUFFICIENT_STOCK, None]
    assert available == {310: 1}


def test_available_is_on_hand_minus_processed_quantities():
    on_hand = {101: 5, 310: 3, 640: 1}
    processed = [{101: 2}, {310: 2, 101: 1}]
    assert available_stock(on_hand, processed) == {101: 2, 310: 1, 640: 1}
    assert available_stock(on_hand, []) == on_hand  # reset releases: no processed order, all on hand


def test_process_orders_on_aggregates_records_events():
    orders = [order(8, (310, 2)), order(4, (310, 4)), order(3, (999, 1))]
    decided = process_orders(orders, {310: 3})
    assert [(o.id, o.status, o.reason) for o in decided] == [
        (3, Status.FAILED, Reason.UNKNOWN_INVENTORY),
        (4, Status.FAILED, Reason.INSUFFICIENT_STOCK),
        (8, Status.PROCESSED, None),
    ]
    assert decided[2].events == [OrderProcessed(8)]
    assert decided[2].events[0].allocated == {310: 2}
    assert decided[0].events == [OrderFailed(3, Reason.UNKNOWN_INVENTORY)]


# ---- events and history ----------------------------------------------------------------------

def test_the_bus_hands_events_to_subscribers_in_order():
    bus, seen = MessageBus(), []
    bus.subscribe(OrderProcessed, lambda e: seen.append(("a", e.order_id)))
    bus.subscribe(OrderProcessed, lambda e: seen.append(("b", e.order_id)))
    bus.subscribe(OrderFailed, lambda e: seen.append(("f", e.order_id)))
    bus.publish(OrderProcessed(1))
    bus.publish(OrderFailed(2, Reason.INSUFFICIENT_STOCK))
    assert seen == [("a", 1), ("b", 1), ("f", 2)]


def test_history_recorder_turns_each_event_into_one_row():
    bus = MessageBus()
    recorder = StatusHistoryRecorder(bus)
    bus.publish(OrderProcessed(6, {101: 2}))
    bus.publish(OrderFailed(7, Reason.UNKNOWN_INVENTORY))
    bus.publish(OrderReset(6, Status.PROCESSED))
    assert recorder.changes == [
        StatusChange(6, "NEW", "PROCESSED", None),
        StatusChange(7, "NEW", "FAILED", "UNKNOWN_INVENTORY"),
        StatusChange(6, "PROCESSED", "NEW", "RESET"),
    ]


SEED_STOCK = {101: 5, 102: 0, 205: 0, 206: 2, 310: 3, 420: 1, 530: 2, 640: 1}
SEED_ORDERS = {
    2: {101: 1, 205: 1}, 3: {999: 1}, 4: {310: 4}, 5: {102: 2}, 6: {101: 2}, 7: {777: 1}, 8: {310: 2},
    9: {206: 1}, 10: {420: 1}, 11: {420: 1}, 12: {530: 1}, 13: {888: 1}, 14: {205: 1}, 15: {640: 4},
    16: {640: 1},
}
SEED_EXPECTED = {
    2: "INSUFFICIENT_STOCK", 3: "UNKNOWN_INVENTORY", 4: "INSUFFICIENT_STOCK", 5: "INSUFFICIENT_STOCK", 6: None,
    7: "UNKNOWN_INVENTORY", 8: None, 9: None, 10: None, 11: "INSUFFICIENT_STOCK", 12: None,
    13: "UNKNOWN_INVENTORY", 14: "INSUFFICIENT_STOCK", 15: "INSUFFICIENT_STOCK", 16: None,
}


def _as_table(changes) -> dict[int, str | None]:
    table = {}
    for change in changes:
        assert change.from_status == "NEW"
        assert (change.to_status == "PROCESSED") == (change.reason is None)
        table[change.order_id] = change.reason
    return table


def test_decide_orders_on_the_seed_gives_the_seed_table_and_history_rows():
    available = dict(SEED_STOCK)
    changes = decide_orders(sorted(SEED_ORDERS.items()), available)
    assert _as_table(changes) == SEED_EXPECTED
    assert [c.order_id for c in changes] == sorted(SEED_ORDERS)
    assert available[101] == 5 - 2 and available[640] == 0 and available[420] == 0


def test_the_columnar_path_decides_the_seed_like_the_loop():
    rows = sorted((o, i, q) for o, d in SEED_ORDERS.items() for i, q in d.items())
    columns = DemandColumns(*zip(*rows))
    available = dict(SEED_STOCK)
    changes = decide_orders(columns, available)
    assert _as_table(changes) == SEED_EXPECTED
    assert changes.processed == sum(1 for r in SEED_EXPECTED.values() if r is None)
    assert available == SEED_STOCK  # the columnar path leaves `available` alone


def test_reset_orders_records_a_reset_for_decided_orders_only():
    changes = reset_orders([(2, "FAILED"), (3, "NEW"), (6, "PROCESSED")])
    assert changes == [StatusChange(2, "FAILED", "NEW", "RESET"), StatusChange(6, "PROCESSED", "NEW", "RESET")]


def test_an_empty_stock_makes_every_order_unknown_on_both_paths():
    # regression: the columnar path used to raise IndexError when no item was stocked at all
    demands = [(1, {101: 1}), (2, {101: 1, 205: 2})]
    loop = decide_orders(demands, {})
    columnar = decide_orders(DemandColumns([1, 2, 2], [101, 101, 205], [1, 1, 2]), {})
    for changes in (loop, columnar):
        assert [(c.order_id, c.to_status, c.reason) for c in changes] == [
            (1, "FAILED", "UNKNOWN_INVENTORY"), (2, "FAILED", "UNKNOWN_INVENTORY")]
