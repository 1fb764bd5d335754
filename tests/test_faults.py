"""How the services fail, and what the pipeline does (CONTRACT.md section 1), over real loopback HTTP.

The client-level tests drive orderly.boundary.remote against a scripted loopback server (tests/conftest.py
`stub_server`) so they can count exactly which requests were made; the end-to-end tests run the real
`orderly` command against `orderly sandbox` subprocesses with injected faults.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import orjson
import pytest
from conftest import free_port, run_cli

from orderly.boundary.remote import BACKOFF_BASE, RemoteClient, Retryable, _HonourRetryAfter
from orderly.errors import RemoteError
from orderly.sandbox import seed_dataset
from orderly.settings import Settings

OK_JSON = {"Content-Type": "application/json"}


def settings_for(url: str, **overrides) -> Settings:
    values = {
        "orders_url": url,
        "warehouse_url": url,
        "http_timeout": 0.5,
        "http_retries": 3,
        "retry_after_cap": 5.0,
        "page_size": 3,
        "fetch_concurrency": 4,
    }
    values.update(overrides)
    return Settings(**values)


def serve_dataset(data, fault=None):
    """A handler serving `data` like the real services; `fault(path, params, n)` may return an answer instead,
    n being how many times this exact query was asked before."""
    seen: dict[tuple, int] = {}

    def handler(path, params, headers):
        key = (path, tuple(sorted(params.items())))
        n = seen.get(key, 0)
        seen[key] = n + 1
        if fault is not None:
            answer = fault(path, params, n)
            if answer is not None:
                return answer
        if path == "/stock":
            body = data.stock_page(int(params["page"]), int(params["per_page"]))
        elif path == "/orders":
            body = data.orders_page(int(params.get("after_id", 0)), int(params["limit"]))
        else:
            return 404, OK_JSON, b'{"error": "not found"}'
        return 200, OK_JSON, orjson.dumps(body)

    return handler


async def _orders(client: RemoteClient) -> list:
    records = []
    async for page, _cursor, _last in client.order_pages(0):
        records.extend(page if isinstance(page, list) else page.to_records())
    return records


def read_all(settings: Settings) -> tuple[list, list]:
    client = RemoteClient(settings)
    return asyncio.run(client.stock_snapshot()), asyncio.run(_orders(client))


SEED = seed_dataset()
SEED_STOCK = list(SEED.all_stock())
SEED_ORDERS = list(SEED.all_orders())


# ---- retried failures -----------------------------------------------------------------------------

FAILURES = {
    "500": (500, OK_JSON, b'{"error": "boom"}'),
    "502": (502, {}, b"<html>bad gateway</html>"),
    "503": (503, OK_JSON, b'{"error": "unavailable"}'),
    "timeout": (200, OK_JSON, b'{"items": [], "page": 1, "per_page": 3, "total_pages": 1}', 1.5),
    "not-json": (200, OK_JSON, b'{"items": [{"inventory_id": 1'),
    "html": (200, {"Content-Type": "text/html"}, b"<html>maintenance</html>"),
    "wrong-envelope": (200, OK_JSON, b'{"data": []}'),
    "429-no-retry-after": (429, {}, b""),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_transient_failure_is_retried_on_that_page_only(stub_server, kind):
    """Page 2 of stock and the second page of orders fail twice, then answer: the same records arrive as
    from a healthy service, and only the failing page was asked again (2 retries), not the whole sync."""

    def fault(path, params, n):
        flaky = (path == "/stock" and params["page"] == "2") or (path == "/orders" and params["after_id"] == "4")
        return FAILURES[kind] if flaky and n < 2 else None

    stub = stub_server(serve_dataset(SEED, fault))
    stock, orders = read_all(settings_for(stub.url))
    assert stock == SEED_STOCK and orders == SEED_ORDERS
    assert stub.count("/stock", page=2) == 3
    assert all(stub.count("/stock", page=p) == 1 for p in (1, 3))
    assert stub.count("/orders", after_id=4) == 3
    assert stub.count("/orders", after_id=0) == 1  # the page before the flaky one is not read again


def test_retries_are_bounded_and_end_in_one_line(stub_server):
    stub = stub_server(lambda path, params, headers: FAILURES["503"])
    started = time.monotonic()
    with pytest.raises(RemoteError) as failed:
        asyncio.run(RemoteClient(settings_for(stub.url, http_retries=4)).stock_snapshot())
    elapsed = time.monotonic() - started
    assert len(stub.requests) == 5  # 1 + ORDERLY_HTTP_RETRIES
    message = str(failed.value)
    assert "\n" not in message and f"{stub.url}/stock" in message and "ORDERLY_HTTP_RETRIES" in message
    # Exponential back-off with full jitter: pause n is at most BACKOFF_BASE * 2**(n-1).
    assert elapsed < BACKOFF_BASE * (1 + 2 + 4 + 8) + 3.0
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(stub.requests)]
    for n, gap in enumerate(gaps, start=1):
        assert gap <= BACKOFF_BASE * 2 ** (n - 1) + 0.5, gaps


def test_backoff_grows_exponentially_with_jitter():
    """The pause strategy itself: bounded by base * 2**(n-1), random within it (not a fixed schedule)."""
    from tenacity import wait_random_exponential

    wait = _HonourRetryAfter(wait_random_exponential(multiplier=BACKOFF_BASE, max=5))

    class Outcome:
        def __init__(self, error):
            self.error = error

        def exception(self):
            return self.error

    class State:
        def __init__(self, n, error):
            self.attempt_number, self.outcome = n, Outcome(error)

    for n in range(1, 6):
        pauses = [wait(State(n, Retryable("500"))) for _ in range(200)]
        assert all(0 <= p <= BACKOFF_BASE * 2 ** (n - 1) + 1e-9 for p in pauses)
        assert len(set(pauses)) > 100  # jitter: not one fixed value
        assert max(pauses) > BACKOFF_BASE * 2 ** (n - 1) * 0.7
    assert wait(State(1, Retryable("429", retry_after=1.25))) == 1.25


def test_timeout_is_bounded_by_the_setting(stub_server):
    stub = stub_server(lambda path, params, headers: FAILURES["timeout"])
    started = time.monotonic()
    with pytest.raises(RemoteError, match="timed out"):
        asyncio.run(RemoteClient(settings_for(stub.url, http_timeout=0.3, http_retries=2)).stock_snapshot())
    assert len(stub.requests) == 3
    assert time.monotonic() - started < 3 * 0.3 + BACKOFF_BASE * 3 + 1.0


def test_refused_connection_is_retried_then_fails_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(RemoteError) as failed:
        asyncio.run(_orders(RemoteClient(settings_for(url, http_retries=3))))
    assert "connection was refused" in str(failed.value) and "4 attempts" in str(failed.value)
    assert "ORDERLY_ORDERS_URL" in str(failed.value) and "\n" not in str(failed.value)
    assert time.monotonic() - started < 3.0


def test_refused_connection_recovers_when_the_service_comes_back(stub_server):
    """A service that is down for the first attempts is read once it is up: the client keeps retrying."""
    import threading

    port = free_port()
    holder = {}

    def come_up_later():
        time.sleep(0.25)
        from http.server import ThreadingHTTPServer

        from conftest import StubServer

        holder["stub"] = stub = StubServer(serve_dataset(SEED))
        # rebind the stub on the port the client was told about
        stub.close()
        stub.server = ThreadingHTTPServer(("127.0.0.1", port), stub.server.RequestHandlerClass)
        stub.server.daemon_threads = True
        threading.Thread(target=stub.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    threading.Thread(target=come_up_later, daemon=True).start()
    try:
        orders = asyncio.run(_orders(RemoteClient(settings_for(f"http://127.0.0.1:{port}", http_retries=8))))
    finally:
        if "stub" in holder:
            holder["stub"].server.shutdown()
            holder["stub"].server.server_close()
    assert orders == SEED_ORDERS


def test_429_honours_retry_after_within_the_cap(stub_server):
    def fault(path, params, n):
        if path == "/stock" and n == 0:
            return 429, {"Retry-After": "0.8"}, b""
        if path == "/orders" and params["after_id"] == "0" and n == 0:
            return 429, {"Retry-After": "3600"}, b""  # an hour: capped by ORDERLY_RETRY_AFTER_CAP
        return None

    stub = stub_server(serve_dataset(SEED, fault))
    client = RemoteClient(settings_for(stub.url, retry_after_cap=0.4))
    started = time.monotonic()
    assert asyncio.run(_orders(client)) == SEED_ORDERS
    assert 0.4 <= time.monotonic() - started < 2.0  # waited the cap, not an hour
    client = RemoteClient(settings_for(stub.url, retry_after_cap=5))
    first = [r for r in stub.requests if r["path"] == "/stock"]
    started = time.monotonic()
    assert asyncio.run(client.stock_snapshot()) == SEED_STOCK
    stock_requests = [r for r in stub.requests if r["path"] == "/stock" and r["params"]["page"] == "1"]
    assert not first and len(stock_requests) == 2
    gap = stock_requests[1]["at"] - stock_requests[0]["at"]
    assert 0.8 <= gap < 2.0  # waited what the server asked, no more


def test_429_retry_after_as_http_date(stub_server):
    from email.utils import formatdate

    def fault(path, params, n):
        if n == 0:
            return 429, {"Retry-After": formatdate(time.time() + 2, usegmt=True)}, b""
        return None

    stub = stub_server(serve_dataset(SEED, fault))
    started = time.monotonic()
    assert asyncio.run(RemoteClient(settings_for(stub.url, retry_after_cap=0.5)).stock_snapshot()) == SEED_STOCK
    assert 0.5 <= time.monotonic() - started < 2.0


# ---- final failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, setting", [(401, "ORDERLY_API_TOKEN"), (403, "ORDERLY_API_TOKEN"), (404, "ORDERLY_WAREHOUSE_URL")]
)
def test_refusals_fail_at_once_naming_url_and_setting(stub_server, status, setting):
    stub = stub_server(lambda path, params, headers: (status, OK_JSON, b'{"error": "no"}'))
    started = time.monotonic()
    with pytest.raises(RemoteError) as failed:
        asyncio.run(RemoteClient(settings_for(stub.url, http_retries=5)).stock_snapshot())
    assert len(stub.requests) == 1  # no retry
    assert time.monotonic() - started < 1.5
    message = str(failed.value)
    assert "\n" not in message and f"{stub.url}/stock" in message and setting in message and str(status) in message


def test_refusal_on_a_later_page_stops_the_other_pages(stub_server):
    """Stock pages run concurrently; one page refused ends the snapshot at once, no page keeps fetching."""

    def fault(path, params, n):
        if params.get("page") == "2":
            return 403, OK_JSON, b"{}"
        return 200, OK_JSON, orjson.dumps(SEED.stock_page(int(params["page"]), 1)), 0.3 if params["page"] != "1" else 0

    stub = stub_server(lambda path, params, headers: fault(path, params, 0))
    with pytest.raises(RemoteError, match="403"):
        asyncio.run(RemoteClient(settings_for(stub.url, page_size=1, fetch_concurrency=2)).stock_snapshot())
    time.sleep(0.6)
    assert stub.count("/stock", page=2) == 1
    assert len(stub.requests) <= 4  # page 1, 2 and whatever was already in flight; not all 8


def test_stock_pages_are_fetched_concurrently(stub_server):
    def fault(path, params, n):
        page = int(params["page"])
        return 200, OK_JSON, orjson.dumps(SEED.stock_page(page, 1)), 0.25 if page > 1 else 0

    stub = stub_server(serve_dataset(SEED, fault))
    started = time.monotonic()
    # A generous timeout: this is about the concurrency bound, and a 0.5 s one was retried on a busy machine.
    assert (
        asyncio.run(
            RemoteClient(settings_for(stub.url, page_size=1, fetch_concurrency=4, http_timeout=10)).stock_snapshot()
        )
        == SEED_STOCK
    )
    elapsed = time.monotonic() - started
    assert len(stub.requests) == 8 and stub.max_in_flight == 4
    assert elapsed < 7 * 0.25  # serially it would take 1.75 s; 4 at a time, about 0.5 s


# ---- the real command against a faulted sandbox ----------------------------------------------------

SANDBOX_ARGS = ["--orders", "400", "--items", "60"]


def fast_env(env: dict, url: str, **extra) -> dict:
    return {
        **env,
        "ORDERLY_ORDERS_URL": url,
        "ORDERLY_WAREHOUSE_URL": url,
        "ORDERLY_PAGE_SIZE": "50",
        "ORDERLY_HTTP_TIMEOUT": "0.5",
        "ORDERLY_RETRY_AFTER_CAP": "0.2",
        "ORDERLY_HTTP_RETRIES": "5",
        **extra,
    }


def statuses(env: dict) -> list[dict]:
    return json.loads(run_cli(["status", "--json"], env).stdout)


def test_runs_against_30_percent_faulted_sandboxes_match_clean_runs(cli_env, sandbox_server):
    """For several fault seeds, a full `orderly run` against a sandbox failing 30% of requests (500, 503, 429,
    truncated and wrong bodies, slow answers past ORDERLY_HTTP_TIMEOUT) ends with exactly the statuses of a
    clean run over the same data. The seeds run side by side to keep the test short."""
    import subprocess

    from conftest import ORDERLY, ROOT

    seeds = (1, 2, 3)
    jobs = {}
    for seed in seeds:
        url = sandbox_server(*SANDBOX_ARGS, "--fault-rate", "0.3", "--seed", str(seed), "--token", f"T{seed}")
        faulted = fast_env(
            cli_env, url, ORDERLY_API_TOKEN=f"T{seed}", ORDERLY_DB=f"{cli_env['ORDERLY_DB']}.faulted{seed}"
        )
        clean = {
            **cli_env,
            "ORDERLY_DB": f"{cli_env['ORDERLY_DB']}.clean{seed}",
            "ORDERLY_PAGE_SIZE": "50",
            "ORDERLY_SANDBOX_ORDERS": SANDBOX_ARGS[1],
            "ORDERLY_SANDBOX_ITEMS": SANDBOX_ARGS[3],
            "ORDERLY_SANDBOX_SEED": str(seed),
        }  # the in-process sandbox, no faults: the same data set
        for name, env in (("faulted", faulted), ("clean", clean)):
            jobs[seed, name] = (
                env,
                subprocess.Popen(
                    [ORDERLY, "run"], env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                ),
            )
    for (seed, name), (_env, process) in jobs.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and "Traceback" not in err, (seed, name, out, err)
    for seed in seeds:
        want = statuses(jobs[seed, "clean"][0])
        assert len(want) == 400 and {r["status"] for r in want} == {"PROCESSED", "FAILED"}
        assert statuses(jobs[seed, "faulted"][0]) == want, seed


# ---- stale stock --------------------------------------------------------------------------------------


def test_processing_refuses_without_a_fresh_complete_snapshot(cli_env, sandbox_server):
    """Local stock serves while the warehouse is down, but not forever (ORDERLY_MAX_STOCK_AGE)."""
    url = sandbox_server()
    down = f"http://127.0.0.1:{free_port()}"  # the warehouse: nothing listens
    env = {
        **cli_env,
        "ORDERLY_ORDERS_URL": url,
        "ORDERLY_WAREHOUSE_URL": down,
        "ORDERLY_HTTP_RETRIES": "0",
        "ORDERLY_MAX_STOCK_AGE": "900",
    }

    never = run_cli(["run"], env, check=False)  # orders arrive, stock never did
    assert never.returncode != 0
    lines = never.stderr.strip().splitlines()
    assert len(lines) == 1 and "no complete stock snapshot" in lines[0], never.stderr
    assert {row["status"] for row in statuses(env)} == {"NEW"} and len(statuses(env)) == len(SEED_ORDERS)

    run_cli(["sync"], {**env, "ORDERLY_WAREHOUSE_URL": url})
    shown = run_cli(["stock"], env).stdout
    assert "stock snapshot 1: completed" in shown and " s ago" in shown
    # Fresh enough: processing runs on the local snapshot while the warehouse is down.
    fresh = run_cli(["process", "--order", "2"], env)
    assert "Traceback" not in fresh.stderr
    # The same snapshot, now older than the operator allows (it is a few seconds old by now).
    stale = run_cli(["run"], {**env, "ORDERLY_MAX_STOCK_AGE": "1"}, check=False)
    assert stale.returncode != 0
    lines = stale.stderr.strip().splitlines()
    assert len(lines) == 1 and "ORDERLY_MAX_STOCK_AGE=1" in lines[0] and "s old" in lines[0], stale.stderr
    rows = statuses(env)
    assert [r["status"] for r in rows if r["order_id"] != 2] == ["NEW"] * (len(rows) - 1)
    age = json.loads(run_cli(["stock", "--json"], env).stdout)["snapshot"]["age_seconds"]
    assert age >= 1.0


# ---- bad records ----------------------------------------------------------------------------------------


def test_bad_records_are_quarantined_and_good_ones_load(cli_env, sandbox_server):
    """A clean sync, then the same shop a little later (more orders, so other on-hand figures) served with
    15% broken records: good records of every page load, each broken one is quarantined with its reasons,
    and a broken stock record never deletes or overwrites that item's last good value."""
    from orderly.sandbox import generate

    clean_url = sandbox_server("--orders", "300", "--seed", "5")
    env = {**cli_env, "ORDERLY_ORDERS_URL": clean_url, "ORDERLY_WAREHOUSE_URL": clean_url, "ORDERLY_PAGE_SIZE": "40"}
    run_cli(["sync"], env)
    first = {i["inventory_id"]: i["on_hand"] for i in json.loads(run_cli(["stock", "--json"], env).stdout)["items"]}
    first_ids = {row["order_id"] for row in statuses(env)}
    assert len(first_ids) == 300

    bad_url = sandbox_server("--orders", "340", "--seed", "5", "--bad-rate", "0.15")
    env.update(
        ORDERLY_ORDERS_URL=bad_url, ORDERLY_WAREHOUSE_URL=bad_url, ORDERLY_LOOKBACK_ORDERS="0"
    )  # read only what is new: the first 300 are the clean sync's
    run_cli(["sync"], env)
    second = {i["inventory_id"]: i["on_hand"] for i in json.loads(run_cli(["stock", "--json"], env).stdout)["items"]}
    rejects = json.loads(run_cli(["rejects", "--json"], env).stdout)

    bad, clean = generate(340, None, 5, 0.15), generate(340, None, 5, 0.0)
    stock_flaws, order_flaws = bad.stock_flaws(), bad.order_flaws()
    assert stock_flaws and order_flaws

    # Stock: every item keeps a value; broken ones (and the neighbours whose id they copied) keep the last
    # good value, the others take the new figures.
    served = {r["inventory_id"]: r["quantity"] for r in clean.all_stock()}
    stock_rejects = [r for r in rejects if r["source"] == "stock"]
    assert len(stock_rejects) >= len(stock_flaws) and all(r["reasons"] for r in stock_rejects)
    copied = {int(r["record_key"]) for r in stock_rejects if r["record_key"] is not None}
    assert set(second) == set(first)
    changed = 0
    for item in second:
        if item in stock_flaws or item in copied:
            assert second[item] == first[item], item
        else:
            assert second[item] == served[item], item
            changed += first[item] != served[item]
    assert changed > 0  # the second snapshot did bring new figures

    # Orders: only those after the cursor were read; the good ones loaded, each broken one quarantined.
    new_true_ids = [r["id"] for r in clean.all_orders()][300:]
    served_new, after_id = [], max(first_ids)
    while after_id is not None:
        page = bad.orders_page(after_id, 40)
        served_new += page["orders"]
        after_id = page["next_after_id"]
    # A "duplicate_id" flaw serves a second, different copy right after the first, on the same page: neither
    # copy has a better claim, so neither becomes an order and both are quarantined as a conflict.
    expected = {i for i in new_true_ids if order_flaws.get(i) is None}
    loaded = {row["order_id"] for row in statuses(env)} - first_ids
    assert loaded == expected
    order_rejects = [r for r in rejects if r["source"] == "order"]
    assert len(order_rejects) == len(served_new) - len(expected) and all(r["reasons"] for r in order_rejects)
    run = json.loads(run_cli(["runs", "--json"], env).stdout)[0]
    for source in ("orders", "stock"):  # received = loaded + quarantined + unchanged repeats
        assert run[f"{source}_fetched"] == (
            run[f"{source}_loaded"] + run[f"{source}_rejected"] + run.get(f"{source}_repeated", 0)
        )


