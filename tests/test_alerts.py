"""Alerts against the session's real Prefect server: the two automations exist once each however often they are
ensured (test_deployments checks that `orderly serve` creates them), they fire, and their notification reaches a
webhook the operator configured (a loopback HTTP server here, standing in for Slack); every run emits its own
orderly.run.* event with its counts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from urllib.parse import unquote_plus

import httpx
import pytest
from conftest import StubServer, run_cli

SCHEDULE_SECONDS = 10  # the smallest ORDERLY_SCHEDULE_SECONDS: the stalled-pipeline alarm fires after 30 s


def _settings(api_url: str):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: api_url})


def _ours(api: str, names: tuple[str, ...] | None = None) -> dict[str, list[dict]]:
    from flows.alerts import FAILED, LAGGING, MISSING, REFUSED, STALLED

    found = httpx.post(f"{api}/automations/filter", json={}, timeout=10).raise_for_status().json()
    return {
        name: [a for a in found if a["name"] == name] for name in names or (STALLED, FAILED, MISSING, REFUSED, LAGGING)
    }


def _events(api: str, since: datetime, prefix: str, resource_id: str | None = None) -> list[dict]:
    body = {"filter": {"occurred": {"since": since.isoformat()}, "event": {"prefix": [prefix]}}, "limit": 50}
    if resource_id:
        body["filter"]["resource"] = {"id": [resource_id]}
    return httpx.post(f"{api}/events/filter", json=body, timeout=10).raise_for_status().json()["events"]


def _poll(what: str, probe, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not seen within {timeout} s")


@pytest.fixture(scope="module")
def alerts(prefect_server):
    """A notification block `orderly-alerts` posting to a loopback webhook, then the automations (10 s schedule).
    Afterwards the automations and the block are removed, so later tests' failures notify nobody."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows.alerts import NOTIFY_BLOCK, ensure_automations

    api = prefect_server["api_url"]
    webhook = StubServer(lambda path, params, headers: (200, {}, b"ok"))
    with _settings(api):
        CustomWebhookNotificationBlock(
            name="orderly",
            url=f"{webhook.url}/alert",
            method="GET",
            params={"subject": "{{subject}}", "body": "{{body}}"},
        ).save(NOTIFY_BLOCK)
        created = datetime.now(UTC)
        ids = ensure_automations(SCHEDULE_SECONDS)
    try:
        yield {"api": api, "ids": ids, "created": created, "webhook": webhook}
    finally:
        webhook.close()
        for automations in _ours(api).values():
            for automation in automations:
                httpx.delete(f"{api}/automations/{automation['id']}", timeout=10)
        with _settings(api):
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                block = client.read_block_document_by_name(NOTIFY_BLOCK, block_type_slug="custom-webhook")
                client.delete_block_document(block.id)


def _alert_calls(webhook: StubServer, words: str) -> list[dict]:
    return [r for r in webhook.requests if r["path"] == "/alert" and words in unquote_plus(r["params"].get("body", ""))]


