"""Splits a batch of raw records into typed good rows and quarantined rejects: received = loaded + rejected."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from domain.bounds import MAX_INT
from orderly.boundary.columns import OrderColumns
from orderly.boundary.records import flatten_orders, flatten_stock
from orderly.boundary.schemas import OrderLineRecord, OrderRecord, StockRecord, failures_by_row, rejects_frame


@dataclass(repr=False)  # a repr of 50,000 records costs more than loading them (Prefect and asyncio format it)
class ValidOrders:
    orders: pa.Table  # rec, order_id, placed_at (timestamp[us, UTC]), customer_id: every valid copy, repeats too
    lines: pa.Table  # rec, order_id, line_no, inventory_id, quantity
    rejects: pd.DataFrame  # source, record_key, raw, reasons
    received: int  # = valid copies + rejects; the loader splits valid copies into new, repeats, conflicts
    page_starts: list[int] | None = None  # where each page begins among the recs; None: a page per record

    def __repr__(self) -> str:
        return f"ValidOrders({len(self.orders)} valid of {self.received} received)"


@dataclass(repr=False)
class ValidStock:
    items: pd.DataFrame  # one row per inventory item
    rejects: pd.DataFrame
    received: int  # = items + rejects + repeated
    repeated: int = 0  # identical copies of an item already in the snapshot

    def __repr__(self) -> str:
        return f"ValidStock({len(self.items)} items of {self.received} received)"


def _merge(shape_errors: dict[int, list[str]], *sources: dict[int, list[str]]) -> dict[int, list[str]]:
    """All reasons per record; a record that is not even an object gets only that one reason."""
    merged = {rec: list(reasons) for rec, reasons in shape_errors.items()}
    not_objects = {rec for rec, reasons in shape_errors.items() if reasons[0].startswith("record:")}
    for source in sources:
        for rec, reasons in source.items():
            if rec not in not_objects:
                merged.setdefault(rec, []).extend(reasons)
    return merged


def _timestamps(series: pd.Series) -> pd.Series:
    # cache=False: pandas' cache hashes every string to parse each distinct one once, which costs 3 times the
    # parse itself when stamps repeat (a snapshot's updated_at): 16 ms against 5.6 ms per 50,000.
    return pd.to_datetime(series, utc=True, format="ISO8601", cache=False)


def _without(frame: pd.DataFrame, rejected: Collection[int]) -> pd.DataFrame:
    """The rows whose index is not rejected; the frame itself when none is (a copy touches every value)."""
    return frame.drop(index=list(rejected)) if rejected else frame


def _lines_without(lines: pd.DataFrame, rejected: Collection[int]) -> pd.DataFrame:
    """The lines of the records not rejected (`rec` is their record); the frame itself when none is."""
    return lines[~lines["rec"].isin(list(rejected))] if rejected else lines


def validate_orders(records: list[Any]) -> ValidOrders:
    orders, lines, shape_errors = flatten_orders(records)
    order_failures = failures_by_row(OrderRecord, orders)
    line_failures_by_line = failures_by_row(OrderLineRecord, lines)
    # A bad line rejects its whole order: an order is loaded all or nothing.
    line_failures: dict[int, list[str]] = {}
    for index, reasons in line_failures_by_line.items():
        rec, line_no = int(lines.at[index, "rec"]), int(lines.at[index, "line_no"])
        line_failures.setdefault(rec, []).extend(f"items[{line_no}].{reason}" for reason in reasons)
    reasons = _merge(shape_errors, order_failures, line_failures)
    for rec in _sums_past_bound(lines, reasons):
        reasons.setdefault(rec, []).append("quantities sum past 2**63-1")

    good = _without(orders, reasons)
    good_lines = _lines_without(lines, reasons)
    order_ids = good["id"].astype("int64")
    typed_orders = _orders_table(
        good.index.to_numpy(dtype="int64"),  # the copy's position in the batch: first copy wins
        order_ids.to_numpy(),
        _microseconds(_timestamps(good["placed_at"])),
        pa.array(good["customer_id"].to_numpy(dtype=object), pa.string()),
    )
    typed_lines = _lines_table(
        good_lines["rec"].to_numpy(dtype="int64"),
        order_ids.reindex(good_lines["rec"]).to_numpy(),
        good_lines["line_no"].to_numpy(),
        good_lines["inventory_id"].astype("int64").to_numpy(),
        good_lines["quantity"].astype("int64").to_numpy(),
    )
    return ValidOrders(typed_orders, typed_lines, rejects_frame("order", records, reasons, "id"), len(records))


def validate_order_pages(pages: Sequence[list[Any] | OrderColumns]) -> ValidOrders:
    """A chunk's pages as one batch, `rec` numbering the records across them page by page: a clean page's columns
    as they are (orderly.boundary.columns checked them against the same models), every other page's records through
    validate_orders, whole."""
    starts = np.cumsum([0, *map(len, pages)])[:-1].tolist()
    recs_of_records = [
        np.arange(start, start + len(page)) for start, page in zip(starts, pages, strict=True) if isinstance(page, list)
    ]
    orders, lines = [], []
    rejects = rejects_frame("order", [], {}, "id")
    if recs_of_records:
        valid = validate_orders([record for page in pages if isinstance(page, list) for record in page])
        at = np.concatenate(recs_of_records)  # a record's position among the record pages -> its rec in the chunk
        orders.append(valid.orders.set_column(0, "rec", pa.array(at[valid.orders["rec"].to_numpy()])))
        lines.append(valid.lines.set_column(0, "rec", pa.array(at[valid.lines["rec"].to_numpy()])))
        rejects = valid.rejects
    for start, page in zip(starts, pages, strict=True):
        if isinstance(page, OrderColumns):
            rec = np.arange(start, start + len(page), dtype=np.int64)
            orders.append(_orders_table(rec, page.order_id, page.placed_at, page.customer_id))
            first_line = np.cumsum(page.line_counts) - page.line_counts
            line_no = np.arange(len(page.quantity), dtype=np.int64) - np.repeat(first_line, page.line_counts)
            lines.append(
                _lines_table(
                    np.repeat(rec, page.line_counts),
                    np.repeat(page.order_id, page.line_counts),
                    line_no,
                    page.inventory_id,
                    page.quantity,
                )
            )
    return ValidOrders(_concat(orders, _ORDERS), _concat(lines, _LINES), rejects, sum(map(len, pages)), starts)


_STAMP = pa.timestamp("us", tz="UTC")  # TIMESTAMPTZ as the store keeps it
_ORDERS = pa.schema(
    [("rec", pa.int64()), ("order_id", pa.int64()), ("placed_at", _STAMP), ("customer_id", pa.string())]
)
_LINES = pa.schema(
    [
        ("rec", pa.int64()),
        ("order_id", pa.int64()),
        ("line_no", pa.int64()),
        ("inventory_id", pa.int64()),
        ("quantity", pa.int64()),
    ]
)


def _table(schema: pa.Schema, columns) -> pa.Table:
    return pa.Table.from_arrays(
        [
            column if isinstance(column, pa.Array) else pa.array(column, field.type)
            for column, field in zip(columns, schema, strict=True)
        ],
        schema=schema,
    )


def _orders_table(*columns) -> pa.Table:
    return _table(_ORDERS, columns)


def _lines_table(*columns) -> pa.Table:
    return _table(_LINES, columns)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables) if tables else schema.empty_table()


def _microseconds(placed_at: pd.Series) -> pa.Array:
    """TIMESTAMPTZ as DuckDB stores it: microseconds, truncated toward zero as its pandas scan does (a
    nanosecond column through Arrow would be TIMESTAMPTZ_NS, which hashes differently, and a DuckDB cast rounds)."""
    return pc.cast(pa.Array.from_pandas(placed_at), _STAMP, safe=False)


def _sums_past_bound(lines: pd.DataFrame, rejected: dict[int, list[str]]) -> list[int]:
    """Orders (by rec) whose line quantities sum past MAX_INT, exactly. Only orders with a line above
    MAX_INT // n_lines can, so the exact Python sum runs on those few alone."""
    lines = _lines_without(lines, rejected)
    if lines.empty:
        return []
    recs = lines["rec"].to_numpy()
    quantities = lines["quantity"]
    values = quantities.to_numpy(dtype="int64")  # every quantity here passed the schema: an int in 1..MAX_INT
    n_lines = np.bincount(recs)[recs]
    suspects = np.unique(recs[values > MAX_INT // n_lines])
    if len(suspects) == 0:
        return []
    by_rec = pd.Series(quantities.to_numpy(), index=recs)
    return [int(rec) for rec in suspects if sum(by_rec.loc[[rec]].tolist()) > MAX_INT]


def _conflicting_items(frame: pd.DataFrame, rejected: dict[int, list[str]]) -> tuple[dict[int, list[str]], list[int]]:
    """An item twice in one snapshot: identical copies are one (the later ones are repeats); copies that
    differ are all quarantined, since no copy can be told right: the item keeps its last good value."""
    good = _without(frame, rejected)
    ids = good["inventory_id"]
    twice = ids.duplicated(keep=False)
    if not twice.any():
        return {}, []
    copies = good[twice].astype(str)  # compare content as text: 1 and True must not be equal
    distinct = copies.drop_duplicates().groupby("inventory_id").size()
    conflicted = set(distinct[distinct > 1].index)
    reasons = {
        int(rec): [f"inventory_id {ids[rec]} appears more than once in the snapshot with different content"]
        for rec, key in copies["inventory_id"].items()
        if key in conflicted
    }
    agreed = copies[~copies["inventory_id"].isin(conflicted)]
    return reasons, [int(rec) for rec in agreed.index[agreed.duplicated()]]


def validate_stock(records: list[Any]) -> ValidStock:
    frame, shape_errors = flatten_stock(records)
    reasons = _merge(shape_errors, failures_by_row(StockRecord, frame))
    conflicts, repeats = _conflicting_items(frame, reasons)
    reasons.update(conflicts)
    good = _without(frame, [*reasons, *repeats])
    items = pd.DataFrame(
        {
            "inventory_id": good["inventory_id"].astype("int64"),
            "product_id": good["product_id"].astype("int64"),
            "sku": good["sku"].astype(str),
            "product_name": good["product_name"].astype(str),
            "warehouse_id": good["warehouse_id"].astype("int64"),
            "quantity": good["quantity"].astype("int64"),
            "updated_at": _timestamps(good["updated_at"]),
        }
    ).reset_index(drop=True)
    return ValidStock(items, rejects_frame("stock", records, reasons, "inventory_id"), len(records), len(repeats))
