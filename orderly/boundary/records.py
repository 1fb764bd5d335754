"""Flattens the remotes' JSON records into column frames, keeping each record's position for quarantine."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import orjson
import pandas as pd

from orderly.boundary.wire import LongInteger, NotUnicode, Undecodable

ORDER_FIELDS = ("id", "placed_at", "customer_id")
STOCK_FIELDS = ("inventory_id", "product_id", "sku", "product_name", "warehouse_id", "quantity", "updated_at")


def _not_an_object(record: Any) -> str:
    if isinstance(record, Undecodable):  # a record the decoder could not hold: its reason says why
        return record.reason
    return f"record: must be an object, got {_type_name(record)}"


def _type_name(value: Any) -> str:
    """The decoded type's name; the decoder's stand-ins read as what they stand for."""
    if isinstance(value, LongInteger):
        return "int"
    if isinstance(value, NotUnicode):
        return "str"
    return type(value).__name__


def _field(records: list[Any], key: str) -> list[Any]:
    return [record.get(key) if isinstance(record, dict) else None for record in records]


def flatten_orders(records: list[Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, list[str]]]:
    """One row per order and one per line, both keyed by `rec` (the record's position in the batch).

    Shapes pandera cannot see in a column (a record that is not an object, `items` that is not a
    list, a line that is not an object) are returned as reasons per record instead.
    """
    fast = _flatten_clean_lines(records)
    if fast is not None:
        return (*_order_frames(*fast), {})
    shape_errors: dict[int, list[str]] = {}
    rec_col: list[int] = []
    line_no_col: list[int] = []
    inventory_col: list[Any] = []
    quantity_col: list[Any] = []
    n_lines: list[Any] = []
    for rec, record in enumerate(records):
        if not isinstance(record, dict):
            shape_errors[rec] = [_not_an_object(record)]
            n_lines.append(None)
            continue
        items = record.get("items")
        if not isinstance(items, list):
            shape_errors[rec] = ["items: missing or not a list"]
            n_lines.append(None)
            continue
        n_lines.append(len(items))
        for line_no, line in enumerate(items):
            if not isinstance(line, dict):
                shape_errors.setdefault(rec, []).append(f"items[{line_no}]: must be an object")
                continue
            rec_col.append(rec)
            line_no_col.append(line_no)
            inventory_col.append(line.get("inventory_id"))
            quantity_col.append(line.get("quantity"))
    order_columns = [_field(records, key) for key in ORDER_FIELDS]
    return (*_order_frames(order_columns, rec_col, line_no_col, inventory_col, quantity_col, n_lines), shape_errors)


def _flatten_clean_lines(records: list[Any]):
    """The common case in bulk: every record an object with a list of object lines. Same columns as the
    general loop, in one pass over the records and one over the lines; None when any record needs the general
    loop. Why one pass: the decoded records lie scattered in memory, so each pass costs a cache miss per record
    whatever it does (a pass per field cost 15-20 ms per 50,000 orders); the appends cost far less."""
    order_columns: list[list[Any]] = [[] for _ in ORDER_FIELDS]
    order_fields = tuple(zip([column.append for column in order_columns], ORDER_FIELDS, strict=True))
    n_lines: list[int] = []
    lines: list[Any] = []
    count, add_lines = n_lines.append, lines.extend
    for record in records:
        if type(record) is not dict:
            return None
        items = record.get("items")
        if type(items) is not list:
            return None
        for append, key in order_fields:
            append(record.get(key))
        count(len(items))
        add_lines(items)
    inventory_col: list[Any] = []
    quantity_col: list[Any] = []
    inventory, quantity = inventory_col.append, quantity_col.append
    for line in lines:
        if type(line) is not dict:
            return None
        inventory(line.get("inventory_id"))
        quantity(line.get("quantity"))
    counts = np.asarray(n_lines, dtype=np.int64)
    rec_col = np.repeat(np.arange(len(records), dtype=np.int64), counts)
    first_line = np.cumsum(counts) - counts
    line_no_col = np.arange(len(lines), dtype=np.int64) - np.repeat(first_line, counts)
    return order_columns, rec_col, line_no_col, inventory_col, quantity_col, n_lines


def _objects(values) -> pd.Series:
    """A column of the values as received: object dtype, so that nothing is converted before the schema sees it."""
    return pd.Series(values, dtype=object, copy=False)


def _frame(columns: dict[str, pd.Series]) -> pd.DataFrame:
    # copy=False: pandas would otherwise copy every object column into one block, touching each value again.
    return pd.DataFrame(columns, copy=False)


def _order_frames(order_columns, rec_col, line_no_col, inventory_col, quantity_col, n_lines):
    orders = _frame(
        {
            **{key: _objects(column) for key, column in zip(ORDER_FIELDS, order_columns, strict=True)},
            "n_lines": _objects(n_lines),
        }
    )
    lines = _frame(
        {
            "rec": pd.Series(rec_col, dtype="int64"),
            "line_no": pd.Series(line_no_col, dtype="int64"),
            "inventory_id": _objects(inventory_col),
            "quantity": _objects(quantity_col),
        }
    )
    return orders, lines


def flatten_stock(records: list[Any]) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    shape_errors = {rec: [_not_an_object(record)] for rec, record in enumerate(records) if not isinstance(record, dict)}
    frame = _frame({key: _objects(_field(records, key)) for key in STOCK_FIELDS})
    return frame, shape_errors


def records_digest(records: list[Any]) -> str | None:
    """A digest of the records exactly as decoded (types, key order, page order): equal digests, equal records, so
    equal validation. None for records JSON cannot hold again (a lone surrogate, an integer past 64 bits): rare,
    and those are validated every time."""
    try:
        encoded = orjson.dumps(records)
    except TypeError:  # also orjson's refusal of nesting past 255 levels: such records are validated every time
        return None
    return hashlib.blake2b(encoded, digest_size=20).hexdigest()