def test_ensure_automations_twice_leaves_exactly_three_and_changes_nothing(alerts):
    from flows.alerts import FAILED, LAGGING, MISSING, REFUSED, STALLED, ensure_automations

    before = _ours(alerts["api"])
    with _settings(alerts["api"]):
        assert ensure_automations(SCHEDULE_SECONDS) == alerts["ids"]
    after = _ours(alerts["api"])
    assert {name: len(found) for name, found in after.items()} == {
        STALLED: 1,
        FAILED: 1,
        MISSING: 1,
        REFUSED: 1,
        LAGGING: 1,
    }
    # Not even updated: an update would restart the stalled-pipeline window.
    assert [(a["id"], a["updated"]) for found in after.values() for a in found] == [
        (a["id"], a["updated"]) for found in before.values() for a in found
    ]

    stalled, failed = after[STALLED][0]["trigger"], after[FAILED][0]["trigger"]
    assert stalled["posture"] == "Proactive" and stalled["expect"] == ["prefect.flow-run.Completed"]
    assert stalled["within"] == 3 * SCHEDULE_SECONDS and stalled["threshold"] == 1
    assert stalled["match_related"]["prefect.resource.name"] == "pipeline"
    assert failed["posture"] == "Reactive"
    assert set(failed["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert set(failed["match_related"]["prefect.resource.name"]) == {
        "pipeline",
        "sync",
        "process-all",
        "reset-state",
        "reconcile",
    }
    for automation in (after[STALLED][0], after[FAILED][0]):
        assert automation["enabled"]
        assert [a["type"] for a in automation["actions"]] == ["do-nothing", "send-notification"]


def test_a_failed_run_fires_the_failure_alarm_and_every_run_emits_its_event(alerts, cli_env):
    from flows.alerts import FAILED

    api, since = alerts["api"], datetime.now(UTC)
    failing = run_cli(["process"], cli_env, check=False)  # a fresh database has no stock snapshot: refused
    assert failing.returncode != 0, failing.stdout + failing.stderr
    run_cli(["sync"], cli_env)
    runs = {r["flow"]: r for r in json.loads(run_cli(["runs", "--json"], cli_env).stdout)}
    failed_id, synced_id = runs["process-all"]["run_id"], runs["sync"]["run_id"]
    assert runs["process-all"]["state"] == "FAILED" and runs["sync"]["state"] == "COMPLETED"

    # Prefect fired the automation for that very flow run, and ran its actions.
    automation = f"prefect.automation.{alerts['ids'][FAILED]}"
    fired = _poll(
        "the failure automation firing",
        lambda: [
            e
            for e in _events(api, since, "prefect.automation.triggered", automation)
            if e["payload"]["triggering_event"]["resource"]["prefect.resource.id"] == f"prefect.flow-run.{failed_id}"
        ],
    )
    assert fired[0]["resource"]["prefect.resource.name"] == FAILED
    _poll(
        "its actions executed",
        lambda: [
            e
            for e in _events(api, since, "prefect.automation.action.executed", automation)
            if e["payload"].get("action_type") == "send-notification"
        ],
    )
    calls = _poll("the webhook notified", lambda: _alert_calls(alerts["webhook"], "ended Failed"))
    assert "process all" in unquote_plus(calls[0]["params"]["body"])
    # The sync that completed fires nothing.
    assert not [
        e
        for e in _events(api, since, "prefect.automation.triggered", automation)
        if e["payload"]["triggering_event"]["resource"]["prefect.resource.id"] == f"prefect.flow-run.{synced_id}"
    ]

    failed = _poll("orderly.run.failed", lambda: _events(api, since, "orderly.run.failed", f"orderly.run.{failed_id}"))
    assert failed[0]["payload"]["state"] == "FAILED" and failed[0]["payload"]["flow"] == "process-all"
    assert "stock" in failed[0]["payload"]["message"]
    related = {r["prefect.resource.id"] for r in failed[0]["related"]}
    assert f"prefect.flow-run.{failed_id}" in related
    # Its report says which run it was and that it came from the command line.
    artifacts = (
        httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [synced_id]}}}, timeout=10)
        .raise_for_status()
        .json()
    )
    assert {a["key"]: a["description"] for a in artifacts}[
        "orders-run-summary"
    ] == "Summary of `sync: stock and new orders` (sync, started by the command line): completed"

    done = _poll(
        "orderly.run.completed", lambda: _events(api, since, "orderly.run.completed", f"orderly.run.{synced_id}")
    )
    assert done[0]["payload"]["state"] == "COMPLETED"
    counts = done[0]["payload"]["counts"]
    assert counts and all(isinstance(v, int) for v in counts.values()) and max(counts.values()) > 0


def test_the_stalled_pipeline_alarm_fires_after_three_intervals_without_a_completed_pipeline(alerts):
    from flows.alerts import STALLED

    api, automation = alerts["api"], f"prefect.automation.{alerts['ids'][STALLED]}"
    fired = _poll(
        "the stalled-pipeline automation firing",
        lambda: _events(api, alerts["created"], "prefect.automation.triggered", automation),
        timeout=90,
    )
    waited = (datetime.fromisoformat(fired[0]["occurred"]) - alerts["created"]).total_seconds()
    assert waited >= 3 * SCHEDULE_SECONDS - 1, waited  # not before the window has passed
    _poll("the webhook notified", lambda: _alert_calls(alerts["webhook"], "No Orderly pipeline run has completed"))


