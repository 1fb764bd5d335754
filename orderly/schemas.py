"""pandera schemas for the records at the boundary, and the quarantine that turns failures into reasons."""

from __future__ import annotations

from collections import defaultdict
import json
from typing import Any

import orjson
import pandas as pd
import pandera.extensions as extensions
import pandera.pandas as pa
from pandera.typing import Series


# Checks run on raw (object) columns so that a wrong JSON type is reported as such, not coerced:
# "3" or true where an integer belongs is a wrong type, as the contract says.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the store's BIGINT: a wider int would crash the whole batch's load


def _int64_values(series: pd.Series):
    """The column as an int64 array when pandas sees only integers and all fit in 64 bits (the common
    case: a clean batch, answered without looking at each value in Python); otherwise None."""
    if pd.api.types.infer_dtype(series, skipna=False) != "integer":
        return None
    try:
        return series.to_numpy(dtype="int64")
    except OverflowError:  # an int beyond 64 bits: the caller checks value by value
        return None


def _is_int(series: pd.Series) -> pd.Series:
    """True where the value is a plain int (not bool, float or str) that fits in 64 bits."""
    if _int64_values(series) is not None:
        return pd.Series(True, index=series.index)
    return series.map(lambda value: type(value) is int and INT64_MIN <= value <= INT64_MAX)


@extensions.register_check_method()
def integer(series: pd.Series) -> pd.Series:
    return _is_int(series)


@extensions.register_check_method(statistics=["minimum"])
def int_at_least(series: pd.Series, *, minimum: int) -> pd.Series:
    values = _int64_values(series)
    if values is not None:
        return pd.Series(values >= minimum, index=series.index)
    is_int = _is_int(series)
    numbers = pd.to_numeric(series.where(is_int), errors="coerce")
    return ~is_int | numbers.ge(minimum)  # non-integers are the `integer` check's to report


@extensions.register_check_method()
def text(series: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(series, skipna=False) == "string":  # all str: only blanks can fail
        return series.astype(str).str.strip().ne("")
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
        if type(value) is int:
            return f"{column} {shown} is out of range (a 64-bit integer is expected)"
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


def _raw_json(record: Any) -> str:
    try:
        return orjson.dumps(record, default=str).decode()
    except TypeError:  # e.g. an integer beyond 64 bits, which orjson refuses
        return json.dumps(record, default=str)


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
                "raw": _raw_json(record),
                "reasons": "; ".join(dict.fromkeys(reasons[rec])),  # each reason once, in order
            }
        )
    return pd.DataFrame(rows, columns=["source", "record_key", "raw", "reasons"])
