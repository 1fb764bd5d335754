"""Issue 17, class 10: a sync that waits on the network never blocks the store's readers. The ingest holds the
DuckDB file only while it writes a chunk; while the orders service makes it wait (a 429 with Retry-After, a slow
page) `orderly status` and any reader answer at once, not after the sync, and never with exit 3."""

from __future__ import annotations

import json
import subprocess
import time

import duckdb
import pytest
from conftest import ORDERLY, ROOT, run_cli
from hostile import HostileRemote, error, item, one_ca_bundle, order

WAIT_S = 6  # the Retry-After the orders service asks for, on page 2 of the second sync


@pytest.fixture
def remote():
    with HostileRemote(max_trickle_s=5) as server:
        yield server


def test_status_answers_while_a_sync_waits_on_a_429(cli_env, remote, tmp_path):
    ten = [order(i, (101, 1)) for i in range(1, 11)]
    remote.script(orders=ten[:6], stock=[item(101, 100)])
    env = {
        **cli_env,
        "ORDERLY_ORDERS_URL": remote.url,
        "ORDERLY_WAREHOUSE_URL": remote.url,
        "ORDERLY_PAGE_SIZE": "3",
        "ORDERLY_HTTP_RETRIES": "2",
        "ORDERLY_RETRY_AFTER_CAP": str(WAIT_S),
        "ORDERLY_LOCK_TIMEOUT": "30",
        "SSL_CERT_FILE": one_ca_bundle(tmp_path),
    }
    run_cli(["sync"], env)  # a store holding orders 1-6

    def slow_second_page(request):
        if request.path == "/orders" and request.params.get("after_id") == "3" and request.n == 0:
            return error(429, **{"Retry-After": str(WAIT_S)})
        return None

    remote.script(orders=ten, stock=[item(101, 100)], fault=slow_second_page)
    sync = subprocess.Popen(
        [ORDERLY, "sync"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(r["status"] == 429 for r in remote.requests):
            assert sync.poll() is None and time.monotonic() < deadline, sync.communicate()
            time.sleep(0.05)
        asked = time.monotonic()

        # A reader in this process: the file opens read-only and answers within a second.
        started = time.monotonic()
        con = duckdb.connect(env["ORDERLY_DB"], read_only=True)
        count = con.execute("SELECT count(*) FROM orders").fetchall()[0][0]
        con.close()
        assert time.monotonic() - started < 1.0 and count == 6

        # The command an operator runs: exit 0, the orders as they are, long before the sync can go on.
        started = time.monotonic()
        status = run_cli(["status", "--json"], env, check=False, timeout=30)
        took = time.monotonic() - started
        assert status.returncode == 0, status.stderr
        assert [row["order_id"] for row in json.loads(status.stdout)] == [1, 2, 3, 4, 5, 6]
        assert took < 3.0 and time.monotonic() - asked < WAIT_S - 1, took  # the sync is still waiting
        assert sync.poll() is None
    finally:
        _out, err = sync.communicate(timeout=120)
    assert sync.returncode == 0, err
    final = json.loads(run_cli(["status", "--json"], env).stdout)
    assert [row["order_id"] for row in final] == list(range(1, 11))
