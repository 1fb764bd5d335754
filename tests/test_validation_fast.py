"""The clean-batch shortcut (orderly/boundary/schema_shortcut.py) changes nothing but time.

For hostile batches (every kind of bad value the contract names, mixed with clean records) the validation with
the shortcut must return exactly what pandera alone returns: the typed frames, the rejects and their reasons, the
counts. And the shortcut must be alive: a clean batch never reaches pandera.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pandera.typing import Series
from tiers import examples

from orderly.boundary import schema_shortcut, schemas
from orderly.boundary.remote import NotUnicode
from orderly.boundary.schemas import OrderLineRecord, OrderRecord, StockRecord
from orderly.boundary.validation import validate_orders, validate_stock

INT64_MAX = 2**63 - 1
MISSING = object()  # a field left out of the record


@contextmanager
def pandera_only():
    """Every frame through pandera itself, as before the shortcut."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schemas, "SHORTCUT", False)
        yield


# ---- values: clean ones, and one pool of hostile ones per kind of field -------------------------------------------

BIG_INTS = [2**53 - 1, 2**53, 2**53 + 1, 2**62, INT64_MAX]
BAD_INTS = [
    0,
    -1,
    2**63,
    2**64,
    10**30,
    -(2**63),
    -(2**63) - 1,
    True,
    False,
    1.0,
    7.5,
    float("nan"),
    "7",
    "",
    None,
    [1],
    {"n": 1},
    NotUnicode("\ud800"),
]
STAMPS = [
    "2026-11-20T09:15:00Z",
    "2026-11-21T10:00:00+01:00",
    "2026-11-22T23:59:59.500Z",
    "2026-11-20T09:15:00",
    "2026-11-20T09:15:00.123456789Z",
    "2026-11-20",
]
BAD_STAMPS = [
    "yesterday",
    "",
    "   ",
    "2026-13-45T00:00:00Z",
    "2026-11-20T25:00:00Z",
    20261120,
    1.5,
    True,
    None,
    ["2026-11-20T09:15:00Z"],
    NotUnicode("2026-11-20T09:15:00Z\ud800"),
    "2" * 10_000,
]
TEXTS = ["C-1", "C-2", "Zoë 🚀", "x" * 1000, " padded ", "\u200b"]
# A lone surrogate arrives as NotUnicode (orderly.boundary.remote marks it so). A bare one, as a failure case, breaks
# pandera's own error message and so the whole batch, with the shortcut and without it alike: not drawn here.
BAD_TEXTS = [
    "",
    "   ",
    "\t\n",
    "\x1c",
    "\u3000",
    "y" * 1001,
    "z" * 100_000,
    NotUnicode("C-\ud800"),
    42,
    4.2,
    True,
    None,
    ["C-1"],
    {"id": "C-1"},
]


def _field(draw, clean, bad, bad_rate):
    if draw(st.integers(0, 99)) < bad_rate:
        return draw(st.sampled_from([*bad, MISSING]))
    return draw(clean)


def _record(fields: dict) -> dict:
    return {key: value for key, value in fields.items() if value is not MISSING}


CLEAN_IDS = st.one_of(st.integers(1, 10**6), st.sampled_from(BIG_INTS))
CLEAN_QTY = st.one_of(st.integers(1, 5), st.sampled_from(BIG_INTS))


@st.composite
def line_st(draw, bad_rate):
    if draw(st.integers(0, 99)) < bad_rate // 4:
        return draw(st.sampled_from([5, "x", None, [], [1, 2]]))  # a line that is not an object
    return _record(
        {
            "inventory_id": _field(draw, CLEAN_IDS, BAD_INTS, bad_rate),
            "quantity": _field(draw, CLEAN_QTY, BAD_INTS, bad_rate),
        }
    )


@st.composite
def items_st(draw, bad_rate):
    roll = draw(st.integers(0, 99))
    if roll < bad_rate // 4:
        return draw(st.sampled_from([[], MISSING, "lines", 5, None, {"inventory_id": 1, "quantity": 1}]))
    if roll < bad_rate // 2:  # each line in range, their sum past 2**63-1 (or exactly at it)
        return draw(
            st.sampled_from(
                [
                    [{"inventory_id": 1, "quantity": 2**62}, {"inventory_id": 2, "quantity": 2**62}],
                    [{"inventory_id": 1, "quantity": INT64_MAX}, {"inventory_id": 1, "quantity": 1}],
                    [{"inventory_id": 1, "quantity": 2**62}, {"inventory_id": 2, "quantity": 2**62 - 1}],
                ]
            )
        )
    return draw(st.lists(line_st(bad_rate), min_size=1, max_size=4))


