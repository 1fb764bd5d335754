"""The HTTP client for the two remote services: paging, time-outs, retries with back-off, no writes ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from orderly.errors import RemoteError
from orderly.settings import Settings

SANDBOX_BASE = "http://sandbox"
BACKOFF_BASE = 0.1  # seconds: the n-th pause is uniform in [0, BACKOFF_BASE * 2**(n-1)] ("full jitter")
BACKOFF_MAX = 5.0   # seconds: no exponential pause is longer


class Retryable(Exception):
    """A failure worth another try: 429, 5xx, time-out, refused connection, a body that is not the envelope."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Which setting an operator fixes when a service refuses us for good.
_SETTING_FOR_STATUS = {401: "ORDERLY_API_TOKEN", 403: "ORDERLY_API_TOKEN"}


@dataclass(frozen=True)
class Service:
    name: str         # "orders" or "warehouse"
    base_url: str
    url_setting: str  # the variable that points at it


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
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
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
        headers = {"Accept": "application/json"}
        if settings.api_token:
            headers["Authorization"] = f"Bearer {settings.api_token}"
        self._headers = headers

    def _client(self, service: Service) -> httpx.AsyncClient:
        # The sandbox stands in only for the services whose URL is unset.
        in_process = service.base_url == SANDBOX_BASE
        return httpx.AsyncClient(
            base_url=service.base_url,
            transport=self._sandbox_transport if in_process else None,
            headers=self._headers,
            timeout=httpx.Timeout(self.settings.http_timeout),
            limits=httpx.Limits(max_connections=self.settings.fetch_concurrency),
        )

    async def _get(self, client: httpx.AsyncClient, service: Service, path: str, params: dict, envelope) -> dict:
        url = f"{service.base_url.rstrip('/')}{path}"
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
                    return await self._get_once(client, service, url, path, params, envelope)
        except Retryable as error:
            raise RemoteError(
                f"{service.name} service at {url} failed after {self.settings.http_retries + 1} attempts: {error} "
                f"(check {service.url_setting}, or raise ORDERLY_HTTP_RETRIES)"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(self, client, service: Service, url: str, path: str, params: dict, envelope) -> dict:
        try:
            response = await client.get(path, params=params)
        except httpx.TimeoutException:
            raise Retryable(f"timed out after {self.settings.http_timeout:g} s") from None
        except httpx.TransportError as error:
            raise Retryable(f"connection failed ({type(error).__name__})") from None
        status = response.status_code
        if status in (401, 403, 404):
            setting = _SETTING_FOR_STATUS.get(status, service.url_setting)
            raise RemoteError(f"{service.name} service answered {status} for {url}: check {setting}")
        if status == 429:
            raise Retryable("429 Too Many Requests", _retry_after(response, self.settings.retry_after_cap))
        if status >= 500:
            raise Retryable(f"{status} {response.reason_phrase}")
        if status != 200:
            raise RemoteError(f"{service.name} service answered {status} for {url}: check {service.url_setting}")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise Retryable("the body is not JSON") from None
        problem = envelope(body)
        if problem:
            raise Retryable(f"the body is not the expected envelope: {problem}")
        return body

    # ---- stock ---------------------------------------------------------------------------

    async def stock_snapshot(self) -> list[Any]:
        """Every page of the warehouse's stock: page 1 first, then the rest concurrently (bounded)."""
        per_page = self.settings.page_size
        async with self._client(self.warehouse) as client:
            async def page(number: int) -> dict:
                return await self._get(
                    client, self.warehouse, "/stock", {"page": number, "per_page": per_page}, _stock_envelope(number)
                )

            first = await page(1)
            total = first["total_pages"]
            gate = asyncio.Semaphore(self.settings.fetch_concurrency)

            async def gated(number: int) -> dict:
                async with gate:
                    return await page(number)

            rest = await _all_or_nothing([gated(n) for n in range(2, total + 1)])
        records: list[Any] = list(first["items"])
        for body in rest:
            records.extend(body["items"])
        return records

    # ---- orders --------------------------------------------------------------------------

    async def order_pages(self, after_id: int) -> AsyncIterator[tuple[list[Any], int, bool]]:
        """Pages of orders after `after_id`: (records, the cursor once they are dealt with, last page?)."""
        async with self._client(self.orders) as client:
            while True:
                body = await self._get(
                    client, self.orders, "/orders", {"after_id": after_id, "limit": self.settings.page_size},
                    _orders_envelope,
                )
                records, next_after_id = body["orders"], body["next_after_id"]
                if next_after_id is None:
                    ids = [r.get("id") for r in records if isinstance(r, dict)]
                    ids = [i for i in ids if type(i) is int]
                    yield records, max([after_id, *ids]), True
                    return
                if next_after_id <= after_id:
                    raise RemoteError(
                        f"orders service at {self.orders.base_url} did not move past after_id={after_id} "
                        f"(next_after_id={next_after_id}); stopping rather than looping"
                    )
                yield records, next_after_id, False
                after_id = next_after_id


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


def _orders_envelope(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
        return "no 'orders' list"
    if "next_after_id" not in body:
        return "no 'next_after_id'"
    cursor = body["next_after_id"]
    if cursor is not None and type(cursor) is not int:
        return "'next_after_id' is neither an integer nor null"
    return None


def _stock_envelope(page: int):
    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            return "no 'items' list"
        if type(body.get("total_pages")) is not int or body["total_pages"] < 0:
            return "no integer 'total_pages'"
        if body.get("page") not in (None, page):
            return f"asked for page {page}, got page {body.get('page')}"
        return None

    return check
