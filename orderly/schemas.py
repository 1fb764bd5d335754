"""pandera schemas for the records at the boundary, and the quarantine that turns failures into reasons."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pandas as pd
import pandera.extensions as extensions
import pandera.pandas as pa
from pandera.typing import Series


# Checks run on raw (object) columns so that a wrong JSON type is reported as such, not coerced:
# "3" or true where an integer belongs is a wrong type, as the contract says.
@extensions.register_check_method()
def integer(series: pd.Series) -> pd.Series:
    return series.map(type).eq(int)


@extensions.register_check_method(statistics=["minimum"])
def int_at_least(series: pd.Series, *, minimum: int) -> pd.Series:
    is_int = series.map(type).eq(int)
    numbers = pd.to_numeric(series.where(is_int), errors="coerce")
    return ~is_int | numbers.ge(minimum)  # non-integers are the `integer` check's to report


@extensions.register_check_method()
def text(series: pd.Series) -> pd.Series:
    return series.map(lambda value: isinstance(value, str) and value.strip() != "")


@extensions.register_check_method()
def iso_timestamp(series: pd.Series) -> pd.Series:
    is_str = series.map(type).eq(str)
    parsed = pd.to_datetime(series.where(is_str), utc=True, errors="coerce", format="ISO8601")
    return is_str & parsed.notna()


class OrderRecord(pa.DataFrameModel):
    id: Series[object] = pa.Field(nullable=False, unique=True, integer=(), int_at_least={"minimum": 1})
    placed_at: Series[object] = pa.Field(nullable=False, iso_timestamp=())
    customer_id: Series[object] = pa.Field(nullable=False, text=())
    n_lines: Series[object] = pa.Field(nullable=True, int_at_least={"minimum": 1})


class OrderLineRecord(pa.DataFrameModel):
    inventory_id: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 1})
    quantity: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 1})


class StockRecord(pa.DataFrameModel):
    inventory_id: Series[object] = pa.Field(nullable=False, unique=True, integer=(), int_at_least={"minimum": 1})
    product_id: Series[object] = pa.Field(nullable=False, integer=())
    sku: Series[object] = pa.Field(nullable=False, text=())
    product_name: Series[object] = pa.Field(nullable=False, text=())
    warehouse_id: Series[object] = pa.Field(nullable=False, integer=())
    quantity: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 0})
    updated_at: Series[object] = pa.Field(nullable=False, iso_timestamp=())


def _describe(column: str, check: str, value: Any) -> str:
    """One failure case in words an operator reads without knowing pandera."""
    shown = "missing" if value is None else repr(value)
    if check == "not_nullable":
        return f"{column} is missing"
    if check == "field_uniqueness":
        return f"{column} {shown} appears more than once in one batch"
    if check == "integer":
        return f"{column} must be an integer, got {shown}"
    if check.startswith("int_at_least"):
        minimum = check[check.rfind("=") + 1 : check.rfind(")")] or "?"
        if column == "n_lines":
            return "order has no lines"
        return f"{column} {shown} is below {minimum}"
    if check == "text":
        return f"{column} must be a non-empty string, got {shown}"
    if check == "iso_timestamp":
        return f"{column} is not an ISO-8601 timestamp: {shown}"
    return f"{column} failed {check}: {shown}"


def failures_by_row(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> dict[int, list[str]]:
    """Validate every row (lazily) and return the reasons of each failing row, keyed by its index."""
    reasons: dict[int, list[str]] = defaultdict(list)
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        for column, check, value, index in zip(
            cases["column"], cases["check"], cases["failure_case"], cases["index"]
        ):
            if index is None or pd.isna(index):
                raise  # a whole-frame failure (e.g. a missing column) is a bug, not a bad record
            reasons[int(index)].append(_describe(str(column), str(check), value))
    return dict(reasons)


def rejects_frame(source: str, records: list[Any], reasons: dict[int, list[str]], key_field: str) -> pd.DataFrame:
    """The quarantined records with every reason each one failed, ready for the store."""
    rows = []
    for rec in sorted(reasons):
        record = records[rec]
        key = record.get(key_field) if isinstance(record, dict) else None
        rows.append(
            {
                "source": source,
                "record_key": str(key) if isinstance(key, int) and not isinstance(key, bool) else None,
                "raw": orjson.dumps(record, default=str).decode(),
                "reasons": "; ".join(dict.fromkeys(reasons[rec])),  # each reason once, in order
            }
        )
    return pd.DataFrame(rows, columns=["source", "record_key", "raw", "reasons"])
