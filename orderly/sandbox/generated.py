"""Generated data sets of any size, deterministic and cheap to page through.

Nothing is materialised per order: every field of order number k (0-based) is a
hash of (seed, k, field), computed with numpy for just the page asked for. That
makes a data set prefix-stable: order k is the same whatever the total N, so a
benchmark can restart the sandbox with N + 1000 orders and the first N stay put.
Stock (a few arrays of length `items`) is built once; its on-hand quantities
scale with the demand N orders put on each item, so they depend on N.

`orders_page` is the reference form (dicts); `orders_page_json` serves the same page as bytes, and writes a page
without broken records straight from the columns (orders_json.py), as the HTTP sandbox does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import orjson

from .base import DataSet, check_page_size
from .orders_json import orders_page_json

_U64 = np.uint64
_MASK = (1 << 64) - 1

# Hash streams: one per independent random field, so adding a field never shifts another.
_GAP, _NLINES, _CUSTOMER, _TIME = 1, 2, 3, 4
_ITEM, _QTY, _REPEAT, _UNKNOWN, _UNKNOWN_ITEM = 10, 20, 30, 40, 50  # + line number 0..2
_BAD, _BAD_KIND, _BAD_VARIANT = 60, 61, 62
_S_GROUP, _S_ROTATE, _S_SHARE, _S_ROUND, _S_ZERO = 100, 101, 102, 103, 104
_S_BAD, _S_BAD_KIND, _S_BAD_VARIANT = 110, 111, 112

MAX_LINES = 3
UNKNOWN_LINE_RATE = 0.01  # share of lines naming an inventory id the warehouse does not have
REPEAT_LINE_RATE = 0.12  # share of lines 2..3 that repeat the previous line's item
ZERO_STOCK_RATE = 0.05  # share of inventory items with exactly 0 on hand
MEAN_QTY = 3.0  # quantities are uniform 1..5
# On hand = demand x a factor drawn from [LOW, HIGH): below 1 on average, so stock runs out
# part-way through the orders and a realistic share of them fail for INSUFFICIENT_STOCK.
STOCK_SHARE_LOW, STOCK_SHARE_HIGH = 0.45, 1.35
MIN_STOCK_BASIS = 6.0
# Every stream a page of orders draws from (`_order_columns` hashes them in one go); line 0 repeats nothing.
_ORDER_STREAMS = (
    [_GAP, _NLINES, _CUSTOMER, _TIME, _BAD]
    + [field + line for field in (_ITEM, _QTY, _UNKNOWN, _UNKNOWN_ITEM) for line in range(MAX_LINES)]
    + [_REPEAT + line for line in range(1, MAX_LINES)]
)

ORDER_FLAWS = ("line_quantity", "missing_id", "no_lines", "duplicate_id", "wrong_type", "bad_timestamp")
STOCK_FLAWS = ("negative_quantity", "missing_id", "duplicate_id", "wrong_type", "bad_timestamp")

_EPOCH = np.datetime64("2026-01-01T00:00:00", "s")
_EPOCH_UNIX = int(_EPOCH.astype(np.int64))  # _EPOCH in seconds since 1970
_SLOT_SECONDS = 30  # order k is placed within [k*30, k*30+30) s after _EPOCH: ascending like ids
STOCK_UPDATED_AT = "2026-01-01T00:00:00Z"
_BAD_TIMESTAMPS = ("not-a-date", "2026-13-45T25:61:00Z", "yesterday at noon")

_ADJECTIVES = ("Black", "White", "Red", "Blue", "Green", "Grey", "Large", "Small", "Classic", "Eco")
_NOUNS = ("mug", "T-shirt", "poster", "tote bag", "notebook", "pen set", "cap", "sticker", "hoodie", "lamp")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash (uint64 arithmetic wraps)."""
    x = x + _U64(0x9E3779B97F4A7C15)  # a new array: the caller's is never changed
    # In place from here: a page hashes ~20 streams, and each temporary array is one more pass over them.
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


