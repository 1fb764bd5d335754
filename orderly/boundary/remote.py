"""The HTTP client for the two remote services: paging, time-outs, retries with back-off, no writes ever."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from orderly.boundary import pages
from orderly.boundary.body import ACCEPTED_ENCODINGS, BadEncoding, BodyTooLarge, read_bounded
from orderly.boundary.columns import OrderColumns
from orderly.boundary.pages import Retryable
from orderly.boundary.paging import PageRuleBroken, check_orders_page, check_stock_pages
from orderly.boundary.wire import NotJson, NotUnicode, decode_page  # noqa: F401 (NotUnicode: imported from here by tests)
from orderly.boundary.wire import stock_envelope as _stock_envelope
from orderly.errors import IncompleteSnapshot, ProtocolViolation, RemoteError
from orderly.settings import Settings, mask_url

SANDBOX_BASE = "http://sandbox"
BACKOFF_BASE = 0.1  # seconds: the n-th pause is uniform in [0, BACKOFF_BASE * 2**(n-1)] ("full jitter")
BACKOFF_MAX = 5.0  # seconds: no exponential pause is longer


# What went wrong on the wire, in words (an exception's class name means nothing to an operator).
_TRANSPORT_FAILURES = {
    httpx.ConnectError: "the connection was refused or the host is unreachable",
    httpx.ReadError: "the connection broke while reading the answer",
    httpx.WriteError: "the connection broke while sending the request",
    httpx.RemoteProtocolError: "the answer was cut short or is not valid HTTP",
    httpx.LocalProtocolError: "the request could not be sent as valid HTTP",
    httpx.ProxyError: "the proxy refused the connection",
    httpx.UnsupportedProtocol: "the URL's scheme is not http or https",
}

# Which setting an operator fixes when a service refuses us for good.
_SETTING_FOR_STATUS = {401: "ORDERLY_API_TOKEN", 403: "ORDERLY_API_TOKEN"}


@dataclass(frozen=True)
class Service:
    name: str  # "orders" or "warehouse"
    base_url: str
    url_setting: str  # the variable that points at it

    @property
    def shown_url(self) -> str:
        """The base URL for messages, the runs table and logs: userinfo and the query string may hold a secret
        and are never shown (settings.mask_url, the one masking function)."""
        return mask_url(self.base_url).rstrip("/")


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or an HTTP-date), capped; None if it gave none."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None  # garbage: fall back to exponential back-off
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


class _HonourRetryAfter:
    """tenacity wait: the server's Retry-After when it gave one, else exponential back-off with jitter."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: Any) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, Retryable) and error.retry_after is not None:
            return error.retry_after
        return self.fallback(retry_state)


