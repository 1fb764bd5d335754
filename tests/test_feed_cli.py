"""The decision feed where operators and programs meet it: `orderly events` (the webhook's body, CSV, a table),
the feed's line in `orderly runs`, `orderly deliver` without a receiver, `orderly doctor`'s receiver check,
`GET /api/events` and the feed in `GET /api/runs`, and the webhook settings' refusals. In-process, fast."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json

import httpx
import pytest
from cli_store import build_store
from receiver import ScriptedReceiver
from test_cli_queries import invoke, one_line

from orderly.feed.body import events_body
from orderly.settings import Settings
from orderly.store import open_store

SECRET = "whsec_" + base64.b64encode(b"orderly-tests-feed-secret-0123456789").decode()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("feed-cli") / "orderly.duckdb"
    build_store(path)
    return {"ORDERLY_DB": str(path)}


def test_events_json_is_exactly_the_webhook_body(seeded, monkeypatch, capsys):
    code, out, err = invoke(["events", "--after", "3", "--limit", "5", "--json"], seeded, monkeypatch, capsys)
    with open_store(seeded["ORDERLY_DB"], read_only=True) as con:
        page, _ = events_body(con, 3, 5)
    assert (code, err) == (0, "") and out.encode() == page + b"\n"
    assert [e["id"] for e in json.loads(out)["events"]] == [4, 5, 6, 7, 8]


def test_events_csv_and_table(seeded, monkeypatch, capsys):
    code, out, _ = invoke(["events", "--csv"], seeded, monkeypatch, capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [int(r["id"]) for r in rows] == list(range(1, 16))
    assert json.loads(rows[0]["lines"])[0]["quantity"] >= 1  # nested fields as their JSON text
    code, out, err = invoke(["events", "--limit", "2"], seeded, monkeypatch, capsys)
    assert code == 0 and "NEW → " in out and "orderly events --after 2" in err
    code, out, _ = invoke(["events", "--after", "15"], seeded, monkeypatch, capsys)
    assert code == 0 and "no events after 15" in out


def test_events_without_a_store_is_empty_not_an_error(tmp_path, monkeypatch, capsys):
    code, out, err = invoke(["events", "--json"], {"ORDERLY_DB": str(tmp_path / "none.duckdb")}, monkeypatch, capsys)
    assert code == 0 and json.loads(out) == {"events": []} and "no database" in err


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"ORDERLY_WEBHOOK_URL": "http://127.0.0.1:9/hook"}, "ORDERLY_WEBHOOK_SECRET is not"),
        ({"ORDERLY_WEBHOOK_SECRET": SECRET}, "ORDERLY_WEBHOOK_URL is not"),
        ({"ORDERLY_WEBHOOK_URL": "http://127.0.0.1:9/hook", "ORDERLY_WEBHOOK_SECRET": "hunter2hunter2"}, "whsec_"),
        ({"ORDERLY_WEBHOOK_URL": "ftp://x/hook", "ORDERLY_WEBHOOK_SECRET": SECRET}, "ORDERLY_WEBHOOK_URL"),
        ({"ORDERLY_WEBHOOK_BATCH": "0"}, "ORDERLY_WEBHOOK_BATCH"),
        ({"ORDERLY_WEBHOOK_MAX_LAG": "nan"}, "ORDERLY_WEBHOOK_MAX_LAG"),
        ({"ORDERLY_WEBHOOK_ULR": "http://x"}, "did you mean ORDERLY_WEBHOOK_URL"),
    ],
)
def test_webhook_settings_are_refused_in_one_line_without_the_secret(seeded, monkeypatch, capsys, env, words):
    code, out, err = invoke(["events"], {**seeded, **env}, monkeypatch, capsys)
    line = one_line(err)
    assert code == 2 and out == "" and words in line
    assert "hunter2" not in line and SECRET not in line


def test_deliver_without_a_receiver_is_usage_and_starts_nothing(seeded, monkeypatch, capsys):
    from orderly.cli import commands

    monkeypatch.setattr(commands, "run_flow", lambda *a, **k: pytest.fail("a flow was started"))
    code, _, err = invoke(["deliver"], seeded, monkeypatch, capsys)
    assert code == 2 and "ORDERLY_WEBHOOK_URL is not set" in one_line(err)


def test_runs_shows_how_far_delivery_has_got(tmp_path, monkeypatch, capsys):
    from orderly.feed.deliver import deliver

    path = tmp_path / "orderly.duckdb"
    build_store(path)
    with ScriptedReceiver(SECRET, ["ok", "status:410"]) as receiver:
        env = {"ORDERLY_DB": str(path), "ORDERLY_WEBHOOK_URL": receiver.url, "ORDERLY_WEBHOOK_SECRET": SECRET}
        settings = Settings.from_env({**env, "ORDERLY_WEBHOOK_BATCH": "4"})
        with pytest.raises(Exception, match="410"):
            deliver(settings, None, budget_s=10)
        code, out, _ = invoke(["runs"], env, monkeypatch, capsys, width=200)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("decision feed:"))
    assert "delivered up to event 4 of 15; 11 wait" in line and "410" in line and SECRET not in out


def test_doctor_checks_the_receiver_with_a_signed_empty_batch(seeded, monkeypatch, capsys):
    with ScriptedReceiver(SECRET) as receiver:
        env = {**seeded, "ORDERLY_WEBHOOK_URL": receiver.url, "ORDERLY_WEBHOOK_SECRET": SECRET}
        code, out, err = invoke(["doctor"], env, monkeypatch, capsys, width=200)
        arrived = receiver.arrivals
    assert "accepts a signed, empty batch" in out + err and SECRET not in out + err
    assert [json.loads(a.body) for a in arrived] == [{"events": []}] and arrived[0].verified
    with ScriptedReceiver("whsec_" + base64.b64encode(b"another-secret-entirely-0123").decode()) as other:
        env = {**seeded, "ORDERLY_WEBHOOK_URL": other.url, "ORDERLY_WEBHOOK_SECRET": SECRET}
        other.reset(["status:401"])
        code, out, err = invoke(["doctor"], env, monkeypatch, capsys, width=200)
    assert code == 1 and "ORDERLY_WEBHOOK_SECRET is not the secret" in out + err


def test_the_page_serves_the_pull_feed_and_the_delivery_state(seeded):
    from orderly.ui.app import create_app

    app = create_app(Settings.from_env(seeded).db_path, settings=Settings.from_env(seeded))

    async def ask() -> tuple[httpx.Response, int, int, dict]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
        ):
            page = await client.get("/api/events", params={"after": 10, "limit": 3})
            zero = (await client.get("/api/events", params={"limit": 0})).status_code
            unknown = (await client.get("/api/events", params={"since": 1})).status_code
            return page, zero, unknown, (await client.get("/api/runs")).json()["feed"]

    page, zero, unknown, feed = asyncio.run(ask())
    with open_store(seeded["ORDERLY_DB"], read_only=True) as con:
        assert page.content == events_body(con, 10, 3)[0]
    assert page.headers["content-type"].startswith("application/json") and (zero, unknown) == (400, 400)
    assert (feed["delivered_to"], feed["newest"], feed["backlog"]) == (0, 15, 15)


def test_serve_gets_a_deliver_deployment_and_two_feed_automations_only_with_a_webhook():
    from flows import alerts, deployments
    from tasks.deliver import WEBHOOK_LAGGING_EVENT, WEBHOOK_REFUSED_EVENT

    without = [d.name for d in deployments.build(300)]
    built = {d.name: d for d in deployments.build(300, deliver_feed=True)}
    assert "deliver" not in without and list(built) == [*without, "deliver"]
    assert built["deliver"].schedules[0].schedule.interval.total_seconds() == 30
    assert built["deliver"].concurrency_limit == 1  # its own: never the shared orderly-writes slot (serve_all)
    by_name = {a.name: a for a in alerts.definitions(300)}
    assert by_name[alerts.REFUSED].trigger.expect == {WEBHOOK_REFUSED_EVENT}
    assert by_name[alerts.LAGGING].trigger.expect == {WEBHOOK_LAGGING_EVENT}
