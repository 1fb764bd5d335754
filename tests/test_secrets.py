"""ORDERLY_API_TOKEN is sent as a Bearer header and nowhere else: not in the DuckDB file, not on stdout or
stderr, not in the Prefect server's database (logs, artifacts, parameters) or anything under its home."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import run_cli

SENTINEL = "sntl-7f3c9a1e5b2d4c6e8a0f"


def files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                pass
    return found


def test_the_token_is_sent_as_bearer_and_written_nowhere(cli_env, sandbox_server, prefect_server, tmp_path):
    right = sandbox_server("--token", SENTINEL)
    wrong = sandbox_server("--token", "someone-elses-token")
    env = {**cli_env, "ORDERLY_API_TOKEN": SENTINEL, "ORDERLY_HTTP_RETRIES": "1"}
    outputs = []

    ok = run_cli(["run"], {**env, "ORDERLY_ORDERS_URL": right, "ORDERLY_WAREHOUSE_URL": right})
    outputs += [ok.stdout, ok.stderr]
    assert "processed" in ok.stdout  # the sandbox let us in: the Bearer header was sent

    refused = run_cli(["run"], {**env, "ORDERLY_ORDERS_URL": wrong, "ORDERLY_WAREHOUSE_URL": wrong}, check=False)
    outputs += [refused.stdout, refused.stderr]
    assert refused.returncode != 0
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "401" in line and "ORDERLY_API_TOKEN" in line and wrong in line, line

    for args in (["status"], ["stock", "--json"], ["runs", "--json"], ["rejects", "--json"], ["history", "2"]):
        result = run_cli(args, env)
        outputs += [result.stdout, result.stderr]

    assert not any(SENTINEL in text for text in outputs)
    db = Path(env["ORDERLY_DB"])
    assert files_holding(db.parent, SENTINEL.encode()) == []  # the .duckdb file and its .wal

    # Prefect's home: its SQLite database (flow and task runs, parameters, logs, artifacts), its WAL, the
    # server log and any local result storage. Logs reach the server in batches: give them a moment.
    home = Path(prefect_server["home"])
    deadline = time.monotonic() + 10
    while not files_holding(home, wrong.encode()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert files_holding(home, wrong.encode()), "the refused run's log line never reached Prefect's database"
    assert files_holding(home, SENTINEL.encode()) == []
