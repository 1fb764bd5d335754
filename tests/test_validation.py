"""Schema violations at the boundary: each bad record quarantined with a readable reason, the good ones kept."""

from __future__ import annotations

import json

import pytest

from orderly.boundary.validation import validate_orders, validate_stock

STAMP = "2026-11-20T09:00:00Z"


def stock_rec(inv, qty=3, **over):
    rec = {
        "inventory_id": inv,
        "product_id": 1,
        "sku": f"SKU-{inv}",
        "product_name": f"Item {inv}",
        "warehouse_id": 1,
        "quantity": qty,
        "updated_at": STAMP,
    }
    rec.update(over)
    return rec


def order_rec(oid, lines=((101, 1),), **over):
    rec = {
        "id": oid,
        "placed_at": "2026-11-20T09:15:00Z",
        "customer_id": "C-1",
        "items": [{"inventory_id": i, "quantity": q} for i, q in lines],
    }
    rec.update(over)
    return rec


def without(rec, key):
    rec = dict(rec)
    del rec[key]
    return rec


def check_orders(batch, bad_positions, reason_fragment):
    valid = validate_orders(batch)
    assert valid.received == len(batch) == len(valid.orders) + len(valid.rejects)
    good_ids = [r["id"] for i, r in enumerate(batch) if i not in bad_positions]
    assert valid.orders.to_pandas()["order_id"].tolist() == good_ids
    assert set(valid.lines.to_pandas()["order_id"].tolist()) == set(good_ids)
    assert len(valid.rejects) == len(bad_positions)
    for reasons in valid.rejects["reasons"]:
        assert reason_fragment in reasons, reasons
        assert "Traceback" not in reasons and "SchemaError" not in reasons
    # each quarantined record is kept as received
    raws = [json.loads(raw) for raw in valid.rejects["raw"]]
    assert raws == [json.loads(json.dumps(batch[i])) for i in sorted(bad_positions)]
    assert set(valid.rejects["source"]) <= {"order"}
    return valid


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (order_rec(5, [(101, 0)]), "quantity 0 is below 1"),
        (order_rec(5, [(101, -2)]), "quantity -2 is below 1"),
        (order_rec(5, [(101, 1), (102, 0)]), "items[1].quantity"),
        (order_rec(5, []), "order has no lines"),
        (without(order_rec(5), "id"), "id is missing"),
        (order_rec(None), "id is missing"),
        (order_rec("two"), "id must be an integer, got 'two'"),
        (order_rec("3"), "id must be an integer, got '3'"),
        (order_rec(True), "id must be an integer, got True"),
        (order_rec(5, [(101, "two")]), "quantity must be an integer, got 'two'"),
        (order_rec(5, [(101, "3")]), "quantity must be an integer, got '3'"),
        (order_rec(5, [(101, True)]), "quantity must be an integer, got True"),
        (order_rec(5, [(101, 1.5)]), "quantity must be an integer"),
        (order_rec(5, [("101", 1)]), "inventory_id must be an integer"),
        (order_rec(5, placed_at="yesterday"), "placed_at is not an ISO-8601 timestamp"),
        (order_rec(5, placed_at="2026-13-45T99:00:00Z"), "placed_at is not an ISO-8601 timestamp"),
        (order_rec(5, placed_at=None), "placed_at is missing"),
        (order_rec(5, items="lots"), "items: missing or not a list"),
    ],
)
def test_a_bad_order_is_quarantined_and_its_neighbours_kept(bad, fragment):
    batch = [order_rec(2, [(101, 1), (205, 1)]), bad, order_rec(7, [(310, 2)])]
    valid = check_orders(batch, {1}, fragment)
    assert valid.lines.to_pandas()[["order_id", "inventory_id", "quantity"]].values.tolist() == [
        [2, 101, 1],
        [2, 205, 1],
        [7, 310, 2],
    ]


def test_a_record_that_is_not_an_object_is_quarantined():
    batch = [order_rec(2), "not an order", order_rec(3)]
    valid = validate_orders(batch)
    assert valid.orders.to_pandas()["order_id"].tolist() == [2, 3]
    assert valid.rejects["reasons"].tolist() == ["record: must be an object, got str"]


def test_every_valid_copy_of_an_id_goes_to_the_loader_with_its_position():
    # Which copy stands is the loader's rule (tests/test_store.py): the schema only judges each copy alone.
    batch = [order_rec(2), order_rec(4, [(101, 1)]), order_rec(4, [(101, 2)]), order_rec(4, [(101, 0)]), order_rec(5)]
    valid = check_orders(batch, {3}, "quantity 0 is below 1")
    assert valid.orders.to_pandas()["rec"].tolist() == [0, 1, 2, 4]
    assert valid.lines.to_pandas()[["rec", "quantity"]].values.tolist() == [[0, 1], [1, 1], [2, 2], [4, 1]]


def test_an_order_whose_quantities_sum_past_the_bound_is_quarantined():
    edge = order_rec(3, [(101, 2**62), (102, 2**62 - 2), (103, 1)])  # exactly 2**63-1: fits
    over = order_rec(4, [(101, 2**62), (102, 2**62)])
    valid = check_orders([order_rec(2), over, edge], {1}, "quantities sum past 2**63-1")
    assert valid.lines.to_pandas()[valid.lines.to_pandas()["order_id"] == 3]["quantity"].tolist() == [
        2**62,
        2**62 - 2,
        1,
    ]


