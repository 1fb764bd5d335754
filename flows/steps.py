"""The pipeline's steps as task compositions shared by several flows: sync stock, ingest orders."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.utilities.annotations import quote

from flows.run_record import Run
from orderly.errors import RemoteError
from orderly.gcpolicy import collection_paused
from orderly.records import records_digest
from orderly.store import open_store
from tasks.fetch import fetch_orders, fetch_stock
from tasks.load import load_orders, load_stock, read_orders_cursor, repeat_stock
from tasks.validate import validate_order_records, validate_stock_records

# 25 pages of 1,000 orders a chunk, one chunk in flight beside the one being loaded: memory stays bounded however
# large the backlog. At a million orders 40 pages ran 8 % faster but peaked 23 MB higher (519 MB), past the
# bench's 512 MB target; 50 pages 34 MB higher (bench/README.md).
ORDER_PAGES_PER_CHUNK = 25

# Big task arguments (raw records, validated frames) go in quote(): otherwise Prefect walks every
# record and field looking for futures before the task starts, which cost ~4x the tasks' own work.


def sync_stock(run: Run) -> None:
    """Replace the local stock with a complete snapshot; if the warehouse is down, keep the last one. The same
    records as the last clean snapshot are recorded as a new snapshot without validating them again."""
    with sync_collection_policy():
        try:
            records = fetch_stock(run.settings)
        except RemoteError as error:
            run.problems.append(f"stock not synced: {error}")
            get_run_logger().warning("stock not synced, the last snapshot stays: %s", error)
            return
        digest = records_digest(records)
        counts = repeat_stock(run.settings, run.id, digest) if digest else None
        if counts is None:
            counts = load_stock(run.settings, run.id, quote(validate_stock_records(quote(records))), digest)
        run.add(counts)


def ingest_orders(run: Run) -> None:
    """Append every order after the cursor, chunk by chunk, each chunk committed with its cursor.

    The next chunk is fetched while this one is validated and loaded: one chunk ahead, no more (memory stays
    bounded), and only from the cursor this chunk ends at, so the pages asked for are exactly those a
    one-at-a-time loop would ask for (a chunk's cursor is known once it is fetched, before it is loaded).
    A fetch that fails ends the ingest after the chunks before it are loaded, as before.

    One connection for the whole ingest, checkpointed every ~64 MB of WAL (orderly.store.connection says why):
    reopening the store per chunk (and so checkpointing it, which rewrites the primary-key index) made the load
    step twice its bulk-insert floor."""
    settings = run.settings
    with sync_collection_policy(), open_store(settings.db_path, lock_timeout=settings.lock_timeout, bulk=True) as con:
        store = quote(con)  # handed to each task as it is (Prefect would otherwise inspect it)
        pending = fetch_orders.submit(settings, read_orders_cursor(settings, store), ORDER_PAGES_PER_CHUNK)
        try:
            while pending is not None:
                try:
                    chunk = pending.result()
                except RemoteError as error:
                    pending = None
                    run.problems.append(f"orders not fully ingested: {error}")
                    get_run_logger().warning("orders not fully ingested: %s", error)
                    return
                pending = None if chunk.last else fetch_orders.submit(settings, chunk.cursor_to, ORDER_PAGES_PER_CHUNK)
                valid = validate_order_records(quote(chunk.records))
                run.add(load_orders(settings, run.id, quote(valid), chunk.cursor_to, store))
                # The records go now, by reference counting: Prefect's task-run objects (cycles) hold the fetch
                # task's result until the collector breaks them, and the collection below then had to trace
                # every record (52,000 objects, 140-190 ms a chunk; with the list emptied first: ~2,000, 50-60 ms).
                chunk.records.clear()
                del chunk, valid  # before the next chunk arrives: two chunks in memory at most, not three
                # One full collection per chunk: the imports' heap is frozen, so it scans little more than the
                # chunk in flight, and frees this chunk's cycles (Prefect's task-run objects and what they hold).
                # Collecting only the young generations let them reach the old one: +150 MB at 300k orders.
                gc.collect()
        finally:
            if pending is not None:  # this step failed with a fetch in flight: let it end before the store closes
                pending.wait()


@contextmanager
def sync_collection_policy() -> Iterator[None]:
    """The garbage collector's policy for a sync: what the imports made is frozen out of every later scan, the
    automatic collector is off for the sync (orderly.gcpolicy says why), and the ingest collects once after each
    chunk (the raw records and frames are freed by reference counting; only cycles wait for that)."""
    gc.freeze()
    with collection_paused():
        yield
