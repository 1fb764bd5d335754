"""A hostile remote of our own: both APIs (orders and stock) over real loopback HTTP, scriptable per test.

    remote = HostileRemote()                      # listens on 127.0.0.1, a free port; remote.url
    remote.script(orders=[...], stock=[...], overlap=1, fault=...)
    ...
    remote.close()

What a test scripts (`Script`):
- the data: `orders` (records in the order the service holds them) and `stock` (records); any JSON value,
  including ints past 64 bits, floats, huge strings, and `Raw("...")` for JSON text written as is (a lone
  surrogate escape `Raw('"\\ud800"')`, `Raw("1e3")`);
- how the orders pages misbehave: `overlap` (each page starts that many records before the cursor: a `>=`
  cursor re-sends the last record), `serve_limit` (ignores `limit`), `skip_ahead` (`next_after_id` that many
  records beyond the last one sent), `next_after_id(after_id, default)` (any value: past 64 bits, backwards...),
  `keys` (the service's own order keys, when a record's `id` is corrupt or repeated);
- how the stock pages misbehave: `total_pages(page, computed)` (changes between pages, huge, not a number);
- any answer at all for one request: `fault(request) -> Reply | None` (None: the normal answer), with
  `request.n` = how many times this exact query was asked before and `request.normal()` the normal answer.
  `Reply` is raw control over the socket: any status and headers, a Content-Length larger than the body
  (then the connection closes: a cut body), bytes that are not UTF-8, `Content-Encoding: gzip` over garbage,
  a body trickled byte by byte (`trickle` seconds between bytes), a delay before the status line.
- `token`: answer 401 unless `Authorization: Bearer <token>`.

What a test reads: `requests` (path, params, n, status, at), `count(path, **params)`, `in_flight` /
`max_in_flight` (requests being answered at once), and `served_orders()` / `served_stock()`: the records of every
normal answer that was written in full (the records a client can have received), in the order they were sent.

The server writes the socket itself (it does not use `send_response`), so it can trickle and cut bodies.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

INT64_MAX = 2**63 - 1


# ---- JSON text with raw fragments ------------------------------------------------------------------


class Raw:
    """A JSON fragment written exactly as given (e.g. `Raw('"\\ud800"')`, `Raw("1e3")`, `Raw("-0")`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Raw) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _dump(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _dump(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    # ensure_ascii: a lone surrogate in a str goes out as a `\udXXX` escape, which is valid JSON text
    return json.dumps(value)


def dumps(value: Any) -> bytes:
    """JSON bytes of `value`, with `Raw` fragments as is; any int (even past 64 bits) exactly."""
    return _dump(value).encode("utf-8", "surrogatepass")


def as_received(value: Any) -> Any:
    """What a client parsing our JSON text gets (stdlib json: big ints exact, lone surrogates kept)."""
    return json.loads(dumps(value))


# ---- answers -----------------------------------------------------------------------------------------

JSON_TYPE = {"Content-Type": "application/json"}


@dataclass
class Reply:
    """One answer, byte for byte. `content_length` None: the body's length; larger than the body: the body is
    sent, then the connection closes (a cut body). `trickle`: seconds between the body's bytes."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_TYPE))
    content_length: int | None = None
    trickle: float = 0.0
    delay: float = 0.0
    records: list | None = None  # set on normal answers: the records they carry (for the served log)

    @classmethod
    def json(cls, value: Any, status: int = 200, **kw) -> Reply:
        return cls(status, dumps(value), **kw)


def error(status: int, body: bytes = b'{"error": "no"}', **headers: str) -> Reply:
    return Reply(status, body, {**JSON_TYPE, **headers})


def html(status: int = 200) -> Reply:
    return Reply(status, b"<html><body>maintenance</body></html>", {"Content-Type": "text/html"})


def cut(reply: Reply, keep: float = 0.5) -> Reply:
    """The same answer, cut: Content-Length says the whole body, the connection closes after part of it."""
    body = reply.body[: int(len(reply.body) * keep)]
    return replace(reply, body=body, content_length=len(reply.body), records=None)


def bad_utf8(reply: Reply | None = None) -> Reply:
    """A JSON-looking body with bytes that are not UTF-8 (declared utf-8)."""
    body = reply.body if reply is not None else b'{"orders": [], "next_after_id": null}'
    broken = body.replace(b'"', b'"\xff\xfe', 1) if b'"' in body else b"\xff\xfe" + body
    return Reply(200, broken, {"Content-Type": "application/json; charset=utf-8"})


def gzip_garbage(reply: Reply | None = None) -> Reply:
    """`Content-Encoding: gzip` over bytes that are not gzip (or a gzip stream cut in the middle)."""
    if reply is None:
        body = b"\x1f\x8b\x08\x00garbage, not a deflate stream" * 4
    else:
        whole = gzip.compress(reply.body)
        body = whole[: max(12, len(whole) // 2)] + b"\x00garbage"
    return Reply(200, body, {**JSON_TYPE, "Content-Encoding": "gzip"})


def gzipped(reply: Reply) -> Reply:
    """The same answer, correctly gzip-encoded (a well-behaved compressing service)."""
    return replace(reply, body=gzip.compress(reply.body), headers={**reply.headers, "Content-Encoding": "gzip"})


def slow(reply: Reply, per_byte: float = 0.5) -> Reply:
    """The same answer, one byte every `per_byte` seconds after prompt headers."""
    return replace(reply, trickle=per_byte)


# ---- the script -----------------------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    params: dict[str, str]
    headers: Any
    n: int  # how many times this exact query (path and params) was asked before
    normal: Callable[[], Reply]  # the answer a well-behaved service would give (computed on demand)


@dataclass
class Script:
    orders: list = field(default_factory=list)
    stock: list = field(default_factory=list)
    keys: list[int] | None = None  # the service's key per order record; default: see `order_keys`
    overlap: int = 0
    serve_limit: int | None = None
    skip_ahead: int = 0
    next_after_id: Callable[[int, Any], Any] | None = None  # (after_id, default) -> the value sent
    total_pages: Callable[[int, int], Any] | None = None  # (page, computed) -> the value sent
    fault: Callable[[Request], Reply | None] | None = None
    token: str | None = None


def order_keys(orders: list) -> list[int]:
    """The service's own key of each order record (what `after_id` is compared with): the record's id when it
    is an int in 1..2**63-1 not below the previous key, else one past the previous key (a corrupt id still sits
    somewhere in the service's sequence). Keys never decrease; equal keys are re-sends of one order."""
    keys, previous = [], 0
    for record in orders:
        rid = record.get("id") if isinstance(record, dict) else None
        key = rid if type(rid) is int and previous <= rid <= INT64_MAX and rid >= 1 else previous + 1
        keys.append(key)
        previous = key
    return keys


class _Compiled:
    """A script with its order keys worked out once (the handler threads only read it)."""

    def __init__(self, script: Script) -> None:
        self.s = script
        self.keys = list(script.keys) if script.keys is not None else order_keys(script.orders)
        if len(self.keys) != len(script.orders) or any(b < a for a, b in itertools.pairwise(self.keys)):
            raise ValueError("keys must be one per order record and never decrease")

    def orders_page(self, after_id: int, limit: int) -> tuple[list, Any]:
        s, keys = self.s, self.keys
        first_new = bisect.bisect_right(keys, after_id)
        start = max(0, first_new - s.overlap)
        size = s.serve_limit if s.serve_limit is not None else limit
        records = s.orders[start : start + max(size, 0)]
        end = start + len(records)
        if end >= len(s.orders):
            default = None
        elif records:
            default = keys[min(end - 1 + s.skip_ahead, len(keys) - 1)]
        else:
            default = after_id
        return records, (s.next_after_id(after_id, default) if s.next_after_id else default)

    def stock_page(self, page: int, per_page: int) -> tuple[list, Any]:
        items = self.s.stock
        per_page = max(per_page, 1)
        computed = max(1, -(-len(items) // per_page))
        records = items[(page - 1) * per_page : page * per_page] if page >= 1 else []
        total = self.s.total_pages(page, computed) if self.s.total_pages else computed
        return records, total


# ---- the server ------------------------------------------------------------------------------------------


class HostileRemote:
    """The hostile service on 127.0.0.1 (a free port). Thread-safe: re-script it between examples."""

    def __init__(self, max_trickle_s: float = 12.0) -> None:
        self.max_trickle_s = max_trickle_s  # a trickle stops (and the connection closes) after this long
        self._lock = threading.Lock()
        self._compiled = _Compiled(Script())
        self._seen: dict[tuple, int] = {}
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._served: list[tuple[str, dict, list]] = []
        self._closing = threading.Event()
        remote = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                remote._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    # -- scripting and reading --------------------------------------------------------------------------

    def script(self, script: Script | None = None, /, **fields: Any) -> HostileRemote:
        """Serve this from now on (a `Script`, or its fields); the request log and counts start afresh."""
        compiled = _Compiled(script if script is not None else Script(**fields))
        with self._lock:
            self._compiled = compiled
            self._seen = {}
            self.requests = []
            self._served = []
            self.max_in_flight = self.in_flight
        return self

    def count(self, path: str, **params: Any) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r["path"] == path and all(r["params"].get(k) == str(v) for k, v in params.items())
            )

    def served_orders(self) -> list:
        """Records of every normal /orders answer written in full, in the order sent."""
        with self._lock:
            return [record for path, _, records in self._served if path == "/orders" for record in records]

    def served_stock(self) -> list:
        with self._lock:
            return [record for path, _, records in self._served if path == "/stock" for record in records]

    def take_served(self) -> list[tuple[str, dict, list]]:
        """Every normal answer written in full since the last call: (path, params, records); then forget them."""
        with self._lock:
            served, self._served = self._served, []
        return served

    def normal(self, path: str, **params: Any) -> Reply:
        """The answer a well-behaved service would give to this query now (e.g. to repeat an earlier page)."""
        with self._lock:
            compiled = self._compiled
        return self._normal(compiled, path, {k: str(v) for k, v in params.items()})

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HostileRemote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- answering --------------------------------------------------------------------------------------

    def _normal(self, compiled: _Compiled, path: str, params: dict[str, str]) -> Reply:
        try:
            if path == "/orders":
                after_id, limit = int(params.get("after_id", "0")), int(params["limit"])
                records, next_after_id = compiled.orders_page(after_id, limit)
                reply = Reply.json({"orders": records, "next_after_id": next_after_id})
            elif path == "/stock":
                page, per_page = int(params.get("page", "1")), int(params["per_page"])
                records, total = compiled.stock_page(page, per_page)
                reply = Reply.json({"items": records, "page": page, "per_page": per_page, "total_pages": total})
            else:
                return error(404, b'{"error": "not found"}')
        except (KeyError, ValueError):
            return error(400, b'{"error": "bad query"}')
        reply.records = records
        return reply

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        params = dict(parse_qsl(parts.query))
        key = (parts.path, tuple(sorted(params.items())))
        with self._lock:
            compiled = self._compiled
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
            entry = {"path": parts.path, "params": params, "n": n, "at": time.monotonic(), "status": None}
            self.requests.append(entry)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        pending = [True]

        def answered() -> None:  # this request leaves the in-flight count once, at its last bytes or its end
            with self._lock:
                if pending:
                    pending.clear()
                    self.in_flight -= 1

        try:
            script = compiled.s
            reply = None
            if script.token is not None and handler.headers.get("Authorization") != f"Bearer {script.token}":
                reply = error(401, b'{"error": "unauthorized"}')
            normal_cache: list[Reply] = []

            def normal() -> Reply:
                if not normal_cache:
                    normal_cache.append(self._normal(compiled, parts.path, params))
                return normal_cache[0]

            if reply is None and script.fault is not None:
                reply = script.fault(Request(parts.path, params, handler.headers, n, normal))
            if reply is None:
                reply = normal()
            entry["status"] = reply.status
            complete = self._write(handler, reply, answered)
            if complete and reply.records is not None and reply.status == 200:
                with self._lock:
                    if self._compiled is compiled:
                        self._served.append((parts.path, params, reply.records))
        finally:
            answered()
            handler.close_connection = True

    def _write(self, handler: BaseHTTPRequestHandler, reply: Reply, answered: Callable[[], None]) -> bool:
        """Write the answer on the socket; True when all of it (as announced) went out. `answered` is called just
        before the last bytes go: the client can ask again only once it has them, so a request it sends then is
        never counted as in flight beside this one (the thread's own bookkeeping after the send is no overlap)."""
        if reply.delay and self._closing.wait(reply.delay):
            return False
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        length = len(reply.body) if reply.content_length is None else reply.content_length
        head = [f"HTTP/1.1 {reply.status} {phrase}", f"Content-Length: {length}", "Connection: close"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        out = handler.wfile
        try:
            out.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if reply.trickle:
                started = time.monotonic()
                for i in range(len(reply.body)):
                    if i == len(reply.body) - 1:
                        answered()
                    out.write(reply.body[i : i + 1])
                    if time.monotonic() - started > self.max_trickle_s or self._closing.wait(reply.trickle):
                        return False
            else:
                answered()
                out.write(reply.body)
            out.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            return False
        if length > len(reply.body):  # a cut body: announce more than we send, then hang up
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return False
        return True


# ---- records -----------------------------------------------------------------------------------------------

PLACED_AT = "2026-11-20T09:15:00Z"


def order(oid: Any, *lines: tuple[Any, Any], customer: Any = "C-1", placed_at: Any = PLACED_AT) -> dict:
    """An order record; `lines` are (inventory_id, quantity)."""
    return {
        "id": oid,
        "placed_at": placed_at,
        "customer_id": customer,
        "items": [{"inventory_id": item, "quantity": qty} for item, qty in lines],
    }


def item(
    inventory_id: Any,
    quantity: Any,
    *,
    sku: Any = None,
    product_id: Any = 1,
    warehouse_id: Any = 1,
    name: Any = "Thing",
    updated_at: Any = "2026-11-20T09:00:00Z",
) -> dict:
    """A stock record."""
    return {
        "inventory_id": inventory_id,
        "product_id": product_id,
        "sku": sku if sku is not None else f"SKU-{inventory_id}",
        "product_name": name,
        "warehouse_id": warehouse_id,
        "quantity": quantity,
        "updated_at": updated_at,
    }


# ---- the pipeline in-process -------------------------------------------------------------------------------


@dataclass
class PipelineResult:
    run_id: str
    stock_counts: list[dict] = field(default_factory=list)  # what load_stock returned (one per sync)
    order_counts: list[dict] = field(default_factory=list)  # what load_orders returned, one per chunk
    process_counts: dict | None = None
    problems: list[str] = field(default_factory=list)
    reconcile: dict | None = None  # run_reconcile: remote, stored, missing, added, changed


_COUNT_NAMES = {  # what the loaders call each measure: "<source>_<name>" since issue 10, bare names before it
    "received": ("fetched", "received"),
    "loaded": ("loaded",),
    "rejected": ("rejected",),
    "repeated": ("repeated", "unchanged"),
}


def loader_counts(counts: dict, source: str) -> dict[str, int]:
    """One batch's counts as returned by load_orders / load_stock ("orders" / "stock"), as received, loaded,
    rejected and repeated (unchanged repeats; 0 when the loader reports none)."""
    found = {}
    for measure, names in _COUNT_NAMES.items():
        keys = [f"{source}_{name}" for name in names] + list(names)
        found[measure] = next((counts[key] for key in keys if key in counts), None)
    if found["received"] is None or found["loaded"] is None or found["rejected"] is None:
        raise AssertionError(f"unexpected loader counts: {counts}")
    found["repeated"] = found["repeated"] or 0
    return found


def total_counts(batches: list[dict], source: str) -> dict[str, int]:
    """The counts of several batches (a run's), added up."""
    totals = {"received": 0, "loaded": 0, "rejected": 0, "repeated": 0}
    for batch in batches:
        for measure, value in loader_counts(batch, source).items():
            totals[measure] += value
    return totals


def run_pipeline(
    settings: Any,
    *,
    pages_per_chunk: int | None = None,
    process: bool = True,
    run_id: str | None = None,
    record_run: bool = True,
) -> PipelineResult:
    """One `orderly run` in this process, without a Prefect flow run: the ingest use cases (orderly.ingest) and
    the process use case, as the flow's tasks call them. A remote failure ends that step as in the flow (the run
    goes on and the problem is kept); processing's refusal is kept as a problem too."""
    from orderly import ingest

    def steps(result: PipelineResult) -> None:
        stock = ingest.sync_stock(settings, result.run_id)
        if stock.problem is None:
            result.stock_counts.append(stock.counts)
        orders = ingest.ingest_orders(
            settings, result.run_id, pages_per_chunk=pages_per_chunk or ingest.ORDER_PAGES_PER_CHUNK
        )
        result.order_counts.append(orders.counts)
        result.problems += [p for p in (stock.problem, orders.problem) if p]
        if process:
            _process(settings, result)

    return _recorded(settings, "pipeline", run_id, record_run, steps)


def run_reconcile(
    settings: Any, *, pages_per_chunk: int | None = None, run_id: str | None = None, record_run: bool = True
) -> PipelineResult:
    """One `orderly reconcile` in this process (orderly.ingest.reconcile_orders); `.reconcile` holds what it found."""
    from orderly import ingest

    def steps(result: PipelineResult) -> None:
        outcome = ingest.reconcile_orders(
            settings, result.run_id, pages_per_chunk=pages_per_chunk or ingest.ORDER_PAGES_PER_CHUNK
        )
        result.order_counts.append(outcome.counts)
        result.reconcile = outcome.reconcile
        result.problems += [outcome.problem] if outcome.problem else []

    return _recorded(settings, "reconcile", run_id, record_run, steps)


def _process(settings: Any, result: PipelineResult) -> None:
    from orderly import service
    from orderly.errors import OrderlyError
    from orderly.store import open_store

    try:
        with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
            result.process_counts = service.process(con, result.run_id, None, max_stock_age=settings.max_stock_age)
    except OrderlyError as failure:
        result.problems.append(str(failure))


def _recorded(
    settings: Any, flow: str, run_id: str | None, record_run: bool, steps: Callable[[PipelineResult], None]
) -> PipelineResult:
    """The run's row, as flows.run_record keeps it (RUNNING, then COMPLETED or FAILED with its first problem)."""
    import uuid

    from orderly.store import open_store, writes

    result = PipelineResult(run_id or str(uuid.uuid4()))
    if record_run:  # the loaders add to the run's counters when its row exists; they need none
        with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
            writes.start_run(con, result.run_id, flow)
    steps(result)
    if record_run:
        with open_store(settings.db_path, lock_timeout=settings.lock_timeout) as con:
            writes.finish_run(
                con,
                result.run_id,
                "FAILED" if result.problems else "COMPLETED",
                result.problems[0] if result.problems else None,
            )
    return result


def one_ca_bundle(directory: Any) -> str:
    """A CA file holding one certificate (certifi's first), for SSL_CERT_FILE in tests.

    Every RemoteClient call makes an httpx client, and httpx loads its CA bundle (~150 certificates, 50-75 ms)
    even for plain http:// URLs. Our remotes are loopback http, so the bundle is never used: a one-certificate
    bundle keeps the cost out of tests that run the pipeline hundreds of times, and changes nothing they test."""
    import re
    from pathlib import Path

    import certifi

    first = re.search(
        r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", Path(certifi.where()).read_text(), re.S
    )
    path = Path(directory) / "one-ca.pem"
    path.write_text(first.group(0))
    return str(path)


def settings_for(remote_url: str, db_path: Any, **env: Any) -> Any:
    """Settings as the command reads them (from the environment's names), for a remote and a DuckDB file."""
    from orderly.settings import Settings

    values = {
        "ORDERLY_DB": str(db_path),
        "ORDERLY_ORDERS_URL": remote_url,
        "ORDERLY_WAREHOUSE_URL": remote_url,
        "ORDERLY_PAGE_SIZE": "3",
        "ORDERLY_HTTP_RETRIES": "3",
        "ORDERLY_HTTP_TIMEOUT": "2",
        "ORDERLY_FETCH_CONCURRENCY": "2",
        "ORDERLY_RETRY_AFTER_CAP": "0.2",
    }
    values.update({k: str(v) for k, v in env.items()})
    return Settings.from_env(values)


# ---- reading the store ---------------------------------------------------------------------------------------


class WarmStore:
    """A fresh DuckDB file held open by the test for its whole life. Every task still opens and closes the file
    through orderly.store as in production; DuckDB then shares this process's open instance, so each open costs
    well under a millisecond instead of ~50 ms (and no checkpoint per close). Read it with `stored(warm.con)`."""

    def __init__(self, path: Any) -> None:
        import duckdb

        self.path = path
        self.con = duckdb.connect(str(path))
        # One thread per query: these stores hold a few dozen rows, and on a shared 2-core machine DuckDB's
        # worker threads cost more in hand-offs than they save (a global setting: it applies to the tasks'
        # connections, which share this instance; it changes no result).
        self.con.execute("SET GLOBAL threads = 1")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> WarmStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stored(source: Any) -> dict:
    """The store's orders, lines, stock and rejects as plain Python values (exact ints via fetchall).
    `source`: a DuckDB file's path (opened read-only), a WarmStore, or an open connection."""
    import duckdb

    if isinstance(source, WarmStore):
        source = source.con
    own = not isinstance(source, duckdb.DuckDBPyConnection)
    con = duckdb.connect(str(source), read_only=True) if own else source.cursor()
    try:
        orders = {
            row[0]: {"placed_at": row[1], "customer_id": row[2], "status": row[3], "reason": row[4]}
            for row in con.execute(
                "SELECT order_id, placed_at, customer_id, status, reason FROM orders ORDER BY order_id"
            ).fetchall()
        }
        lines: dict[int, list[tuple[int, int]]] = {}
        for oid, inv, qty in con.execute(
            "SELECT order_id, inventory_id, quantity FROM order_lines ORDER BY order_id, line_no"
        ).fetchall():
            lines.setdefault(oid, []).append((inv, qty))
        stock = dict(con.execute("SELECT inventory_id, quantity FROM stock_items ORDER BY inventory_id").fetchall())
        rejects = [
            dict(zip(("source", "record_key", "raw", "reasons", "run_id"), row, strict=True))
            for row in con.execute(
                "SELECT source, record_key, raw, reasons, run_id FROM rejects ORDER BY rowid"
            ).fetchall()
        ]
        history = con.execute("SELECT count(*) FROM status_changes").fetchall()[0][0]
        cursor = con.execute("SELECT after_id FROM cursors WHERE name = 'orders'").fetchall()
        runs = [
            dict(zip(("run_id", "state", "message"), row, strict=True))
            for row in con.execute("SELECT run_id, state, message FROM runs ORDER BY started_at").fetchall()
        ]
    finally:
        con.close()  # a cursor's close leaves the held connection open
    return {
        "orders": orders,
        "lines": lines,
        "stock": stock,
        "rejects": rejects,
        "history": history,
        "cursor": cursor[0][0] if cursor else None,
        "runs": runs,
    }


# ---- the command against the hostile remote ---------------------------------------------------------------


def hostile_env(cli_env: dict, url: str, **extra: Any) -> dict:
    """The `orderly` command's environment for both remotes at `url`: small pages, one retry, short time-outs."""
    return {
        **cli_env,
        "ORDERLY_ORDERS_URL": url,
        "ORDERLY_WAREHOUSE_URL": url,
        "ORDERLY_PAGE_SIZE": "3",
        "ORDERLY_HTTP_RETRIES": "1",
        "ORDERLY_HTTP_TIMEOUT": "2",
        "ORDERLY_RETRY_AFTER_CAP": "0.2",
        **{k: str(v) for k, v in extra.items()},
    }


def cli(args: list[str], env: dict, timeout: float = 120) -> Any:
    """`orderly ARGS`, whatever its exit status (a subprocess.CompletedProcess)."""
    from conftest import run_cli

    return run_cli(args, env, timeout=timeout, check=False)


def query(args: list[str], env: dict) -> Any:
    """`orderly ARGS --json`, parsed."""
    import json

    from conftest import run_cli

    return json.loads(run_cli([*args, "--json"], env).stdout)
