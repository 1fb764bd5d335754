"""The rules of CONTRACT.md section 2 as domain.rule states them (no I/O, no Prefect): examples.
The property tests (test_allocation_property.py) compare the same rule with tests/reference.py."""

from __future__ import annotations

import numpy as np
import pytest
from reference import decide as reference_decide
from reference import demand_of

from domain import Decisions, Reason, Status, decide, parse_reason, parse_status, reset, stock_refusal

BIG = 2**63 - 1


def decided(
    stock: dict[int, int], orders: dict[int, list[tuple[int, int]]], stale: set[int] = frozenset()
) -> Decisions:
    """Run the rule on {order_id: [(item, quantity), ...]} against {item: available}, some items stale."""
    rows = [(oid, item, qty) for oid, lines in orders.items() for item, qty in lines]
    return decide(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        list(stock),
        list(stock.values()),
        [item in stale for item in stock],
    )


def outcome(decisions: Decisions) -> dict[int, str | None]:
    table = {}
    for order_id, before, after, reason in decisions:
        assert before == "NEW" and (after == "PROCESSED") == (reason is None)
        table[order_id] = reason
    return table


def explanations(decisions: Decisions) -> dict[int, dict]:
    found: dict[int, dict] = {}
    for order_id, item in zip(*(decisions.unknown[k].tolist() for k in ("order_id", "inventory_id")), strict=True):
        found.setdefault(order_id, {"unknown": []})["unknown"].append(item)
    for order_id, item, needed, available in zip(
        *(decisions.short[k].tolist() for k in ("order_id", "inventory_id", "needed", "available")), strict=True
    ):
        found.setdefault(order_id, {"short": []})["short"].append(
            {"inventory_id": item, "needed": needed, "available": available}
        )
    return found


# ---- the rule ---------------------------------------------------------------------------------


def test_an_order_covered_by_stock_is_processed():
    d = decided({101: 5}, {1: [(101, 2)]})
    assert outcome(d) == {1: None} and d.counts == {"processed": 1, "failed": 0, "waiting": 0}


def waiting(decisions: Decisions) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for order_id, item in zip(*(decisions.waiting[k].tolist() for k in ("order_id", "inventory_id")), strict=True):
        found.setdefault(order_id, []).append(item)
    return found


def test_an_order_needing_a_stale_item_waits_and_takes_nothing():
    # 101 is stale (its newer records were quarantined): order 1 would take it all, but waits, NEW, no row;
    # order 2 needs 205 only and is decided as if order 1 were not there
    d = decided({101: 5, 205: 3}, {1: [(101, 5), (205, 3)], 2: [(205, 3)], 3: [(101, 1)]}, stale={101})
    assert outcome(d) == {2: None}
    assert waiting(d) == {1: [101], 3: [101]}
    assert d.counts == {"processed": 1, "failed": 0, "waiting": 2}


def test_a_waiting_order_leaves_its_stock_to_the_orders_after_it():
    d = decided({101: 5, 205: 5}, {1: [(101, 1), (205, 5)], 2: [(205, 5)]}, stale={101})
    assert outcome(d) == {2: None} and waiting(d) == {1: [101]}


def test_an_order_with_a_stale_and_an_unknown_item_waits():
    # the stale item puts the stock it would be judged on in doubt: the next good snapshot decides it
    d = decided({101: 5}, {1: [(101, 1), (999, 1)], 2: [(999, 1)]}, stale={101})
    assert outcome(d) == {2: "UNKNOWN_INVENTORY"} and waiting(d) == {1: [101]}


def test_no_stale_item_changes_nothing():
    orders = {1: [(101, 5)], 2: [(101, 1)], 3: [(999, 1)]}
    plain = decided({101: 5}, orders)
    assert outcome(plain) == {1: None, 2: "INSUFFICIENT_STOCK", 3: "UNKNOWN_INVENTORY"}
    assert waiting(plain) == {} and plain.counts["waiting"] == 0


def test_summed_lines_decide_not_each_line():
    # each line alone (1 and 3) fits in 3, their sum (4) does not: order 15 of the seed
    d = decided({640: 3}, {15: [(640, 1), (640, 3)]})
    assert outcome(d) == {15: "INSUFFICIENT_STOCK"}
    assert explanations(d) == {15: {"short": [{"inventory_id": 640, "needed": 4, "available": 3}]}}


def test_all_or_nothing_a_short_line_allocates_nothing():
    d = decided({101: 5, 205: 0}, {1: [(101, 1), (205, 1)], 2: [(101, 5)]})
    assert outcome(d) == {1: "INSUFFICIENT_STOCK", 2: None}  # 1 took none of 101, so 2 gets all five
    assert explanations(d) == {1: {"short": [{"inventory_id": 205, "needed": 1, "available": 0}]}}


