"""Tests for orderly.sandbox: the stand-in for the remote orders and warehouse APIs.

The record checks below are written from CONTRACT.md, not from the generator, so a
generator that drifts from the contract fails here.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st
from tiers import examples

from orderly.sandbox import (
    FAULT_KINDS,
    create_app,
    dataset_for,
    generate,
    in_process_transport,
    seed_dataset,
)
from orderly.sandbox.app import freeze_heap_once_started
from orderly.sandbox.generated import ORDER_FLAWS, STOCK_FLAWS, GeneratedDataSet
from orderly.sandbox.orders_json import orders_page_json
from orderly.settings import SandboxSettings

ROOT = Path(__file__).resolve().parents[1]

# order id -> (lines, total quantity), from the original shop's demo
SEED_ORDERS = {
    2: (2, 2),
    3: (1, 1),
    4: (1, 4),
    5: (1, 2),
    6: (1, 2),
    7: (1, 1),
    8: (1, 2),
    9: (1, 1),
    10: (1, 1),
    11: (1, 1),
    12: (1, 1),
    13: (1, 1),
    14: (1, 1),
    15: (2, 4),
    16: (1, 1),
}
SEED_STOCK = [
    (101, 1, "MUG-BLK", "Black mug", 1, 5),
    (102, 1, "MUG-BLK", "Black mug", 2, 0),
    (205, 2, "TEE-WHT-M", "White T-shirt (M)", 2, 0),
    (206, 2, "TEE-WHT-L", "White T-shirt (L)", 1, 2),
    (310, 3, "PST-A2", "Poster A2", 1, 3),
    (420, 4, "TOTE-NAT", "Tote bag", 1, 1),
    (530, 5, "NB-A5", "Notebook A5", 1, 2),
    (640, 6, "PEN-SET", "Pen set", 2, 1),
]
ORDER_KEYS = {"id", "placed_at", "customer_id", "items"}
STOCK_KEYS = {"inventory_id", "product_id", "sku", "product_name", "warehouse_id", "quantity", "updated_at"}


# ------------------------------------------------------------------ contract checkers


def _is_int(v) -> bool:
    return type(v) is int  # bool is not an id or a quantity


def _bad_time(v) -> bool:
    if not isinstance(v, str):
        return True
    try:
        datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return True
    return False


def order_problems(rec: dict) -> set[str]:
    """What is wrong with one order record, in the generator's flaw names (empty: valid)."""
    found = set()
    if "id" not in rec:
        found.add("missing_id")
    elif not _is_int(rec["id"]):
        found.add("wrong_type")
    if _bad_time(rec.get("placed_at")):
        found.add("bad_timestamp")
    if not isinstance(rec.get("customer_id"), str):
        found.add("wrong_type")
    items = rec.get("items")
    if not isinstance(items, list):
        found.add("wrong_type")
    elif not items:
        found.add("no_lines")
    else:
        for line in items:
            if (
                set(line) != {"inventory_id", "quantity"}
                or not _is_int(line["inventory_id"])
                or not _is_int(line["quantity"])
            ):
                found.add("wrong_type")
            elif line["quantity"] < 1:
                found.add("line_quantity")
    if set(rec) - ORDER_KEYS:
        found.add("extra_keys")
    return found


def stock_problems(rec: dict) -> set[str]:
    found = set()
    if "inventory_id" not in rec:
        found.add("missing_id")
    elif not _is_int(rec["inventory_id"]):
        found.add("wrong_type")
    for key in ("product_id", "warehouse_id"):
        if not _is_int(rec.get(key)):
            found.add("wrong_type")
    for key in ("sku", "product_name"):
        if not isinstance(rec.get(key), str):
            found.add("wrong_type")
    if not _is_int(rec.get("quantity")):
        found.add("wrong_type")
    elif rec["quantity"] < 0:
        found.add("negative_quantity")
    if _bad_time(rec.get("updated_at")):
        found.add("bad_timestamp")
    if set(rec) - STOCK_KEYS:
        found.add("extra_keys")
    return found


def duplicated(values) -> set:
    return {v for v, n in Counter(values).items() if n > 1}