@st.composite
def order_st(draw, bad_rate, ids):
    if draw(st.integers(0, 99)) < bad_rate // 5:
        return draw(st.sampled_from([5, "order", None, [], [1, 2], True]))  # not an object
    oid = draw(st.sampled_from(ids)) if ids and draw(st.integers(0, 9)) == 0 else draw(CLEAN_IDS)  # repeats
    record = _record(
        {
            "id": _field(draw, st.just(oid), BAD_INTS, bad_rate),
            "placed_at": _field(draw, st.sampled_from(STAMPS), BAD_STAMPS, bad_rate),
            "customer_id": _field(draw, st.sampled_from(TEXTS), BAD_TEXTS, bad_rate),
            "items": draw(items_st(bad_rate)),
        }
    )
    if draw(st.integers(0, 19)) == 0:
        record["note"] = "a field the contract does not name"
    return record


# Most batches are clean or nearly so: the shortcut's verdict is what is at stake there, since a batch with many
# bad records goes to pandera anyway. A rate of 0 draws a clean batch; the others one bad value here and there.
BAD_RATES = st.sampled_from([0, 0, 1, 2, 5, 20, 60])


@st.composite
def orders_batch_st(draw):
    bad_rate = draw(BAD_RATES)
    records, ids = [], []
    for _ in range(draw(st.integers(0, 12))):
        record = draw(order_st(bad_rate, ids))
        if isinstance(record, dict) and type(record.get("id")) is int:
            ids.append(record["id"])
        records.append(record)
        if draw(st.integers(0, 9)) == 0:
            records.append(draw(st.sampled_from([dict(record) if isinstance(record, dict) else record, record])))
    return records


@st.composite
def stock_st(draw, bad_rate, ids):
    if draw(st.integers(0, 99)) < bad_rate // 5:
        return draw(st.sampled_from([7, "item", None, [], True]))
    inventory_id = draw(st.sampled_from(ids)) if ids and draw(st.integers(0, 4)) == 0 else draw(CLEAN_IDS)
    return _record(
        {
            "inventory_id": _field(draw, st.just(inventory_id), BAD_INTS, bad_rate),
            "product_id": _field(draw, st.one_of(st.integers(0, 50), st.sampled_from(BIG_INTS)), BAD_INTS, bad_rate),
            "sku": _field(draw, st.sampled_from(TEXTS), BAD_TEXTS, bad_rate),
            "product_name": _field(draw, st.sampled_from(TEXTS), BAD_TEXTS, bad_rate),
            "warehouse_id": _field(draw, st.integers(0, 3), BAD_INTS, bad_rate),
            "quantity": _field(draw, st.one_of(st.integers(0, 10), st.sampled_from(BIG_INTS)), BAD_INTS, bad_rate),
            "updated_at": _field(draw, st.sampled_from(STAMPS), BAD_STAMPS, bad_rate),
        }
    )


@st.composite
def stock_batch_st(draw):
    bad_rate = draw(BAD_RATES)
    records, ids = [], []
    for _ in range(draw(st.integers(0, 12))):
        record = draw(stock_st(bad_rate, ids))
        if isinstance(record, dict) and type(record.get("inventory_id")) is int:
            ids.append(record["inventory_id"])
        records.append(record)
        if draw(st.integers(0, 7)) == 0:  # an identical copy of an item: a repeat, not a conflict
            records.append(dict(record) if isinstance(record, dict) else record)
    return records


# Each example validates twice, and pandera costs ~25 ms a small bad batch: 150 examples a test take 20-40 s on a
# quiet 2-core machine. Derandomized: every run draws the same examples; VALIDATION_EXAMPLES=2000 looks further.
# A failing example is printed without shrinking it (which re-validates thousands of batches: many minutes);
# VALIDATION_SHRINK=1 asks for the smallest one.
EXAMPLES = int(os.environ.get("VALIDATION_EXAMPLES", examples(150)))
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("VALIDATION_SHRINK") else [])
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(validate, batch):
    """The validation's result, or the class of what it raised: the two ways must fail alike too."""
    try:
        return validate(batch)
    except Exception as error:  # noqa: BLE001 - compared, not hidden
        return type(error)


