"""The ingest use cases, free of Prefect: sync stock, ingest the orders after the cursor (with a look-back), and
reconcile the whole orders remote. Each reads a remote, lets validation split good from bad, and hands the good to
the store, a transaction per snapshot or chunk. A remote that fails ends the step with what was done kept."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from orderly.boundary.columns import OrderColumns
from orderly.boundary.page_stream import End, Page, PageStream
from orderly.boundary.paging import valid_order_ids
from orderly.boundary.records import records_digest
from orderly.boundary.remote import RemoteClient
from orderly.boundary.validation import validate_order_pages, validate_stock
from orderly.errors import RemoteError
from orderly.runtime import progress
from orderly.runtime.gcpolicy import collection_paused
from orderly.settings import Settings
from orderly.store import open_store, queries, writes
from orderly.store.connection import BULK_CHECKPOINT_THRESHOLD, connect

log = logging.getLogger("orderly.ingest")

# Pages of 1,000 orders a chunk, one chunk in flight beside the one being loaded: memory stays bounded however
# large the backlog. A clean page is columns (about 60 bytes an order), so a chunk holds 125 of them: DuckDB writes
# a commit of that many rows (past its 122,880-row group) straight to the file instead of through its log, which
# took the commits from 1.0 to 0.3 s of a million-order load. A page on the record path is Python objects (about
# 1 KB an order): at most 25 of those a chunk, which kept a million-order run within 512 MB (issue 13).
ORDER_PAGES_PER_CHUNK = 125
RECORD_PAGES_PER_CHUNK = 25
# What a record page weighs in the page stream against a clean one: a chunk's worth of weight ahead holds a chunk of
# either kind.
RECORD_PAGE_WEIGHT = ORDER_PAGES_PER_CHUNK // RECORD_PAGES_PER_CHUNK

INGEST_DB_THREADS = 1

# How long the ingest keeps the DuckDB file while the next chunk is still on the wire: past this it lets go, so a
# reader (`orderly status`, the page) is never blocked by a remote that is slow or asks us to wait. Reopening costs
# a checkpoint, so a fetch only a little behind the load keeps the file.
HOLD_WHILE_WAITING_S = 0.25


@dataclass
class Outcome:
    """What a step did: its run counters, and the one line of the remote that stopped it (None: it finished)."""

    counts: dict[str, int] = field(default_factory=dict)
    problem: str | None = None
    reconcile: dict[str, int] | None = None  # reconcile_orders only: remote, stored, missing, added, changed

    def add(self, counts: dict[str, Any]) -> None:
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + int(value)


# ---- stock ----------------------------------------------------------------------------------------------------


def sync_stock(settings: Settings, run_id: str | None) -> Outcome:
    """Replace the local stock with a complete snapshot; if the warehouse cannot give one, keep the last one. The
    same records as the last clean snapshot are recorded as a new snapshot without validating them again."""
    with sync_collection_policy():
        progress.advance("fetch stock")
        try:
            records = asyncio.run(_stock_records(settings))
        except RemoteError as error:
            log.warning("stock not synced, the last snapshot stays: %s", error)
            return Outcome(problem=f"stock not synced: {error}")
        progress.advance("fetch stock", records=len(records))
        digest = records_digest(records)
        counts = None
        if digest:
            with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
                counts = writes.repeat_stock_snapshot(con, run_id, digest)
        if counts is None:
            valid = validate_stock(records)
            del records
            progress.advance("validate stock", records=valid.received)
            with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
                counts = writes.load_stock_snapshot(
                    con, run_id, valid.items, valid.rejects, valid.received, valid.repeated, digest
                )
        progress.advance("load stock", records=counts["stock_fetched"])
    return Outcome(dict(counts))


class _StockRecords(list[Any]):
    """The snapshot's raw records: a list whose repr does not print 50,000 dicts (asyncio.run formats it)."""

    def __repr__(self) -> str:
        return f"StockRecords({len(self)} records)"


async def _stock_records(settings: Settings) -> list[Any]:
    return _StockRecords(await RemoteClient(settings).stock_snapshot())


# ---- orders ---------------------------------------------------------------------------------------------------


@dataclass(repr=False)  # asyncio.run and loggers format results: a repr of 25,000 records costs more than loading
class OrdersChunk:
    pages: list[list[Any] | OrderColumns]  # in order; a clean page as columns, any other as its records
    cursor_to: int  # the cursor once every record here is loaded or quarantined
    failure: RemoteError | None = None  # what stopped the read after these pages (they are good and load)

    def __repr__(self) -> str:
        return f"OrdersChunk({len(self.pages)} pages, cursor_to={self.cursor_to})"

    def storable_ids(self) -> np.ndarray:
        """The ids of every record that could be stored (what the remote holds, for a reconcile)."""
        return np.concatenate(
            [
                np.asarray(valid_order_ids(page), dtype=np.int64) if isinstance(page, list) else page.order_id
                for page in self.pages
            ]
            or [np.zeros(0, dtype=np.int64)]
        )