def order_pages(ds, limit=1000):
    """Yield whole pages, following next_after_id, with a bound so a paging bug cannot hang."""
    after = 0
    for _ in range(ds.order_count + 2):
        page = ds.orders_page(after, limit)
        yield page
        if page["next_after_id"] is None:
            return
        assert page["next_after_id"] > after, "paging must advance"
        after = page["next_after_id"]
    raise AssertionError("paging did not end")


def stock_pages(ds, per_page=1000):
    first = ds.stock_page(1, per_page)
    yield first
    for p in range(2, first["total_pages"] + 1):
        yield ds.stock_page(p, per_page)


# ------------------------------------------------------------------ seed data set


def test_seed_orders_exact():
    ds = seed_dataset()
    orders = list(ds.all_orders())
    got = {o["id"]: (len(o["items"]), sum(line["quantity"] for line in o["items"])) for o in orders}
    assert got == SEED_ORDERS
    assert [o["id"] for o in orders] == sorted(SEED_ORDERS)
    assert all(order_problems(o) == set() and set(o) == ORDER_KEYS for o in orders)
    by_id = {o["id"]: o for o in orders}
    assert by_id[2] == {
        "id": 2,
        "placed_at": "2026-11-20T09:15:00Z",
        "customer_id": "C-1001",
        "items": [{"inventory_id": 101, "quantity": 1}, {"inventory_id": 205, "quantity": 1}],
    }
    assert [(line["inventory_id"], line["quantity"]) for line in by_id[15]["items"]] == [(640, 1), (640, 3)]
    stock_ids = {s["inventory_id"] for s in ds.all_stock()}
    unknown = {oid for oid, o in by_id.items() if any(li["inventory_id"] not in stock_ids for li in o["items"])}
    assert unknown == {3, 7, 13}


def test_seed_stock_exact():
    ds = seed_dataset()
    stock = list(ds.all_stock())
    assert [
        (s["inventory_id"], s["product_id"], s["sku"], s["product_name"], s["warehouse_id"], s["quantity"])
        for s in stock
    ] == SEED_STOCK
    assert all(s["updated_at"] == "2026-11-20T09:00:00Z" and set(s) == STOCK_KEYS for s in stock)


def test_seed_order_paging():
    ds = seed_dataset()
    ids = lambda page: [o["id"] for o in page["orders"]]  # noqa: E731
    p = ds.orders_page(0, 4)
    assert (ids(p), p["next_after_id"]) == ([2, 3, 4, 5], 5)
    p = ds.orders_page(5, 4)
    assert (ids(p), p["next_after_id"]) == ([6, 7, 8, 9], 9)
    p = ds.orders_page(13, 4)
    assert (ids(p), p["next_after_id"]) == ([14, 15, 16], None)
    # A page that ends exactly on the last order is the last page.
    p = ds.orders_page(11, 5)
    assert (ids(p), p["next_after_id"]) == ([12, 13, 14, 15, 16], None)
    assert ds.orders_page(1, 1)["orders"][0]["id"] == 2  # no order 1: gaps are fine
    assert ds.orders_page(2, 1) == {"orders": [ds.orders_page(0, 2)["orders"][1]], "next_after_id": 3}
    assert ds.orders_page(16, 10) == {"orders": [], "next_after_id": None}
    assert ds.orders_page(1000, 10) == {"orders": [], "next_after_id": None}
    assert [o["id"] for o in ds.all_orders(limit=1)] == sorted(SEED_ORDERS)
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            ds.orders_page(0, bad)


def test_seed_stock_paging():
    ds = seed_dataset()
    pages = [ds.stock_page(p, 3) for p in (1, 2, 3, 4)]
    assert [len(p["items"]) for p in pages] == [3, 3, 2, 0]
    assert all(p["total_pages"] == 3 and p["per_page"] == 3 for p in pages)
    assert [p["page"] for p in pages] == [1, 2, 3, 4]
    assert [s["inventory_id"] for p in pages for s in p["items"]] == [r[0] for r in SEED_STOCK]
    assert ds.stock_page(1, 1000)["total_pages"] == 1
    with pytest.raises(ValueError):
        ds.stock_page(0, 10)


def test_dataset_for_caches_and_picks():
    assert dataset_for(SandboxSettings()).order_count == 15
    a = dataset_for(SandboxSettings(orders=500, items=30, seed=2, fault_rate=0.5))
    b = dataset_for(SandboxSettings(orders=500, items=30, seed=2, latency_ms=5, token="t"))
    assert a is b  # faults, latency and token do not rebuild the data
    assert a.order_count == 500 and a.stock_count == 30


