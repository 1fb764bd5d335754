"""The `orderly` command end to end: subprocesses, the session's Prefect server, `orderly sandbox` over loopback
HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ORDERLY, ROOT, SEED_TABLE, UNKNOWN, free_port, run_cli, stop, wait_for

from orderly.store.schema import RUN_COUNTERS

NO_RECONCILE = {
    f"reconcile_{name}": 0 for name in ("remote", "stored", "missing", "added", "changed")
}  # not a reconcile


def expected_status_json() -> list[dict]:
    return [
        {
            "order_id": oid,
            "status": status,
            "items": items,
            "total_qty": qty,
            "reason": None
            if status == "PROCESSED"
            else ("UNKNOWN_INVENTORY" if oid in UNKNOWN else "INSUFFICIENT_STOCK"),
        }
        for oid, (items, qty, status) in SEED_TABLE.items()
    ]


def status_json(env) -> list[dict]:
    return json.loads(run_cli(["status", "--json"], env).stdout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def table_rows(stdout: str) -> dict[int, tuple[str, int, int]]:
    """Rows of the rich orders table (Order ID, Placed as a date and a time, Status, Items, Total Qty, Reason):
    order id -> (status, items, total qty)."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[0].isdigit() and cells[3] in ("NEW", "PROCESSED", "FAILED"):
            rows[int(cells[0])] = (cells[3], int(cells[4].replace(",", "")), int(cells[5].replace(",", "")))
    return rows


