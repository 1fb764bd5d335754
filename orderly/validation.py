"""Splits a batch of raw records into typed good rows and quarantined rejects: received = loaded + rejected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from orderly.records import flatten_orders, flatten_stock
from orderly.schemas import OrderLineRecord, OrderRecord, StockRecord, failures_by_row, rejects_frame


@dataclass
class ValidOrders:
    orders: pd.DataFrame   # order_id, placed_at, customer_id
    lines: pd.DataFrame    # order_id, line_no, inventory_id, quantity
    rejects: pd.DataFrame  # source, record_key, raw, reasons
    received: int


@dataclass
class ValidStock:
    items: pd.DataFrame
    rejects: pd.DataFrame
    received: int


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
    return pd.to_datetime(series, utc=True, format="ISO8601")


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

    good = orders.drop(index=list(reasons))
    good_lines = lines[~lines["rec"].isin(list(reasons))]
    order_ids = good["id"].astype("int64")
    typed_orders = pd.DataFrame(
        {
            "order_id": order_ids.to_numpy(),
            "placed_at": _timestamps(good["placed_at"]).array,  # tz-aware: to_numpy() would box every value
            "customer_id": good["customer_id"].astype(str).to_numpy(),
        }
    )
    typed_lines = pd.DataFrame(
        {
            "order_id": order_ids.reindex(good_lines["rec"]).to_numpy(),
            "line_no": good_lines["line_no"].to_numpy(),
            "inventory_id": good_lines["inventory_id"].astype("int64").to_numpy(),
            "quantity": good_lines["quantity"].astype("int64").to_numpy(),
        }
    )
    return ValidOrders(typed_orders, typed_lines, rejects_frame("order", records, reasons, "id"), len(records))


def validate_stock(records: list[Any]) -> ValidStock:
    frame, shape_errors = flatten_stock(records)
    reasons = _merge(shape_errors, failures_by_row(StockRecord, frame))
    good = frame.drop(index=list(reasons))
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
    return ValidStock(items, rejects_frame("stock", records, reasons, "inventory_id"), len(records))
