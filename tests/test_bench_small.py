"""The benchmark pipeline at 20,000 orders, for correctness only (no timing is asserted here).

The same code as `make bench` (bench/run.py): a loopback sandbox, a real `orderly run` against the
session's Prefect server, then N + 1000 orders and a second run; every order must be decided, and
every status, reason and recorded explanation must equal tests/reference.py (the floor model).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import reference

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("orderly_bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# No timing is asserted: the bound only stops a hang. It also covers starting the session's Prefect server
# when this is the first test to need it (57 s of the 120 s it had, measured with a load average of 6).
@pytest.mark.timeout(300)
def test_bench_pipeline_20k_matches_the_floor_model(prefect_server, tmp_path):
    bench = _bench()
    result = bench.bench_size(
        20_000,
        items=2_000,
        seed=11,
        extra=1_000,
        api_url=prefect_server["api_url"],
        prefect_home=Path(prefect_server["home"]),
        work=tmp_path,
        verify=True,
        log=lambda _: None,
    )
    assert result["mismatch"] is None
    assert result["verified"] is True
    # Every order decided: the model covers all 21,000 and the store holds exactly those, none NEW.
    import duckdb

    con = duckdb.connect(str(tmp_path / "orderly-20000.duckdb"), read_only=True)
    try:
        by_status = dict(con.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall())
        history = con.execute("SELECT count(*) FROM status_changes").fetchall()[0][0]
    finally:
        con.close()
    assert sum(by_status.values()) == 21_000
    assert by_status.get("NEW", 0) == 0
    assert by_status.get("PROCESSED", 0) > 0 and by_status.get("FAILED", 0) > 0
    assert history == 21_000  # one NEW -> PROCESSED/FAILED row per order
    # The incremental run's step timings were read from the server: it ran every step.
    assert set(result["steps"]["incremental"]) == {"stock", "ingest", "process", "report", "reconcile"}
    assert result["task_calls"]["incremental"]["process"] == 1
    # The reconcile of the full run's store found the 20,000 orders there, none missing.
    assert result["reconcile_found"] == {"remote": 20_000, "stored": 20_000, "missing": 0, "added": 0, "changed": 0}


def test_the_floor_is_the_reference_model():
    bench = _bench()
    assert bench.reference is reference  # one plain statement of the rule, shared by the bench and the tests
    available = {1: 3, 2: 0}
    decided = reference.decide([(1, {1: 2}), (2, {1: 2}), (3, {9: 1, 2: 5}), (4, {1: 1}), (5, {2: 1})], available)
    assert [(oid, reason) for oid, reason, _ in decided] == [
        (1, None),
        (2, "INSUFFICIENT_STOCK"),
        (3, "UNKNOWN_INVENTORY"),
        (4, None),
        (5, "INSUFFICIENT_STOCK"),
    ]
    assert decided[1][2] == {"short": [{"inventory_id": 1, "needed": 2, "available": 1}]}
    assert decided[2][2] == {"unknown": [9]}
    assert available == {1: 0, 2: 0}


@pytest.mark.slow  # a receiver and a delivering process (tests/tiers.py)
@pytest.mark.timeout(300)
def test_the_feed_bench_delivers_every_event_once_in_order(tmp_path):
    _bench()  # bench/ on the path, as `make bench` has it
    from feed import feed_bench

    result = feed_bench(tmp_path, 3_000, log=lambda _: None)
    assert result["feed_complete"] is True and result["feed_bad_signatures"] == 0
    assert result["feed_batches"] == 3  # ORDERLY_WEBHOOK_BATCH's default, 1,000 a batch