class _Hash:
    """Counter-based randomness: value(stream, k) depends only on (seed, stream, k)."""

    def __init__(self, seed: int) -> None:
        self._key = int(_mix(np.array([seed & _MASK], dtype=_U64))[0])
        # Per stream: a one-element array costs nearly as much to hash as a page of 1,000 (numpy's call overhead).
        self._bases: dict[int, np.uint64] = {}

    def _base(self, stream: int) -> np.uint64:
        base = self._bases.get(stream)
        if base is None:
            base = _mix(np.array([self._key ^ ((stream * 0xD1B54A32D192ED03) & _MASK)], dtype=_U64))[0]
            self._bases[stream] = base
        return base

    def bits(self, stream: int | list[int], ks: np.ndarray) -> np.ndarray:
        """[len(ks)] for one stream; [len(stream), len(ks)] for a list of them, each row as if asked alone
        (one numpy call costs about the same for 3,000 values as for 1,000)."""
        if isinstance(stream, int):
            return _mix(ks.astype(_U64) + self._base(stream))
        bases = np.array([self._base(s) for s in stream], dtype=_U64)
        return _mix(ks.astype(_U64) + bases[:, None])

    def unit(self, stream: int | list[int], ks: np.ndarray) -> np.ndarray:
        """Uniform floats in [0, 1)."""
        return (self.bits(stream, ks) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def below(self, stream: int | list[int], ks: np.ndarray, n: int) -> np.ndarray:
        """Uniform ints in 0..n-1."""
        return (self.bits(stream, ks) % _U64(max(n, 1))).astype(np.int64)


class _Hashed:
    """A _Hash's answers for one `ks` and a known list of streams, all hashed at once.

    An orders page draws from ~20 streams: one numpy call per step of the hash for them all, instead of one per
    step and stream, about halves the cost of a page's fields. Same values; `ks` must be the one given here.
    """

    def __init__(self, h: _Hash, streams: list[int], ks: np.ndarray) -> None:
        self._ks = ks
        self._row = {stream: i for i, stream in enumerate(streams)}
        self._bits = h.bits(streams, ks)

    def bits(self, stream: int | list[int], ks: np.ndarray) -> np.ndarray:
        assert ks is self._ks, "hashed for other ks"
        return self._bits[self._row[stream] if isinstance(stream, int) else [self._row[s] for s in stream]]

    unit = _Hash.unit
    below = _Hash.below


def default_items(orders: int) -> int:
    """Inventory size when only an order count is given: about one item per 50 orders."""
    return max(20, min(20_000, orders // 50))


class _OrderColumns(NamedTuple):
    """Orders k0..k1-1 of a data set, field by field (row i is order k0 + i), as served when valid."""

    ids: np.ndarray
    placed_seconds: np.ndarray  # since _EPOCH
    customers: np.ndarray  # customer_id is "C-<number>"
    n_lines: np.ndarray
    inv: np.ndarray  # [n, MAX_LINES]; only the first n_lines of a row are served
    qty: np.ndarray
    bad: np.ndarray  # to be served broken (bad_rate)


class GeneratedDataSet(DataSet):
    """`orders` orders over `items` inventory items; `bad_rate` of records served broken."""

    def __init__(self, orders: int, items: int | None = None, seed: int = 0, bad_rate: float = 0.0) -> None:
        if orders < 0:
            raise ValueError(f"orders must be >= 0, got {orders}")
        if not 0.0 <= bad_rate <= 1.0:
            raise ValueError(f"bad_rate must be between 0 and 1, got {bad_rate}")
        self.order_count = orders
        self.items = default_items(orders) if items is None else items
        if self.items < 0:
            raise ValueError(f"items must be >= 0, got {self.items}")
        self.stock_count = self.items
        self.seed = seed
        self.bad_rate = bad_rate
        self._h = _Hash(seed)
        self._build_stock()

    # ----------------------------------------------------------------- stock

    def _build_stock(self) -> None:
        m = self.items
        js = np.arange(m, dtype=np.int64)
        h = self._h
        # Inventory ids with gaps (1000 + 7j); 1000 + 7j + 3 is never one, which gives unknown ids.
        self.inventory_ids = 1000 + 7 * js
        # Products of 1..3 consecutive items; each item of a product sits in a different warehouse.
        sizes = 1 + h.below(_S_GROUP, js, 3)
        ends = np.cumsum(sizes)
        product_index = np.searchsorted(ends, js, side="right")
        starts = ends - sizes
        position = js - starts[product_index]
        rotate = h.below(_S_ROTATE, product_index, 3)
        self.product_ids = product_index + 1
        self.warehouse_ids = (rotate + position) % 3 + 1
        # Expected units ordered per item: orders x lines x known-line share x mean qty x P(item).
        demand = self.order_count * 2.0 * (1 - UNKNOWN_LINE_RATE) * MEAN_QTY * self._item_probabilities()
        # When orders are few for the catalogue, an item still stocks a line or two's worth,
        # or nearly every line would ask for more than the 0 or 1 unit its demand rounds to.
        demand = np.maximum(demand, MIN_STOCK_BASIS)
        share = STOCK_SHARE_LOW + (STOCK_SHARE_HIGH - STOCK_SHARE_LOW) * h.unit(_S_SHARE, js)
        # Random rounding keeps small expectations (e.g. 0.4 units) honest on average.
        on_hand = np.floor(demand * share + h.unit(_S_ROUND, js)).astype(np.int64)
        on_hand[h.unit(_S_ZERO, js) < ZERO_STOCK_RATE] = 0
        self.quantities = on_hand

    def _item_probabilities(self) -> np.ndarray:
        """P(a known line names item i) for the skewed pick floor(M * u**2) used by `_lines`."""
        m = self.items
        if m == 0:
            return np.zeros(0)
        edges = np.sqrt(np.arange(m + 1, dtype=np.float64) / m)
        return np.diff(edges)

    def _stock_record(self, j: int) -> dict[str, Any]:
        pid = int(self.product_ids[j])
        adjective = _ADJECTIVES[pid % len(_ADJECTIVES)]
        noun = _NOUNS[(pid // len(_ADJECTIVES)) % len(_NOUNS)]
        return {
            "inventory_id": int(self.inventory_ids[j]),
            "product_id": pid,
            "sku": f"{noun[:3].upper()}-{pid:05d}",
            "product_name": f"{adjective} {noun} #{pid}",
            "warehouse_id": int(self.warehouse_ids[j]),
            "quantity": int(self.quantities[j]),
            "updated_at": STOCK_UPDATED_AT,
        }

    def _stock_slice(self, start: int, stop: int) -> list[dict[str, Any]]:
        records = [self._stock_record(j) for j in range(start, stop)]
        if self.bad_rate > 0:
            js = np.arange(start, stop, dtype=np.int64)
            for i in np.flatnonzero(self._h.unit(_S_BAD, js) < self.bad_rate).tolist():
                self._break_stock(records, i, start + i)
        return records

    def _break_stock(self, records: list[dict[str, Any]], i: int, j: int) -> None:
        ks = np.array([j], dtype=np.int64)
        kind = STOCK_FLAWS[int(self._h.below(_S_BAD_KIND, ks, len(STOCK_FLAWS))[0])]
        variant = int(self._h.below(_S_BAD_VARIANT, ks, 3)[0])
        rec = records[i]
        if kind == "negative_quantity":
            rec["quantity"] = -(1 + variant)
        elif kind == "missing_id":
            del rec["inventory_id"]
        elif kind == "duplicate_id":
            # Take a neighbour's id on the same page, so the page holds that id twice.
            # (Impossible on a one-record page: the record is then served valid.)
            if len(records) > 1:
                rec["inventory_id"] = int(self.inventory_ids[j - 1 if i > 0 else j + 1])
        elif kind == "wrong_type":
            if variant == 0:
                rec["quantity"] = "two"
            elif variant == 1:
                rec["inventory_id"] = f"inv-{rec['inventory_id']}"
            else:
                rec["warehouse_id"] = "north"
        else:  # bad_timestamp
            rec["updated_at"] = _BAD_TIMESTAMPS[variant]

    # ---------------------------------------------------------------- orders

    def _ids(self, ks: np.ndarray, h: _Hash | _Hashed | None = None) -> np.ndarray:
        # id in [3k+1, 3k+3]: ascending, gaps of 1..5, and order k's id never depends on N.
        return 3 * ks + 1 + (h or self._h).below(_GAP, ks, 3)

    def _first_index_after(self, after_id: int) -> int:
        """Smallest k whose id exceeds after_id (may be >= order_count)."""
        if after_id < 1:
            return 0
        # id_k <= after_id for k <= (after_id - 3) / 3, and id_k > after_id for k >= after_id / 3,
        # so the answer lies in the four indexes from lo.
        lo = max(0, (after_id - 3) // 3)
        ks = np.arange(lo, lo + 4, dtype=np.int64)
        above = np.flatnonzero(self._ids(ks) > after_id)
        return min(self.order_count, lo + int(above[0]))

    def _lines(self, ks: np.ndarray, h: _Hash | _Hashed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(line count, inventory ids [n, 3], quantities [n, 3]) for orders ks."""
        m = self.items
        n_lines = 1 + h.below(_NLINES, ks, MAX_LINES)
        # Each field for all lines in one call: row j is line j (a numpy call per field, not per field and line).
        lines = range(MAX_LINES)
        # Skewed popularity: low item indexes sell more, like a real catalogue.
        pick = np.minimum(m - 1, (m * h.unit([_ITEM + j for j in lines], ks) ** 2).astype(np.int64))
        known = 1000 + 7 * pick if m else np.full((MAX_LINES, len(ks)), 1003, dtype=np.int64)
        unknown = 1000 + 7 * h.below([_UNKNOWN_ITEM + j for j in lines], ks, m) + 3
        inv = np.where(h.unit([_UNKNOWN + j for j in lines], ks) < UNKNOWN_LINE_RATE, unknown, known)
        repeat = h.unit([_REPEAT + j for j in lines[1:]], ks) < REPEAT_LINE_RATE  # the first line repeats nothing
        for line in lines[1:]:
            inv[line] = np.where(repeat[line - 1], inv[line - 1], inv[line])
        qty = 1 + h.below([_QTY + j for j in lines], ks, 5)
        return n_lines, inv.T, qty.T

    def _order_columns(self, k0: int, k1: int) -> _OrderColumns:
        """Every field of orders k0..k1-1 as arrays, and which of them are to be broken."""
        ks = np.arange(k0, k1, dtype=np.int64)
        h = _Hashed(self._h, _ORDER_STREAMS, ks)
        n_lines, inv, qty = self._lines(ks, h)
        bad = h.unit(_BAD, ks) < self.bad_rate if self.bad_rate > 0 else np.zeros(len(ks), dtype=bool)
        return _OrderColumns(
            ids=self._ids(ks, h),
            placed_seconds=ks * _SLOT_SECONDS + h.below(_TIME, ks, _SLOT_SECONDS),
            customers=10_000 + h.below(_CUSTOMER, ks, 90_000),
            n_lines=n_lines,
            inv=inv,
            qty=qty,
            bad=bad,
        )

    @staticmethod
    def _records(c: _OrderColumns) -> list[dict[str, Any]]:
        """The valid order records of `c`: the reference form the fast JSON path must match byte for byte."""
        placed = np.datetime_as_string(_EPOCH + c.placed_seconds.astype("timedelta64[s]"), unit="s").tolist()
        inv_l, qty_l = c.inv.tolist(), c.qty.tolist()
        return [
            {
                "id": oid,
                "placed_at": at + "Z",
                "customer_id": f"C-{cust}",
                "items": [{"inventory_id": inv_l[i][j], "quantity": qty_l[i][j]} for j in range(n)],
            }
            for i, (oid, at, cust, n) in enumerate(
                zip(c.ids.tolist(), placed, c.customers.tolist(), c.n_lines.tolist(), strict=True)
            )
        ]

    def _order_flaw(self, k: int) -> tuple[str, int]:
        ks = np.array([k], dtype=np.int64)
        kind = ORDER_FLAWS[int(self._h.below(_BAD_KIND, ks, len(ORDER_FLAWS))[0])]
        return kind, int(self._h.below(_BAD_VARIANT, ks, 3)[0])

    def orders_page(self, after_id: int, limit: int) -> dict[str, Any]:
        k0, k1 = self._span(after_id, limit)
        return self._page(k0, k1, limit, self._order_columns(k0, k1))

    def orders_page_json(self, after_id: int, limit: int) -> bytes:
        """`orjson.dumps(self.orders_page(after_id, limit))`, without building a dict per order when none is broken."""
        k0, k1 = self._span(after_id, limit)
        c = self._order_columns(k0, k1)
        if c.bad.any():  # flawed records are rare and many-shaped: the dict path serves them
            return orjson.dumps(self._page(k0, k1, limit, c))
        next_after_id = None if k1 >= self.order_count else int(c.ids[-1])
        placed_unix = c.placed_seconds + _EPOCH_UNIX
        return orders_page_json(c.ids, placed_unix, c.customers, c.n_lines, c.inv, c.qty, next_after_id)

    def _span(self, after_id: int, limit: int) -> tuple[int, int]:
        """The order indexes k0..k1-1 a page after `after_id` holds at most (before duplicates take room)."""
        check_page_size("limit", limit)
        k0 = self._first_index_after(after_id)
        return k0, min(self.order_count, k0 + limit)

    def _page(self, k0: int, k1: int, limit: int, c: _OrderColumns) -> dict[str, Any]:
        """The envelope of orders k0..k1-1 (columns `c`), those bad_rate picked broken as their flaw says."""
        records, ids, bad = self._records(c), c.ids, c.bad
        if not bad.any():
            last = k1 - 1
            out = records
        else:
            out, last = [], k0 - 1
            for i, rec in enumerate(records):
                if len(out) >= limit:  # duplicates took the room of the last records
                    break
                if bad[i]:
                    kind, variant = self._order_flaw(k0 + i)
                    if kind == "duplicate_id":
                        # Served twice in a row (the copy with one quantity changed). When both
                        # copies do not fit, end the page early so the next page carries them.
                        if len(out) + 2 > limit and out:
                            break
                        out.append(rec)
                        if len(out) < limit:
                            twin = {**rec, "items": [dict(line) for line in rec["items"]]}
                            twin["items"][0]["quantity"] = twin["items"][0]["quantity"] % 5 + 1
                            out.append(twin)
                        last = k0 + i
                        continue
                    _break_order(rec, kind, variant)
                out.append(rec)
                last = k0 + i
        reaches_end = last >= self.order_count - 1
        # The true id even when the record itself lost or garbled it, so paging always advances.
        next_after_id = None if reaches_end else int(ids[last - k0])
        return {"orders": out, "next_after_id": next_after_id}

    # ---------------------------------------------------------------- checkers

    def order_flaws(self) -> dict[int, str]:
        if self.bad_rate <= 0:
            return {}
        flaws: dict[int, str] = {}
        for k0 in range(0, self.order_count, 100_000):
            ks = np.arange(k0, min(self.order_count, k0 + 100_000), dtype=np.int64)
            hit = ks[self._h.unit(_BAD, ks) < self.bad_rate]
            kinds = self._h.below(_BAD_KIND, hit, len(ORDER_FLAWS))
            for oid, kind in zip(self._ids(hit).tolist(), kinds.tolist(), strict=True):
                flaws[oid] = ORDER_FLAWS[kind]
        return flaws

    def stock_flaws(self) -> dict[int, str]:
        if self.bad_rate <= 0:
            return {}
        js = np.arange(self.items, dtype=np.int64)
        hit = js[self._h.unit(_S_BAD, js) < self.bad_rate]
        kinds = self._h.below(_S_BAD_KIND, hit, len(STOCK_FLAWS))
        return {
            int(self.inventory_ids[j]): STOCK_FLAWS[kind] for j, kind in zip(hit.tolist(), kinds.tolist(), strict=True)
        }


def _break_order(rec: dict[str, Any], kind: str, variant: int) -> None:
    """Damage one order record in place, in one of the ways CONTRACT.md section 2 rejects."""
    if kind == "line_quantity":
        rec["items"][0]["quantity"] = -variant  # 0, -1 or -2
    elif kind == "missing_id":
        del rec["id"]
    elif kind == "no_lines":
        rec["items"] = []
    elif kind == "wrong_type":
        if variant == 0:
            rec["items"][0]["quantity"] = "two"
        elif variant == 1:
            rec["id"] = f"ord-{rec['id']}"
        else:
            rec["items"][0]["inventory_id"] = "mug"
    else:  # bad_timestamp
        rec["placed_at"] = _BAD_TIMESTAMPS[variant]