# ------------------------------------------------------------------ in-process HTTP


async def _get_all_orders(client: httpx.AsyncClient, limit: int) -> tuple[list[dict], int]:
    orders, after, requests = [], 0, 0
    while True:
        r = await client.get("/orders", params={"after_id": after, "limit": limit})
        requests += 1
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        page = r.json()
        assert set(page) == {"orders", "next_after_id"}
        orders += page["orders"]
        if page["next_after_id"] is None:
            return orders, requests
        after = page["next_after_id"]


def test_seed_in_process_http():
    async def main():
        transport = in_process_transport(SandboxSettings())
        async with httpx.AsyncClient(base_url="http://sandbox", transport=transport) as c:
            orders, requests = await _get_all_orders(c, 4)
            assert requests == 4
            assert {o["id"]: (len(o["items"]), sum(li["quantity"] for li in o["items"])) for o in orders} == SEED_ORDERS
            r = await c.get("/orders")  # defaults: after_id 0, a full page
            assert [o["id"] for o in r.json()["orders"]] == sorted(SEED_ORDERS)
            assert r.json()["next_after_id"] is None
            r = await c.get("/stock", params={"page": 2, "per_page": 3})
            body = r.json()
            assert (body["page"], body["per_page"], body["total_pages"]) == (2, 3, 3)
            assert [s["inventory_id"] for s in body["items"]] == [206, 310, 420]
            assert (await c.get("/stock")).json()["per_page"] == 500
            assert (await c.get("/health")).json() == {"ok": True}
            await _check_errors(c)

    asyncio.run(main())


async def _check_errors(c: httpx.AsyncClient) -> None:
    bad = [
        "/orders?limit=0",
        "/orders?limit=1001",
        "/orders?limit=abc",
        "/orders?after_id=1.5",
        "/orders?after_id=-1",
        "/orders?limit=1_000",
        "/stock?page=0",
        "/stock?per_page=0",
        "/stock?per_page=1001",
        "/stock?page=two",
    ]
    for url in bad:
        r = await c.get(url)
        assert r.status_code == 400, url
        assert "error" in r.json(), url
    r = await c.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "not found"}
    assert (await c.post("/orders")).status_code == 405


