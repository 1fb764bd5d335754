"""The columnar path's own parts (issue 19): the canonical stamps, the guards in front of the decoder, and the
read-ahead's claimed cursor. The two paths' agreement on whole pages is tests/test_columns_equivalence.py."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiers import examples

from orderly.boundary import pages
from orderly.boundary.columns import clean_orders
from orderly.boundary.stamps import canonical_seconds

LAST = object()  # next_after_id: the last record's id


def page(*records, next_after_id=LAST) -> bytes:
    last = records[-1]["id"] if next_after_id is LAST else next_after_id
    return orjson.dumps({"orders": list(records), "next_after_id": last})


def order(oid: int, **fields) -> dict:
    return {
        "id": oid,
        "placed_at": "2026-11-20T09:15:00Z",
        "customer_id": "C-1",
        "items": [{"inventory_id": 101, "quantity": 1}],
        **fields,
    }


# ---- stamps ------------------------------------------------------------------------------------------------------


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31, 23, 59, 59)),
        min_size=1,
        max_size=20,
    )
)
def test_canonical_stamps_are_the_instants_pandas_reads(moments):
    texts = [m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments]
    expected = [int(t.timestamp()) for t in pd.to_datetime(pd.Series(texts), utc=True, format="ISO8601")]
    assert canonical_seconds(pa.array(texts)).tolist() == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z",
        "1899-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00z",
        "2026-1-01T00:00:00Z",
        "2026-01-01T00:00:0AZ",
        "２０２６-01-01T00:00:00Z",  # noqa: RUF001 - digits that are not ASCII, on purpose
        "2026-01-01T00:00:00.5Z",
        "",
    ],
)
def test_any_other_stamp_is_left_to_pandas(text):
    assert canonical_seconds(pa.array(["2026-11-20T09:15:00Z", text])) is None


def test_the_leap_days_that_exist_are_read():
    assert canonical_seconds(pa.array(["2024-02-29T00:00:00Z", "2000-02-29T12:00:00Z"])).tolist() == [
        int(datetime(2024, 2, 29, tzinfo=UTC).timestamp()),
        int(datetime(2000, 2, 29, 12, tzinfo=UTC).timestamp()),
    ]
    assert canonical_seconds(pa.array(["2100-02-29T00:00:00Z"])) is None  # 2100 is not a leap year


def test_a_sliced_column_is_read_from_its_own_offset():
    column = pa.array(["2026-11-20T09:15:00Z", "2026-11-21T09:15:00Z", "2026-11-22T09:15:00Z"])[1:]
    day = 86_400
    first = int(datetime(2026, 11, 21, 9, 15, tzinfo=UTC).timestamp())
    assert canonical_seconds(column).tolist() == [first, first + day]


# ---- the decoder's guards ----------------------------------------------------------------------------------------


def test_a_clean_page_becomes_columns():
    columns = clean_orders(page(order(1), order(2, items=[{"inventory_id": 7, "quantity": 3}] * 2)))
    assert columns is not None
    assert columns.order_id.tolist() == [1, 2] and columns.line_counts.tolist() == [1, 2]
    assert columns.quantity.tolist() == [1, 3, 3] and columns.next_after_id == 2


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"[]",
        b"5",
        b'"x"',
        b"{}",
        b'{"orders":null,"next_after_id":1}',
        b'{"orders":[null],"next_after_id":1}',
        b'{"orders":[],"next_after_id":1} {"orders":[],"next_after_id":2}',
        b"\xef\xbb\xbf" + page(order(1)),
        page(order(1))[:-1],
        page(order(1)).replace(b'"id":1', b'"id":1,"note":"\xff"'),
        page(order(1), next_after_id=None),
        page(order(1)).replace(b"]}],", b"]},],"),
    ],
)
def test_a_body_that_is_not_a_clean_page_is_left_to_the_record_path(body):
    assert clean_orders(body) is None


@pytest.mark.parametrize(
    "change",
    [
        {"id": 0},
        {"id": True},
        {"id": 1.0},
        {"id": "1"},
        {"placed_at": "2026-02-30T00:00:00Z"},
        {"placed_at": "2026-11-20T09:15:00+00:00"},
        {"customer_id": " C"},
        {"customer_id": ""},
        {"customer_id": "x" * 1001},
        {"customer_id": "\u00a0C"},
        {"items": []},
        {"items": [{"inventory_id": 1, "quantity": 0}]},
        {"items": [{"inventory_id": 1, "quantity": 2**62}, {"inventory_id": 2, "quantity": 2**62}]},
    ],
)
def test_a_page_with_one_record_the_columns_are_not_sure_of_is_left_to_the_record_path(change):
    assert clean_orders(page(order(1), order(2, **change))) is None


def test_an_integer_past_64_bits_is_left_to_the_record_path():
    assert clean_orders(page(order(1)).replace(b'"id":1', b'"id":18446744073709551616')) is None


def test_nesting_deeper_than_the_record_path_allows_is_never_taken_whatever_the_recursion_limit(monkeypatch):
    def nested(depth: int) -> bytes:
        return page(order(1)).replace(b'"id":1', b'"id":1,"note":' + b"[" * depth + b"]" * depth)

    assert clean_orders(nested(5)) is not None
    assert clean_orders(nested(1100)) is None  # the decoder refuses it under the default recursion limit
    monkeypatch.setattr(sys, "getrecursionlimit", lambda: 10_000)  # a process that raised it: the brackets count
    assert clean_orders(nested(1100)) is None
    assert clean_orders(nested(5)) is not None


# ---- the read-ahead's hint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, claimed",
    [
        (page(order(1), order(7)), 7),
        (b'{"next_after_id": 12 , "orders": []}', 12),
        (page(order(1), next_after_id=None), None),
        (b'{"orders":[],"next_after_id":"5"}', None),
        (b'{"orders":[]}', None),
        (b"garbage", None),
    ],
)
def test_the_read_ahead_follows_the_cursor_a_page_claims_only_as_a_hint(body, claimed):
    assert pages.claimed_cursor(body) == claimed
