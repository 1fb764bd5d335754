"""Fetch tasks: read the remotes over HTTP (retried page by page in orderly.remote), never write to them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from orderly import progress
from orderly.remote import RemoteClient
from orderly.settings import Settings


# Short reprs: asyncio.run (Python 3.11) and Prefect format a task's result, and the repr of 50,000
# records cost 8-9 % of a whole run (issue 13's profile).
@dataclass(repr=False)
class OrdersChunk:
    records: list[Any]
    cursor_to: int  # the cursor once every record here is loaded or quarantined
    last: bool      # the service has nothing after this chunk

    def __repr__(self) -> str:
        return f"OrdersChunk({len(self.records)} records, cursor_to={self.cursor_to}, last={self.last})"


class StockRecords(list):
    """The snapshot's raw records: a list whose repr does not print a million dicts."""

    def __repr__(self) -> str:
        return f"StockRecords({len(self)} records)"


# No task-level retries: orderly.remote already retries each page ORDERLY_HTTP_RETRIES times with back-off;
# retrying the whole task on top would re-read every page and double the bound the operator set.
@task(cache_policy=NO_CACHE)
def fetch_stock(settings: Settings) -> list[Any]:
    """Every page of the warehouse's stock, or an error: a partial snapshot is never returned."""
    async def collect() -> StockRecords:
        return StockRecords(await RemoteClient(settings).stock_snapshot())

    progress.advance("fetch stock")
    records = asyncio.run(collect())
    progress.advance("fetch stock", records=len(records))
    get_run_logger().info("fetched %d stock records", len(records))
    return records


@task(cache_policy=NO_CACHE)
def fetch_orders(settings: Settings, after_id: int, max_pages: int) -> OrdersChunk:
    """Up to `max_pages` pages of orders after `after_id`: a chunk small enough to hold in memory."""

    async def collect() -> OrdersChunk:
        records: list[Any] = []
        cursor, last, pages = after_id, False, 0
        async for page, cursor, last in RemoteClient(settings).order_pages(after_id):
            records.extend(page)
            pages += 1
            progress.advance("fetch orders", records=len(page), pages=1)
            if last or pages >= max_pages:
                break
        return OrdersChunk(records, cursor, last)

    chunk = asyncio.run(collect())
    get_run_logger().info("fetched %d orders after id %d", len(chunk.records), after_id)
    return chunk