@pytest.mark.parametrize(
    "customer, fragment",
    [
        ("x" * 1001, "(1003 characters)"),
        ("   ", "non-empty string"),
    ],
)
def test_text_fields_are_bounded(customer, fragment):
    check_orders([order_rec(2, customer_id=customer), order_rec(3, customer_id="y" * 1000)], {0}, fragment)


def test_every_reason_of_a_record_is_kept():
    bad = order_rec("x", [(101, 0)], placed_at="never")
    valid = validate_orders([bad, order_rec(3)])
    (reasons,) = valid.rejects["reasons"].tolist()
    assert "id must be an integer" in reasons
    assert "placed_at is not an ISO-8601 timestamp" in reasons
    assert "quantity 0 is below 1" in reasons
    assert valid.orders.to_pandas()["order_id"].tolist() == [3]


def test_a_clean_batch_loads_everything_typed():
    batch = [order_rec(i, [(101, i), (102, 1)]) for i in range(1, 6)]
    valid = validate_orders(batch)
    assert len(valid.rejects) == 0 and valid.received == 5
    assert valid.orders.to_pandas()["order_id"].tolist() == [1, 2, 3, 4, 5]
    assert str(valid.orders.to_pandas()["placed_at"].dt.tz) == "UTC"
    assert valid.lines.to_pandas()["quantity"].tolist() == [1, 1, 2, 1, 3, 1, 4, 1, 5, 1]


def check_stock(batch, bad_positions, fragment):
    valid = validate_stock(batch)
    assert valid.received == len(batch) == len(valid.items) + len(valid.rejects)
    good = [r["inventory_id"] for i, r in enumerate(batch) if i not in bad_positions]
    assert valid.items["inventory_id"].tolist() == good
    assert len(valid.rejects) == len(bad_positions)
    for reasons in valid.rejects["reasons"]:
        assert fragment in reasons, reasons
    assert set(valid.rejects["source"]) <= {"stock"}
    return valid


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (stock_rec(102, -1), "quantity -1 is below 0"),
        (stock_rec(102, "two"), "quantity must be an integer, got 'two'"),
        (stock_rec(102, "3"), "quantity must be an integer, got '3'"),
        (stock_rec(102, True), "quantity must be an integer, got True"),
        (stock_rec(102, None), "quantity is missing"),
        (without(stock_rec(102), "inventory_id"), "inventory_id is missing"),
        (stock_rec("102"), "inventory_id must be an integer"),
        (stock_rec(102, updated_at="soon"), "updated_at is not an ISO-8601 timestamp"),
        (stock_rec(102, sku=""), "sku must be a non-empty string"),
        (stock_rec(102, warehouse_id="north"), "warehouse_id must be an integer"),
    ],
)
def test_a_bad_stock_record_is_quarantined_and_its_neighbours_kept(bad, fragment):
    batch = [stock_rec(101, 5), bad, stock_rec(103, 0)]
    valid = check_stock(batch, {1}, fragment)
    assert valid.items["quantity"].tolist() == [5, 0]


def test_different_copies_of_a_stock_id_in_one_snapshot_are_all_quarantined():
    valid = check_stock([stock_rec(101), stock_rec(102, 1), stock_rec(102, 2)], {1, 2}, "appears more than once")
    assert valid.rejects["record_key"].tolist() == ["102", "102"]


def test_identical_copies_of_a_stock_id_are_one_item():
    valid = validate_stock([stock_rec(101), stock_rec(102, 1), stock_rec(101), stock_rec(102, 1)])
    assert valid.items["inventory_id"].tolist() == [101, 102]
    assert len(valid.rejects) == 0 and valid.repeated == 2
    assert valid.received == len(valid.items) + len(valid.rejects) + valid.repeated


def test_zero_stock_is_valid():
    valid = validate_stock([stock_rec(101, 0)])
    assert len(valid.rejects) == 0 and valid.items["quantity"].tolist() == [0]


@pytest.mark.parametrize(
    "text, fragment",
    [
        # orjson (the client's parser) keeps integers up to 2**64 - 1 as int: beyond BIGINT, they must not crash the
        # batch
        (
            (
                '{"id": 9223372036854775808, "placed_at": "2026-11-20T09:15:00Z", "customer_id": "C", '
                '"items": [{"inventory_id": 1, "quantity": 1}]}'
            ),
            "id 9223372036854775808 is out of range",
        ),
        (
            (
                '{"id": 5, "placed_at": "2026-11-20T09:15:00Z", "customer_id": "C", '
                '"items": [{"inventory_id": 18446744073709551615, "quantity": 1}]}'
            ),
            "inventory_id 18446744073709551615 is out of range",
        ),
        (
            (
                '{"id": 5, "placed_at": "2026-11-20T09:15:00Z", "customer_id": "C", '
                '"items": [{"inventory_id": 1, "quantity": 1180591620717411303424}]}'
            ),
            "quantity must be an integer",
        ),
    ],
)
def test_an_integer_beyond_64_bits_is_quarantined_not_a_crash(text, fragment):
    import orjson

    batch = [order_rec(2), orjson.loads(text), order_rec(7)]
    valid = check_orders(batch, {1}, fragment)
    assert valid.orders.to_pandas()["order_id"].tolist() == [2, 7]


def test_a_stock_quantity_beyond_64_bits_is_quarantined():
    big = 2**63
    valid = check_stock([stock_rec(101, 5), stock_rec(102, big), stock_rec(103, 1)], {1}, "out of range")
    assert valid.items["quantity"].tolist() == [5, 1]
