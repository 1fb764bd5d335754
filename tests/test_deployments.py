"""`orderly serve` against the session's real Prefect server: deployments, schedules, artifacts, one writer at a
time."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import time
from datetime import datetime, timedelta

import pytest
from conftest import ORDERLY, ROOT, pause_schedule, run_cli, stop

from orderly.store.schema import RUN_COUNTERS

SEED = {"orders": 15, "PROCESSED": 6, "FAILED": 9}
DEPLOYMENTS = ("pipeline/pipeline", "process-all/process-all", "reset-state/reset-state", "reconcile/reconcile")


def _client(api_url: str):
    """An async Prefect client on the test server (settings are read when the client is made)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Scoped:
        async def __aenter__(self):
            self._settings = temporary_settings(updates={PREFECT_API_URL: api_url})
            self._settings.__enter__()
            self._client = get_client()
            return await self._client.__aenter__()

        async def __aexit__(self, *exc):
            try:
                return await self._client.__aexit__(*exc)
            finally:
                self._settings.__exit__(*exc)

    return Scoped()


async def _wait_final(client, flow_run_ids, timeout: float = 90):
    deadline = time.monotonic() + timeout
    runs = {}
    while time.monotonic() < deadline:
        runs = {i: await client.read_flow_run(i) for i in flow_run_ids}
        if all(r.state is not None and r.state.is_final() for r in runs.values()):
            return runs
        await asyncio.sleep(0.5)
    raise TimeoutError(f"flow runs not final after {timeout} s: {[(r.name, r.state_name) for r in runs.values()]}")


async def _trigger(api_url: str, *names_and_params) -> dict:
    """Create flow runs from deployments at once, then wait until every one is final."""
    async with _client(api_url) as client:
        ids = []
        for name, params in names_and_params:
            deployment = await client.read_deployment_by_name(name)
            ids.append((await client.create_flow_run_from_deployment(deployment.id, parameters=params)).id)
        runs = await _wait_final(client, ids)
        return [runs[i] for i in ids]


@pytest.fixture(scope="module")
def served(prefect_server, tmp_path_factory):
    """`orderly serve` on a fresh DuckDB file (synced once, so stock exists), registered with the session server."""
    tmp = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(
        ORDERLY_DB=str(tmp / "orderly.duckdb"),
        ORDERLY_SCHEDULE_SECONDS="300",
        PREFECT_API_URL=prefect_server["api_url"],
        PREFECT_HOME=prefect_server["home"],
        PREFECT_RUNNER_POLL_FREQUENCY="1",  # the runner checks for triggered runs every second, not every 10
    )
    run_cli(["sync"], env)
    with open(tmp / "serve.log", "w") as log:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            [ORDERLY, "serve"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    async def registered():
        async with _client(prefect_server["api_url"]) as client:
            from prefect.exceptions import ObjectNotFound

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"orderly serve exited {process.returncode}: {(tmp / 'serve.log').read_text()}")
                if "serving pipeline" not in (tmp / "serve.log").read_text():  # registered, linked, alerts made
                    await asyncio.sleep(0.5)
                    continue
                try:
                    return {name: await client.read_deployment_by_name(name) for name in DEPLOYMENTS}
                except ObjectNotFound:
                    await asyncio.sleep(0.5)
            raise TimeoutError("the deployments were not registered within 60 s")

    try:
        deployments = asyncio.run(registered())  # as served: the schedule's test reads these
        # The schedule itself is not under test after that: its first run is due at once, and a scheduled run
        # between a test's runs would decide the orders first (it did, on a busy machine).
        pause_schedule(prefect_server["api_url"], deployments["pipeline/pipeline"].id)
        time.sleep(1)  # serve registers, then starts polling for runs
        yield {"env": env, "api_url": prefect_server["api_url"], "deployments": deployments, "log": tmp / "serve.log"}
    finally:
        stop(process)


