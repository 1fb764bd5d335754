"""pandera's verdict on a clean batch, without pandera's machinery around the checks.

Validating a 50,000-row frame through pandera cost about three times its checks (112 ms against ~40 ms for the
orders): it copies the frame, looks for nulls again before every check, and builds its error objects. Where
nothing fails none of that yields anything. `nothing_fails` evaluates the model's own nullability and checks
(the same check objects, through pandera's own check backend, nulls dropped as pandera drops them) and answers
only "nothing fails". Anything else (a failure, an error in a check, a schema feature this module does not
model) is left to pandera, which then finds every failure case, so a bad batch's reasons are pandera's as before.

It reads the model's schema, so a field or check added to a model is covered without a change here; a feature it
does not know (coercion, uniqueness, parsers, frame-wide checks, grouped checks, ...) turns the shortcut off for
that model rather than being skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.engines import pandas_engine

# Schema settings under which pandera's verdict is exactly nullability + dtype + column checks: each attribute
# with the value that makes it inert. An attribute not listed here or among the descriptive ones (a setting a
# later pandera adds) turns the shortcut off for that model.
_INERT_FRAME = {
    "_dtype": None,
    "checks": [],
    "_coerce": False,
    "parsers": [],
    "index": None,
    "strict": False,
    "ordered": False,
    "_unique": None,
    "unique_column_names": False,
    "add_missing_columns": False,
    "drop_invalid_rows": False,
}
_DESCRIPTIVE_FRAME = {
    "columns",
    "name",
    "title",
    "description",
    "metadata",
    "report_duplicates",
    "on_missing_columns",
}  # the last two matter only with `unique` or a missing column
_INERT_COLUMN = {
    "coerce": False,
    "parsers": [],
    "drop_invalid_rows": False,
    "unique": False,
    "default": None,
    "required": True,
    "regex": False,
}
_DESCRIPTIVE_COLUMN = {
    "_dtype",
    "checks",
    "nullable",
    "name",
    "title",
    "description",
    "metadata",
    "report_duplicates",
    "on_missing",
}  # dtype, checks and nullable are evaluated below


@dataclass(frozen=True)
class _Column:
    name: str
    nullable: bool
    dtype: Any
    checks: tuple[pa.Check, ...]


def _inert(component: Any, inert: dict[str, Any], descriptive: set[str]) -> bool:
    settings = vars(component)
    return set(settings) <= set(inert) | descriptive and all(
        settings[name] == value for name, value in inert.items() if name in settings
    )


@cache
def _columns(model: type[pa.DataFrameModel]) -> tuple[_Column, ...] | None:
    """What pandera would evaluate for this model, or None when the shortcut cannot stand in for it."""
    schema = model.to_schema()
    if not _inert(schema, _INERT_FRAME, _DESCRIPTIVE_FRAME):
        return None
    columns = []
    for name, column in schema.columns.items():
        if not _inert(column, _INERT_COLUMN, _DESCRIPTIVE_COLUMN):
            return None
        if any(check.groupby is not None or check.groups is not None for check in column.checks):
            return None
        columns.append(_Column(name, column.nullable, column.dtype, tuple(column.checks)))
    return tuple(columns)


def covers(model: type[pa.DataFrameModel]) -> bool:
    """Whether the shortcut can answer for this model at all (the tests hold our models to it)."""
    return _columns(model) is not None


def nothing_fails(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> bool:
    """True only when pandera's lazy validation of `frame` would report nothing; False means "ask pandera"."""
    columns = _columns(model)
    if columns is None:
        return False
    try:
        return all(_column_passes(column, frame) for column in columns)
    except Exception:  # noqa: BLE001 - pandera reports a check that raises as a failure of its own: its to describe
        return False


def _column_passes(column: _Column, frame: pd.DataFrame) -> bool:
    if column.name not in frame.columns:
        return False
    series = frame[column.name]
    if not isinstance(series, pd.Series):  # a duplicated column name
        return False
    if column.dtype is not None and not _dtype_passes(column.dtype, series):
        return False
    has_nulls = _has_nulls(series)  # once per column: pandera looks again before each check
    if has_nulls and not column.nullable:
        return False
    without_nulls = series.dropna() if has_nulls else series
    for check in column.checks:
        values = without_nulls if check.ignore_na else series
        backend = check.get_backend(values)(check)
        if not bool(backend.postprocess(values, backend.apply(values)).check_passed):
            return False  # a warning-only check too: pandera then warns, and reports nothing
    return True


def _has_nulls(series: pd.Series) -> bool:
    # A column of only ints or only str (a clean batch's) holds no null, and pandas' type inference says so at
    # half the cost of isna (each pass touches 50,000 scattered objects); anything else asks isna itself.
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) in ("integer", "string", "empty"):
        return False
    return bool(series.isna().any())


def _dtype_passes(dtype: Any, series: pd.Series) -> bool:
    verdict = dtype.check(pandas_engine.Engine.dtype(series.dtype), series)  # as pandera's check_dtype asks it
    return bool(verdict) if isinstance(verdict, bool) else bool(verdict.all())


# ---- typed columns ----------------------------------------------------------------------------------------

# Each check's verdict over a typed Arrow column, registered by orderly/boundary/schemas.py beside the pandas one:
# True only when pandera's check would pass every value of the record path's column.
_ON_COLUMNS: dict[str, Callable[..., bool]] = {}


def on_columns(check_name: str) -> Callable[[Callable[..., bool]], Callable[..., bool]]:
    def register(verdict: Callable[..., bool]) -> Callable[..., bool]:
        _ON_COLUMNS[check_name] = verdict
        return verdict

    return register


def columns_pass(model: type[pa.DataFrameModel], columns: Mapping[str, pyarrow.Array]) -> bool:
    """True only when pandera would report nothing for these values as the record path hands them over.

    The model says which fields, whether they may be null and which checks with which parameters; each check is
    answered by its column verdict. A field missing, a null, a check with no column verdict, any doubt: False,
    and the page goes the record path, where pandera itself decides. The dtype is not asked: the reader typed
    the columns from the JSON, which is what the record path's `integer` and `text` checks look at."""
    spec = _columns(model)
    if spec is None:
        return False
    for column in spec:
        array = columns.get(column.name)
        if array is None or array.null_count:
            return False
        for check in column.checks:
            verdict = _ON_COLUMNS.get(check.name)
            if verdict is None or not verdict(array, **check.statistics):
                return False
    return True
