"""The load step against its floor, in one process, on the same validated chunks (no HTTP, no Prefect).

    .venv/bin/python bench/load_floor.py --orders 300000

It validates the generated data set's orders in the pipeline's chunks once (boundary/validation.py), then times, each
on a fresh DuckDB file:
  - `reopen`:  writes.load_orders per chunk, the store opened (and closed, so checkpointed) per chunk: the
               load task as it was before issue 13;
  - `session`: writes.load_orders per chunk on one connection held for the whole ingest, checkpointed once
               (open_store(bulk=True): what the flow does now); `session16mb`: the same with DuckDB's default
               checkpoint threshold (a checkpoint every ~16 MB of WAL);
  - `bare`:    the floor: the same rows registered as Arrow and INSERT ... SELECT into the same tables, in the
               same chunks, one transaction each, no repeat rule (the fingerprint is a constant).
Prints seconds per variant and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def chunks(orders: int, items: int, seed: int, per_chunk: int):
    from orderly.boundary.validation import validate_orders
    from orderly.sandbox import generate

    data = generate(orders, items, seed)
    after, batch, out = 0, [], []
    while True:
        page = data.orders_page(after, 1000)
        batch.extend(page["orders"])
        if len(batch) >= per_chunk or page["next_after_id"] is None:
            valid = validate_orders(batch)
            last_id = batch[-1]["id"] if batch else after
            out.append((valid, last_id))
            batch = []
        if page["next_after_id"] is None:
            return out
        after = page["next_after_id"]


def load_reopen(path: Path, batches) -> float:
    from orderly.store import open_store, writes

    started = time.perf_counter()
    for valid, cursor in batches:
        with open_store(path) as con:
            writes.load_orders(con, None, valid.orders, valid.lines, valid.rejects, valid.received, cursor)
    return time.perf_counter() - started


def load_session(path: Path, batches, bulk: bool = True) -> float:
    from orderly.store import open_store, writes

    started = time.perf_counter()
    with open_store(path, bulk=bulk) as con:
        for valid, cursor in batches:
            writes.load_orders(con, None, valid.orders, valid.lines, valid.rejects, valid.received, cursor)
    return time.perf_counter() - started


def load_bare(path: Path, batches) -> float:
    import pyarrow as pa

    from orderly.store import open_store

    with open_store(path):
        pass  # the schema, created outside the timing
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(str(path))
    for valid, cursor in batches:
        orders = pa.Table.from_pandas(valid.orders, preserve_index=False)
        lines = pa.Table.from_pandas(valid.lines, preserve_index=False)
        con.register("o", orders)
        con.register("l", lines)
        con.begin()
        con.execute("""
            INSERT INTO orders (order_id, placed_at, customer_id, items, total_qty, fingerprint, status, reason,
                                loaded_run, loaded_at)
            SELECT o.order_id, o.placed_at, o.customer_id, n.items, n.total_qty, 0, 'NEW', NULL, NULL, now()
            FROM o JOIN (SELECT rec, count(*)::INTEGER AS items, sum(quantity)::BIGINT AS total_qty
                         FROM l GROUP BY rec) n
                 USING (rec)
        """)
        con.execute("INSERT INTO order_lines SELECT order_id, line_no, inventory_id, quantity FROM l")
        con.execute(
            "INSERT INTO cursors VALUES ('orders', ?) ON CONFLICT (name) DO UPDATE SET after_id = excluded.after_id",
            [cursor],
        )
        con.commit()
        con.unregister("o")
        con.unregister("l")
    con.close()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=50_000, help="orders per chunk (the flow's 50 pages of 1,000)")
    parser.add_argument("--variants", default="reopen,session,bare", help="any of reopen,session,session16mb,bare")
    args = parser.parse_args()
    started = time.perf_counter()
    batches = chunks(args.orders, args.items, args.seed, args.chunk)
    print(
        f"{args.orders:,} orders validated in {len(batches)} chunks in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    variants = {
        "reopen": load_reopen,
        "session": load_session,
        "bare": load_bare,
        "session16mb": lambda path, batches: load_session(path, batches, bulk=False),
    }
    result = {"orders": args.orders, "chunks": len(batches)}
    with tempfile.TemporaryDirectory(prefix="orderly-load-") as work:
        for name in args.variants.split(","):
            seconds = variants[name](Path(work) / f"{name}.duckdb", batches)
            result[f"{name}_s"] = round(seconds, 3)
            print(f"  {name:>8}: {seconds:6.2f} s", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