def test_serve_without_a_server_fails_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERLY_", "PREFECT_API"))}
    env["ORDERLY_DB"] = str(tmp_path / "orderly.duckdb")
    result = run_cli(["serve"], env, timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a Prefect server" in lines[0] and "PREFECT_API_URL" in lines[0], result.stderr


def test_three_deployments_pipeline_scheduled_every_300_s_others_on_demand(served):
    deployments = served["deployments"]
    pipeline = deployments["pipeline/pipeline"]
    assert [s.schedule.interval for s in pipeline.schedules] == [timedelta(seconds=300)]
    assert all(s.active for s in pipeline.schedules)
    reconcile = deployments["reconcile/reconcile"]  # daily at a fixed hour, never at once when serve starts
    assert [s.schedule.cron for s in reconcile.schedules] == ["30 3 * * *"]
    assert (
        reconcile.global_concurrency_limit is not None and reconcile.global_concurrency_limit.name == "orderly-writes"
    )
    for name in ("process-all/process-all", "reset-state/reset-state"):
        assert deployments[name].schedules == []
        assert "order_ids" in deployments[name].parameter_openapi_schema["properties"]
    process = deployments["process-all/process-all"].parameter_openapi_schema["properties"]
    assert process["dry_run"]["default"] is False
    reset = json.dumps(deployments["reset-state/reset-state"].parameter_openapi_schema)
    for choice in ("PROCESSED", "FAILED", "UNKNOWN_INVENTORY", "INSUFFICIENT_STOCK"):
        assert f'"{choice}"' in reset  # the form offers the statuses and reasons to choose from
    # One limit for all three: the server starts one of their runs at a time.
    for deployment in deployments.values():
        assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1
        assert deployment.global_concurrency_limit.name == "orderly-writes"

    async def write_limit():
        async with _client(served["api_url"]) as client:
            return await client.read_global_concurrency_limit_by_name("orderly-writes")

    assert asyncio.run(write_limit()).limit == 1


def test_serve_creates_the_two_alert_automations_for_its_schedule(served):
    from flows.alerts import FAILED, MISSING, STALLED

    async def automations():
        async with _client(served["api_url"]) as client:
            return {name: await client.read_automations_by_name(name) for name in (STALLED, FAILED, MISSING)}

    found = asyncio.run(automations())
    assert {name: len(a) for name, a in found.items()} == {STALLED: 1, FAILED: 1, MISSING: 1}
    assert found[MISSING][0].trigger.expect == {"orderly.reconcile.missing"}
    assert found[STALLED][0].trigger.within == timedelta(seconds=3 * 300)  # ORDERLY_SCHEDULE_SECONDS=300
    assert found[FAILED][0].trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}


def test_process_all_run_publishes_the_orders_status_table(served):
    [run] = asyncio.run(_trigger(served["api_url"], ("process-all/process-all", {})))
    assert run.state.is_completed(), (run.state, served["log"].read_text()[-3000:])
    assert run.name == "process all"

    async def artifacts():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        async with _client(served["api_url"]) as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
            return {a.key: a for a in found}

    found = asyncio.run(artifacts())
    assert {"orders-status", "orders-run-summary"} <= set(found)
    # They name the run and who started it: this one was asked for through the API, as the UI's button does.
    assert found["orders-status"].description.startswith(
        "Orders after `process all` (process-all, started by the UI or API): "
    ), found["orders-status"].description
    assert (
        found["orders-run-summary"].description
        == "Summary of `process all` (process-all, started by the UI or API): completed"
    )
    table = found["orders-status"].data
    table = json.loads(table) if isinstance(table, str) else table
    status = json.loads(run_cli(["status", "--json"], served["env"]).stdout)
    assert len(table) == SEED["orders"]
    assert table == [
        {
            "Order ID": o["order_id"],
            "Status": o["status"],
            "Items": o["items"],
            "Total Qty": o["total_qty"],
            "Reason": o["reason"] or "",
        }
        for o in status
    ]
    assert sum(row["Status"] == "PROCESSED" for row in table) == SEED["PROCESSED"]
    assert sum(row["Status"] == "FAILED" for row in table) == SEED["FAILED"]
    summary = found["orders-run-summary"].data
    for measure in (*RUN_COUNTERS, "stock snapshot age", "duration"):
        assert f"| {measure} |" in summary
    assert "| processed | 6 |" in summary and "| failed | 9 |" in summary

    runs = json.loads(run_cli(["runs", "--json"], served["env"]).stdout)
    mine = [r for r in runs if r["run_id"] == str(run.id)]
    assert mine and mine[0]["flow"] == "process-all" and mine[0]["state"] == "COMPLETED"
    assert mine[0]["processed"] == 6 and mine[0]["failed"] == 9 and mine[0]["duration_s"] is not None


