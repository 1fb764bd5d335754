"""A clean page of orders from its bytes to typed columns: no dict per record, no value checked in Python.

msgspec decodes the page against the contract's shape into typed structs (not dicts: no hashing of keys, not
tracked by the collector; they live only while the page is read) and the fields go straight into numpy and Arrow
arrays, where every check runs over whole columns. It reads JSON as the record path's
orjson does (the last of duplicated keys wins, NaN and trailing commas are not JSON) and is strict about types:
a string, a bool or a float where an integer belongs, a null, a missing field, a record that is not an object
all make it fail, and then the page is not clean. What it accepts is checked further (`clean_orders`): integers
within 64 bits, nesting no deeper than the record path allows, and the pandera models' own checks, evaluated on
the columns (schema_shortcut.columns_pass). A page that passes all of it holds only valid orders, which the
record path would store exactly so (tests/test_columns_equivalence.py holds the two paths equal on arbitrary
pages). Any other page is None here, and goes through the record path whole, where pandera gives every reason.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from domain.bounds import MAX_INT
from orderly.boundary import schema_shortcut
from orderly.boundary.schemas import OrderLineRecord, OrderRecord
from orderly.boundary.stamps import canonical_seconds
from orderly.boundary.wire import MAX_DEPTH


class _Line(msgspec.Struct, gc=False):  # gc=False: a page's structs hold no cycles, the collector need not track them
    inventory_id: int
    quantity: int


class _Order(msgspec.Struct, gc=False):
    id: int
    placed_at: str
    customer_id: str
    items: list[_Line]


class _Page(msgspec.Struct, gc=False):
    orders: list[_Order]
    next_after_id: int | None


_DECODER = msgspec.json.Decoder(_Page)
_ID, _PLACED, _CUSTOMER, _ITEMS = (attrgetter(name) for name in ("id", "placed_at", "customer_id", "items"))
_INVENTORY, _QUANTITY = attrgetter("inventory_id"), attrgetter("quantity")

# The record path quarantines a record nested deeper than MAX_DEPTH, even in a field Orderly does not read. msgspec
# refuses nesting as deep as Python's recursion limit, so under the default limit (1,000) it never accepts such a
# page. Under a higher limit the brackets are counted: those a clean page's known structure opens (the envelope and
# its list, per order its object and items list, per line its object) are known, and a page with fewer others
# than MAX_DEPTH cannot hold a record that deep (a C count over the bytes, not a depth walk).
_UNREAD_BRACKETS_ALLOWED = MAX_DEPTH - 8


def _deeper_than_the_decoder_refuses() -> bool:
    return sys.getrecursionlimit() > _UNREAD_BRACKETS_ALLOWED


def _unread_brackets(content: bytes, orders: int, lines: int) -> int:
    return content.count(b"{") + content.count(b"[") - (2 + 2 * orders + lines)


@dataclass(repr=False)  # asyncio.run and loggers format results: a repr of a page's columns is of no use
class OrderColumns:
    """One page's orders as typed columns: every record an object with the four fields and only valid values."""

    order_id: np.ndarray  # int64, one per order
    placed_at: pa.Array  # timestamp[us, UTC], as the store keeps it
    customer_id: pa.Array  # string
    line_counts: np.ndarray  # int64, one per order, >= 1
    inventory_id: np.ndarray  # int64, one per line, the lines of every order in page order
    quantity: np.ndarray  # int64, one per line
    next_after_id: int

    def __len__(self) -> int:
        return len(self.order_id)

    def __repr__(self) -> str:
        return f"OrderColumns({len(self)} orders)"

    def to_records(self) -> list[dict]:
        """The page as the record path decodes it (tests compare the two; nothing in production calls this)."""
        stamps = pc.strftime(self.placed_at.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
        ends = np.cumsum(self.line_counts)
        lines = [
            {"inventory_id": int(i), "quantity": int(q)} for i, q in zip(self.inventory_id, self.quantity, strict=True)
        ]
        return [
            {"id": int(oid), "placed_at": stamp, "customer_id": customer, "items": lines[end - n : end]}
            for oid, stamp, customer, n, end in zip(
                self.order_id, stamps, self.customer_id.to_pylist(), self.line_counts, ends, strict=True
            )
        ]


def clean_orders(content: bytes) -> OrderColumns | None:
    """The page's orders as columns when every one of them is valid, else None (the record path's page)."""
    if not _utf8(content):  # the decoder does not look inside the strings of fields it skips; the record path does
        return None
    try:
        page = _DECODER.decode(content)
    except (msgspec.DecodeError, RecursionError):  # not JSON, a wrong type, a missing field, a null, nesting
        return None  # deeper than it goes: the record path says which
    cursor, orders = page.next_after_id, page.orders
    if cursor is None or not 0 <= cursor <= MAX_INT:
        return None  # the last page (null) is the record path's: there a missing cursor and a null one differ
    count = len(orders)
    try:
        order_id = np.fromiter(map(_ID, orders), np.int64, count)
        items = list(map(_ITEMS, orders))
        line_counts = np.fromiter(map(len, items), np.int64, count)
        lines = list(chain.from_iterable(items))
        inventory_id = np.fromiter(map(_INVENTORY, lines), np.int64, len(lines))
        quantity = np.fromiter(map(_QUANTITY, lines), np.int64, len(lines))
    except OverflowError:  # an integer past 64 bits: the record path says it is out of range
        return None
    if _deeper_than_the_decoder_refuses() and _unread_brackets(content, count, len(lines)) > _UNREAD_BRACKETS_ALLOWED:
        return None
    placed_text = pa.array(map(_PLACED, orders), pa.string(), size=count)
    customer_id = pa.array(map(_CUSTOMER, orders), pa.string(), size=count)
    del page, orders, items, lines  # the structs go now: from here on the page is columns
    order_columns = {
        "id": pa.array(order_id),
        "placed_at": placed_text,
        "customer_id": customer_id,
        "n_lines": pa.array(line_counts),
    }
    line_columns = {"inventory_id": pa.array(inventory_id), "quantity": pa.array(quantity)}
    if not (
        schema_shortcut.columns_pass(OrderRecord, order_columns)
        and schema_shortcut.columns_pass(OrderLineRecord, line_columns)
    ):
        return None
    if len(quantity) and bool((quantity > MAX_INT // np.repeat(line_counts, line_counts)).any()):
        return None  # an order's quantities may sum past 2**63-1: the record path sums them exactly
    seconds = canonical_seconds(placed_text)  # the iso_timestamp check above passed: every stamp is canonical
    placed_at = pa.array(seconds * 1_000_000, pa.timestamp("us", tz="UTC"))
    return OrderColumns(order_id, placed_at, customer_id, line_counts, inventory_id, quantity, cursor)


def _utf8(content: bytes) -> bool:
    if content.isascii():
        return True
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
