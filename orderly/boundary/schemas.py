"""pandera schemas for the records at the boundary, and the quarantine that turns failures into reasons."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pandera.extensions as extensions
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandera.typing import Series

from domain.bounds import MAX_INT
from orderly.boundary import schema_shortcut
from orderly.boundary.stamps import canonical_seconds
from orderly.boundary.wire import LongInteger, clipped_json

# Each check has two implementations side by side: the pandas one pandera runs on the record path's raw columns,
# and the one `schema_shortcut.columns_pass` runs on a page's typed Arrow columns (columns.py). The Arrow
# one may only answer True where the pandas one would pass every value; where it cannot be sure it answers False,
# and the page takes the record path, where pandera itself decides.
#
# Checks run on raw (object) columns so that a wrong JSON type is reported as such, not coerced:
# "3" or true where an integer belongs is a wrong type, as the contract says.
# Ints are typed by the store's BIGINT (anything wider would crash a whole batch's load); the contract's own
# lower bounds (ids >= 1, quantities >= 0 or >= 1) are `int_at_least`'s, so "-5" reads "below 1", not "out of range".
INT64_MIN, INT64_MAX = -MAX_INT - 1, MAX_INT
MAX_TEXT = 1000  # characters in a text field: a megabyte customer id is an attack, not an order
SHOWN_VALUE = 80  # characters of a bad value quoted in a reason


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


@schema_shortcut.on_columns("integer")
def _integer_column(array: pyarrow.Array) -> bool:
    return pyarrow.types.is_int64(array.type)  # the reader made every value a JSON integer within 64 bits, or failed


@extensions.register_check_method(statistics=["minimum"])
def int_at_least(series: pd.Series, *, minimum: int) -> pd.Series:
    values = _int64_values(series)
    if values is not None:
        return pd.Series(values >= minimum, index=series.index)
    is_int = _is_int(series)
    numbers = pd.to_numeric(series.where(is_int), errors="coerce")
    return ~is_int | numbers.ge(minimum)  # non-integers are the `integer` check's to report


@schema_shortcut.on_columns("int_at_least")
def _int_at_least_column(array: pyarrow.Array, *, minimum: int) -> bool:
    return pyarrow.types.is_integer(array.type) and (len(array) == 0 or int(array.to_numpy().min()) >= minimum)


def _is_text(value: Any) -> bool:
    if not isinstance(value, str) or value.strip() == "" or len(value) > MAX_TEXT:
        return False
    try:
        value.encode("utf-8")  # a lone surrogate (JSON allows the escape) cannot be stored or shown
    except UnicodeEncodeError:
        return False
    return True


@extensions.register_check_method()
def text(series: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(series, skipna=False) == "string":  # all str: blanks, length and encoding can fail
        try:
            strings = series.astype(str)  # encodes every value as UTF-8: a lone surrogate raises
        except UnicodeEncodeError:
            return series.map(_is_text)
        return strings.str.strip().ne("") & strings.str.len().le(MAX_TEXT)
    return series.map(_is_text)


@schema_shortcut.on_columns("text")
def _text_column(array: pyarrow.Array) -> bool:
    """Sure only of the plain case: 1..MAX_TEXT characters starting with a printable ASCII character (never
    whitespace by any definition, so the value is not blank); the reader refused text that is not valid UTF-8."""
    if not pyarrow.types.is_string(array.type):
        return False
    if len(array) == 0:
        return True
    lengths = pc.utf8_length(array)
    if pc.min(lengths).as_py() < 1 or pc.max(lengths).as_py() > MAX_TEXT:
        return False
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array)]
    first = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets]
    return bool(((first >= 0x21) & (first <= 0x7E)).all())


@extensions.register_check_method()
def iso_timestamp(series: pd.Series) -> pd.Series:
    if set(map(type, series.to_numpy())) <= {str}:  # all str, the common case: no mask (Series.map costs 5x this)
        return _iso_parse(series).notna()
    is_str = series.map(type).eq(str)
    return is_str & _iso_parse(series.where(is_str)).notna()


def _iso_parse(series: pd.Series) -> pd.Series:
    # cache=False: parsing is cheaper than pandas' cache of repeated stamps (see validation._timestamps)
    return pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601", cache=False)


@schema_shortcut.on_columns("iso_timestamp")
def _iso_timestamp_column(array: pyarrow.Array) -> bool:
    """Sure only of the canonical form, UTC to the second with "Z" (stamps.py); any other is pandas' to judge."""
    return canonical_seconds(array) is not None


class OrderRecord(pa.DataFrameModel):
    # No `unique`: repeats of an id are the loader's to judge (identical: one order; different: a conflict).
    id: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 1})
    placed_at: Series[object] = pa.Field(nullable=False, iso_timestamp=())
    customer_id: Series[object] = pa.Field(nullable=False, text=())
    n_lines: Series[object] = pa.Field(nullable=True, int_at_least={"minimum": 1})