class RemoteClient:
    """Reads orders and stock. Without URLs it talks to the in-process sandbox through the same code."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        transport = None
        if settings.uses_sandbox:
            from orderly.sandbox import in_process_transport

            transport = in_process_transport(settings.sandbox)
        self.orders = Service("orders", settings.orders_url or SANDBOX_BASE, "ORDERLY_ORDERS_URL")
        self.warehouse = Service("warehouse", settings.warehouse_url or SANDBOX_BASE, "ORDERLY_WAREHOUSE_URL")
        self._sandbox_transport = transport
        headers = {"Accept": "application/json", "Accept-Encoding": ACCEPTED_ENCODINGS}
        if settings.api_token:
            headers["Authorization"] = f"Bearer {settings.api_token}"
        self._headers = headers

    def _client(self, service: Service) -> httpx.AsyncClient:
        # The sandbox stands in only for the services whose URL is unset.
        in_process = service.base_url == SANDBOX_BASE
        return httpx.AsyncClient(
            base_url=service.base_url,
            transport=self._sandbox_transport if in_process else None,
            verify=_ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")),
            headers=self._headers,
            timeout=httpx.Timeout(self.settings.http_timeout),
            limits=httpx.Limits(max_connections=self.settings.fetch_concurrency),
        )

    async def _get(self, client: httpx.AsyncClient, service: Service, path: str, params: dict, decode) -> dict:
        """The body at `path`, decoded and checked by `decode` (bytes -> body, awaitable; raises Retryable)."""
        url = f"{service.shown_url}{path}"
        # Bounded by attempts: each waits at most http_timeout, each pause at most max(Retry-After cap, 5 s).
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Retryable),
            stop=stop_after_attempt(self.settings.http_retries + 1),
            wait=_HonourRetryAfter(wait_random_exponential(multiplier=BACKOFF_BASE, max=BACKOFF_MAX)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._get_once(client, service, url, path, params, decode)
        except Retryable as error:
            fix = error.fix or f"check {service.url_setting}, or raise ORDERLY_HTTP_RETRIES"
            raise RemoteError(
                f"{service.name} service at {url} failed after {self.settings.http_retries + 1} attempts: {error} "
                f"({fix})"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(self, client, service: Service, url: str, path: str, params: dict, decode) -> dict:
        try:
            # httpx's timeout bounds each read; a body trickling a byte at a time would never trip it.
            async with asyncio.timeout(self.settings.http_timeout):
                async with client.stream("GET", path, params=params) as response:
                    _refuse_status(response, service, url, self.settings.retry_after_cap)
                    content = await read_bounded(response, self.settings.max_body_bytes)
        except (TimeoutError, httpx.TimeoutException):
            raise Retryable(f"timed out after {self.settings.http_timeout:g} s") from None
        except (httpx.DecodingError, BadEncoding):
            raise Retryable("the body could not be decoded (bad gzip or charset)") from None
        except BodyTooLarge as error:
            raise Retryable(str(error), fix=f"check {service.url_setting}, or raise ORDERLY_MAX_BODY_BYTES") from None
        except httpx.TransportError as error:
            raise Retryable(_TRANSPORT_FAILURES.get(type(error), "the connection failed")) from None
        return await decode(content)

    # ---- stock ---------------------------------------------------------------------------

    async def stock_snapshot(self) -> list[Any]:
        """Every page of the warehouse's stock, or an error: a partial or inconsistent snapshot is never returned.

        Page 1 says how many pages there are; the rest are fetched by at most `fetch_concurrency` workers
        that take page numbers as they go, so a `total_pages` of a million costs nothing up front. Every
        page must agree on `total_pages`: pages that disagree do not make one snapshot.
        """
        per_page, limit = self.settings.page_size, self.settings.max_stock_pages
        async with self._client(self.warehouse) as client:

            async def page(number: int) -> dict:
                return await self._get(
                    client,
                    self.warehouse,
                    "/stock",
                    {"page": number, "per_page": per_page},
                    pages.records_decoder(_stock_envelope(number)),
                )

            first = await page(1)
            total = first["total_pages"]
            if total > limit:
                raise IncompleteSnapshot(
                    f"warehouse service at {self.warehouse.shown_url} claims total_pages={total}, past "
                    f"ORDERLY_MAX_STOCK_PAGES={limit}: stock unchanged (raise the setting if that is real)"
                )
            bodies = {1: first}
            numbers = iter(range(2, total + 1))  # shared: each worker takes the next page number

            async def worker() -> None:
                for number in numbers:
                    body = await page(number)
                    if body["total_pages"] != total:
                        raise IncompleteSnapshot(
                            f"warehouse service at {self.warehouse.shown_url} changed total_pages from {total} "
                            f"to {body['total_pages']} between pages: the snapshot is incomplete, stock unchanged"
                        )
                    bodies[number] = body

            await _all_or_nothing([worker() for _ in range(min(self.settings.fetch_concurrency, total - 1))])
        problem = check_stock_pages({number: body["items"] for number, body in bodies.items()})
        if problem:
            raise IncompleteSnapshot(
                f"warehouse service at {self.warehouse.shown_url}/stock sent pages that are not one snapshot: "
                f"{problem}; stock unchanged"
            )
        return [record for number in sorted(bodies) for record in bodies[number]["items"]]

    # ---- orders --------------------------------------------------------------------------

    async def order_pages(
        self,
        after_id: int,
        max_pages: int | None = None,
    ) -> AsyncIterator[tuple[list[Any] | OrderColumns, int, bool]]:
        """Pages of orders after `after_id`: (the page, the cursor once it is dealt with, last page?). A clean page
        comes as OrderColumns (orderly.boundary.columns), any other as its records, for the record path.

        Every page is checked against the paging protocol (orderly.boundary.paging) before it is yielded: a page that
        breaks it raises ProtocolViolation, so the cursor never moves past an order that was never sent.

        Pages are read ahead: as a page's bytes arrive, the page after the cursor they claim is asked for while
        this one is decoded and checked. Only a checked cursor is followed: a read-ahead for any other
        cursor is dropped unused, so the pages yielded are exactly those of a one-at-a-time reader. A remote that
        lies about its cursor may be asked for the page after the lie once; nothing of it is used. With
        `max_pages` (the caller stops there) no page past that many is read ahead."""
        limit = self.settings.page_size
        async with self._client(self.orders) as client:
            ahead: dict[int, asyncio.Task] = {}

            def read(after: int) -> asyncio.Task:
                decode = functools.partial(pages.decode_orders_page, on_bytes=functools.partial(read_next, after))
                return asyncio.ensure_future(
                    self._get(client, self.orders, "/orders", {"after_id": after, "limit": limit}, decode)
                )

            def read_next(after: int, content: bytes) -> bool:
                """Ask for the page after the cursor this page claims, if it may be needed; whether it was asked."""
                claimed = pages.claimed_cursor(content)  # a cursor not above the page's own breaks the protocol anyway
                if claimed is None or claimed <= after or claimed in ahead or len(ahead) >= _READ_AHEAD:
                    return False
                if max_pages is not None and yielded + 1 + len(ahead) >= max_pages:
                    return False
                ahead[claimed] = read(claimed)
                return True

            yielded = 0
            try:
                while True:
                    task = ahead.pop(after_id, None) or read(after_id)
                    body = await task
                    try:
                        cursor, last = check_orders_page(after_id, body["orders"], body["next_after_id"])
                    except PageRuleBroken as broken:
                        raise ProtocolViolation(
                            f"orders service at {self.orders.shown_url}/orders broke the paging protocol after "
                            f"after_id={after_id}: {broken}; the orders before this page are kept, none after it "
                            f"(fix the service or {self.orders.url_setting}, then run again)"
                        ) from None
                    for wrong in [key for key in ahead if key != cursor or last]:
                        _drop(ahead.pop(wrong))
                    yield body["orders"], cursor, last
                    yielded += 1
                    if last:
                        return
                    after_id = cursor
            finally:
                for task in ahead.values():
                    _drop(task)


# Pages asked for ahead of the one awaited: the next page's bytes often arrive while this one still decodes, and
# its own read-ahead is asked for then. Each follows a cursor not yet checked, so more would only waste requests.
_READ_AHEAD = 2


def _drop(task: asyncio.Task) -> None:
    """A read-ahead not needed: cancelled, and its failure (if it had one) not reported as unretrieved."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


def _refuse_status(response: httpx.Response, service: Service, url: str, retry_after_cap: float) -> None:
    """Anything but 200 is refused before its body is read: for good (401, 403, 404, other 4xx) or retried."""
    status = response.status_code
    if status in (401, 403, 404):
        setting = _SETTING_FOR_STATUS.get(status, service.url_setting)
        raise RemoteError(f"{service.name} service answered {status} for {url}: check {setting}")
    if status == 429:
        raise Retryable("429 Too Many Requests", _retry_after(response, retry_after_cap))
    if status >= 500:
        raise Retryable(f"{status} {response.reason_phrase}")
    if status != 200:
        raise RemoteError(f"{service.name} service answered {status} for {url}: check {service.url_setting}")


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once per process and setting:
    loading the CA bundle cost ~0.1 s per client, one client per chunk of orders (0.6 s of a 300k run)."""
    return httpx.create_ssl_context()


async def _all_or_nothing(jobs: list[Awaitable[dict]]) -> list[dict]:
    """Every result in order, or the first failure with the other jobs cancelled (no half-read snapshot
    keeps fetching behind our back)."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
