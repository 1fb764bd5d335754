"""flows.handoff speaks Prefect's background-task formats without importing Prefect: round-tripped here with
Prefect's own code, so an upgrade that changes them fails here first. (The hand-off itself, through a real
server and worker, is tests/test_worker.py's.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import handoff


def test_a_parameters_record_reads_back_with_prefects_own_reader(tmp_path):
    from prefect._internal.result_records import ResultRecord

    parameters = {"parameters": {"command": "process", "params": {"order_ids": [1, 2**63 - 1], "dry_run": True}}}
    record = ResultRecord.deserialize(handoff._record(parameters, "some-id"))
    assert record.result == parameters and record.metadata.storage_key == "some-id"


def test_an_outcome_prefect_wrote_reads_back_here(tmp_path):
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import JSONSerializer

    outcome = {"flow_run_id": "abc", "state": "COMPLETED", "outcome": {"processed": 6, "notes": ["é ✓"]}}
    path = tmp_path / "outcome"
    path.write_bytes(ResultRecord(result=outcome, metadata=ResultRecordMetadata(
        serializer=JSONSerializer(), storage_key=str(path))).serialize())
    assert handoff._read_record(path) == outcome


def test_an_outcome_path_outside_the_exchange_directory_is_refused(tmp_path):
    exchange = handoff.exchange_dir(tmp_path / "orderly.duckdb")
    assert handoff._inside(exchange, "abc") == exchange / "abc"
    for elsewhere in ("/etc/passwd", "../orderly.duckdb", str(tmp_path / "x")):
        with pytest.raises(handoff.RunFailed, match="not where this store's worker writes"):
            handoff._inside(exchange, elsewhere)


def test_each_store_has_its_own_worker_key(tmp_path):
    from flows.worker import for_store

    one, other = for_store(tmp_path / "a.duckdb"), for_store(tmp_path / "b.duckdb")
    assert one.task_key.startswith(handoff.KEY_PREFIX + handoff.store_digest(tmp_path / "a.duckdb") + "-")
    assert one.task_key != other.task_key
    assert for_store(Path(tmp_path / "a.duckdb")) is one  # the same task for serve() and for its callers
    # the key Prefect's task worker subscribes with is the one the callers look for
    assert one.with_options(persist_result=True).task_key == one.task_key


def test_without_a_server_no_worker_is_found(tmp_path):
    assert handoff.worker_key("http://127.0.0.1:9/api", tmp_path / "orderly.duckdb") is None