@pytest.fixture(scope="module")
def seeded(prefect_server, tmp_path_factory):
    """One `orderly run` against `orderly sandbox` (the seed data set) over loopback; the query tests read it."""
    tmp = tmp_path_factory.mktemp("cli")
    port = free_port()
    sandbox = subprocess.Popen(
        [ORDERLY, "sandbox", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", sandbox, timeout=60)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
        env.update(
            ORDERLY_DB=str(tmp / "orderly.duckdb"),
            PREFECT_API_URL=prefect_server["api_url"],
            PREFECT_HOME=prefect_server["home"],
            ORDERLY_ORDERS_URL=url,
            ORDERLY_WAREHOUSE_URL=url,
        )
        result = run_cli(["run"], env)
        yield {"env": env, "run": result, "url": url}
    finally:
        stop(sandbox)


def test_run_then_status_json_is_exactly_the_seed_table(seeded):
    assert "processed 6" in seeded["run"].stdout and "failed 9" in seeded["run"].stdout
    rows = status_json(seeded["env"])
    assert rows == expected_status_json()
    assert all(list(r) == ["order_id", "status", "items", "total_qty", "reason"] for r in rows)


def test_human_status_shows_the_table(seeded):
    out = run_cli(["status"], seeded["env"]).stdout
    for header in ("Order ID", "Status", "Items", "Total Qty"):
        assert header in out
    assert table_rows(out) == {oid: (s, i, q) for oid, (i, q, s) in SEED_TABLE.items()}


def test_stock_json(seeded):
    got = json.loads(run_cli(["stock", "--json"], seeded["env"]).stdout)
    assert set(got) == {"snapshot", "items"}
    assert got["snapshot"]["loaded"] == 8 and got["snapshot"]["rejected"] == 0
    items = {i["inventory_id"]: (i["on_hand"], i["allocated"], i["available"]) for i in got["items"]}
    # allocated = the processed orders' lines: 6 takes 2 of 101, 8 takes 2 of 310, 9: 206, 10: 420, 12: 530, 16: 640
    assert items == {
        101: (5, 2, 3),
        102: (0, 0, 0),
        205: (0, 0, 0),
        206: (2, 1, 1),
        310: (3, 2, 1),
        420: (1, 1, 0),
        530: (2, 1, 1),
        640: (1, 1, 0),
    }
    assert {"product_id", "sku", "product_name", "warehouse_id"} <= set(got["items"][0])


def test_history_json(seeded):
    rows = json.loads(run_cli(["history", "6", "--json"], seeded["env"]).stdout)
    assert len(rows) == 1
    (row,) = rows
    assert (row["from_status"], row["to_status"], row["reason"]) == ("NEW", "PROCESSED", None)
    assert set(row) == {"run_id", "changed_at", "from_status", "to_status", "reason", "details"}
    (failed,) = json.loads(run_cli(["history", "2", "--json"], seeded["env"]).stdout)
    assert failed["details"] == {"short": [{"inventory_id": 205, "needed": 1, "available": 0}]}
    human = run_cli(["history", "2"], seeded["env"]).stdout
    assert "item 205 short: needed 1, available 0" in human
    runs = json.loads(run_cli(["runs", "--json"], seeded["env"]).stdout)
    assert row["run_id"] == runs[0]["run_id"]


def test_runs_json(seeded):
    runs = json.loads(run_cli(["runs", "--json"], seeded["env"]).stdout)
    assert len(runs) == 1
    (run,) = runs
    assert (run["flow"], run["state"], run["processed"], run["failed"], run["reset"]) == (
        "pipeline",
        "COMPLETED",
        6,
        9,
        0,
    )
    assert {name: run[name] for name in RUN_COUNTERS} == {
        "stock_fetched": 8,
        "stock_loaded": 8,
        "stock_rejected": 0,
        "stock_repeated": 0,
        "orders_fetched": 15,
        "orders_loaded": 15,
        "orders_rejected": 0,
        "orders_repeated": 0,
        "processed": 6,
        "failed": 9,
        "waiting": 0,
        "reset": 0,
        **NO_RECONCILE,
        "delivered": 0,
    }
    assert {"run_id", "started_at", "ended_at", "duration_s", "message"} <= set(run)
    # the same counts, in words, in the run's own summary line (the flow's return value) and the runs table
    words = "stock 8 fetched, 8 loaded; orders 15 fetched, 15 loaded; processed 6, failed 9"
    assert seeded["run"].stdout.strip() == f"run: {words}"
    assert words in " ".join(run_cli(["runs"], seeded["env"]).stdout.split())


def test_rejects_json_is_an_empty_list_on_the_clean_seed(seeded):
    assert json.loads(run_cli(["rejects", "--json"], seeded["env"]).stdout) == []


def test_history_of_an_unknown_order_is_one_line(seeded):
    assert_one_line_error(run_cli(["history", "999"], seeded["env"], check=False), "999")


def test_explain_names_the_short_item_on_the_seed(seeded):
    human = run_cli(["explain", "2"], seeded["env"]).stdout
    assert "order 2: FAILED INSUFFICIENT_STOCK" in human
    assert "why: item 205 short: needed 1, available 0 (when its turn came)" in human
    explained = json.loads(run_cli(["explain", "2", "--json"], seeded["env"]).stdout)
    assert list(explained) == [
        "order_id",
        "status",
        "reason",
        "items",
        "total_qty",
        "lines",
        "explanation",
        "decided_at",
        "decided_run",
    ]
    assert explained["explanation"] == {"short": [{"inventory_id": 205, "needed": 1, "available": 0}]}
    assert [
        (line["inventory_id"], line["quantity"], line["on_hand"], line["allocated"], line["available"])
        for line in explained["lines"]
    ] == [(101, 1, 5, 2, 3), (205, 1, 0, 0, 0)]
    runs = json.loads(run_cli(["runs", "--json"], seeded["env"]).stdout)
    assert explained["decided_run"] == runs[0]["run_id"]
    unknown = run_cli(["explain", "3"], seeded["env"]).stdout
    assert "why: item 999 is not in the stock snapshot" in unknown and "not in the stock snapshot" in unknown
    assert "why: every item was available" in run_cli(["explain", "6"], seeded["env"]).stdout
    assert_one_line_error(run_cli(["explain", "999"], seeded["env"], check=False), "no such order: 999")


def test_query_commands_do_not_import_prefect(seeded):
    code = (
        "import sys\n"
        "from orderly.cli import main as cli\n"
        "for args in (['status', '--json'], ['stock', '--json'], ['history', '6', '--json'], ['runs', '--json'],"
        " ['rejects', '--json'], ['status'], ['explain', '2'], ['explain', '2', '--json'], ['status', '--csv'],"
        " ['runs'], ['stock'], ['doctor']):\n"
        "    sys.argv = ['orderly', *args]\n"
        "    try:\n"
        "        cli.main()\n"
        "    except SystemExit as done:\n"
        "        assert not done.code, (args, done.code)\n"
        "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "assert not loaded, loaded\n"
        "print('NO-PREFECT')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=seeded["env"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("NO-PREFECT")
    assert '"order_id": 16' in result.stdout  # the commands did run and read the store


def test_reset_then_process_prints_the_table_again(cli_env, sandbox_server):
    url = sandbox_server()
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url}
    run_cli(["run"], env)
    reset = run_cli(["reset"], env)
    assert "reset 15" in reset.stdout
    assert {r["status"] for r in status_json(env)} == {"NEW"}
    stock = json.loads(run_cli(["stock", "--json"], env).stdout)
    assert all(i["allocated"] == 0 and i["available"] == i["on_hand"] for i in stock["items"])
    processed = run_cli(["process"], env)
    assert "processed 6" in processed.stdout and "failed 9" in processed.stdout
    assert "Order ID" in processed.stdout and "Total Qty" in processed.stdout
    assert table_rows(processed.stdout) == {oid: (s, i, q) for oid, (i, q, s) in SEED_TABLE.items()}
    assert status_json(env) == expected_status_json()
    history = json.loads(run_cli(["history", "6", "--json"], env).stdout)
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("NEW", "PROCESSED"),
        ("PROCESSED", "NEW"),
        ("NEW", "PROCESSED"),
    ]
    assert len({h["run_id"] for h in history}) == 3
    runs = json.loads(run_cli(["runs", "--json"], env).stdout)
    assert [(r["flow"], r["state"]) for r in runs] == [
        ("process-all", "COMPLETED"),
        ("reset-state", "COMPLETED"),
        ("pipeline", "COMPLETED"),
    ]
    assert runs[1]["reset"] == 15
    # three runs seconds apart: Prefect's ids (UUIDv7, time first) may share 8 characters; the tables' never do
    changes = [line.split()[-1] for line in run_cli(["history", "6"], env).stdout.splitlines() if line[:4].isdigit()]
    listed = [line.split()[0] for line in run_cli(["runs"], env).stdout.splitlines() if re.match(r"[0-9a-f]{8}", line)]
    assert len(set(changes)) == len(set(listed)) == 3, (changes, listed)
    assert all(h["run_id"].startswith(shown) for h, shown in zip(history, changes, strict=True))
    assert all(r["run_id"].startswith(shown) and len(shown) >= 8 for r, shown in zip(runs, listed, strict=True))

    # process --order 999: one line, nothing changed, and no run started: the id is checked before any flow
    run_cli(["reset", "--order", "10", "--order", "11"], env)
    runs_before = json.loads(run_cli(["runs", "--json"], env).stdout)
    bad = run_cli(["process", "--order", "999"], env, check=False)
    assert bad.returncode == 2
    assert_one_line_error(bad, "no such order: 999")
    by_id = {r["order_id"]: r["status"] for r in status_json(env)}
    assert by_id[10] == by_id[11] == "NEW"
    assert json.loads(run_cli(["runs", "--json"], env).stdout) == runs_before
    # an order that is not NEW is named as skipped; the NEW ones named are processed
    both = run_cli(["process", "--order", "6", "--order", "11"], env)
    assert both.stderr.strip() == "order 6 is PROCESSED, skipped"
    assert "processed 1, failed 0" in both.stdout
    run_cli(["reset", "--order", "11"], env)
    # process only 11: with 10 released, 11 gets the tote
    run_cli(["process", "--order", "11"], env)
    by_id = {r["order_id"]: r["status"] for r in status_json(env)}
    assert by_id[11] == "PROCESSED" and by_id[10] == "NEW"


@pytest.mark.parametrize("command", [["run"], ["status"], ["process"]])
def test_a_bad_setting_is_one_line(cli_env, command):
    env = {**cli_env, "ORDERLY_MAX_STOCK_AGE": "abc"}
    result = run_cli(command, env, check=False)
    assert_one_line_error(result, "ORDERLY_MAX_STOCK_AGE")


def test_process_with_stale_stock_is_one_line_and_orders_stay_new(cli_env, sandbox_server):
    url = sandbox_server()
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url}
    run_cli(["sync"], env)
    result = run_cli(["process"], {**env, "ORDERLY_MAX_STOCK_AGE": "0"}, check=False)
    assert_one_line_error(result, "ORDERLY_MAX_STOCK_AGE")
    assert {r["status"] for r in status_json(env)} == {"NEW"}
    assert len(status_json(env)) == 15


