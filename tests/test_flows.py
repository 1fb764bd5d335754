"""The flows under Prefect's test harness, against the in-process seed sandbox and a DuckDB file in tmp_path."""

from __future__ import annotations

import json

import duckdb
import pytest
import reference
from conftest import SEED_TABLE, UNKNOWN

from orderly.errors import RunIncomplete, StaleStock, UnknownOrders


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def db(prefect_harness, tmp_path, monkeypatch):
    for name in (
        "ORDERLY_ORDERS_URL",
        "ORDERLY_WAREHOUSE_URL",
        "ORDERLY_API_TOKEN",
        "ORDERLY_MAX_STOCK_AGE",
        "ORDERLY_SANDBOX_ORDERS",
        "ORDERLY_SANDBOX_ITEMS",
        "ORDERLY_SANDBOX_FAULT_RATE",
        "ORDERLY_SANDBOX_BAD_RATE",
        "ORDERLY_SANDBOX_LATENCY_MS",
        "ORDERLY_PAGE_SIZE",
        "PREFECT_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "flows.duckdb"
    monkeypatch.setenv("ORDERLY_DB", str(path))
    return path


def read(path, sql, params=None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def table(path):
    rows = read(path, "SELECT order_id, items, total_qty, status, reason FROM orders ORDER BY order_id")
    for order_id, _, _, status, reason in rows:
        if status == "FAILED":
            assert reason == ("UNKNOWN_INVENTORY" if order_id in UNKNOWN else "INSUFFICIENT_STOCK"), order_id
        else:
            assert reason is None
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def runs(path):
    return read(path, "SELECT run_id, flow, state, processed, failed, reset, message FROM runs ORDER BY started_at")


def test_pipeline_on_the_seed_sandbox_gives_the_seed_table(db):
    from flows.orders import pipeline

    counts = pipeline()
    assert table(db) == SEED_TABLE
    assert counts["processed"] == 6 and counts["failed"] == 9
    ((run_id, flow, state, processed, failed, _, _),) = runs(db)
    assert (flow, state, processed, failed) == ("pipeline", "COMPLETED", 6, 9)
    # one history row per change, each carrying this run's id
    history = read(db, "SELECT run_id, order_id, from_status, to_status FROM status_changes ORDER BY order_id")
    assert [(h[1], h[3]) for h in history] == [(o, t[2]) for o, t in SEED_TABLE.items()]
    assert {h[0] for h in history} == {run_id} and {h[2] for h in history} == {"NEW"}
    # a second pipeline ingests nothing new and decides nothing
    again = pipeline()
    assert again.get("orders_loaded", 0) == 0 and again.get("processed", 0) == 0
    assert table(db) == SEED_TABLE


def test_reset_then_process_all_gives_the_table_again_with_history(db):
    from flows.orders import pipeline, process_all, reset_state

    pipeline()
    assert reset_state()["reset"] == 15
    assert {t[2] for t in table(db).values()} == {"NEW"}
    stock = read(
        db,
        """SELECT count(*) FROM order_lines l JOIN orders o USING (order_id)
                        WHERE o.status = 'PROCESSED'""",
    )
    assert stock == [(0,)]  # nothing allocated any more
    process_all()
    assert table(db) == SEED_TABLE
    run_ids = [r[0] for r in runs(db)]
    assert [r[1:3] for r in runs(db)] == [
        ("pipeline", "COMPLETED"),
        ("reset-state", "COMPLETED"),
        ("process-all", "COMPLETED"),
    ]
    history = read(
        db,
        "SELECT run_id, from_status, to_status, reason FROM status_changes WHERE order_id = 6 "
        "ORDER BY changed_at, rowid",
    )
    assert history == [
        (run_ids[0], "NEW", "PROCESSED", None),
        (run_ids[1], "PROCESSED", "NEW", "RESET"),
        (run_ids[2], "NEW", "PROCESSED", None),
    ]
    assert read(db, "SELECT count(*) FROM status_changes")[0][0] == 45


def test_reset_releases_stock_for_a_named_order(db):
    from flows.orders import pipeline, process_all, reset_state

    pipeline()
    assert table(db)[10][2] == "PROCESSED" and table(db)[11][2] == "FAILED"
    reset_state(order_ids=[10, 11])  # 10 gives its tote back
    assert table(db)[10][2] == "NEW" and table(db)[11][2] == "NEW"
    assert process_all(order_ids=[11])["processed"] == 1  # 11 is processed alone: the tote is free
    assert table(db)[11][2] == "PROCESSED"
    process_all()
    assert table(db)[10][2] == "FAILED"
    assert read(db, "SELECT reason FROM orders WHERE order_id = 10") == [("INSUFFICIENT_STOCK",)]
    others = {k: v for k, v in table(db).items() if k not in (10, 11)}
    assert others == {k: v for k, v in SEED_TABLE.items() if k not in (10, 11)}


def test_process_all_with_unknown_order_changes_nothing(db):
    from flows.orders import process_all, sync

    sync()
    with pytest.raises(UnknownOrders):
        process_all(order_ids=[6, 999])
    assert {t[2] for t in table(db).values()} == {"NEW"}
    assert runs(db)[-1][2] == "FAILED" and "999" in runs(db)[-1][6]


def test_no_snapshot_refuses_and_orders_stay_new(db, monkeypatch, sandbox_server):
    from flows.orders import process_all, sync

    # orders ingested, but the warehouse answered nothing usable: a bad URL on the warehouse only (the orders
    # from a served sandbox: one URL without the other is refused by the settings)
    orders_url = sandbox_server()  # started first: it checks the settings too
    monkeypatch.setenv("ORDERLY_WAREHOUSE_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("ORDERLY_ORDERS_URL", orders_url)
    monkeypatch.setenv("ORDERLY_HTTP_RETRIES", "0")
    with pytest.raises(RunIncomplete, match="stock not synced"):
        sync()
    monkeypatch.delenv("ORDERLY_WAREHOUSE_URL")
    monkeypatch.delenv("ORDERLY_ORDERS_URL")
    assert read(db, "SELECT count(*) FROM orders")[0][0] == 15  # orders came in; stock did not
    assert read(db, "SELECT count(*) FROM stock_snapshots")[0][0] == 0
    with pytest.raises(StaleStock, match="no complete stock snapshot"):
        process_all()
    assert {t[2] for t in table(db).values()} == {"NEW"}
    (state, message) = read(db, "SELECT state, message FROM runs WHERE flow = 'process-all'")[0]
    assert state == "FAILED" and "no complete stock snapshot" in message
    assert read(db, "SELECT count(*) FROM status_changes") == [(0,)]


def test_stale_stock_refuses_and_orders_stay_new(db, monkeypatch):
    from flows.orders import process_all, sync

    sync()
    monkeypatch.setenv("ORDERLY_MAX_STOCK_AGE", "0")
    with pytest.raises(StaleStock, match="ORDERLY_MAX_STOCK_AGE=0"):
        process_all()
    assert {t[2] for t in table(db).values()} == {"NEW"}
    assert read(db, "SELECT count(*) FROM status_changes") == [(0,)]
    assert [r[1:3] for r in runs(db)] == [("sync", "COMPLETED"), ("process-all", "FAILED")]
    monkeypatch.setenv("ORDERLY_MAX_STOCK_AGE", "900")
    process_all()
    assert table(db) == SEED_TABLE


def test_generated_sandbox_in_process_matches_an_independent_rule(db, monkeypatch):
    """A scarce generated data set in-process (no HTTP): statuses follow the rule on what the sandbox serves."""
    from flows.orders import pipeline
    from orderly.sandbox import generate

    monkeypatch.setenv("ORDERLY_SANDBOX_ORDERS", "600")
    monkeypatch.setenv("ORDERLY_SANDBOX_ITEMS", "15")
    monkeypatch.setenv("ORDERLY_SANDBOX_SEED", "7")
    monkeypatch.setenv("ORDERLY_PAGE_SIZE", "50")
    pipeline()
    data = generate(600, 15, seed=7)
    expected = reference.decide_records(data.all_orders(), data.all_stock())
    got = {r[0]: (r[1], r[2]) for r in read(db, "SELECT order_id, status, reason FROM orders ORDER BY 1")}
    assert got == expected
    assert {v[1] for v in got.values()} >= {None, "INSUFFICIENT_STOCK"}


def test_a_dry_run_of_process_all_writes_nothing_and_decides_as_the_real_run(db):
    from flows.orders import process_all, sync

    sync()
    before = db.read_bytes()
    preview = process_all(dry_run=True)
    assert db.read_bytes() == before  # not a status, not a history row, not even a runs row
    assert (preview["processed"], preview["failed"]) == (6, 9)
    assert process_all() == {"processed": 6, "failed": 9, "waiting": 0}
    assert table(db) == SEED_TABLE
    recorded = dict(read(db, "SELECT order_id, details FROM status_changes"))
    assert {c["order_id"]: (c["to_status"], c["details"]) for c in preview["changes"]} == {
        oid: (status, None if recorded[oid] is None else json.loads(recorded[oid]))
        for oid, (_, _, status) in SEED_TABLE.items()
    }
    assert [r[1] for r in runs(db)] == ["sync", "process-all"]


def test_reset_state_puts_back_only_what_matches(db):
    from flows.orders import pipeline, process_all, reset_state

    pipeline()
    assert reset_state(status="FAILED", reason="INSUFFICIENT_STOCK") == {"reset": 6}
    assert {oid for oid, (_, _, status) in table(db).items() if status == "NEW"} == {
        oid for oid, (_, _, status) in SEED_TABLE.items() if status == "FAILED" and oid not in UNKNOWN
    }
    assert process_all() == {"processed": 0, "failed": 6, "waiting": 0}  # the stock has not changed: they lack it still
    assert table(db) == SEED_TABLE
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError):
        reset_state(status="DONE")  # the deployment's form offers NEW, PROCESSED, FAILED only


def test_the_same_stock_again_is_a_fresh_snapshot_without_validation(db, monkeypatch):
    """The seed's warehouse sends the same 8 items each run: the second run records a new snapshot with the
    same counts from the digest alone (the stock is not validated again), and decides the same."""
    from flows.orders import pipeline
    from orderly import ingest

    validated = []
    real_validate = ingest.validate_stock
    monkeypatch.setattr(
        ingest, "validate_stock", lambda records: validated.append(len(records)) or real_validate(records)
    )
    first = pipeline(return_state=True)
    assert validated == [8]
    second = pipeline(return_state=True)
    assert validated == [8]  # not called again: the digest matched the last clean snapshot
    counts = [state.result() for state in (first, second)]
    stock = [{k: v for k, v in c.items() if k.startswith("stock_")} for c in counts]
    assert stock[0] == stock[1] and stock[0]["stock_loaded"] == 8
    assert read(db, "SELECT count(*), count(DISTINCT digest) FROM stock_snapshot_digests") == [(2, 1)]
    assert read(db, "SELECT snapshot_id, loaded, rejected FROM stock_snapshots ORDER BY 1") == [(1, 8, 0), (2, 8, 0)]
