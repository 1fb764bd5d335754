"""The work-pool path, for real: the session's `prefect server`, the `orderly` process pool, `prefect deploy --all`
from prefect.yaml, two `prefect worker` processes, and Process All and Reset State triggered together several times.

Each flow run holds the shared write slot from the moment a worker takes it, so its start-up (a new Python process
importing Prefect, then the flow: 5 to 25 s depending on the machine's load) adds up run after run."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
from conftest import ROOT, SEED_TABLE, run_cli, stop

PREFECT = str(Path(sys.executable).parent / "prefect")
ROUNDS = 2  # process-all and reset-state, triggered together this many times each (4 runs: under 3 minutes)


def _prefect(args: list[str], env: dict, timeout: float = 120) -> None:
    result = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"prefect {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )


def _wait_final(api: str, run_ids: list[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = [httpx.get(f"{api}/flow_runs/{i}", timeout=10).json() for i in run_ids]
        if all(r["state"] and r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for r in runs):
            return runs
        time.sleep(1)
    raise TimeoutError(f"not final after {timeout} s: {[(r['name'], r['state']['name']) for r in runs]}")


def test_two_workers_run_process_all_and_reset_state_one_at_a_time(prefect_server, tmp_path):
    api = prefect_server["api_url"]
    workers: list[subprocess.Popen] = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERLY_")}
        env.update(
            PREFECT_API_URL=api,
            PREFECT_HOME=prefect_server["home"],
            ORDERLY_DB=str(tmp_path / "orderly.duckdb"),
            PREFECT_WORKER_QUERY_SECONDS="2",
            PREFECT_WORKER_PREFETCH_SECONDS="1",
        )
        _prefect(["work-pool", "create", "orderly", "--type", "process", "--overwrite"], env)
        _prefect(["--no-prompt", "deploy", "--all"], env, timeout=180)
        _prefect_setup(env)
        # The session's server also schedules the pipeline (every 300 s): a run of it here would decide the
        # table after the runs under test. Paused, the server schedules no run of it.
        pipeline = httpx.get(f"{api}/deployments/name/pipeline/pipeline", timeout=10).raise_for_status().json()
        httpx.patch(f"{api}/deployments/{pipeline['id']}", json={"paused": True}, timeout=10).raise_for_status()
        run_cli(["run"], env)  # orders and stock exist, decided once: the seed table
        assert _table(env) == SEED_TABLE

        for name in ("worker-1", "worker-2"):
            with open(tmp_path / f"{name}.log", "w") as log:  # the worker has its own copy of the descriptor
                workers.append(
                    subprocess.Popen(
                        [PREFECT, "worker", "start", "--pool", "orderly", "--name", name],
                        env=env,
                        cwd=tmp_path,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

        deployments = {
            name: httpx.get(f"{api}/deployments/name/{name}/{name}", timeout=10).json()["id"]
            for name in ("process-all", "reset-state")
        }
        run_ids = [
            httpx.post(f"{api}/deployments/{deployments[name]}/create_flow_run", json={}, timeout=10)
            .raise_for_status()
            .json()["id"]
            for _ in range(ROUNDS)
            for name in ("process-all", "reset-state")
        ]
        runs = _wait_final(api, run_ids, timeout=300)
        logs = "\n".join((tmp_path / f"worker-{n}.log").read_text()[-2000:] for n in (1, 2))
        assert all(r["state"]["type"] == "COMPLETED" for r in runs), ([(r["name"], r["state"]) for r in runs], logs)

        spans = sorted(
            (datetime.fromisoformat(r["start_time"]), datetime.fromisoformat(r["end_time"]), r["name"]) for r in runs
        )
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            assert end <= start, f"{first} (ended {end}) overlapped {second} (started {start})"

        # The worker passed its environment to each flow run: every run wrote to this test's DuckDB file.
        recorded = {r["run_id"]: r for r in json.loads(run_cli(["runs", "--json"], env).stdout)}
        assert {r["id"] for r in runs} <= set(recorded)
        assert all(recorded[r["id"]]["state"] == "COMPLETED" for r in runs)

        # One after the other: the run that finished last decides the table.
        last = max(runs, key=lambda r: r["end_time"])
        expected = (
            SEED_TABLE
            if last["name"] == "process all"
            else {order: (items, qty, "NEW") for order, (items, qty, _) in SEED_TABLE.items()}
        )
        assert _table(env) == expected, last["name"]
    finally:
        # A worker starts each flow run in a session of its own: gather them before the worker goes.
        strays = [pid for worker in workers for pid in _descendants(worker.pid)]
        for worker in workers:
            stop(worker)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit():
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _prefect_setup(env: dict) -> None:
    """The worker path's one step after `prefect deploy` (README): the shared write slot and the alerts."""
    result = subprocess.run(
        [sys.executable, "-m", "flows.deployments"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _table(env: dict) -> dict:
    rows = json.loads(run_cli(["status", "--json"], env).stdout)
    return {o["order_id"]: (o["items"], o["total_qty"], o["status"]) for o in rows}