def store_bytes(env) -> tuple[bytes, bool]:
    path = Path(env["ORDERLY_DB"])
    return path.read_bytes(), path.with_name(path.name + ".wal").exists()


def test_a_dry_run_writes_nothing_and_a_real_run_then_decides_the_same(cli_env, sandbox_server):
    url = sandbox_server()
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url}
    synced = run_cli(["sync"], env)
    assert synced.stderr == ""  # no progress display, no note: stderr is not a terminal
    before = store_bytes(env)
    preview = json.loads(run_cli(["process", "--dry-run", "--json"], env).stdout)
    assert store_bytes(env) == before  # byte for byte: not a status, not a history row, not a run
    assert (preview["dry_run"], preview["processed"], preview["failed"]) == (True, 6, 9)
    by_id = {c["order_id"]: c for c in preview["changes"]}
    assert by_id[2]["details"] == {"short": [{"inventory_id": 205, "needed": 1, "available": 0}]}
    assert by_id[3]["details"] == {"unknown": [999]} and by_id[6]["details"] is None
    human = run_cli(["process", "--dry-run", "--order", "2", "--order", "6"], env)
    assert "would process 1, fail 1" in human.stderr and "item 205 short: needed 1, available 0" in human.stdout
    assert store_bytes(env) == before

    real = json.loads(run_cli(["process", "--json"], env).stdout)
    assert real == {"processed": 6, "failed": 9, "waiting": 0}
    assert {r["order_id"]: (r["status"], r["reason"]) for r in status_json(env)} == {
        c["order_id"]: (c["to_status"], c["reason"]) for c in preview["changes"]
    }
    for order_id, change in by_id.items():
        (recorded,) = json.loads(run_cli(["history", str(order_id), "--json"], env).stdout)
        assert {k: recorded[k] for k in ("from_status", "to_status", "reason", "details")} == {
            k: change[k] for k in ("from_status", "to_status", "reason", "details")
        }
    assert [r["flow"] for r in json.loads(run_cli(["runs", "--json"], env).stdout)] == ["process-all", "sync"]


