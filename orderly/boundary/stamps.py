"""The one timestamp form a column of text is read from without a parse per value: `YYYY-MM-DDTHH:MM:SSZ`.

A clean page's stamps are all twenty ASCII characters, so an Arrow string column of them is a matrix of bytes:
the separators are checked in place, the digits become numbers, and the calendar (month lengths, leap years) and
the epoch seconds are numpy arithmetic over the whole column. Years 1900-2199 only, which pandas holds at any
resolution; any other form or year (an offset, a fraction, a week date) is for pandas to judge, on the record path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

WIDTH = 20
_SEPARATORS = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: "Z"}
_SEPARATOR_AT = list(_SEPARATORS)
_SEPARATOR = np.frombuffer("".join(_SEPARATORS.values()).encode(), dtype=np.uint8)
_DIGITS = [i for i in range(WIDTH) if i not in _SEPARATORS]  # YYYY MM DD hh mm ss: 14 digits
# The 14 digits times this matrix: each stamp's year, month, day, hour, minute and second in one product.
_PLACES = np.zeros((14, 6), dtype=np.float64)
_PLACES[0:4, 0] = [1000, 100, 10, 1]
for _part in range(1, 6):
    _PLACES[2 + 2 * _part : 4 + 2 * _part, _part] = [10, 1]
_LOWEST = np.array([1900, 1, 1, 0, 0, 0])
_HIGHEST = np.array([2199, 12, 31, 23, 59, 59])
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


# The last column read and its answer: the check (schemas.py) and the conversion (columns.py) read the
# same column one after the other. The column is held, so its id cannot name another while it is here.
_last: tuple[pa.Array | None, np.ndarray | None] = (None, None)


def canonical_seconds(stamps: pa.Array) -> np.ndarray | None:
    """Seconds since 1970-01-01T00:00:00Z for each stamp, or None unless every one is canonical and real."""
    global _last
    column, seconds = _last
    if column is not stamps:
        seconds = _read(stamps)
        _last = (stamps, seconds)
    return seconds


def _read(stamps: pa.Array) -> np.ndarray | None:
    if not pa.types.is_string(stamps.type) or stamps.null_count:
        return None
    count = len(stamps)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.frombuffer(stamps.buffers()[1], dtype=np.int32)[stamps.offset : stamps.offset + count + 1]
    if offsets[-1] - offsets[0] != WIDTH * count or not bool((np.diff(offsets) == WIDTH).all()):
        return None
    text = np.frombuffer(stamps.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(count, WIDTH)
    if not bool((text[:, _SEPARATOR_AT] == _SEPARATOR).all()):
        return None
    digits = text[:, _DIGITS].astype(np.float64) - ord("0")
    if digits.min() < 0 or digits.max() > 9:
        return None
    # One product gives each stamp's year, month, day, hour, minute and second. In floats: numpy multiplies integer
    # matrices in a plain loop (5x slower), and digits times place values stay far below 2**53, so it is exact.
    parts = (digits @ _PLACES).astype(np.int64)
    if not (bool((parts >= _LOWEST).all()) and bool((parts <= _HIGHEST).all())):
        return None
    year, month, day, hour, minute, second = parts.T.copy()
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    if not bool((day <= _DAYS_IN_MONTH[month] + (leap & (month == 2))).all()):
        return None
    return _days_since_epoch(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second


def _days_since_epoch(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days from 1970-01-01 to each proleptic Gregorian date (Howard Hinnant's days_from_civil, over arrays)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468