def test_runs_triggered_together_never_overlap(served):
    runs = asyncio.run(
        _trigger(
            served["api_url"],
            ("reset-state/reset-state", {}),
            ("process-all/process-all", {"order_ids": [6, 8]}),
            ("pipeline/pipeline", {}),
        )
    )
    assert all(r.state.is_completed() for r in runs), [(r.name, r.state_name) for r in runs]
    assert [r.name for r in runs] == ["reset all", "process orders 6,8", "pipeline: sync and process"]
    # As Prefect saw them: one flow run at a time (the others waited for the shared slot before starting).
    prefect_spans = sorted((r.start_time, r.end_time, r.name) for r in runs)
    for (_, end, first), (start, _, second) in itertools.pairwise(prefect_spans):
        assert end <= start, f"{first} (ended {end}) overlapped {second} (started {start})"
    recorded = {r["run_id"]: r for r in json.loads(run_cli(["runs", "--json"], served["env"]).stdout)}
    spans = sorted(
        (
            datetime.fromisoformat(recorded[str(r.id)]["started_at"]),
            datetime.fromisoformat(recorded[str(r.id)]["ended_at"]),
            recorded[str(r.id)]["flow"],
        )
        for r in runs
    )
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        assert end <= start, f"{first} (ended {end}) overlapped {second} (started {start})"


def _artifacts(api_url: str, flow_run_id) -> dict:
    async def read():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        async with _client(api_url) as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return {a.key: a for a in found}

    return asyncio.run(read())


def test_reset_by_reason_then_a_dry_run_deployment_previews_without_writing(served):
    from pathlib import Path

    # Start from the seed's decisions: the runs of the test before may have run in any order (the shared slot
    # says one at a time, not which first), so its last run may have been the reset, or the process of 6 and 8.
    for name in ("reset-state/reset-state", "process-all/process-all"):
        [run] = asyncio.run(_trigger(served["api_url"], (name, {})))
        assert run.state.is_completed(), (run.state, served["log"].read_text()[-3000:])
    [reset] = asyncio.run(
        _trigger(served["api_url"], ("reset-state/reset-state", {"status": "FAILED", "reason": "INSUFFICIENT_STOCK"}))
    )
    assert reset.state.is_completed(), (reset.state, served["log"].read_text()[-3000:])
    assert reset.name == "reset all FAILED INSUFFICIENT_STOCK"
    status = json.loads(run_cli(["status", "--json"], served["env"]).stdout)
    new = {o["order_id"] for o in status if o["status"] == "NEW"}
    assert len(new) == 6 and all(o["reason"] != "INSUFFICIENT_STOCK" for o in status)

    db = Path(served["env"]["ORDERLY_DB"])
    before = db.read_bytes()
    [dry] = asyncio.run(_trigger(served["api_url"], ("process-all/process-all", {"dry_run": True})))
    assert dry.state.is_completed(), (dry.state, served["log"].read_text()[-3000:])
    assert dry.name == "process all (dry run)"
    assert db.read_bytes() == before  # the preview wrote nothing
    preview = _artifacts(served["api_url"], dry.id)["orders-process-preview"]
    table = json.loads(preview.data) if isinstance(preview.data, str) else preview.data
    assert {row["Order ID"] for row in table} == new
    assert all(
        row["Would be"] == "FAILED" and row["Reason"] == "INSUFFICIENT_STOCK" and "short" in row["Why"] for row in table
    )
    assert "would process 0, fail 6" in preview.description and "nothing was written" in preview.description


def test_prefect_yaml_describes_the_same_deployments_for_a_process_work_pool():
    import yaml

    from flows import orders

    text = (ROOT / "prefect.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["build"] is None and config["push"] is None
    settings = "\n".join(line.split("#")[0] for line in text.splitlines()).lower()
    assert not any(word in settings for word in ("image", "registry", "docker", "http"))
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {"pipeline", "process-all", "reset-state", "reconcile"}
    flows = {
        "pipeline": orders.pipeline,
        "process-all": orders.process_all,
        "reset-state": orders.reset_state,
        "reconcile": orders.reconcile,
    }
    for name, deployment in deployments.items():
        path, function = deployment["entrypoint"].split(":")
        assert (ROOT / path).exists() and getattr(orders, function) is flows[name] and flows[name].name == name
        assert deployment["work_pool"]["name"] == "orderly" and deployment["concurrency_limit"] == 1
    assert [s["interval"] for s in deployments["pipeline"]["schedules"]] == [300]
    assert deployments["process-all"]["schedules"] == [] and deployments["reset-state"]["schedules"] == []
    assert [s["cron"] for s in deployments["reconcile"]["schedules"]] == ["30 3 * * *"]
