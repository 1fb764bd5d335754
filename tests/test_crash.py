"""Atomicity and crashes: a partial stock sync changes nothing; `orderly run` killed with SIGKILL at random
moments, then run again, ends exactly where one clean run ends."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import duckdb
import orjson
from conftest import ORDERLY, ROOT, run_cli

from orderly.sandbox import seed_dataset

OK_JSON = {"Content-Type": "application/json"}


def remote_env(env: dict, url: str, **extra) -> dict:
    return {**env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url, **extra}


def stock_json(env: dict) -> dict:
    return json.loads(run_cli(["stock", "--json"], env).stdout)


# ---- a stock sync that could not read every page changes nothing ------------------------------------


def test_stock_sync_missing_a_page_changes_nothing(cli_env, stub_server):
    """The warehouse answers pages 1 and 3 with new quantities but page 2 with 500 for good: the snapshot,
    every item's quantity and the snapshot's age stay those of the last complete sync."""
    data = seed_dataset()
    state = {"broken": False}

    def handler(path, params, headers):
        if path == "/orders":
            return 200, OK_JSON, orjson.dumps(data.orders_page(int(params["after_id"]), int(params["limit"])))
        page = data.stock_page(int(params["page"]), int(params["per_page"]))
        if state["broken"]:
            if params["page"] == "2":
                return 500, OK_JSON, b'{"error": "down"}'
            for item in page["items"]:  # what a complete sync would have changed
                item["quantity"] += 100
        return 200, OK_JSON, orjson.dumps(page)

    stub = stub_server(handler)
    env = remote_env(cli_env, stub.url, ORDERLY_PAGE_SIZE="3", ORDERLY_HTTP_RETRIES="2")
    run_cli(["sync"], env)
    before = stock_json(env)
    assert before["snapshot"]["snapshot_id"] == 1 and len(before["items"]) == 8

    state["broken"] = True
    stub.requests.clear()
    result = run_cli(["sync"], env, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stock not synced" in lines[0] and f"{stub.url}/stock" in lines[0], result.stderr
    assert stub.count("/stock", page=2) == 3  # 1 + ORDERLY_HTTP_RETRIES, then it gave up
    after = stock_json(env)
    assert after["items"] == before["items"]
    assert after["snapshot"]["snapshot_id"] == 1
    assert after["snapshot"]["completed_at"] == before["snapshot"]["completed_at"]


# ---- SIGKILL at random moments ----------------------------------------------------------------------


def db_state(path: str) -> dict:
    con = duckdb.connect(path, read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        return {
            "orders": q(
                "SELECT order_id, placed_at, customer_id, items, total_qty, fingerprint, status, reason "
                "FROM orders ORDER BY order_id"
            ),
            "lines": q("SELECT order_id, line_no, inventory_id, quantity FROM order_lines ORDER BY ALL"),
            "stock": q("SELECT inventory_id, product_id, sku, quantity FROM stock_items ORDER BY ALL"),
            "cursor": q("SELECT after_id FROM cursors"),
            "history": q("SELECT order_id, from_status, to_status, reason FROM status_changes ORDER BY ALL"),
            "runs": q("SELECT state, count(*) FROM runs GROUP BY ALL ORDER BY ALL"),
            "doubled_orders": q("SELECT order_id FROM orders GROUP BY 1 HAVING count(*) > 1"),
            "doubled_lines": q("SELECT order_id, line_no FROM order_lines GROUP BY ALL HAVING count(*) > 1"),
            "doubled_history": q("SELECT order_id FROM status_changes GROUP BY 1 HAVING count(*) > 1"),
        }
    finally:
        con.close()


def test_sigkill_at_random_moments_then_a_clean_run_equals_one_clean_run(cli_env, sandbox_server, tmp_path):
    url = sandbox_server("--orders", "3000", "--seed", "7", "--latency-ms", "20")
    env = remote_env(cli_env, url, ORDERLY_PAGE_SIZE="20", ORDERLY_LOCK_TIMEOUT="60")
    reference_env = {**env, "ORDERLY_DB": str(tmp_path / "reference.duckdb")}
    reference = subprocess.Popen(
        [ORDERLY, "run"], env=reference_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    rng = random.Random(20261124)
    kills = []
    for _ in range(6):
        delay = rng.uniform(1.0, 4.5)
        process = subprocess.Popen(
            [ORDERLY, "run"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            process.wait(timeout=delay)
            kills.append((round(delay, 2), f"finished first ({process.returncode})"))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            kills.append((round(delay, 2), "killed"))
    # Killed runs make progress, so a later run may finish: at least half must die mid-run.
    assert sum(1 for _, what in kills if what == "killed") >= 3, kills

    _out, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, err
    started = time.monotonic()
    final = run_cli(["run"], env)
    assert "Traceback" not in final.stderr
    print("kills:", kills, "final run took", round(time.monotonic() - started, 1), "s")

    got, want = db_state(env["ORDERLY_DB"]), db_state(reference_env["ORDERLY_DB"])
    assert got["doubled_orders"] == [] and got["doubled_lines"] == [] and got["doubled_history"] == []
    for key in ("orders", "lines", "stock", "cursor"):
        assert got[key] == want[key], key
    # One status change per decided order, however many runs were killed on the way.
    assert got["history"] == want["history"] and len(got["history"]) == len(got["orders"]) == 3000
    runs = dict(got["runs"])
    assert "RUNNING" not in runs and runs.get("COMPLETED", 0) >= 1
    assert json.loads(run_cli(["status", "--json"], env).stdout) == json.loads(
        run_cli(["status", "--json"], reference_env).stdout
    )