def test_unknown_inventory_comes_before_insufficient_stock_and_names_only_unknown_items():
    d = decided({205: 0, 101: 9}, {1: [(205, 1), (101, 1), (999, 1), (998, 2)]})
    assert outcome(d) == {1: "UNKNOWN_INVENTORY"}
    assert explanations(d) == {1: {"unknown": [998, 999]}}


def test_exactly_enough_is_enough_and_the_earlier_order_wins():
    d = decided({420: 1}, {10: [(420, 1)], 11: [(420, 1)]})
    assert outcome(d) == {10: None, 11: "INSUFFICIENT_STOCK"}
    assert explanations(d) == {11: {"short": [{"inventory_id": 420, "needed": 1, "available": 0}]}}


def test_a_short_order_names_each_short_item_with_what_was_available_at_its_turn():
    d = decided({1: 3, 2: 2, 3: 9}, {5: [(1, 2)], 6: [(1, 2), (2, 5), (3, 1)]})
    assert outcome(d) == {5: None, 6: "INSUFFICIENT_STOCK"}
    assert explanations(d) == {
        6: {
            "short": [
                {"inventory_id": 1, "needed": 2, "available": 1},
                {"inventory_id": 2, "needed": 5, "available": 2},
            ]
        }
    }


def test_orders_come_in_any_order_and_are_decided_in_ascending_id():
    rows = [(11, 420, 1), (10, 420, 1)]
    d = decide([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [420], [1])
    assert outcome(d) == {10: None, 11: "INSUFFICIENT_STOCK"} and d.order_ids.tolist() == [10, 11]


def test_an_empty_stock_makes_every_order_unknown():
    d = decided({}, {1: [(101, 1)], 2: [(101, 1), (205, 2)]})
    assert outcome(d) == {1: "UNKNOWN_INVENTORY", 2: "UNKNOWN_INVENTORY"}
    assert explanations(d) == {1: {"unknown": [101]}, 2: {"unknown": [101, 205]}}


def test_no_orders_no_decisions():
    d = decided({1: 1}, {})
    assert len(d) == 0 and d.counts == {"processed": 0, "failed": 0, "waiting": 0}


def test_negative_availability_is_short_and_reported_as_it_is():
    d = decided({1: -3}, {1: [(1, 1)]})
    assert explanations(d) == {1: {"short": [{"inventory_id": 1, "needed": 1, "available": -3}]}}


def test_a_quantity_below_one_is_refused():
    with pytest.raises(ValueError, match="below 1"):
        decided({1: 5}, {1: [(1, 0)]})


# ---- exact integers (issue 9, case 3) -----------------------------------------------------------


def test_past_2_53_the_second_order_is_short():
    on_hand = 2**53 + 1
    d = decided({7: on_hand}, {1: [(7, on_hand)], 2: [(7, 1)]})
    assert outcome(d) == {1: None, 2: "INSUFFICIENT_STOCK"}
    assert explanations(d) == {2: {"short": [{"inventory_id": 7, "needed": 1, "available": 0}]}}
    # 2**53 + 1 rounds to 2**53 in float64: a total summed in float would call this item safe
    d = decided({7: 2**53}, {1: [(7, 2**53)], 2: [(7, 1)]})
    assert outcome(d) == {1: None, 2: "INSUFFICIENT_STOCK"}


def test_a_stock_of_2_63_minus_1_works():
    d = decided({7: BIG, 8: BIG}, {1: [(7, BIG)], 2: [(7, 1), (8, 1)], 3: [(8, BIG - 1)], 4: [(8, 1)]})
    assert outcome(d) == {1: None, 2: "INSUFFICIENT_STOCK", 3: None, 4: None}


def test_total_demand_of_an_item_past_2_63_is_exact():
    # four orders of 2**62 ask for 2**64 of one item: the whole demand never fits in an int64
    d = decided({7: BIG}, {i: [(7, 2**62)] for i in range(1, 5)})
    assert outcome(d) == {1: None, 2: "INSUFFICIENT_STOCK", 3: "INSUFFICIENT_STOCK", 4: "INSUFFICIENT_STOCK"}
    assert explanations(d)[4] == {"short": [{"inventory_id": 7, "needed": 2**62, "available": 2**62 - 1}]}
    # and one that fits after all: 2**62 - 1 + 2**62 = 2**63 - 1 exactly
    d = decided({7: BIG}, {1: [(7, 2**62 - 1)], 2: [(7, 2**62)], 3: [(7, 1)]})
    assert outcome(d) == {1: None, 2: None, 3: "INSUFFICIENT_STOCK"}


def test_many_orders_whose_sum_wraps_int64_back_to_small_are_not_mistaken_for_fitting():
    # 2**64 + 3 wraps to 3 in int64: a summed check in int64 would call the item safe
    orders = {i: [(7, 2**62)] for i in range(1, 5)}
    orders[5] = [(7, 3)]
    d = decided({7: 10}, orders)
    assert outcome(d) == {
        1: "INSUFFICIENT_STOCK",
        2: "INSUFFICIENT_STOCK",
        3: "INSUFFICIENT_STOCK",
        4: "INSUFFICIENT_STOCK",
        5: None,
    }


def test_the_columns_are_int64_never_float():
    d = decided({7: BIG}, {1: [(7, BIG)], 2: [(7, 1)]})
    for columns in (d.unknown, d.short):
        assert all(column.dtype == np.int64 for column in columns.values())
    assert d.order_ids.dtype == np.int64


# ---- the seed ---------------------------------------------------------------------------------

SEED_STOCK = {101: 5, 102: 0, 205: 0, 206: 2, 310: 3, 420: 1, 530: 2, 640: 1}
SEED_ORDERS = {
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
    15: [(640, 1), (640, 3)],
    16: [(640, 1)],
}
SEED_EXPECTED = {
    2: "INSUFFICIENT_STOCK",
    3: "UNKNOWN_INVENTORY",
    4: "INSUFFICIENT_STOCK",
    5: "INSUFFICIENT_STOCK",
    6: None,
    7: "UNKNOWN_INVENTORY",
    8: None,
    9: None,
    10: None,
    11: "INSUFFICIENT_STOCK",
    12: None,
    13: "UNKNOWN_INVENTORY",
    14: "INSUFFICIENT_STOCK",
    15: "INSUFFICIENT_STOCK",
    16: None,
}


def test_the_seed_gives_the_seed_table_and_the_reference_agrees():
    d = decided(SEED_STOCK, SEED_ORDERS)
    assert outcome(d) == SEED_EXPECTED
    assert d.counts == {"processed": 6, "failed": 9, "waiting": 0}
    expected = reference_decide(sorted((o, demand_of(lines)) for o, lines in SEED_ORDERS.items()), dict(SEED_STOCK))
    assert explanations(d) == {o: e for o, _, e in expected if e is not None}
    assert explanations(d)[2] == {"short": [{"inventory_id": 205, "needed": 1, "available": 0}]}


# ---- reset ------------------------------------------------------------------------------------


def test_reset_moves_decided_orders_back_to_new_and_leaves_new_ones():
    d = reset([6, 2, 3], ["PROCESSED", "FAILED", "NEW"])
    assert list(d) == [(2, "FAILED", "NEW", "RESET"), (6, "PROCESSED", "NEW", "RESET")]
    assert d.counts == {"reset": 2}
    assert len(d.short["order_id"]) == 0 and len(d.unknown["order_id"]) == 0


def test_decisions_hand_the_store_plain_values():
    columns = decided({1: 1}, {1: [(1, 1)], 2: [(2, 1)]}).columns()
    assert set(columns) == {"order_ids", "changes", "labels", "unknown", "short"}
    labels = columns["labels"]
    assert all(type(v) in (str, type(None)) for values in labels.values() for v in values)
    assert [labels["to_status"][c] for c in columns["changes"].tolist()] == ["PROCESSED", "FAILED"]
    assert [labels["order_reason"][c] for c in columns["changes"].tolist()] == [None, "UNKNOWN_INVENTORY"]


# ---- refusing to process, and the operator's words ---------------------------------------------


def test_processing_refuses_without_a_snapshot_or_with_a_stale_one():
    assert "no complete stock snapshot" in stock_refusal(None, 900)
    assert "ORDERLY_MAX_STOCK_AGE=900" in stock_refusal(901, 900)
    assert stock_refusal(900, 900) is None and stock_refusal(0, 900) is None


def test_statuses_and_reasons_named_by_an_operator():
    assert parse_status("failed") is Status.FAILED and parse_status(None) is None
    assert parse_reason("INSUFFICIENT_STOCK") is Reason.INSUFFICIENT_STOCK
    with pytest.raises(ValueError, match="use one of NEW, PROCESSED, FAILED"):
        parse_status("DONE")
    with pytest.raises(ValueError, match="use one of UNKNOWN_INVENTORY, INSUFFICIENT_STOCK"):
        parse_reason("LATE")