def test_a_reconcile_that_finds_a_missing_order_alerts_and_reports(alerts, cli_env):
    """An order lost by the incremental path (here: deleted from the store behind Orderly's back) is found by
    `orderly reconcile`, stored again, recorded in the run and the orders-reconciliation artifact, and the
    automation "Orderly: reconcile found missing orders" fires and notifies."""
    import duckdb

    from flows.alerts import MISSING

    api, since = alerts["api"], datetime.now(UTC)
    run_cli(["sync"], cli_env)
    con = duckdb.connect(cli_env["ORDERLY_DB"])
    con.execute("DELETE FROM order_lines WHERE order_id = 7")
    con.execute("DELETE FROM orders WHERE order_id = 7")
    con.close()
    result = run_cli(["reconcile"], cli_env)
    assert "reconcile 15 remote, 14 stored, 1 missing, 1 added" in result.stdout, result.stdout
    assert 7 in {row["order_id"] for row in json.loads(run_cli(["status", "--json"], cli_env).stdout)}
    run = json.loads(run_cli(["runs", "--json"], cli_env).stdout)[0]
    assert run["flow"] == "reconcile" and run["state"] == "COMPLETED"
    assert (run["reconcile_missing"], run["reconcile_added"], run["reconcile_changed"]) == (1, 1, 0)

    artifacts = (
        httpx.post(
            f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["run_id"]]}}}, timeout=10
        )
        .raise_for_status()
        .json()
    )
    report = {a["key"]: a for a in artifacts}["orders-reconciliation"]
    assert "| missing locally | 1 |" in report["data"] and "| order ids at the remote | 15 |" in report["data"]

    automation = f"prefect.automation.{alerts['ids'][MISSING]}"
    fired = _poll(
        "the missing-orders automation firing",
        lambda: [
            e
            for e in _events(api, since, "prefect.automation.triggered", automation)
            if e["payload"]["triggering_event"]["resource"]["prefect.resource.id"] == f"orderly.run.{run['run_id']}"
        ],
    )
    assert fired[0]["resource"]["prefect.resource.name"] == MISSING
    _poll("the webhook notified", lambda: _alert_calls(alerts["webhook"], "missing locally"))


def test_a_refusing_receiver_and_a_backlog_past_its_bound_each_alert(alerts, cli_env):
    """A 410 fails `orderly deliver` with one line (exit 5) and fires "webhook refused decisions"; its backlog,
    older than ORDERLY_WEBHOOK_MAX_LAG=1, fires "decisions not delivered"."""
    import base64

    from cli_store import build_store
    from receiver import ScriptedReceiver

    secret = "whsec_" + base64.b64encode(b"orderly-alerts-feed-secret-0123456789").decode()
    build_store(cli_env["ORDERLY_DB"])
    since = datetime.now(UTC)
    time.sleep(1.1)  # the oldest undelivered decision is now older than the bound below
    with ScriptedReceiver(secret, default="status:410") as receiver:
        env = {
            **cli_env,
            "ORDERLY_WEBHOOK_URL": receiver.url,
            "ORDERLY_WEBHOOK_SECRET": secret,
            "ORDERLY_WEBHOOK_MAX_LAG": "1",
        }
        refused = run_cli(["deliver"], env, check=False)
    assert refused.returncode == 5 and "answered 410" in refused.stderr and secret not in refused.stderr
    _poll("the refusal notified", lambda: _alert_calls(alerts["webhook"], "answered 410"))
    lagging = _poll("the lag event", lambda: _events(alerts["api"], since, "orderly.webhook.lagging"))
    assert lagging[0]["payload"]["lag_s"] >= 1 and secret not in json.dumps(lagging)
    _poll("the lag notified", lambda: _alert_calls(alerts["webhook"], "oldest undelivered decision has waited"))
