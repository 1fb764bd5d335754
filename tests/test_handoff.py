"""flows.handoff speaks Prefect's background-task formats without importing Prefect: round-tripped here with
Prefect's own code, so an upgrade that changes them fails here first. (The hand-off itself, through a real
server and worker, is tests/test_worker.py's.)"""

from __future__ import annotations

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
    path.write_bytes(
        ResultRecord(
            result=outcome, metadata=ResultRecordMetadata(serializer=JSONSerializer(), storage_key=str(path))
        ).serialize()
    )
    assert handoff._read_record(path) == outcome


def test_an_outcome_path_outside_the_exchange_directory_is_refused(tmp_path):
    exchange = handoff.exchange_dir(tmp_path / "orderly.duckdb")
    assert handoff._inside(exchange, "abc") == exchange / "abc"
    for elsewhere in ("/etc/passwd", "../orderly.duckdb", str(tmp_path / "x")):
        with pytest.raises(handoff.RunFailed, match="not where this store's worker writes"):
            handoff._inside(exchange, elsewhere)


def test_each_store_and_each_run_setting_has_its_own_worker_key(tmp_path):
    from flows.worker import for_settings
    from orderly.settings import Settings

    env = {"ORDERLY_DB": str(tmp_path / "a.duckdb")}
    one = for_settings(Settings.from_env(env))
    assert one.task_key.startswith(handoff.KEY_PREFIX + handoff.identity(Settings.from_env(env)) + "-")
    assert for_settings(Settings.from_env(env)) is one  # the same task for serve() and for its callers
    assert one.with_options(persist_result=True).task_key == one.task_key  # the key Prefect's worker subscribes with
    others = [
        {**env, "ORDERLY_DB": str(tmp_path / "b.duckdb")},
        {**env, "ORDERLY_MAX_STOCK_AGE": "60"},
        {**env, "ORDERLY_LOOKBACK_ORDERS": "0"},
        {**env, "ORDERLY_SANDBOX_ORDERS": "99"},
    ]
    keys = {for_settings(Settings.from_env(other)).task_key for other in others}
    assert len(keys) == len(others) and one.task_key not in keys
    # what only shapes waiting or serving, and secrets, leave the key alone (secrets are never hashed)
    same = [
        {**env, "ORDERLY_SCHEDULE_SECONDS": "60"},
        {**env, "ORDERLY_LOCK_TIMEOUT": "5"},
        {**env, "ORDERLY_API_TOKEN": "secret-token-1234567890"},
        {**env, "ORDERLY_SANDBOX_TOKEN": "secret-9"},
    ]
    assert {for_settings(Settings.from_env(other)).task_key for other in same} == {one.task_key}


def test_without_a_server_no_worker_is_found(tmp_path):
    from orderly.settings import Settings

    env = {"ORDERLY_DB": str(tmp_path / "orderly.duckdb")}
    assert handoff.worker_key("http://127.0.0.1:9/api", Settings.from_env(env)) is None


# ---- waiting on the server, below the HTTP boundary ---------------------------------------------------


def _server(answers):
    """A mock Prefect API answering each request with the next of `answers` for its path."""
    import httpx

    def handle(request):
        status, body = (
            answers[request.url.path].pop(0) if len(answers[request.url.path]) > 1 else answers[request.url.path][0]
        )
        return httpx.Response(status, json=body)

    return httpx.Client(base_url="http://prefect/api", transport=httpx.MockTransport(handle))


def test_a_busy_server_is_asked_again_and_its_answer_used(monkeypatch):
    monkeypatch.setattr(handoff.time, "sleep", lambda _: None)
    client = _server(
        {
            "/api/task_runs/r1": [(503, {}), (500, {}), (200, {"state": {"type": "COMPLETED"}})],
            "/api/task_workers/filter": [(200, [{"task_keys": ["k"]}])],
        }
    )
    assert handoff._wait(client, "r1", "http://prefect/api", "k") == {"type": "COMPLETED"}


def test_a_server_that_keeps_failing_is_gone_in_one_line(monkeypatch):
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr(handoff.time, "sleep", lambda _: None)
    monkeypatch.setattr(handoff.time, "monotonic", lambda: float(next(clock)))
    client = _server({"/api/task_runs/r1": [(503, {})]})
    with pytest.raises(handoff.WorkerGone, match=r"stopped answering \(it answered 503\)"):
        handoff._wait(client, "r1", "http://user:pw@prefect/api", "k")


def test_a_worker_missing_twice_in_a_row_is_gone_but_once_is_not(monkeypatch):
    clock = iter(range(10_000))
    monkeypatch.setattr(handoff.time, "sleep", lambda _: None)
    monkeypatch.setattr(handoff.time, "monotonic", lambda: float(next(clock)))
    running = (200, {"state": {"type": "RUNNING"}})
    client = _server(
        {
            "/api/task_runs/r1": [running, running, running, (200, {"state": {"type": "COMPLETED"}})],
            "/api/task_workers/filter": [(200, []), (200, [{"task_keys": ["k"]}])],
        }
    )
    assert handoff._wait(client, "r1", "http://prefect/api", "k")["type"] == "COMPLETED"
    client = _server({"/api/task_runs/r1": [running], "/api/task_workers/filter": [(200, [])]})
    with pytest.raises(handoff.WorkerGone, match="went away before the run ended"):
        handoff._wait(client, "r1", "http://prefect/api", "k")


def test_a_run_the_worker_never_starts_is_withdrawn(monkeypatch):
    clock = iter(range(0, 100_000, 7))
    monkeypatch.setattr(handoff.time, "sleep", lambda _: None)
    monkeypatch.setattr(handoff.time, "monotonic", lambda: float(next(clock)))
    client = _server(
        {
            "/api/task_runs/r1": [(200, {"state": {"type": "SCHEDULED"}})],
            "/api/task_workers/filter": [(200, [{"task_keys": ["k"]}])],
        }
    )
    with pytest.raises(handoff.NotStarted, match="did not start the run within 120 s"):
        handoff._wait(client, "r1", "http://prefect/api", "k")
    deleted = _server({"/api/task_runs/r1": [(404, {})]})
    with pytest.raises(handoff.WorkerGone, match="could not start the run"):
        handoff._wait(deleted, "r1", "http://prefect/api", "k")