def lookback_start(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Where an incremental run starts reading: the cursor, or further back, so that the `lookback_orders` newest
    stored orders and every gap between them are read again (an id committed late, below one already served)."""
    return min(queries.orders_cursor(con), queries.lookback_after_id(con, settings.lookback_orders))


def ingest_orders(settings: Settings, run_id: str | None, *, pages_per_chunk: int = ORDER_PAGES_PER_CHUNK) -> Outcome:
    """Append every order the remote holds after the look-back start, chunk by chunk, each chunk committed with
    its cursor. At most ORDERLY_MAX_ORDER_PAGES pages: a remote whose pages never end stops the step."""
    # Read, then let go: the first chunk's fetch may wait on the network, and no reader should wait with it.
    with _StoreWhileLoading(settings) as store:
        start = lookback_start(store.connection(), settings)
    return _read_orders(settings, run_id, start, pages_per_chunk)


def reconcile_orders(
    settings: Settings, run_id: str | None, *, pages_per_chunk: int = ORDER_PAGES_PER_CHUNK
) -> Outcome:
    """Read the whole orders remote again under the same rules, store what is missing, and say what was found:
    ids at the remote, already stored, missing, added now, and changed copies (conflicts). Missing orders mean
    the incremental path lost one: the caller raises the alarm."""
    outcome = _read_orders(settings, run_id, 0, pages_per_chunk, reconciling=True)
    assert outcome.reconcile is not None
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
        writes.record_reconciliation(con, run_id, outcome.reconcile)
    outcome.add({f"reconcile_{name}": value for name, value in outcome.reconcile.items()})
    if outcome.reconcile["missing"]:
        log.warning("reconcile: %(missing)d orders were missing locally (%(added)d added now)", outcome.reconcile)
    return outcome


def _read_orders(
    settings: Settings, run_id: str | None, start: int, pages_per_chunk: int, *, reconciling: bool = False
) -> Outcome:
    """The chunk loop shared by the ingest and the reconcile. The pages stream in from their own thread, about one
    chunk ahead (boundary/page_stream.py), and are cut into chunks: at most `pages_per_chunk` pages, of which at most
    RECORD_PAGES_PER_CHUNK on the record path, each validated and loaded in one transaction with its cursor."""
    outcome = Outcome(
        reconcile=dict.fromkeys(("remote", "stored", "missing", "added", "changed"), 0) if reconciling else None
    )
    with (
        sync_collection_policy(),
        _StoreWhileLoading(settings) as store,
        PageStream(settings, start, settings.max_order_pages, pages_per_chunk, RECORD_PAGE_WEIGHT) as stream,
    ):
        chunk, record_pages = OrdersChunk([], start), 0
        while True:
            item = store.next_from(stream)
            if isinstance(item, End):
                chunk.failure = item.failure
                if chunk.pages or chunk.failure:
                    _load_chunk(settings, run_id, store.connection(), chunk, outcome)
                return outcome
            chunk.pages.append(item.page)
            chunk.cursor_to = item.cursor
            record_pages += isinstance(item.page, list)
            if item.last or len(chunk.pages) >= pages_per_chunk or record_pages >= RECORD_PAGES_PER_CHUNK:
                _load_chunk(settings, run_id, store.connection(), chunk, outcome)
                chunk, record_pages = OrdersChunk([], chunk.cursor_to), 0
                # One full collection per chunk: the imports' heap is frozen, so it scans little more than the
                # chunk in flight. Collecting only the young generations let them reach the old one: +150 MB at
                # 300k orders (issue 13).
                gc.collect()


def _load_chunk(
    settings: Settings, run_id: str | None, con: duckdb.DuckDBPyConnection, chunk: OrdersChunk, outcome: Outcome
) -> None:
    seen = None
    if outcome.reconcile is not None:
        seen = np.unique(chunk.storable_ids())
        stored_before = queries.count_stored(con, seen)
    valid = validate_order_pages(chunk.pages)
    progress.advance("validate orders", records=valid.received)
    counts = writes.load_orders(
        con,
        run_id,
        valid.orders,
        valid.lines,
        valid.rejects,
        valid.received,
        chunk.cursor_to,
        page_starts=valid.page_starts,
    )
    if chunk.failure is not None:
        log.warning("orders not fully ingested: %s", chunk.failure)
        outcome.problem = f"orders not fully ingested: {chunk.failure}"
    progress.advance("load orders", records=valid.received)
    outcome.add(counts)
    if seen is not None:
        found = outcome.reconcile
        assert found is not None  # a reconcile's outcome counts what it found
        found["remote"] += len(seen)
        found["stored"] += stored_before
        found["missing"] += len(seen) - stored_before
        found["added"] += counts["orders_loaded"]
        found["changed"] += counts["orders_rejected"] - len(valid.rejects)  # the loader's conflicts


class _StoreWhileLoading:
    """The DuckDB file for an ingest: one connection across chunks (reopening checkpoints, which rewrites the
    primary-key index: the load step took twice its floor), let go while the next chunk is slow to arrive."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._con: duckdb.DuckDBPyConnection | None = None

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self.settings.db_path, lock_timeout=self.settings.lock_timeout)
            self._con.execute(f"SET checkpoint_threshold = '{BULK_CHECKPOINT_THRESHOLD}'")
            # One DuckDB thread: the fetch needs the other core. A million orders loaded in 2.1 s on one thread
            # (1.8 s of CPU) against 2.7 s on two (2.2 s of CPU), the pages fed from memory (bench/README.md).
            self._con.execute(f"SET threads = {INGEST_DB_THREADS}")
        return self._con

    def release(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()

    def next_from(self, stream: PageStream) -> Page | End:
        """The stream's next item; the file is let go first if it does not arrive within HOLD_WHILE_WAITING_S."""
        item = stream.next(HOLD_WHILE_WAITING_S) if self._con is not None else None
        if item is None:
            self.release()
            item = stream.next()
        assert item is not None  # waiting without a time-out ends with an item
        return item

    def __enter__(self) -> _StoreWhileLoading:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def sync_collection_policy() -> Iterator[None]:
    """The garbage collector's policy for a sync: what the imports made is frozen out of every later scan, the
    automatic collector is off for the sync (orderly.runtime.gcpolicy says why), and the ingest collects once after each
    chunk (the raw records and frames are freed by reference counting; only cycles wait for that)."""
    gc.freeze()
    with collection_paused():
        yield