def _order(order_id: int, quantity: int = 1) -> dict:
    return {
        "id": order_id,
        "placed_at": "2026-11-20T09:15:00Z",
        "customer_id": f"C-{order_id}",
        "items": [{"inventory_id": 101, "quantity": quantity}],
    }


def test_resent_orders_and_the_cursor(cli_env, stub_server):
    """An unchanged repeat is a no-op; a changed one keeps its first copy and is quarantined as a conflict;
    the cursor neither skips nor loops."""
    pages = {0: ([_order(1), _order(2)], 2), 2: ([_order(3)], None)}

    def handler(path, params, headers):
        if path == "/stock":
            return 200, OK_JSON, orjson.dumps(SEED.stock_page(int(params["page"]), int(params["per_page"])))
        records, next_after_id = pages[int(params["after_id"])]
        return 200, OK_JSON, orjson.dumps({"orders": records, "next_after_id": next_after_id})

    stub = stub_server(handler)
    env = {**cli_env, "ORDERLY_ORDERS_URL": stub.url, "ORDERLY_WAREHOUSE_URL": stub.url, "ORDERLY_HTTP_RETRIES": "1"}
    run_cli(["sync"], env)
    assert [r["params"]["after_id"] for r in stub.requests if r["path"] == "/orders"] == ["0", "2"]
    before = statuses(env)

    # The next sync reads the look-back window again (fewer orders than ORDERLY_LOOKBACK_ORDERS: all of them):
    # the service sends 2 again changed, 3 again unchanged, and a new 4.
    pages[0] = ([_order(1), _order(2, quantity=5)], 2)
    pages[2] = ([_order(3), _order(4)], None)
    stub.requests.clear()
    run_cli(["sync"], env)
    assert [r["params"]["after_id"] for r in stub.requests if r["path"] == "/orders"] == ["0", "2"]
    after = statuses(env)
    assert after[:3] == before and [r["order_id"] for r in after] == [1, 2, 3, 4]
    conflicts = [r for r in json.loads(run_cli(["rejects", "--json"], env).stdout) if r["source"] == "order"]
    assert [(r["record_key"], "conflict" in r["reasons"]) for r in conflicts] == [("2", True)]

    # A service whose cursor does not move (an empty page that says "more after 4"): one line, no endless loop.
    pages[4] = ([], 4)
    stub.requests.clear()
    stuck = run_cli(["sync"], {**env, "ORDERLY_LOOKBACK_ORDERS": "0"}, check=False)
    assert stuck.returncode == 5
    assert len(stuck.stderr.strip().splitlines()) == 1 and "carries next_after_id=4 instead of null" in stuck.stderr
    assert len([r for r in stub.requests if r["path"] == "/orders"]) == 1


def test_a_small_retry_after_cap_does_not_cut_retries_short(stub_server):
    """ORDERLY_RETRY_AFTER_CAP bounds a 429's wait only; it once also capped the whole retry budget, so a cap
    of 0 (or a time-out longer than twice the cap) left no retry at all."""

    def fault(path, params, n):
        return (200, OK_JSON, b"{}", 0.4) if n < 2 else None

    stub = stub_server(serve_dataset(SEED, fault))
    settings = settings_for(stub.url, retry_after_cap=0.0, http_timeout=0.3)
    assert asyncio.run(RemoteClient(settings).stock_snapshot()) == SEED_STOCK
    assert stub.count("/stock", page=1) == 3