# ------------------------------------------------------------------ real loopback HTTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_sandbox(env: dict[str, str]):
    """`serve()` in a subprocess on a free port; yields (base_url, the lines it printed when it started)."""
    port = _free_port()
    code = (
        "import os, sys; from orderly.settings import SandboxSettings; from orderly.sandbox import serve; "
        "serve(SandboxSettings.from_env(os.environ), port=int(sys.argv[1]))"
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_SANDBOX_")}
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(port)],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"sandbox exited: {proc.stderr.read()}"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "sandbox did not become healthy in 20 s"
            time.sleep(0.05)
        said = 3 + bool(env.get("ORDERLY_SANDBOX_TOKEN"))  # what it serves, two exports, and the token's hint
        yield base, [proc.stdout.readline().rstrip("\n") for _ in range(said)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.slow  # the sandbox in a subprocess (tests/tiers.py)
def test_seed_over_loopback():
    with running_sandbox({}) as (base, banner):
        # what it serves, then the lines that point Orderly at it, ready to paste
        assert banner == [
            f"sandbox serving 15 orders and 8 stock items on {base}",
            f"export ORDERLY_ORDERS_URL={base}",
            f"export ORDERLY_WAREHOUSE_URL={base}",
        ]

        async def main():
            async with httpx.AsyncClient(base_url=base, timeout=5) as c:
                orders, requests = await _get_all_orders(c, 5)
                assert requests == 3
                assert {
                    o["id"]: (len(o["items"]), sum(li["quantity"] for li in o["items"])) for o in orders
                } == SEED_ORDERS
                assert [o["id"] for o in orders] == sorted(SEED_ORDERS)
                body = (await c.get("/stock", params={"page": 3, "per_page": 3})).json()
                assert body["total_pages"] == 3 and [s["inventory_id"] for s in body["items"]] == [530, 640]
                await _check_errors(c)

        asyncio.run(main())


@pytest.mark.slow  # the sandbox in a subprocess (tests/tiers.py)
def test_generated_over_loopback_with_token_and_timing():
    n = 100_000
    env = {"ORDERLY_SANDBOX_ORDERS": str(n), "ORDERLY_SANDBOX_SEED": "5", "ORDERLY_SANDBOX_TOKEN": "s3cret"}
    with running_sandbox(env) as (base, banner):
        assert banner[0].startswith(f"sandbox serving {n} orders and ")
        assert banner[1:3] == [f"export ORDERLY_ORDERS_URL={base}", f"export ORDERLY_WAREHOUSE_URL={base}"]
        # the token is needed, and named, but never printed; the hint is a comment, harmless if pasted
        assert banner[3].startswith("# ") and banner[3].endswith("export ORDERLY_API_TOKEN=...")
        assert "s3cret" not in "\n".join(banner)

        async def main():
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:
                r = await c.get("/orders")
                assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
                assert "s3cret" not in r.text and "s3cret" not in str(r.headers)
                c.headers["Authorization"] = "Bearer s3cret"
                t = time.perf_counter()
                orders, requests = await _get_all_orders(c, 1000)
                dt = time.perf_counter() - t
            print(
                f"\nloopback: {len(orders)} orders in {requests} pages of 1000: {dt:.2f} s, "
                f"{len(orders) / dt:,.0f} orders/s"
            )
            assert len(orders) == n and requests == n // 1000
            assert orders[:1000] == generate(n, seed=5).orders_page(0, 1000)["orders"]

        asyncio.run(main())


# ------------------------------------------------------------------ generated data sets


@pytest.mark.parametrize(
    "host, connect",
    [
        ("0.0.0.0", "http://127.0.0.1:8100"),
        ("::", "http://[::1]:8100"),
        ("::1", "http://[::1]:8100"),
        ("localhost", "http://localhost:8100"),
    ],
)
def test_the_start_lines_point_at_an_address_a_client_can_reach(host, connect):
    from orderly.sandbox.app import start_lines
    from orderly.settings import SandboxSettings

    lines = start_lines(SandboxSettings(), seed_dataset(), host, 8100)
    assert lines[1:] == [f"export ORDERLY_ORDERS_URL={connect}", f"export ORDERLY_WAREHOUSE_URL={connect}"]


@pytest.mark.slow  # runs the `orderly` executable (tests/tiers.py)
def test_the_sandbox_and_the_page_default_to_different_ports():
    """Both run side by side on one machine: `orderly ui` on 8000, `orderly sandbox` on 8100."""
    env = {**os.environ, "COLUMNS": "200"}
    for command, port in (("sandbox", 8100), ("ui", 8000)):
        shown = subprocess.run(
            [str(Path(sys.executable).parent / "orderly"), command, "--help"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        (line,) = [line for line in shown.splitlines() if "--port" in line]
        assert f"[default: {port}]" in line, line


def test_generated_deterministic():
    a, b = generate(3000, 120, seed=7), generate(3000, 120, seed=7)
    assert list(a.all_orders()) == list(b.all_orders())
    assert list(a.all_stock()) == list(b.all_stock())
    c = generate(3000, 120, seed=8)
    assert list(a.all_orders()) != list(c.all_orders())
    assert list(a.all_stock()) != list(c.all_stock())


@pytest.mark.parametrize("bad_rate", [0.0, 0.1])
def test_generated_prefix_stable(bad_rate):
    small, big = generate(5000, 200, seed=3, bad_rate=bad_rate), generate(6000, 200, seed=3, bad_rate=bad_rate)
    small_orders = list(small.all_orders())
    big_orders = list(big.all_orders())
    assert big_orders[: len(small_orders)] == small_orders
    assert len({o.get("id") for o in big_orders}) > len({o.get("id") for o in small_orders})
    # Page by page too: the same request gets the same records, except that the small set ends.
    for after in (0, 777, 9000):
        assert small.orders_page(after, 100)["orders"] == big.orders_page(after, 100)["orders"]
    assert small.order_count == 5000 and big.order_count == 6000


def test_generated_paging_semantics():
    ds = generate(2000, 50, seed=1)
    orders = list(ds.all_orders())
    ids = [o["id"] for o in orders]
    assert len(ids) == 2000 and ids == sorted(set(ids))
    assert ids != list(range(ids[0], ids[0] + len(ids)))  # ids have gaps
    # Any page size sees the same records.
    assert list(ds.all_orders(limit=7)) == orders
    for after in (-5, 0, 1, 2, 3, 500, 501, 502, ids[-2], ids[-1], ids[-1] + 10):
        page = ds.orders_page(after, 10)
        start = bisect.bisect_right(ids, after)
        assert [o["id"] for o in page["orders"]] == ids[start : start + 10]
        ends = start + 10 >= len(ids)
        assert page["next_after_id"] == (None if ends else ids[start + 9])
    # Stock pages tile the inventory exactly.
    stock = list(ds.all_stock(per_page=7))
    assert len(stock) == 50 and stock == list(ds.all_stock())
    assert ds.stock_page(1, 7)["total_pages"] == 8
    assert ds.stock_page(9, 7)["items"] == []


def test_generated_shape():
    n = 20_000
    ds = generate(n)
    orders = list(ds.all_orders())
    stock = list(ds.all_stock())
    assert len(orders) == n and len(stock) == ds.items
    assert all(order_problems(o) == set() for o in orders)
    assert all(stock_problems(s) == set() for s in stock)

    inv_ids = [s["inventory_id"] for s in stock]
    assert len(set(inv_ids)) == len(inv_ids)
    assert sorted(inv_ids) != list(range(min(inv_ids), min(inv_ids) + len(inv_ids)))  # not contiguous
    by_product: dict[int, list[dict]] = {}
    for s in stock:
        by_product.setdefault(s["product_id"], []).append(s)
    sizes = Counter(len(v) for v in by_product.values())
    assert set(sizes) == {1, 2, 3}
    for items in by_product.values():
        assert len({s["warehouse_id"] for s in items}) == len(items)  # one item per warehouse
        assert len({s["sku"] for s in items}) == 1 and len({s["product_name"] for s in items}) == 1
    assert 0 < sum(s["quantity"] == 0 for s in stock) < 0.2 * len(stock)

    lines = [li for o in orders for li in o["items"]]
    assert Counter(len(o["items"]) for o in orders).keys() == {1, 2, 3}
    assert 1.8 < len(lines) / n < 2.2
    assert {li["quantity"] for li in lines} == {1, 2, 3, 4, 5}
    known = set(inv_ids)
    unknown_share = sum(li["inventory_id"] not in known for li in lines) / len(lines)
    assert 0.005 < unknown_share < 0.02
    repeats = sum(len({li["inventory_id"] for li in o["items"]}) < len(o["items"]) for o in orders)
    assert repeats > 0.02 * n
    times = [o["placed_at"] for o in orders]
    assert times == sorted(times)


@pytest.mark.parametrize("n, items, seed", [(20_000, None, 0), (3000, 40, 9), (500, 1000, 4)])
def test_generated_processes_a_realistic_share(n, items, seed):
    """Allocating in id order (CONTRACT.md section 2), some orders fail and most go through."""
    ds = generate(n, items, seed)
    decided = reference.decide_records(ds.all_orders(), ds.all_stock())
    outcome = Counter(reason or "PROCESSED" for _, reason in decided.values())
    share = {k: v / n for k, v in outcome.items()}
    print(f"\n{n} orders / {ds.items} items: {share}")
    assert 0.5 <= share["PROCESSED"] <= 0.8
    assert share["INSUFFICIENT_STOCK"] >= 0.15
    assert share.get("UNKNOWN_INVENTORY", 0) > 0


def test_generated_stock_depends_on_demand():
    small, big = generate(1000, 50, seed=1), generate(100_000, 50, seed=1)
    total = lambda ds: sum(s["quantity"] for s in ds.all_stock())  # noqa: E731
    assert total(big) > 50 * total(small)


def test_bad_rate_zero_is_all_valid():
    ds = generate(5000, 300, seed=11, bad_rate=0.0)
    for page in order_pages(ds):
        assert not duplicated(o["id"] for o in page["orders"])
        assert all(order_problems(o) == set() for o in page["orders"])
    for page in stock_pages(ds):
        assert not duplicated(s["inventory_id"] for s in page["items"])
        assert all(stock_problems(s) == set() for s in page["items"])
    assert ds.order_flaws() == {} and ds.stock_flaws() == {}


def test_bad_rate_gives_every_kind_of_breakage():
    rate = 0.2
    ds = generate(6000, 2000, seed=2, bad_rate=rate)
    kinds, broken = Counter(), 0
    for page in order_pages(ds, limit=500):
        assert len(page["orders"]) <= 500
        dups = duplicated(o["id"] for o in page["orders"] if "id" in o)
        kinds["duplicate_id"] += len(dups)
        broken += len(dups)
        for o in page["orders"]:
            problems = order_problems(o)
            kinds.update(problems)
            broken += bool(problems)
    assert set(kinds) == set(ORDER_FLAWS), kinds
    flaws = ds.order_flaws()
    assert broken == len(flaws)  # every flawed order shows exactly one flaw, and no other record is broken
    assert Counter(flaws.values()) == kinds
    assert 0.15 < len(flaws) / ds.order_count < 0.25

    skinds, sbroken = Counter(), 0
    for page in stock_pages(ds, per_page=250):
        assert len(page["items"]) <= 250
        dups = duplicated(s["inventory_id"] for s in page["items"] if "inventory_id" in s)
        skinds["duplicate_id"] += len(dups)
        for s in page["items"]:
            problems = stock_problems(s)
            skinds.update(problems)
            sbroken += bool(problems)
    assert set(skinds) == set(STOCK_FLAWS), skinds
    assert 0.12 < (sbroken + skinds["duplicate_id"]) / ds.stock_count < 0.25
    assert set(ds.stock_flaws().values()) == set(STOCK_FLAWS)


def test_bad_records_still_page_through():
    # Even when the record lost or garbled its id, next_after_id carries the true one.
    ds = generate(3000, 100, seed=4, bad_rate=0.5)
    pages = list(order_pages(ds, limit=3))
    assert pages[-1]["next_after_id"] is None
    assert len(ds.order_flaws()) > 1000


# ------------------------------------------------------------------ the JSON fast path (byte for byte the dict form)


@st.composite
def page_requests(draw):
    orders = draw(st.integers(0, 5000))
    items = draw(st.one_of(st.none(), st.integers(0, 3), st.integers(0, 100_000)))
    seed = draw(st.integers(0, 2**63 - 1))
    # 0: every page clean (the fast path); small rates mix clean and flawed pages; high ones flaw nearly all.
    bad_rate = draw(st.one_of(st.just(0.0), st.sampled_from([0.0005, 0.01, 0.2]), st.floats(0.0, 1.0)))
    # ids lie in 1..3 * orders + 3 with gaps between them: a draw from around that range lands on ids, in the
    # gaps, before the first and past the last.
    after_id = draw(st.one_of(st.integers(-10, 3 * orders + 10), st.sampled_from([0, -1, -(2**63), 10**18 - 1])))
    limit = draw(st.one_of(st.sampled_from([1, 2, 1000]), st.integers(1, 1000)))
    return generate(orders, items, seed, bad_rate), after_id, limit


@settings(max_examples=examples(300), deadline=None)
@given(page_requests())
def test_orders_page_json_is_orjson_of_orders_page(request):
    ds, after_id, limit = request
    assert ds.orders_page_json(after_id, limit) == orjson.dumps(ds.orders_page(after_id, limit))


def test_clean_pages_take_the_fast_path(monkeypatch):
    """A clean page never builds the dicts (the property above then really compares two paths); a flawed one does."""
    reference = {after: orjson.dumps(generate(3000, 40, seed=5).orders_page(after, 1000)) for after in (0, 4000)}
    clean, flawed = generate(3000, 40, seed=5), generate(3000, 40, seed=5, bad_rate=0.05)

    def no_dicts(*args):
        raise AssertionError("a clean page built its dicts")

    monkeypatch.setattr(GeneratedDataSet, "_records", staticmethod(no_dicts))
    assert {after: clean.orders_page_json(after, 1000) for after in reference} == reference
    with pytest.raises(AssertionError, match="built its dicts"):
        flawed.orders_page_json(0, 1000)


_INT64 = st.integers(0, 2**63 - 1)
_SMALL = st.integers(0, 99_999)


@st.composite
def order_columns(draw):
    """Columns beyond what the generator makes: 0, 2**63 - 1, 1 to 20 digits, timestamps from year 1 to 20000."""
    n = draw(st.integers(1, 40))
    ints = st.one_of(_INT64, _SMALL, st.sampled_from([0, 9, 10, 9999, 10_000, 2**32 - 1, 2**32, 2**63 - 1]))
    column = lambda values: np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.int64)  # noqa: E731
    lines = draw(st.integers(0, 4))
    return (
        column(ints),
        column(st.integers(-62_135_596_800, 568_971_820_799)),  # 0001-01-01 .. 19999-12-31
        column(ints),
        column(st.integers(0, lines)),
        np.stack([column(ints) for _ in range(lines)], axis=1) if lines else np.zeros((n, 0), dtype=np.int64),
        np.stack([column(ints) for _ in range(lines)], axis=1) if lines else np.zeros((n, 0), dtype=np.int64),
        draw(st.one_of(st.none(), _INT64)),
    )


@settings(max_examples=examples(200), deadline=None)
@given(order_columns())
def test_orders_json_writes_any_columns_as_orjson_does(columns):
    ids, seconds, customers, counts, inventory, quantity, next_after_id = columns
    placed = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").tolist()
    orders = [
        {
            "id": int(ids[i]),
            "placed_at": placed[i] + "Z",
            "customer_id": f"C-{customers[i]}",
            "items": [
                {"inventory_id": int(inventory[i, j]), "quantity": int(quantity[i, j])} for j in range(counts[i])
            ],
        }
        for i in range(len(ids))
    ]
    expected = orjson.dumps({"orders": orders, "next_after_id": next_after_id})
    assert orders_page_json(ids, seconds, customers, counts, inventory, quantity, next_after_id) == expected


def test_orders_json_refuses_negative_integers():
    one = np.array([1], dtype=np.int64)
    with pytest.raises(ValueError, match="non-negative"):
        orders_page_json(np.array([-1]), one, one, one, one[:, None], one[:, None], None)


@pytest.mark.parametrize("bad_rate", [0.0, 0.05])
def test_http_body_is_the_page_byte_for_byte(bad_rate):
    settings_ = SandboxSettings(orders=4000, items=60, seed=3, bad_rate=bad_rate)
    ds = dataset_for(settings_)

    async def main():
        async with httpx.AsyncClient(base_url="http://sandbox", transport=in_process_transport(settings_)) as c:
            for after, limit in [(0, 1000), (5, 1), (6000, 777), (11_990, 1000), (10**9, 5)]:
                r = await c.get("/orders", params={"after_id": after, "limit": limit})
                assert r.status_code == 200 and r.content == orjson.dumps(ds.orders_page(after, limit))
            r = await c.get("/stock", params={"page": 2, "per_page": 7})
            assert r.content == orjson.dumps(ds.stock_page(2, 7))

    asyncio.run(main())


def test_served_heap_is_frozen_once_started():
    """`serve` runs the app with this lifespan: after start-up the collector no longer walks the imports."""
    app = create_app(SandboxSettings(orders=100, seed=1), lifespan=freeze_heap_once_started)

    async def main():
        # The ASGI lifespan exchange, as uvicorn has it with the app before it takes requests.
        to_app, from_app = asyncio.Queue(), asyncio.Queue()
        running = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, to_app.get, from_app.put))
        await to_app.put({"type": "lifespan.startup"})
        assert (await from_app.get())["type"] == "lifespan.startup.complete"
        frozen = gc.get_freeze_count()
        await to_app.put({"type": "lifespan.shutdown"})
        assert (await from_app.get())["type"] == "lifespan.shutdown.complete"
        await running
        return frozen

    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        assert asyncio.run(main()) > 1000
    finally:
        gc.unfreeze()


