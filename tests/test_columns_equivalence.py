"""Property (issue 19): the columnar path and the record path store the same rows and quarantine the same records
with the same reasons, for arbitrary pages: clean, hostile and mixed.

Each example is a chunk of 1 to 4 orders pages, written as JSON text by hand (duplicated keys, fields Orderly does
not read, nested or not, raw literals such as `1e3`, `-0` or a lone surrogate escape, blanks). Two runs on two fresh
DuckDB files:
- as production reads it: each page through the production decoding (columns when boundary/columns.py finds the page
  clean, else the record path);
- the record path only: every page through orderly.boundary.wire and pandera, as before issue 19.
Then the two stores must hold the same orders (with their fingerprints), lines, rejects (raw record and reasons)
and load counts, and the paging protocol must say the same of each page. A page the record path refuses whole (not
JSON, not the envelope) must not be accepted by the columns either.

The examples are generated, so both clean pages (where the columns are taken) and hostile ones occur: the test
counts them and fails if either kind stops occurring (a generator that stopped making clean pages would prove
nothing about the columns).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest
from hostile import Raw, dumps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderly.boundary import pages
from orderly.boundary.columns import OrderColumns, clean_orders
from orderly.boundary.paging import PageRuleBroken, check_orders_page
from orderly.boundary.validation import validate_order_pages
from orderly.boundary.wire import orders_envelope
from orderly.store import open_store, writes

MAX = 2**63 - 1


class Dup:
    """An object written with these (key, value) pairs in order, a key possibly twice (JSON allows it; the last
    one wins for every decoder here)."""

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        self.pairs = pairs


def write(value, pretty: bool) -> str:
    if isinstance(value, Dup):
        inner = ("," + ("\n " if pretty else "")).join(json.dumps(k) + ":" + write(v, pretty) for k, v in value.pairs)
        return "{" + inner + "}"
    if isinstance(value, dict):
        return write(Dup(list(value.items())), pretty)
    if isinstance(value, list):
        return "[" + ", ".join(write(v, pretty) for v in value) + "]"
    return dumps(value).decode("utf-8", "surrogatepass")


ids = st.integers(1, 12) | st.sampled_from([MAX - 1, MAX])
stamps = st.datetimes(min_value=datetime(1899, 12, 31), max_value=datetime(2200, 1, 2)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
)
odd_stamps = st.sampled_from(
    [
        "2026-02-30T00:00:00Z",
        "2026-11-20T09:15:00+02:00",
        "2026-11-20T09:15:00.5Z",
        "2026-11-20 09:15:00Z",
        "2026-11-20",
        "yesterday",
        "",
        "2026-1-2T3:04:05Z",
        "1677-09-21T00:12:43Z",
        "2262-04-11T23:47:17Z",
        "0000-01-01T00:00:00Z",
    ]
)
texts = (
    st.sampled_from(["C-1", "C-2", "x" * 1000])
    | st.text(max_size=6)
    | st.sampled_from(["", " ", "\u00a0C", "\x1fC", "C ", "y" * 1001, "Zoë", "\u2028", "\x00"])
)
quantities = st.integers(1, 5) | st.sampled_from([MAX, 2**62, 2**53 + 1])
wild = st.sampled_from(
    [
        None,
        True,
        0,
        -1,
        1.0,
        2.5,
        MAX + 1,
        2**64,
        "3",
        [],
        {},
        Raw("1e3"),
        Raw("-0"),
        Raw('"\\ud800"'),
        Raw("1E2"),
        Raw("10000000000000000000000"),
    ]
)
nested = st.integers(1, 3).map(lambda depth: Raw("[" * depth + "1" + "]" * depth))


@st.composite
def line(draw):
    fields = {"inventory_id": draw(st.integers(1, 9) | st.sampled_from([MAX])), "quantity": draw(quantities)}
    if draw(st.integers(0, 9)) == 0:
        fields[draw(st.sampled_from(list(fields)))] = draw(wild)
    if draw(st.integers(0, 14)) == 0:
        del fields[draw(st.sampled_from(list(fields)))]
    return fields if draw(st.integers(0, 19)) else draw(wild)


@st.composite
def order(draw, oid):
    fields = {
        "id": oid,
        "placed_at": draw(stamps if draw(st.integers(0, 5)) else odd_stamps),
        "customer_id": draw(texts),
        "items": draw(st.lists(line(), min_size=1, max_size=3)),
    }
    if draw(st.integers(0, 7)) == 0:  # one field anything at all
        fields[draw(st.sampled_from(list(fields)))] = draw(wild | nested)
    if draw(st.integers(0, 14)) == 0:
        del fields[draw(st.sampled_from(list(fields)))]
    pairs = list(fields.items())
    if draw(st.integers(0, 5)) == 0:  # a field Orderly does not read
        pairs.insert(draw(st.integers(0, len(pairs))), ("note", draw(wild | nested | texts)))
    if draw(st.integers(0, 7)) == 0 and pairs:  # a key twice: the last copy counts
        key, _ = pairs[draw(st.integers(0, len(pairs) - 1))]
        pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(wild | texts)))
    if draw(st.integers(0, 29)) == 0:
        return draw(wild)  # not an object at all
    return Dup(pairs)


@st.composite
def page(draw, after_id):
    clean = draw(st.booleans())  # half the pages try hard to be clean: the columns' case
    count = draw(st.integers(0, 5))
    chosen = sorted(draw(st.lists(ids.filter(lambda i: i > after_id), min_size=count, max_size=count)))
    records = []
    for oid in chosen:
        if clean:
            records.append(
                {
                    "id": oid,
                    "placed_at": draw(stamps),
                    "customer_id": draw(st.sampled_from(["C-1", "C-2"])),
                    "items": [
                        {"inventory_id": draw(st.integers(1, 9)), "quantity": draw(st.integers(1, 5))}
                        for _ in range(draw(st.integers(1, 3)))
                    ],
                }
            )
        else:
            records.append(draw(order(oid)))
    cursor = chosen[-1] if chosen else None
    if draw(st.integers(0, 9)) == 0:
        cursor = draw(st.sampled_from([None, 0, after_id, MAX, (cursor or 0) + 1, "5"]))
    envelope = [("orders", records), ("next_after_id", cursor)]
    if draw(st.integers(0, 9)) == 0:
        envelope.insert(draw(st.integers(0, 2)), ("meta", draw(wild | nested)))
    text = write(Dup(envelope) if draw(st.integers(0, 29)) else draw(wild), pretty=draw(st.integers(0, 7)) == 0)
    if draw(st.integers(0, 29)) == 0:
        text = draw(st.sampled_from([" ", "\n", "null", "{}", ",", "]"])).join(
            [text[: len(text) // 2], text[len(text) // 2 :]]
        )
    return text.encode("utf-8", "surrogatepass"), cursor if isinstance(cursor, int) else 0


@st.composite
def chunk(draw):
    after_id, pages = 0, []
    for _ in range(draw(st.integers(1, 4))):
        content, after_id = draw(page(after_id if after_id < 12 else 0))
        pages.append(content)
    return pages


def record_path(content: bytes):
    """The page as the record path decodes it, or None when it refuses the page whole (a bad body: retried)."""
    try:
        return pages.decoded(content, orders_envelope)
    except pages.Retryable:
        return None


def production(content: bytes):
    """The page as the client decodes it (orderly.boundary.remote), or None when it refuses the page whole."""
    try:
        return asyncio.run(pages.decode_orders_page(content, on_bytes=lambda content: None))
    except pages.Retryable:
        return None


def paging(after_id: int, body) -> str:
    try:
        return repr(check_orders_page(after_id, body["orders"], body["next_after_id"]))
    except PageRuleBroken as broken:
        return f"broken: {broken}"


def stored(path: Path, pages: list) -> dict:
    """The pages loaded as one chunk into a fresh store, and everything the load wrote."""
    valid = validate_order_pages(pages)
    with open_store(path) as con:
        counts = writes.load_orders(
            con, None, valid.orders, valid.lines, valid.rejects, valid.received, 0, page_starts=valid.page_starts
        )
        tables = {
            "orders": con.execute(
                "SELECT order_id, placed_at, customer_id, items, total_qty, fingerprint FROM orders ORDER BY order_id"
            ).fetchall(),
            "lines": con.execute("SELECT * FROM order_lines ORDER BY order_id, line_no").fetchall(),
            "rejects": con.execute(
                "SELECT source, record_key, raw, reasons FROM rejects ORDER BY raw, reasons"
            ).fetchall(),
        }
    return {"counts": counts, **tables}


SEEN = {"column pages": 0, "record pages": 0}


@pytest.fixture(scope="module", autouse=True)
def both_kinds_occur():
    yield
    print(f"\n{SEEN}")
    assert SEEN["column pages"] > 0 and SEEN["record pages"] > 0, SEEN


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(contents=chunk())
def test_the_columns_and_the_records_store_the_same(contents, tmp_path):
    fast, slow, after_id = [], [], 0
    for content in contents:
        columns_or_records, records = production(content), record_path(content)
        if records is None:
            assert columns_or_records is None, "the columns took a page the record path refuses"
            continue
        assert columns_or_records is not None
        is_columns = isinstance(columns_or_records["orders"], OrderColumns)
        SEEN["column pages" if is_columns else "record pages"] += 1
        if is_columns:
            assert clean_orders(content) is not None
        verdict = paging(after_id, records)
        assert paging(after_id, columns_or_records) == verdict
        if verdict.startswith("broken"):
            break  # a page that breaks the protocol is never loaded, on either path
        fast.append(columns_or_records["orders"])
        slow.append(records["orders"])
        after_id = int(verdict.strip("()").split(",")[0])
    if not fast:
        return
    n = len(list(tmp_path.iterdir()))
    assert stored(tmp_path / f"columns{n}.duckdb", fast) == stored(tmp_path / f"records{n}.duckdb", slow)
