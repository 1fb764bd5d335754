"""The web page and its JSON API (starlette). Reads go through orderly.store.queries on the StoreReader's copy
and never import Prefect; the two POST endpoints start button runs (orderly.ui.actions)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from domain.bounds import MAX_INT
from domain.model import Reason, Status
from orderly import settings as _settings
from orderly.errors import BadArgument, StoreBusy, UnknownOrders, UsageError, explain
from orderly.explanations import change_why, short_items, why_failed
from orderly.settings import Settings
from orderly.store import queries
from orderly.ui.actions import Buttons
from orderly.ui.jsonresp import JSONResponse, error
from orderly.ui.security import Guard
from orderly.ui.snapshot import Read, StoreReader, busy_message

STATIC = Path(__file__).parent / "static"
PAGE_SIZES = (1, 500)
log = logging.getLogger("orderly.ui")


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:40] + "...")


class Params:
    """The query string, checked: unknown or repeated names and bad values are a BadArgument (a 400)."""

    def __init__(self, request: Request, allowed: set[str]) -> None:
        items = request.query_params.multi_items()
        for name, _ in items:
            if name not in allowed:
                expected = ", ".join(sorted(allowed)) or "none"
                raise BadArgument(f"unknown parameter {_shown(name)} (expected: {expected})")
        names = [name for name, _ in items]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise BadArgument(f"parameter {repeated[0]!r} given more than once")
        self.values = dict(items)

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        raw = self.values.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.isdigit():
            raise BadArgument(f"{name} must be a whole number from {low} to {high}, got {_shown(raw)}")
        value = int(raw)
        if not low <= value <= high:
            raise BadArgument(f"{name} must be from {low} to {high}, got {_shown(raw)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        raw = self.values.get(name)
        if raw is None or raw == "":
            return None
        if raw.upper() not in choices:
            raise BadArgument(f"{name} must be one of {', '.join(choices)}, got {_shown(raw)}")
        return raw.upper()

    def flag(self, name: str) -> bool:
        raw = self.values.get(name)
        if raw is None or raw.lower() in {"", "0", "false"}:
            return False
        if raw.lower() in {"1", "true"}:
            return True
        raise BadArgument(f"{name} must be true or false, got {_shown(raw)}")


def _api(endpoint: Callable[..., Any]) -> Callable[[Request], Response]:
    """Every API answer is JSON; every failure is one line, never a traceback: the line orderly.errors.explain
    gives the command line, under the HTTP status that means the same (bad usage 400, a busy store 503)."""

    @functools.wraps(endpoint)
    def wrapped(request: Request) -> Response:
        try:
            answer = endpoint(request)
        except StoreBusy:
            return error(503, busy_message(request.app.state.reader.db_path), {"Retry-After": "1"})
        except Exception as problem:  # noqa: BLE001
            line = explain(problem).line
            if isinstance(problem, UsageError):
                return error(400, line)
            log.error("%s %s failed: %s", request.method, request.url.path, line)
            return error(500, f"the page could not read the store: {line}")
        return answer if isinstance(answer, Response) else JSONResponse(answer)

    return wrapped


def _meta(read: Read, reader: StoreReader) -> dict[str, Any]:
    return {
        "store": {
            "path": str(reader.db_path),
            "exists": read.exists,
            "as_of": None if read.as_of is None else datetime.fromtimestamp(read.as_of, UTC).isoformat(),
            "stale": read.stale,
        }
    }


# ---- reads ---------------------------------------------------------------------------------------


@_api
def orders(request: Request) -> dict[str, Any]:
    params = Params(request, {"status", "reason", "after", "before", "last", "limit"})
    status = params.choice("status", tuple(Status))
    reason = params.choice("reason", tuple(Reason))
    after = params.integer("after", 0, MAX_INT)
    before = params.integer("before", 0, MAX_INT)
    last = params.flag("last")
    limit = params.integer("limit", *PAGE_SIZES, default=50)
    if [after is not None, before is not None, last].count(True) > 1:
        raise BadArgument("give at most one of after, before and last")
    reader = request.app.state.reader

    def query(con):
        page = queries.orders_page(
            con, status=status, reason=reason, after=after, before=before, last=last, limit=limit
        )
        return {**page, "counts": queries.status_counts(con)}

    read = reader.read(query)
    page = read.value or {"orders": [], "matching": 0, "offset": 0, "has_prev": False, "has_next": False, "counts": {}}
    return {**page, "limit": limit, "filter": {"status": status, "reason": reason}, **_meta(read, reader)}


@_api
def order(request: Request) -> Response | dict[str, Any]:
    Params(request, set())
    raw = request.path_params["order_id"]
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_INT:
        raise BadArgument(f"an order id is a whole number from 0 to {MAX_INT}, got {_shown(raw)}")
    order_id = int(raw)
    reader = request.app.state.reader
    read = reader.read(lambda con: _explained(con, order_id))
    explained, history = read.value or (None, [])
    if explained is None:
        return error(404, explain(UnknownOrders([order_id], "")).line)
    return {"order": explained, "history": history, **_meta(read, reader)}


def _explained(con, order_id: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """What `orderly explain` and `orderly history` read, with the words they print (`why`, by the same
    functions, each short item named by its SKU and product name too) and the run ids as tables show them: the
    page shows these as they are and never words an explanation itself."""
    explained, history = queries.explain_order(con, order_id), queries.order_history(con, order_id)
    if explained is None:
        return None, []
    names = queries.item_names(
        con,
        [
            *short_items(explained["explanation"]),
            *(item for change in history for item in short_items(change["details"])),
        ],
    )
    length = queries.short_run_length(con, [explained["decided_run"], *(change["run_id"] for change in history)])
    failed_now = explained["status"] == Status.FAILED
    explained["why"] = why_failed(explained["reason"], explained["explanation"], names) if failed_now else None
    explained["decided_run_short"] = _short(explained["decided_run"], length)
    for change in history:
        change["why"] = change_why(change, names)
        change["run_short"] = _short(change["run_id"], length)
    return explained, history


def _short(run_id: str | None, length: int) -> str | None:
    return None if run_id is None else run_id[:length]


@_api
def stock(request: Request) -> dict[str, Any]:
    params = Params(request, {"after", "limit"})
    after = params.integer("after", 0, MAX_INT)
    limit = params.integer("limit", 1, 5000, default=200)
    reader = request.app.state.reader
    read = reader.read(lambda con: (queries.latest_snapshot(con), queries.stock_levels(con)))
    snapshot, items = read.value or (None, [])
    shown = [item for item in items if after is None or item["inventory_id"] > after]
    return {
        "snapshot": snapshot,
        "items": shown[:limit],
        "total": len(items),
        "has_next": len(shown) > limit,
        **_meta(read, reader),
    }


@_api
def runs(request: Request) -> dict[str, Any]:
    params = Params(request, {"limit"})
    limit = params.integer("limit", 1, 200, default=10)
    reader = request.app.state.reader
    read = reader.read(lambda con: (_recent_runs(con, limit), queries.feed_state(con)))
    found, feed = read.value or ([], None)
    return {"runs": found, "feed": feed, "prefect_ui": request.app.state.prefect_ui, **_meta(read, reader)}


def _recent_runs(con, limit: int) -> list[dict[str, Any]]:
    """The last runs, each with its id as `orderly runs` shows it (`run_short`: long enough to tell it apart)."""
    found = queries.recent_runs(con, limit)
    length = queries.short_run_length(con, [run["run_id"] for run in found])
    return [{**run, "run_short": _short(run["run_id"], length)} for run in found]


@_api
def events(request: Request) -> Response:
    """The pull feed: at most `limit` decision events after event `after`, ascending; the same JSON as a webhook
    batch's body (orderly.feed.body). Read from the page's copy of the store, so it may trail it by a moment."""
    from orderly.feed.body import MAX_PAGE, events_body

    params = Params(request, {"after", "limit"})
    after = params.integer("after", 0, MAX_INT, default=0)
    limit = params.integer("limit", 1, MAX_PAGE, default=1000)
    read = request.app.state.reader.read(lambda con: events_body(con, after, limit)[0])
    return Response(read.value or b'{"events":[]}', media_type="application/json")


@_api
def config(request: Request) -> dict[str, Any]:
    Params(request, set())
    return {"auth_required": bool(request.app.state.token)}


@_api
def action(request: Request) -> dict[str, Any]:
    Params(request, set())
    return {"run": request.app.state.buttons.current(), "prefect_ui": request.app.state.prefect_ui}


# ---- the buttons ----------------------------------------------------------------------------------


def _press(button: str) -> Callable[[Request], Response]:
    @_api
    def press(request: Request) -> Response:
        Params(request, set())
        started, run = request.app.state.buttons.press(button)
        if not started:
            return JSONResponse(
                {"error": f"a {run['flow']} run is still going ({run['state']}): wait for it to end", "run": run},
                status_code=409,
            )
        return JSONResponse({"run": run}, status_code=202)

    press.__name__ = f"press_{button}"
    return press


def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    if status == 405:
        return error(405, f"{request.method} is not allowed on {request.url.path}")
    return error(404, f"no such page: {request.url.path}")


def create_app(
    db_path: Path,
    *,
    token: str | None = None,
    loopback_hosts_only: bool = True,
    settings: Settings | None = None,
    buttons: Buttons | None = None,
) -> Starlette:
    """The page on the store at `db_path`; `settings`: this command's (orderly.settings.current) unless given."""
    reader = StoreReader(db_path)
    settings = settings or _settings.current()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        reader.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/config", config),
            Route("/api/orders", orders),
            Route("/api/orders/{order_id}", order),
            Route("/api/stock", stock),
            Route("/api/runs", runs),
            Route("/api/events", events),
            Route("/api/action", action),
            Route("/api/process", _press("process"), methods=["POST"]),
            Route("/api/reset", _press("reset"), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, token=token, loopback_hosts_only=loopback_hosts_only)],
        exception_handlers={404: not_found, 405: not_found},
        lifespan=lifespan,
    )
    app.state.reader = reader
    app.state.token = token
    app.state.buttons = buttons or Buttons(reader, settings)
    app.state.prefect_ui = settings.prefect_ui_url
    return app


__all__ = ["create_app"]