def assert_same_orders(fast, slow):
    if isinstance(fast, type) or isinstance(slow, type):
        assert fast is slow
        return
    assert fast.orders.equals(slow.orders)
    assert fast.lines.equals(slow.lines)
    pd.testing.assert_frame_equal(fast.rejects, slow.rejects)
    assert fast.received == slow.received


def assert_same_stock(fast, slow):
    if isinstance(fast, type) or isinstance(slow, type):
        assert fast is slow
        return
    pd.testing.assert_frame_equal(fast.items, slow.items)
    pd.testing.assert_frame_equal(fast.rejects, slow.rejects)
    assert (fast.received, fast.repeated) == (slow.received, slow.repeated)


@PROPERTY
@given(batch=orders_batch_st())
def test_orders_with_the_shortcut_equal_pandera_alone(batch):
    fast = outcome(validate_orders, batch)
    with pandera_only():
        slow = outcome(validate_orders, batch)
    assert_same_orders(fast, slow)
    assert not isinstance(fast, type), fast  # the pools hold nothing that may stop a batch


@PROPERTY
@given(batch=stock_batch_st())
def test_stock_with_the_shortcut_equals_pandera_alone(batch):
    fast = outcome(validate_stock, batch)
    with pandera_only():
        slow = outcome(validate_stock, batch)
    assert_same_stock(fast, slow)
    assert not isinstance(fast, type), fast


# The frame-level promise, without the validator around it: whenever the shortcut says "nothing fails", pandera
# finds nothing either. Single columns of hostile values, so that each bad value is alone in a clean column.
COLUMN_VALUES = {
    "int": st.one_of(CLEAN_IDS, st.sampled_from(BAD_INTS)),
    "stamp": st.sampled_from(STAMPS + BAD_STAMPS),
    "text": st.sampled_from(TEXTS + BAD_TEXTS),
}


@PROPERTY
@given(data=st.data(), size=st.integers(0, 8))
def test_the_shortcut_never_passes_what_pandera_rejects(data, size):
    def column(kind):
        clean = {"int": CLEAN_IDS, "stamp": st.sampled_from(STAMPS), "text": st.sampled_from(TEXTS)}[kind]
        values = data.draw(st.lists(clean, min_size=size, max_size=size))
        if size and data.draw(st.booleans()):
            values[data.draw(st.integers(0, size - 1))] = data.draw(COLUMN_VALUES[kind])
        return pd.Series(values, dtype=object)

    orders = pd.DataFrame(
        {
            "id": column("int"),
            "placed_at": column("stamp"),
            "customer_id": column("text"),
            "n_lines": pd.Series(
                data.draw(st.lists(st.sampled_from([1, 2, 0, None]), min_size=size, max_size=size)), dtype=object
            ),
        }
    )
    lines = pd.DataFrame({"inventory_id": column("int"), "quantity": column("int")})
    for model, frame in ((OrderRecord, orders), (OrderLineRecord, lines)):
        verdict = schema_shortcut.nothing_fails(model, frame)
        assert verdict == (schemas._pandera_failures(model, frame) == {}), (model.__name__, frame)


def test_the_comparison_catches_a_shortcut_that_passes_a_bad_batch(monkeypatch):
    batch = clean_orders(5)
    batch[2]["customer_id"] = "   "
    monkeypatch.setattr(schema_shortcut, "nothing_fails", lambda model, frame: True)
    fast = validate_orders(batch)
    with pandera_only():
        slow = validate_orders(batch)
    assert len(fast.rejects) == 0 and len(slow.rejects) == 1
    with pytest.raises(AssertionError):
        assert_same_orders(fast, slow)


# ---- the shortcut is alive, and covers the models as they are written ---------------------------------------------


@pytest.fixture
def pandera_calls(monkeypatch):
    calls = []
    real = schemas._pandera_failures

    def spy(model, frame):
        calls.append(model.__name__)
        return real(model, frame)

    monkeypatch.setattr(schemas, "_pandera_failures", spy)
    return calls


def clean_orders(n):
    return [
        {
            "id": i,
            "placed_at": "2026-11-20T09:15:00Z",
            "customer_id": f"C-{i}",
            "items": [{"inventory_id": 100 + i, "quantity": 1}, {"inventory_id": 7, "quantity": 2**62}],
        }
        for i in range(1, n + 1)
    ]


