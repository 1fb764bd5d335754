"""The orders pages of one read, fetched in their own thread ahead of the loader, in a stream of bounded weight.

One stream per ingest or reconcile: the client's page chain (and its read-ahead) runs from the first page to the
last without a break, so no page is asked for twice at a chunk's edge. The loader cuts the stream into chunks.
A page of columns weighs 1 and a page of records `record_weight` (its Python objects cost about 1 KB an order, as
columns some 60 bytes): the stream holds at most `capacity`, so the fetch runs about one chunk ahead of the load
and memory stays bounded however large the backlog. Its last item is an `End`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from orderly.boundary.remote import RemoteClient
from orderly.errors import RemoteError
from orderly.runtime import progress
from orderly.runtime.gcpolicy import collection_paused
from orderly.settings import Settings


@dataclass(frozen=True)
class Page:
    page: Any  # OrderColumns, or the page's records (the record path)
    cursor: int  # the cursor once this page is loaded or quarantined
    last: bool  # the service has nothing after it


@dataclass(frozen=True)
class End:
    failure: RemoteError | None  # what stopped the read (the pages before it are good); None: the last page came


class PageStream:
    def __init__(self, settings: Settings, start: int, max_pages: int, capacity: int, record_weight: int) -> None:
        self._settings, self._start, self._max_pages, self._capacity = settings, start, max_pages, capacity
        self._record_weight = record_weight
        self._items: deque[tuple[Page | End, int]] = deque()
        self._weight = 0
        self._changed = threading.Condition()
        self._closed = False  # the loader is gone: the fetch stops at its next page
        self._thread = threading.Thread(target=self._fetch, name="orderly-fetch", daemon=True)

    def __enter__(self) -> PageStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._closed = True
            self._items.clear()
            self._changed.notify_all()
        self._thread.join()

    def next(self, timeout: float | None = None) -> Page | End | None:
        """The next item, or None if none came within `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._items, timeout):
                return None
            item, weight = self._items.popleft()
            self._weight -= weight
            self._changed.notify_all()
            return item

    # ---- the fetch thread ----------------------------------------------------------------------------------

    def _put(self, item: Page | End, weight: int) -> bool:
        """Blocks while the stream is full; False once the loader has gone."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._weight + weight <= self._capacity or not self._items)
            if self._closed:
                return False
            self._items.append((item, weight))
            self._weight += weight
            self._changed.notify_all()
            return True

    def _fetch(self) -> None:
        with collection_paused():
            end = asyncio.run(self._read())
        self._put(end, 0)

    async def _read(self) -> End:
        client = RemoteClient(self._settings)
        loop = asyncio.get_running_loop()
        read = 0
        try:
            async for page, cursor, last in client.order_pages(self._start, self._max_pages):
                read += 1
                progress.advance("fetch orders", records=len(page), pages=1)
                weight = self._record_weight if isinstance(page, list) else 1
                # In a thread: the read-ahead goes on while the stream is full.
                if not await loop.run_in_executor(None, self._put, Page(page, cursor, last), weight):
                    return End(None)
                if last:
                    return End(None)
                if read >= self._max_pages:
                    return End(
                        RemoteError(
                            f"orders service at {client.orders.shown_url}/orders sent more than "
                            f"ORDERLY_MAX_ORDER_PAGES={self._max_pages} pages in one run; the orders read are kept "
                            "and the next run goes on "
                            "from there (raise the setting if the backlog is real)"
                        )
                    )
        except RemoteError as error:
            return End(error)
        return End(None)  # pragma: no cover (the chain ends on its last page or an error)
