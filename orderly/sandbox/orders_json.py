"""An orders page's JSON bytes straight from the generator's numpy columns, with no dict per order.

Building 1,000 order dicts (and their line dicts) for orjson cost the sandbox 5 to 7 ms a page, most of the
benchmark's fetch floor. Here every order is one row of a byte matrix laid out field by field (the constants
copied from one template row, integers as ASCII digits four at a time); every byte the record does not have
(an integer's leading zeros, the lines past an order's count) is left NUL, and one boolean pass drops the NULs.
That is a fixed number of numpy calls a page, whatever its size. The bytes are exactly what `orjson.dumps` gives
for the dict form (tests/test_sandbox.py checks that over many pages); JSON text never holds a NUL byte, so dropping
them cannot eat real content.
"""

from __future__ import annotations

from functools import cache

import numpy as np


def _quads(leading: str, zero: str) -> list[str]:
    """0..9999 as four characters each: leading zeros as `leading`, the number 0 itself as `zero`."""
    return [zero] + [f"{i:4d}".replace(" ", leading) for i in range(1, 10_000)]


# Four ASCII digits per entry, read as one uint32 so that one `take` writes four digits. Entry q is q in full
# (a quad below another); 10_000 + q is q with NUL for its leading zeros (the top quad of a number, 0 kept
# as "0"); 20_000 + q the same but 0 as nothing (a quad above the number's top).
_QUADS = np.frombuffer(
    "".join(_quads("0", "0000") + _quads("\0", "\0" * 3 + "0") + _quads("\0", "\0" * 4)).encode(), dtype=np.uint32
)
_TWO_DIGITS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8).reshape(100, 2)
_SECONDS_PER_DAY = 86_400


@cache
def _clock() -> np.ndarray:
    """Entry s is second s of a day as "HH:MM:SS", one uint64 each: one `take` a page writes all the times.

    Built once (0.7 MB) on first use."""
    hours, rest = np.divmod(np.arange(_SECONDS_PER_DAY), 3600)
    minutes, seconds = np.divmod(rest, 60)
    colon = np.full((_SECONDS_PER_DAY, 1), ord(":"), dtype=np.uint8)
    text = np.concatenate([_TWO_DIGITS[hours], colon, _TWO_DIGITS[minutes], colon, _TWO_DIGITS[seconds]], axis=1)
    return text.view(np.uint64).ravel()


def _as_rows(values: np.ndarray, width: int) -> np.ndarray:
    """A 1-D array of `width`-byte items as a [len, width] byte matrix."""
    return values.view(np.uint8).reshape(len(values), width)


def _digits(columns: list[np.ndarray]) -> list[np.ndarray]:
    """Each column of non-negative int64s as ASCII digits, one row per value, right-aligned, leading zeros NUL.

    All columns in one go, four digits a step: a numpy call costs about as much for 8,000 values as for 1,000.
    """
    values = np.stack(columns)  # [column, row]: each column contiguous for its max
    if values.min() < 0:
        raise ValueError("only non-negative integers are written here")
    maxima = values.max(axis=1).tolist()
    column_widths = [len(str(v)) for v in maxima]
    steps = -(-max(column_widths) // 4)
    # 32-bit division is three times as fast, and ids and quantities are far below 2**32 in practice.
    quads, rest = [], values.astype(np.uint32) if max(maxima) < 2**32 else values
    for step in range(steps):
        above = rest // 10_000
        quad = rest - above * 10_000
        np.add(quad, 10_000 if step == 0 else 20_000, out=quad, where=above == 0)  # the top quad, or one above it
        quads.append(_QUADS.take(quad))
        rest = above
    out = np.stack(quads[::-1], axis=-1).view(np.uint8)  # [column, row, 4 * steps]
    return [out[i, :, 4 * steps - w :] for i, w in enumerate(column_widths)]


def _timestamp(unix_seconds: np.ndarray) -> list[np.ndarray | str]:
    """`YYYY-MM-DDTHH:MM:SSZ`: numpy's datetime_as_string (unit "s") plus "Z", like the dict form."""
    days, in_day = np.divmod(unix_seconds, _SECONDS_PER_DAY)
    # One name per calendar day: a page of orders spans hours, so a range of a day or two; columns spread over
    # years name only the days they hold. Names of unequal length (past year 9999) are NUL-padded by numpy,
    # and the padding goes with the other NULs.
    first, last = int(days.min()), int(days.max())
    if last - first < len(days):
        named, index = np.arange(first, last + 1), days - first
    else:
        named, index = np.unique(days, return_inverse=True)
    names = np.array([name.encode() for name in np.datetime_as_string(named.astype("datetime64[D]")).tolist()])
    dates = _as_rows(names.take(index), names.dtype.itemsize)
    return [dates, "T", _as_rows(_clock().take(in_day), 8), "Z"]


def _rows(count: int, groups: list[tuple[list[np.ndarray | str], np.ndarray | None]]) -> np.ndarray:
    """The byte matrix of `groups` side by side: (pieces, which rows have them or None for all); a str is a constant.

    The constants go in as one template row copied to every row: one call, not one per constant."""
    template = b"".join(p.encode() if isinstance(p, str) else bytes(p.shape[1]) for group, _ in groups for p in group)
    rows = np.empty((count, len(template)), dtype=np.uint8)
    rows[:] = np.frombuffer(template, dtype=np.uint8)
    at = 0
    for group, keep in groups:
        start = at
        for piece in group:
            if isinstance(piece, str):
                at += len(piece)
            else:
                rows[:, at : at + piece.shape[1]] = piece
                at += piece.shape[1]
        if keep is not None:
            rows[~keep, start:at] = 0
    return rows


def orders_page_json(
    ids: np.ndarray,
    placed_unix_seconds: np.ndarray,
    customer_numbers: np.ndarray,
    line_counts: np.ndarray,
    inventory_ids: np.ndarray,
    quantities: np.ndarray,
    next_after_id: int | None,
) -> bytes:
    """`orjson.dumps({"orders": [...], "next_after_id": next_after_id})` of valid orders given as columns.

    Order i is {"id": ids[i], "placed_at": placed_unix_seconds[i] as UTC, "customer_id": "C-<customer_numbers[i]>",
    "items": the first line_counts[i] (inventory_id, quantity) pairs of row i of inventory_ids and quantities};
    every integer non-negative.
    """
    tail = b'],"next_after_id":' + (b"null" if next_after_id is None else str(int(next_after_id)).encode()) + b"}"
    if len(ids) == 0:
        return b'{"orders":[' + tail
    lines = inventory_ids.shape[1]
    order_id, customer, *line_fields = _digits([ids, customer_numbers, *inventory_ids.T, *quantities.T])
    head = [
        ',{"id":',
        order_id,
        ',"placed_at":"',
        *_timestamp(placed_unix_seconds),
        '","customer_id":"C-',
        customer,
        '","items":[',
    ]
    groups = [(head, None)]
    for j, (inventory_id, quantity) in enumerate(zip(line_fields[:lines], line_fields[lines:], strict=True)):
        line = [',{"inventory_id":' if j else '{"inventory_id":', inventory_id, ',"quantity":', quantity, "}"]
        groups.append((line, line_counts > j))  # lines past an order's count are zeroed, so dropped
    groups.append((["]}"], None))
    rows = _rows(len(ids), groups)
    rows[0, 0] = 0  # the first order has no comma before it
    return b"".join((b'{"orders":[', rows[rows != 0].tobytes(), tail))
