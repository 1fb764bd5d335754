"""An independent checker: randomized sandboxes over HTTP, the rule recomputed here from what the sandbox serves."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import httpx
import pytest
import reference
from conftest import run_cli


def fetch_served(url: str) -> tuple[list[dict], list[dict]]:
    """Everything the sandbox serves, read over HTTP with our own paging (not orderly's client)."""
    orders, stock = [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        after_id = 0
        while True:
            page = client.get("/orders", params={"after_id": after_id, "limit": 1000}).raise_for_status().json()
            orders.extend(page["orders"])
            if page["next_after_id"] is None:
                break
            after_id = page["next_after_id"]
        number = 1
        while True:
            page = client.get("/stock", params={"page": number, "per_page": 1000}).raise_for_status().json()
            stock.extend(page["items"])
            if number >= page["total_pages"]:
                break
            number += 1
    return orders, stock


def expected_statuses(orders: list[dict], stock: list[dict]) -> dict[int, tuple[str, str | None]]:
    """CONTRACT.md section 2, as tests/reference.py states it, over what the sandbox served."""
    return reference.decide_records(orders, stock)


def check(env: dict, url: str, min_orders: int) -> dict[int, tuple[str, str | None]]:
    orders, stock = fetch_served(url)
    assert len(orders) >= min_orders
    expected = expected_statuses(orders, stock)
    rows = json.loads(run_cli(["status", "--json"], env).stdout)
    got = {r["order_id"]: (r["status"], r["reason"]) for r in rows}
    assert [r["order_id"] for r in rows] == sorted(got)
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    assert not missing and not extra, (sorted(missing)[:10], sorted(extra)[:10])
    wrong = [(oid, got[oid], expected[oid]) for oid in expected if got[oid] != expected[oid]]
    assert not wrong, f"{len(wrong)} orders decided differently, e.g. {wrong[:5]}"
    lines = {o["id"]: (len(o["items"]), sum(line["quantity"] for line in o["items"])) for o in orders}
    assert all((r["items"], r["total_qty"]) == lines[r["order_id"]] for r in rows)
    return expected


@pytest.mark.parametrize("orders, items, seed", [(300, 8, 11), (1200, 20, 22), (2000, 30, 33)])
def test_random_scenarios_match_the_independent_checker(cli_env, sandbox_server, orders, items, seed):
    url = sandbox_server("--orders", str(orders), "--items", str(items), "--seed", str(seed))
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url, "ORDERLY_PAGE_SIZE": "100"}
    run_cli(["run"], env)
    expected = check(env, url, orders)
    outcomes = {reason for _, reason in expected.values()}
    assert outcomes == {None, "INSUFFICIENT_STOCK", "UNKNOWN_INVENTORY"}, "the scenario should exercise every rule"
    # stock never goes negative and equals on-hand minus the processed orders' quantities
    served_orders, served_stock = fetch_served(url)
    allocated: dict[int, int] = {}
    for order in served_orders:
        if expected[order["id"]][0] == "PROCESSED":
            for line in order["items"]:
                allocated[line["inventory_id"]] = allocated.get(line["inventory_id"], 0) + line["quantity"]
    want = {
        s["inventory_id"]: (
            s["quantity"],
            allocated.get(s["inventory_id"], 0),
            s["quantity"] - allocated.get(s["inventory_id"], 0),
        )
        for s in served_stock
    }
    stock = json.loads(run_cli(["stock", "--json"], env).stdout)["items"]
    assert {i["inventory_id"]: (i["on_hand"], i["allocated"], i["available"]) for i in stock} == want
    assert all(i["available"] >= 0 for i in stock)


def test_20k_orders_are_decided_correctly(cli_env, sandbox_server):
    url = sandbox_server("--orders", "20000", "--seed", "5")
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url}
    run_cli(["run"], env, timeout=600)
    expected = check(env, url, 20000)
    assert sum(1 for status, _ in expected.values() if status == "PROCESSED") > 0
    assert sum(1 for _, reason in expected.values() if reason == "INSUFFICIENT_STOCK") > 0


# ---- a scenario with broken records: the checker applies the contract's schema rules itself ----------------


def _int(value, minimum) -> bool:
    return type(value) is int and value >= minimum