def test_reset_failed_for_lack_of_stock_then_process_retries_just_those(cli_env, sandbox_server):
    url = sandbox_server()
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url}
    run_cli(["run"], env)
    decided = {r["order_id"]: (r["status"], r["reason"]) for r in status_json(env)}
    result = run_cli(["reset", "--status", "FAILED", "--reason", "INSUFFICIENT_STOCK"], env)
    assert "reset 6" in result.stdout
    after = {r["order_id"]: (r["status"], r["reason"]) for r in status_json(env)}
    assert after == {
        oid: ("NEW", None) if reason == "INSUFFICIENT_STOCK" else (status, reason)
        for oid, (status, reason) in decided.items()
    }
    assert "reset 3" in run_cli(["reset", "--reason", "UNKNOWN_INVENTORY"], env).stdout
    assert "reset 6" in run_cli(["reset", "--status", "PROCESSED"], env).stdout
    assert {r["status"] for r in status_json(env)} == {"NEW"}
    run_cli(["process"], env)
    assert status_json(env) == expected_status_json()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["reset", "--status", "DONE"], "unknown status 'DONE': use one of NEW, PROCESSED, FAILED"),
        (["reset", "--reason", "LATE"], "unknown reason 'LATE': use one of UNKNOWN_INVENTORY, INSUFFICIENT_STOCK"),
    ],
)
def test_a_bad_status_or_reason_is_one_line_before_any_flow_starts(tmp_path, args, fragment):
    code = (
        "import sys\n"
        "from orderly.cli import main as cli\n"
        f"sys.argv = ['orderly', *{args!r}]\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as done:\n"
        "    assert 'prefect' not in sys.modules, 'a flow was about to start'\n"
        "    raise\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_API"))}
    env["ORDERLY_DB"] = str(tmp_path / "orderly.duckdb")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert_one_line_error(result, fragment)