class OrderLineRecord(pa.DataFrameModel):
    inventory_id: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 1})
    quantity: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 1})


class StockRecord(pa.DataFrameModel):
    inventory_id: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 1})
    product_id: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 0})
    sku: Series[object] = pa.Field(nullable=False, text=())
    product_name: Series[object] = pa.Field(nullable=False, text=())
    warehouse_id: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 0})
    quantity: Series[object] = pa.Field(nullable=False, integer=(), int_at_least={"minimum": 0})
    updated_at: Series[object] = pa.Field(nullable=False, iso_timestamp=())


def _describe(column: str, check: str, value: Any) -> str:
    """One failure case in words an operator reads without knowing pandera."""
    shown = "missing" if value is None else _shown(value)
    if check == "not_nullable":
        return f"{column} is missing"
    if check == "integer":
        if type(value) is LongInteger:
            return f"{column} is out of range (0..2**63-1): an integer with {value.digits} digits"
        if type(value) is int:
            return f"{column} {shown} is out of range (0..2**63-1)"
        return f"{column} must be an integer, got {shown}"
    if check.startswith("int_at_least"):
        minimum = check[check.rfind("=") + 1 : check.rfind(")")] or "?"
        if column == "n_lines":
            return "order has no lines"
        return f"{column} {shown} is below {minimum}"
    if check == "text":
        return f"{column} must be a non-empty string of at most {MAX_TEXT} characters in valid Unicode, got {shown}"
    if check == "iso_timestamp":
        return f"{column} is not an ISO-8601 timestamp: {shown}"
    return f"{column} failed {check}: {shown}"


def _shown(value: Any) -> str:
    """A bad value as a reason quotes it, in at most SHOWN_VALUE characters: repr for a scalar (escapes
    surrogates), JSON text for an object or list (repr would recurse through a value nested a thousand deep)."""
    if isinstance(value, _Container):
        return value.text
    if isinstance(value, (dict, list)):
        text = clipped_json(value, SHOWN_VALUE + 1)
        return text if len(text) <= SHOWN_VALUE else f"{text[:SHOWN_VALUE]}... (cut)"
    if isinstance(value, str) and len(value) > SHOWN_VALUE:  # a repr of megabytes to keep 80 characters
        return f"{repr(value[:SHOWN_VALUE])[:SHOWN_VALUE]}... ({len(value) + 2} characters)"
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE else f"{text[:SHOWN_VALUE]}... ({len(text)} characters)"


# False sends every frame through pandera itself: the tests compare the two ways on hostile batches.
SHORTCUT = True


def failures_by_row(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> dict[int, list[str]]:
    """Validate every row (lazily) and return the reasons of each failing row, keyed by its index."""
    if SHORTCUT and schema_shortcut.nothing_fails(model, frame):
        return {}  # a clean frame: pandera would report nothing (see orderly/boundary/schema_shortcut.py)
    return _pandera_failures(model, frame)


def _pandera_failures(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    try:
        model.validate(_containers_shown(frame), lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        for column, check, value, index in zip(
            cases["column"], cases["check"], cases["failure_case"], cases["index"], strict=True
        ):
            if index is None or pd.isna(index):
                raise  # a whole-frame failure (e.g. a missing column) is a bug, not a bad record
            reasons[int(index)].append(_describe(str(column), str(check), value))
    return dict(reasons)


class _Container:
    """An object or list where a scalar belongs, as pandera gets it: pandera formats its failure cases with
    str(), which recurses through a value nested a thousand deep; this one reads as its clipped JSON text."""

    __slots__ = ("text",)

    def __init__(self, value: Any) -> None:
        text = clipped_json(value, SHOWN_VALUE + 1)
        self.text = text if len(text) <= SHOWN_VALUE else f"{text[:SHOWN_VALUE]}... (cut)"

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _containers_shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each object or list value wrapped (they fail every check either way). Only failing
    frames come here, so the look at each value costs nothing on the clean path."""
    columns = {}
    for name, column in frame.items():
        if column.dtype == object:
            is_container = column.map(_is_container)
            if is_container.any():
                column = column.where(~is_container, column[is_container].map(_Container))
        columns[name] = column
    return pd.DataFrame(columns, copy=False)


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list))


MAX_RAW = 10_000  # characters of a quarantined record kept as evidence


def _raw_json(record: Any) -> str:
    try:
        raw = orjson.dumps(record).decode()
    except TypeError:  # what orjson refuses: a marker of the decoder, an integer beyond 64 bits, a lone
        raw = clipped_json(record, MAX_RAW + 1)  # surrogate, nesting past 255 levels (ASCII-escaped: storable)
        if len(raw) <= MAX_RAW:
            return raw
        note = "... (cut)"
        return raw[: MAX_RAW - len(note)] + note
    if len(raw) <= MAX_RAW:
        return raw
    note = f"... (cut; {len(raw)} characters)"
    return raw[: MAX_RAW - len(note)] + note


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
