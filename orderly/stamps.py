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
_SEPARATORS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":"), 19: ord("Z")}
_DIGITS = [i for i in range(WIDTH) if i not in _SEPARATORS]
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


# The last column read and its answer: the check (orderly.schemas) and the conversion (orderly.columns) read the
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
    offsets = np.frombuffer(stamps.buffers()[1], dtype=np.int32)[stamps.offset:stamps.offset + count + 1]
    if not bool((np.diff(offsets) == WIDTH).all()):
        return None
    text = np.frombuffer(stamps.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[0] + WIDTH * count]
    text = text.reshape(count, WIDTH)
    for at, separator in _SEPARATORS.items():
        if not bool((text[:, at] == separator).all()):
            return None
    digits = text[:, _DIGITS].astype(np.int64) - ord("0")
    if not bool(((digits >= 0) & (digits <= 9)).all()):
        return None
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month, day, hour, minute, second = (digits[:, i] * 10 + digits[:, i + 1] for i in range(4, 14, 2))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    days_in_month = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + (leap & (month == 2))
    valid = ((year >= 1900) & (year <= 2199) & month_ok & (day >= 1) & (day <= days_in_month)
             & (hour <= 23) & (minute <= 59) & (second <= 59))
    if not bool(valid.all()):
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
