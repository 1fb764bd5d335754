"""Fetch tasks: read the remotes over HTTP (retried page by page in orderly.remote), never write to them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from orderly.errors import RemoteError
from orderly.remote import RemoteClient
from orderly.settings import Settings


def _worth_retrying(task, task_run, state) -> bool:
    """Page-level retries already ran; a whole-task retry helps only for failures that are not final."""
    try:
        state.result()
    except RemoteError as error:
        return "answered 4" not in str(error)  # 401/403/404 and other 4xx are final: fail at once
    except Exception:
        return True
    return False


@dataclass
class OrdersChunk:
    records: list[Any]
    cursor_to: int  # the cursor once every record here is loaded or quarantined
    last: bool      # the service has nothing after this chunk


@task(
    retries=1,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def fetch_stock(settings: Settings) -> list[Any]:
    """Every page of the warehouse's stock, or an error: a partial snapshot is never returned."""
    records = asyncio.run(RemoteClient(settings).stock_snapshot())
    get_run_logger().info("fetched %d stock records", len(records))
    return records


@task(
    retries=1,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def fetch_orders(settings: Settings, after_id: int, max_pages: int) -> OrdersChunk:
    """Up to `max_pages` pages of orders after `after_id`: a chunk small enough to hold in memory."""

    async def collect() -> OrdersChunk:
        records: list[Any] = []
        cursor, last, pages = after_id, False, 0
        async for page, cursor, last in RemoteClient(settings).order_pages(after_id):
            records.extend(page)
            pages += 1
            if last or pages >= max_pages:
                break
        return OrdersChunk(records, cursor, last)

    chunk = asyncio.run(collect())
    get_run_logger().info("fetched %d orders after id %d", len(chunk.records), after_id)
    return chunk
