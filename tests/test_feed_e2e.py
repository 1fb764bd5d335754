"""The decision feed end to end, as the README shows it on the seed data: `orderly sandbox` receives the feed at
/webhook (verifying signatures), `orderly run` decides the seed and delivers its 15 events through the pipeline's
`deliver` task, a reset and `orderly deliver` bring the 16th, and `orderly runs` says how far delivery has got."""

from __future__ import annotations

import base64
import os
import subprocess

import httpx
from conftest import ORDERLY, free_port, run_cli, stop, wait_for

SECRET = "whsec_" + base64.b64encode(b"orderly-e2e-feed-secret-0123456789").decode()


def test_the_seed_s_decisions_reach_the_sandbox_s_receiver(prefect_server, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
    env.update(
        ORDERLY_DB=str(tmp_path / "orderly.duckdb"),
        PREFECT_API_URL=prefect_server["api_url"],
        PREFECT_HOME=prefect_server["home"],
        ORDERLY_WEBHOOK_URL=f"{url}/webhook",
        ORDERLY_WEBHOOK_SECRET=SECRET,
    )
    sandbox = subprocess.Popen(
        [ORDERLY, "sandbox", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"{url}/health", sandbox, timeout=60)
        ran = run_cli(["run"], env)
        assert "processed 6" in ran.stdout and "delivered 15" in ran.stdout, ran.stdout
        received = httpx.get(f"{url}/webhook/received").json()
        assert [e["id"] for e in received["events"]] == list(range(1, 16))
        assert received["bad_signatures"] == 0
        run_cli(["reset", "--order", "6", "--yes"], env)
        delivered = run_cli(["deliver"], env)
        assert "delivered 1" in delivered.stdout, delivered.stdout
        events = httpx.get(f"{url}/webhook/received", params={"after": 15}).json()["events"]
        assert [(e["id"], e["order_id"], e["type"]) for e in events] == [(16, 6, "order.reset")]
        runs = run_cli(["runs"], {**env, "COLUMNS": "200"}).stdout
        assert "decision feed: delivered up to event 16 of 16" in runs
        assert SECRET not in ran.stdout + ran.stderr + delivered.stdout + delivered.stderr + runs
    finally:
        stop(sandbox)