def clean_stock(n):
    return [
        {
            "inventory_id": i,
            "product_id": 0,
            "sku": f"S-{i}",
            "product_name": "Mug",
            "warehouse_id": 1,
            "quantity": 0,
            "updated_at": "2026-11-20T09:00:00Z",
        }
        for i in range(1, n + 1)
    ]


def test_a_clean_batch_never_reaches_pandera(pandera_calls):
    valid = validate_orders(clean_orders(300))
    stock = validate_stock(clean_stock(300))
    assert len(valid.orders) == 300 and len(valid.rejects) == 0
    assert len(stock.items) == 300 and len(stock.rejects) == 0
    assert pandera_calls == []


def test_a_batch_with_a_bad_value_is_pandera_s_to_describe(pandera_calls):
    orders = clean_orders(300)
    orders[123]["items"][1]["quantity"] = "2"
    valid = validate_orders(orders)
    assert pandera_calls == ["OrderLineRecord"]  # the orders frame was clean: only the lines went to pandera
    assert valid.rejects["reasons"].tolist() == ["items[1].quantity must be an integer, got '2'"]
    stock = clean_stock(300)
    stock[7]["updated_at"] = "2026-02-30T00:00:00Z"
    assert validate_stock(stock).rejects["reasons"].tolist() == [
        "updated_at is not an ISO-8601 timestamp: '2026-02-30T00:00:00Z'"
    ]
    assert pandera_calls == ["OrderLineRecord", "StockRecord"]


def test_the_shortcut_covers_every_model():
    # A setting the shortcut does not model (here or in a later pandera) would silently send every batch to pandera.
    assert all(schema_shortcut.covers(model) for model in (OrderRecord, OrderLineRecord, StockRecord))


def test_a_field_added_to_a_model_is_checked_by_the_shortcut():
    class WithNote(OrderLineRecord):
        note: Series[object] = pa.Field(nullable=False, text=())

    frame = pd.DataFrame(
        {
            "inventory_id": pd.Series([1, 2], dtype=object),
            "quantity": pd.Series([1, 1], dtype=object),
            "note": pd.Series(["fine", "fine"], dtype=object),
        }
    )
    assert schema_shortcut.nothing_fails(WithNote, frame)
    frame.loc[1, "note"] = "   "
    assert not schema_shortcut.nothing_fails(WithNote, frame)
    assert schemas.failures_by_row(WithNote, frame) == {
        1: ["note must be a non-empty string of at most 1000 characters in valid Unicode, got '   '"]
    }
    assert not schema_shortcut.nothing_fails(WithNote, frame.drop(columns=["note"]))  # a missing column: pandera's


def test_a_setting_the_shortcut_does_not_model_leaves_the_model_to_pandera():
    class Unique(OrderLineRecord):
        inventory_id: Series[object] = pa.Field(nullable=False, unique=True, integer=())

    class Strict(OrderLineRecord):
        class Config:
            strict = True

    frame = pd.DataFrame({"inventory_id": pd.Series([1, 1], dtype=object), "quantity": pd.Series([1, 1], dtype=object)})
    for model in (Unique, Strict):
        assert not schema_shortcut.covers(model)
        assert not schema_shortcut.nothing_fails(model, frame)
    assert schemas.failures_by_row(Unique, frame) == {
        0: ["inventory_id failed field_uniqueness: 1"],
        1: ["inventory_id failed field_uniqueness: 1"],
    }


def test_a_nullable_field_with_nulls_is_checked_on_its_values():
    # n_lines is nullable (records that are not objects have none): its nulls pass, its values are still checked
    frame = pd.DataFrame(
        {
            "id": pd.Series([1, 2, 3], dtype=object),
            "placed_at": pd.Series(["2026-11-20T09:15:00Z"] * 3, dtype=object),
            "customer_id": pd.Series(["C"] * 3, dtype=object),
            "n_lines": pd.Series([1, None, 2], dtype=object),
        }
    )
    assert schema_shortcut.nothing_fails(OrderRecord, frame)
    frame.loc[2, "n_lines"] = 0
    assert not schema_shortcut.nothing_fails(OrderRecord, frame)
    assert schemas.failures_by_row(OrderRecord, frame) == {2: ["order has no lines"]}
