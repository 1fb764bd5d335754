"""A large store built straight through the store's bulk write path (no HTTP, no Prefect): N orders over a
generated stock, then decided by the domain's rule, so the store holds NEW-free, realistic PROCESSED/FAILED rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from orderly import service
from orderly.store import open_store, writes

CHUNK = 250_000  # orders per load transaction, like the pipeline's chunks


def stock_frame(items: int, rng: np.random.Generator) -> pd.DataFrame:
    ids = np.arange(1, items + 1, dtype="int64")
    return pd.DataFrame(
        {
            "inventory_id": ids,
            "product_id": (ids + 1) // 2,
            "sku": [f"SKU-{i}" for i in ids],
            "product_name": [f"Item {i}" for i in ids],
            "warehouse_id": ids % 3 + 1,
            "quantity": rng.integers(0, 60, items, dtype="int64"),
            "updated_at": pd.Timestamp("2026-11-20T09:00:00Z"),
        }
    )


def order_frames(first_id: int, count: int, items: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    order_ids = np.arange(first_id, first_id + count, dtype="int64")
    per_order = rng.integers(1, 4, count)
    line_order = np.repeat(order_ids, per_order)
    starts = np.repeat(np.cumsum(per_order) - per_order, per_order)
    line_no = np.arange(len(line_order)) - starts
    inventory = rng.integers(1, int(items * 1.01) + 1, len(line_order), dtype="int64")  # ~1 % unknown items
    orders = pd.DataFrame(
        {
            "rec": order_ids - first_id,
            "order_id": order_ids,
            "placed_at": pd.Timestamp("2026-11-20T09:15:00Z"),
            "customer_id": [f"C-{i % 5000}" for i in order_ids],
        }
    )
    lines = pd.DataFrame(
        {
            "rec": line_order - first_id,
            "order_id": line_order,
            "line_no": line_no.astype("int64"),
            "inventory_id": inventory,
            "quantity": rng.integers(1, 4, len(line_order), dtype="int64"),
        }
    )
    return orders, lines


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as the loader takes it (validation.ValidOrders): timestamps in microseconds, as stored."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "placed_at" in frame:
        at = table.schema.get_field_index("placed_at")
        table = table.set_column(at, "placed_at", table.column("placed_at").cast(pa.timestamp("us", tz="UTC")))
    return table


def build(path: Path, orders: int, items: int = 20_000, seed: int = 3, decide: bool = True) -> None:
    rng = np.random.default_rng(seed)
    no_rejects = pd.DataFrame({"source": [], "record_key": [], "raw": [], "reasons": []}, dtype=object)
    with open_store(path) as con:
        writes.load_stock_snapshot(con, None, stock_frame(items, rng), no_rejects, items)
        for first in range(1, orders + 1, CHUNK):
            count = min(CHUNK, orders + 1 - first)
            frame, lines = order_frames(first, count, items, rng)
            writes.load_orders(con, None, _arrow(frame), _arrow(lines), no_rejects, count, first + count - 1)
        if decide:
            service.process(con, None, max_stock_age=float("inf"))
        con.execute("CHECKPOINT")