# ------------------------------------------------------------------ faults, auth, latency


async def _classify(c: httpx.AsyncClient, url: str, slow_s: float) -> str:
    t = time.perf_counter()
    r = await c.get(url)
    elapsed = time.perf_counter() - t
    if r.status_code == 429:
        assert r.headers["retry-after"] == "1"
        return "429"
    if r.status_code != 200:
        return str(r.status_code)
    try:
        body = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return "truncated"
    if not ({"orders", "next_after_id"} <= set(body) or {"items", "total_pages"} <= set(body)):
        return "bad_envelope"
    if r.headers.get("x-sandbox-fault") == "slow":
        assert elapsed >= slow_s * 0.9, elapsed  # a slow answer really waits (a lower bound: load only adds time)
        return "slow"
    return "ok"


def _urls(n: int) -> list[str]:
    return [f"/orders?after_id={i}&limit=10" for i in range(n // 2)] + [
        f"/stock?page={i}&per_page=5" for i in range(1, n - n // 2 + 1)
    ]


def test_faults_each_kind_and_rate():
    settings = SandboxSettings(orders=2000, items=100, seed=1, fault_rate=0.3)

    async def main():
        transport = httpx.ASGITransport(app=create_app(settings, slow_ms=150))
        async with httpx.AsyncClient(base_url="http://sandbox", transport=transport) as c:
            return await asyncio.gather(*(_classify(c, u, 0.15) for u in _urls(600)))

    results = Counter(asyncio.run(main()))
    assert set(results) == set(FAULT_KINDS) | {"ok"}, results
    assert 0.2 < 1 - results["ok"] / 600 < 0.4, results
    assert all(results[k] >= 10 for k in FAULT_KINDS), results


def test_faults_are_deterministic_and_end():
    settings = SandboxSettings(orders=2000, items=100, seed=3, fault_rate=0.3)

    async def run(s: SandboxSettings, urls: list[str], repeats: int) -> list[str]:
        transport = httpx.ASGITransport(app=create_app(s, slow_ms=20))
        async with httpx.AsyncClient(base_url="http://sandbox", transport=transport) as c:
            return [await _classify(c, u, 0.02) for u in urls for _ in range(repeats)]

    urls = _urls(40)
    first = asyncio.run(run(settings, urls, 3))
    assert first == asyncio.run(run(settings, urls, 3))
    other = asyncio.run(run(SandboxSettings(orders=2000, items=100, seed=4, fault_rate=0.3), urls, 3))
    assert first != other

    # Every query gets through within 4 attempts, even when every request may fail.
    for rate in (0.3, 1.0):
        s = SandboxSettings(orders=2000, items=100, seed=3, fault_rate=rate)
        results = asyncio.run(run(s, urls[:6], 12))
        for i in range(6):
            attempts = results[i * 12 : (i + 1) * 12]
            streak = 0
            for r in attempts:
                streak = 0 if r == "ok" else streak + 1
                assert streak <= 3, attempts
            if rate == 1.0:
                assert attempts == [*attempts[:3], "ok", *attempts[4:7], "ok", *attempts[8:11], "ok"]
                assert "ok" not in attempts[:3]


def test_token():
    settings = SandboxSettings(token="t0p-secret")

    async def main():
        transport = in_process_transport(settings)
        async with httpx.AsyncClient(base_url="http://sandbox", transport=transport) as c:
            for path in ("/orders", "/stock"):
                for headers in (
                    {},
                    {"Authorization": "Bearer wrong"},
                    {"Authorization": "t0p-secret"},
                    {"Authorization": "Bearer t0p-secret2"},
                ):
                    r = await c.get(path, headers=headers)
                    assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
                    assert "t0p" not in r.text and "t0p" not in str(r.headers)
                r = await c.get(path, headers={"Authorization": "Bearer t0p-secret"})
                assert r.status_code == 200
            assert (await c.get("/health")).status_code == 200
        assert "t0p" not in repr(settings)

    asyncio.run(main())


def test_latency():
    async def main():
        transport = in_process_transport(SandboxSettings(latency_ms=150))
        async with httpx.AsyncClient(base_url="http://sandbox", transport=transport) as c:
            t = time.perf_counter()
            # Concurrent requests all wait, without one blocking another.
            rs = await asyncio.gather(*(c.get("/orders", params={"limit": 2}) for _ in range(10)))
            dt = time.perf_counter() - t
        assert all(r.status_code == 200 for r in rs)
        assert 0.15 <= dt < 1.0

    asyncio.run(main())


# ------------------------------------------------------------------ speed (printed, not asserted)


def test_in_process_throughput():
    n = 100_000
    settings = SandboxSettings(orders=n, seed=1)

    async def main():
        async with httpx.AsyncClient(base_url="http://sandbox", transport=in_process_transport(settings)) as c:
            t = time.perf_counter()
            orders, requests = await _get_all_orders(c, 1000)
            return len(orders), requests, time.perf_counter() - t

    count, requests, dt = asyncio.run(main())
    print(f"\nin-process: {count} orders in {requests} pages of 1000: {dt:.2f} s, {count / dt:,.0f} orders/s")
    assert count == n