def test_reset_everything_asks_first_on_a_terminal(cli_env, sandbox_server):
    import pty

    url = sandbox_server()
    env = {**cli_env, "ORDERLY_ORDERS_URL": url, "ORDERLY_WAREHOUSE_URL": url}
    run_cli(["run"], env)
    decided = status_json(env)
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [ORDERLY, "reset"],
            env=env,
            cwd=ROOT,
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(primary, b"n\n")
        _out, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    assert "Put every PROCESSED and FAILED order back to NEW?" in err
    assert process.returncode == 1 and "nothing was reset" in err and "Traceback" not in err
    assert status_json(env) == decided  # nothing changed
    # not on a pipe (a script): `reset` runs without asking, as test_reset_then_process_prints_the_table_again shows


def test_huge_quantities_end_to_end_over_http(cli_env, stub_server):
    """Issue 9, case 3, from the remotes to `orderly stock`: exact integers all the way, no float."""
    import orjson

    big = 2**63 - 1
    stamp = "2026-11-20T09:00:00Z"
    stock = [
        {
            "inventory_id": 7,
            "product_id": 1,
            "sku": "A",
            "product_name": "A",
            "warehouse_id": 1,
            "quantity": 2**53 + 1,
            "updated_at": stamp,
        },
        {
            "inventory_id": 8,
            "product_id": 2,
            "sku": "B",
            "product_name": "B",
            "warehouse_id": 1,
            "quantity": big,
            "updated_at": stamp,
        },
    ]
    quantities = {1: (7, 2**53 + 1), 2: (7, 1), 3: (8, 2**62), 4: (8, 2**62), 5: (8, 2**62 - 1), 6: (8, 1)}
    orders = [
        {"id": oid, "placed_at": stamp, "customer_id": "C", "items": [{"inventory_id": i, "quantity": q}]}
        for oid, (i, q) in quantities.items()
    ]

    def handler(path, params, headers):
        if path == "/stock":
            return (
                200,
                {"Content-Type": "application/json"},
                orjson.dumps({"items": stock, "page": 1, "per_page": 1000, "total_pages": 1}),
            )
        after = int(params.get("after_id", 0))
        return (
            200,
            {"Content-Type": "application/json"},
            orjson.dumps({"orders": [o for o in orders if o["id"] > after], "next_after_id": None}),
        )

    stub = stub_server(handler)
    env = {**cli_env, "ORDERLY_ORDERS_URL": stub.url, "ORDERLY_WAREHOUSE_URL": stub.url}
    run_cli(["run"], env)
    assert {r["order_id"]: r["status"] for r in status_json(env)} == {
        1: "PROCESSED",
        2: "FAILED",
        3: "PROCESSED",
        4: "FAILED",
        5: "PROCESSED",
        6: "FAILED",
    }
    items = {
        i["inventory_id"]: (i["on_hand"], i["allocated"], i["available"])
        for i in json.loads(run_cli(["stock", "--json"], env).stdout)["items"]
    }
    assert items == {7: (2**53 + 1, 2**53 + 1, 0), 8: (big, big, 0)}
    assert json.loads(run_cli(["explain", "4", "--json"], env).stdout)["explanation"] == {
        "short": [{"inventory_id": 8, "needed": 2**62, "available": 2**62 - 1}]
    }


def test_a_long_sync_shows_progress_on_a_terminal_and_nothing_on_a_pipe(cli_env, sandbox_server):
    """Issue 11: 15 pages of orders at 200 ms each take ~3 s; on a terminal, stderr shows the stages with their
    records, pages and rate. Piped, stderr stays empty: see the sync in the dry-run test."""
    import pty

    url = sandbox_server("--latency-ms", "200")
    env = {
        **cli_env,
        "ORDERLY_ORDERS_URL": url,
        "ORDERLY_WAREHOUSE_URL": url,
        "ORDERLY_PAGE_SIZE": "1",
        "COLUMNS": "100",
        "TERM": "xterm",
    }
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [ORDERLY, "sync"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary
        )
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        out = process.communicate(timeout=120)[0].decode()
    finally:
        os.close(primary)
    screen = shown.decode(errors="replace")
    assert process.returncode == 0, screen
    assert "orders 15 fetched, 15 loaded" in out  # the summary is data: stdout, not the terminal's stderr
    assert "fetch orders" in screen and "15 pages" in screen and "records" in screen and "/s" in screen
    assert "validate orders" in screen and "load orders" in screen
