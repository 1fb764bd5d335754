"""The sandbox as an ASGI app: GET /orders, GET /stock and GET /health on one base URL, and the webhook
receiver Orderly's decision feed posts to (POST /webhook, GET /webhook/received: receiver.py).

Served in-process (`in_process_transport`, no port: the pipeline's httpx client runs
unchanged) or over real HTTP (`serve`, uvicorn). Every API answer passes, in order:
latency -> bearer token -> query parameters -> injected fault -> the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderly.settings import SandboxSettings

from .base import MAX_PAGE, DataSet
from .data import dataset_for
from .faults import FaultInjector
from .receiver import webhook_routes

DEFAULT_LIMIT = MAX_PAGE
DEFAULT_PER_PAGE = 500
DEFAULT_SLOW_MS = 2000.0  # a "slow" fault answers this late (or after latency_ms if longer)
DEFAULT_PORT = 8100  # not 8000: `orderly ui` listens there, and both run side by side

_INT = re.compile(r"-?[0-9]{1,18}")  # strict: int() would also take "1_000", " 7" or "+7"


class _BadParam(Exception):
    pass


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _INT.fullmatch(raw):
        raise _BadParam(f"{name} must be an integer")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _BadParam(f"{name} must be {bound}, got {value}")
    return value


def create_app(
    settings: SandboxSettings,
    *,
    dataset: DataSet | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The sandbox app for `settings` (data set from `dataset_for(settings)` unless given)."""
    data = dataset if dataset is not None else dataset_for(settings)
    faults = FaultInjector(settings.seed, settings.fault_rate)
    latency_s = settings.latency_ms / 1000.0
    slow_extra_s = max(0.0, slow_ms / 1000.0 - latency_s)  # total delay of a slow answer: max(latency, slow)
    expected_auth = f"Bearer {settings.token}".encode() if settings.token else None

    async def answer(request: Request, query, build: Callable[[], bytes]) -> Response:
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        if expected_auth is not None:
            given = request.headers.get("authorization", "").encode()
            # Constant-time compare; the answer never says what was expected.
            if not hmac.compare_digest(given, expected_auth):
                return _json({"error": "unauthorized"}, 401)
        try:
            key = query()
        except _BadParam as exc:
            return _json({"error": str(exc)}, 400)
        fault = faults.decide(key)
        if fault == "500":
            return _json({"error": "internal server error (sandbox fault)"}, 500)
        if fault == "503":
            return _json({"error": "service unavailable (sandbox fault)"}, 503)
        if fault == "429":
            return _json({"error": "too many requests (sandbox fault)"}, 429, {"Retry-After": "1"})
        if fault == "bad_envelope":
            return _json({"data": []})
        if fault == "slow" and slow_extra_s > 0:
            await asyncio.sleep(slow_extra_s)
        body = build()
        if fault == "truncated":
            body = body[: len(body) // 2]
        # Says which fault a 200 carries, for tests and people reading traces; clients must not rely on it.
        headers = {"X-Sandbox-Fault": fault} if fault in ("slow", "truncated") else None
        return Response(body, media_type="application/json", headers=headers)

    async def orders(request: Request) -> Response:
        params: dict[str, int] = {}

        def query() -> str:
            params["after_id"] = _int_param(request, "after_id", 0, 0, None)
            params["limit"] = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_PAGE)
            return f"/orders?after_id={params['after_id']}&limit={params['limit']}"

        return await answer(request, query, lambda: data.orders_page_json(params["after_id"], params["limit"]))

    async def stock(request: Request) -> Response:
        params: dict[str, int] = {}

        def query() -> str:
            params["page"] = _int_param(request, "page", 1, 1, None)
            params["per_page"] = _int_param(request, "per_page", DEFAULT_PER_PAGE, 1, MAX_PAGE)
            return f"/stock?page={params['page']}&per_page={params['per_page']}"

        return await answer(request, query, lambda: orjson.dumps(data.stock_page(params["page"], params["per_page"])))

    async def health(request: Request) -> Response:
        return _json({"ok": True})

    async def http_error(request: Request, exc: Exception) -> Response:
        # JSON for unknown paths (404) and wrong methods (405) too, like the real services.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _json({"error": "not found" if status == 404 else str(getattr(exc, "detail", "error"))}, status)

    return Starlette(
        routes=[
            Route("/orders", orders, methods=["GET"]),
            Route("/stock", stock, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            *webhook_routes(settings.webhook_secret),
        ],
        exception_handlers={404: http_error, 405: http_error},
        lifespan=lifespan,
    )


@contextlib.asynccontextmanager
async def freeze_heap_once_started(app: Starlette) -> AsyncIterator[None]:
    """Freeze what start-up left on the heap: imports, the app, the data set.

    All of it lives as long as the server, yet every full collection walked it again, and a page built on the dict
    path (flawed records) makes enough objects to set collections off. Run as the lifespan, so it comes after
    uvicorn has imported its loop and protocol modules too."""
    gc.collect()
    gc.freeze()
    yield


def in_process_transport(settings: SandboxSettings, *, slow_ms: float = DEFAULT_SLOW_MS) -> httpx.AsyncBaseTransport:
    """An httpx transport straight into the sandbox app: `AsyncClient(base_url="http://sandbox", transport=...)`.

    Note: httpx enforces no time-outs on an ASGI transport; a "slow" fault simply takes slow_ms.
    """
    return httpx.ASGITransport(app=create_app(settings, slow_ms=slow_ms))


def start_lines(settings: SandboxSettings, data: DataSet, host: str, port: int) -> list[str]:
    """What `orderly sandbox` prints when it starts: what it serves where, then the settings that point Orderly
    at it, ready to paste. Never the token: the line that would set it only says it is needed."""
    lines = [f"sandbox serving {data.order_count} orders and {data.stock_count} stock items on {_url(host, port)}"]
    # A wildcard address is where the sandbox listens, not one to connect to: a client reaches it on loopback.
    url = _url({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port)
    lines += [f"export ORDERLY_ORDERS_URL={url}", f"export ORDERLY_WAREHOUSE_URL={url}"]
    if settings.token:
        lines.append("# and the token it requires (ORDERLY_SANDBOX_TOKEN, not shown): export ORDERLY_API_TOKEN=...")
    return lines


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"  # an IPv6 address in brackets


def serve(
    settings: SandboxSettings,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    slow_ms: float = DEFAULT_SLOW_MS,
) -> None:
    """Serve the sandbox over HTTP with uvicorn until interrupted."""
    import uvicorn  # only needed here; keeps in-process use light

    data = dataset_for(settings)
    app = create_app(settings, dataset=data, slow_ms=slow_ms, lifespan=freeze_heap_once_started)
    print("\n".join(start_lines(settings, data, host, port)), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