def _timestamp(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def well_formed_order(o) -> bool:
    if not isinstance(o, dict) or not _int(o.get("id"), 1):
        return False
    items = o.get("items")
    if not (_timestamp(o.get("placed_at")) and _text(o.get("customer_id")) and isinstance(items, list) and items):
        return False
    return all(
        isinstance(line, dict) and _int(line.get("inventory_id"), 1) and _int(line.get("quantity"), 1) for line in items
    )


def good_orders(orders: list) -> tuple[list[dict], int]:
    """Records that become orders, and how many were unchanged repeats. The sandbox serves an order's copies
    together on one page, so: identical well-formed copies of an id are one order (the later ones repeats);
    copies that differ have no first, and none of them becomes an order (all are quarantined)."""
    copies: dict[int, list[dict]] = {}
    for o in orders:
        if well_formed_order(o):
            copies.setdefault(o["id"], []).append(o)
    agreed = [c for c in copies.values() if all(o == c[0] for o in c)]
    return [c[0] for c in agreed], sum(len(c) - 1 for c in agreed)


def well_formed_stock(s) -> bool:
    return (
        isinstance(s, dict)
        and _int(s.get("inventory_id"), 1)
        and _int(s.get("product_id"), 0)
        and _int(s.get("warehouse_id"), 0)
        and _int(s.get("quantity"), 0)
        and _text(s.get("sku"))
        and _text(s.get("product_name"))
        and _timestamp(s.get("updated_at"))
    )


def good_stock(stock: list) -> tuple[list[dict], int]:
    """Items of the snapshot, and how many identical repeats: copies of an item that differ are all quarantined."""
    copies: dict[int, list[dict]] = {}
    for s in stock:
        if well_formed_stock(s):
            copies.setdefault(s["inventory_id"], []).append(s)
    agreed = [c for c in copies.values() if all(s == c[0] for s in c)]
    return [c[0] for c in agreed], sum(len(c) - 1 for c in agreed)


def test_broken_records_are_quarantined_and_the_rest_decided_by_the_rule(cli_env, sandbox_server):
    # 1,500 orders at 100 per page fit in one ingest chunk, so "one batch" is every order served
    url = sandbox_server("--orders", "1500", "--items", "25", "--seed", "44", "--bad-rate", "0.05")
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url, "ORDERLY_PAGE_SIZE": "100"}
    run_cli(["run"], env)
    orders, stock = fetch_served(url)
    (orders_ok, order_repeats), (stock_ok, stock_repeats) = good_orders(orders), good_stock(stock)
    assert 0 < len(orders) - len(orders_ok) < len(orders) // 5, "the scenario should break some orders"
    assert len(stock) > len(stock_ok), "the scenario should break some stock"

    expected = expected_statuses(orders_ok, stock_ok)
    rows = json.loads(run_cli(["status", "--json"], env).stdout)
    got = {r["order_id"]: (r["status"], r["reason"]) for r in rows}
    assert set(got) == set(expected)
    wrong = [(oid, got[oid], expected[oid]) for oid in expected if got[oid] != expected[oid]]
    assert not wrong, f"{len(wrong)} orders decided differently, e.g. {wrong[:5]}"

    rejects = json.loads(run_cli(["rejects", "--json"], env).stdout)
    by_source = Counter(r["source"] for r in rejects)
    assert by_source == {
        "order": len(orders) - len(orders_ok) - order_repeats,
        "stock": len(stock) - len(stock_ok) - stock_repeats,
    }
    assert all(r["reasons"] and "Traceback" not in r["reasons"] for r in rejects)
    (run,) = json.loads(run_cli(["runs", "--json"], env).stdout)
    # received = loaded + rejected (+ unchanged repeats), for orders and for stock, each under its own name
    assert (run["orders_fetched"], run["orders_loaded"]) == (len(orders), len(orders_ok))
    assert run["orders_rejected"] == run["orders_fetched"] - run["orders_loaded"] - run["orders_repeated"]
    assert (run["stock_fetched"], run["stock_loaded"]) == (len(stock), len(stock_ok))
    assert run["stock_repeated"] == stock_repeats
    assert run["stock_rejected"] == run["stock_fetched"] - run["stock_loaded"] - run["stock_repeated"]
