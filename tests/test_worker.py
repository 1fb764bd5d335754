"""The Orderly worker of `orderly serve`, through a real Prefect server: presses and commands decided in it,
a kill -9 in the middle of a run, two `serve` processes at once, and its Prefect server going away."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import ORDERLY, ROOT, run_cli, start_prefect_server, stop
from localproc import ServeProcess
from test_crash import db_state, remote_env
from uihelp import UiProcess, seed_rows

SEED_COUNTS = {"processed": 6, "failed": 9, "waiting": 0}


def query(db: str, sql: str) -> list[tuple]:
    import duckdb

    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def running_in(db: str, pid: int) -> bool:
    """Whether the store has a RUNNING run of that process (False while the writer keeps readers out)."""
    import duckdb

    try:
        return bool(query(db, f"SELECT 1 FROM runs WHERE state = 'RUNNING' AND pid = {pid}"))
    except duckdb.Error:
        return False


def flow_run(api: str, run_id: str) -> dict:
    return httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).raise_for_status().json()


def press(url: str, button: str, timeout: float = 60) -> dict:
    assert httpx.post(f"{url}/api/{button}", headers={"Origin": url}, timeout=10).status_code == 202
    deadline = time.monotonic() + timeout
    while not (run := httpx.get(f"{url}/api/action", timeout=10).json()["run"])["final"]:
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return run


@pytest.fixture
def seeded_env(cli_env, sandbox_server, tmp_path):
    """The seed synced into a fresh store (the ingest is not what is under test), its pipeline not scheduled."""
    url = sandbox_server()
    env = remote_env(cli_env, url, ORDERLY_SCHEDULE_SECONDS="3600")
    run_cli(["sync"], env)
    return env


def test_a_press_and_commands_are_decided_in_the_worker_and_recorded_as_any_run(seeded_env, tmp_path):
    env, api = seeded_env, seeded_env["PREFECT_API_URL"]
    serve = ServeProcess(env, tmp_path / "serve.log")
    ui = UiProcess(env, tmp_path)
    try:
        run = press(ui.url, "process")
        assert (run["state"], run["mode"], run["counts"]) == ("COMPLETED", "worker", SEED_COUNTS), run
        assert httpx.get(f"{ui.url}/api/orders", timeout=10).json()["orders"] == seed_rows()
        # the press's flow run is an ordinary Prefect flow run, linked from the page, recorded in the store
        prefect_run = flow_run(api, run["run_id"])
        assert prefect_run["state"]["type"] == "COMPLETED" and prefect_run["name"] == "process all"
        assert run["run_url"] == f"{api.removesuffix('/api')}/runs/flow-run/{run['run_id']}"
        reset = run_cli(["reset", "--yes"], env)
        assert reset.stdout.startswith("reset: reset 15"), reset.stdout
        processed = run_cli(["process", "--json"], env)
        assert json.loads(processed.stdout) == SEED_COUNTS
        # every run above ran in the worker's process, each with its row and its artifacts
        rows = query(env["ORDERLY_DB"], "SELECT flow, pid, state FROM runs WHERE flow <> 'sync' ORDER BY started_at")
        pid = serve.process.pid
        assert rows == [
            ("process-all", pid, "COMPLETED"),
            ("reset-state", pid, "COMPLETED"),
            ("process-all", pid, "COMPLETED"),
        ], rows
        artifact = httpx.post(
            f"{api}/artifacts/latest/filter", timeout=10, json={"artifacts": {"key": {"any_": ["orders-run-summary"]}}}
        ).json()
        assert artifact and artifact[0]["flow_run_id"] in {
            r[0] for r in query(env["ORDERLY_DB"], "SELECT run_id FROM runs WHERE flow = 'process-all'")
        }
        # each hand-off's parameters and outcome are gone once read: nothing piles up beside the store
        exchange = Path(env["ORDERLY_DB"] + ".worker")
        assert exchange.is_dir() and [p for p in exchange.rglob("*") if p.is_file()] == []
        doctor = run_cli(["doctor"], env, check=False)
        assert "an `orderly serve` worker serves this store" in doctor.stdout + doctor.stderr, doctor.stdout
        # a failure in the worker is the same one line and exit status as without it
        failed = run_cli(["process", "--order", "99999"], env, check=False)
        assert failed.returncode == 2 and "no such order: 99999" in failed.stderr
    finally:
        ui.stop()
        log = serve.stop()
    assert "Traceback" not in log


def test_the_pipeline_deployments_runs_are_run_in_the_worker(seeded_env, tmp_path):
    """Its schedule or Run in the Prefect UI: a deployment run, claimed and run in `serve`'s own process."""
    env, api = seeded_env, seeded_env["PREFECT_API_URL"]
    serve = ServeProcess(env, tmp_path / "serve.log")
    try:
        pipeline = httpx.get(f"{api}/deployments/name/pipeline/pipeline", timeout=10).json()
        assert pipeline["status"] == "READY"
        for _ in range(10):  # a busy test server answers 503 for a moment
            answer = httpx.post(f"{api}/deployments/{pipeline['id']}/create_flow_run", json={}, timeout=10)
            if answer.status_code != 503:
                break
            time.sleep(1)
        assert answer.status_code == 201, answer.text
        run = answer.json()
        deadline = time.monotonic() + 60
        while (state := flow_run(api, run["id"])["state"]["type"]) not in ("COMPLETED", "FAILED", "CRASHED"):
            assert time.monotonic() < deadline, state
            time.sleep(0.3)
        assert state == "COMPLETED"
        assert query(
            env["ORDERLY_DB"], f"SELECT flow, pid, state, processed, failed FROM runs WHERE run_id = '{run['id']}'"
        ) == [("pipeline", serve.process.pid, "COMPLETED", 6, 9)]
    finally:
        log = serve.stop()
    assert "Traceback" not in log


def test_a_refusal_in_the_worker_is_the_commands_and_a_press_syncs_stale_stock_first(seeded_env, tmp_path):
    """A run refused in the worker ends the command as it would have ended without one: its one line, its exit
    status. The page offers no Sync: Process All from the page refreshes a snapshot too old to decide from."""
    env = {**seeded_env, "ORDERLY_MAX_STOCK_AGE": "1"}
    serve = ServeProcess(env, tmp_path / "serve.log")
    ui = UiProcess(env, tmp_path)
    try:
        time.sleep(1.5)
        refused = run_cli(["process"], env, check=False)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 4 and len(lines) == 1 and "stock" in lines[0], refused.stderr
        assert query(env["ORDERLY_DB"], "SELECT pid, state FROM runs WHERE flow = 'process-all'") == [
            (serve.process.pid, "FAILED")
        ]
        run = press(ui.url, "process")
        assert (run["state"], run["counts"]) == ("COMPLETED", SEED_COUNTS), run
        snapshots = query(env["ORDERLY_DB"], "SELECT count(*) FROM stock_snapshots")[0][0]
        assert snapshots == 2  # the sync of the fixture, and the press's
    finally:
        ui.stop()
        serve.stop()


def test_kill_9_of_the_worker_mid_run_loses_nothing_and_the_next_run_decides_the_rest(
    cli_env, sandbox_server, tmp_path
):
    url = sandbox_server("--orders", "3000", "--seed", "7", "--latency-ms", "20")
    env = remote_env(cli_env, url, ORDERLY_PAGE_SIZE="20", ORDERLY_LOCK_TIMEOUT="60", ORDERLY_SCHEDULE_SECONDS="3600")
    api = env["PREFECT_API_URL"]
    reference_env = {**env, "ORDERLY_DB": str(tmp_path / "reference.duckdb")}
    reference = subprocess.Popen(
        [ORDERLY, "run"], env=reference_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    serve = ServeProcess(env, tmp_path / "serve-1.log")
    command = subprocess.Popen(
        [ORDERLY, "run"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not running_in(env["ORDERLY_DB"], serve.process.pid):
        assert command.poll() is None and time.monotonic() < deadline, command.communicate()
        time.sleep(0.1)
    time.sleep(random.Random(20261203).uniform(0.5, 2.0))  # somewhere in its ingest or its decisions
    assert command.poll() is None, command.communicate()
    serve.kill9()
    _out, err = command.communicate(timeout=30)  # the caller does not wait for a worker that is gone
    lines = err.strip().splitlines()
    assert command.returncode == 6 and len(lines) == 1 and "worker" in lines[0], err
    (killed,) = query(env["ORDERLY_DB"], "SELECT run_id FROM runs WHERE state = 'RUNNING'")
    assert flow_run(api, killed[0])["state"]["type"] == "RUNNING"  # nobody has said otherwise yet

    serve = ServeProcess(env, tmp_path / "serve-2.log")  # a new worker finds the run its predecessor left
    try:
        assert query(env["ORDERLY_DB"], f"SELECT state FROM runs WHERE run_id = '{killed[0]}'") == [("CRASHED",)]
        assert flow_run(api, killed[0])["state"]["type"] == "CRASHED"
        final = run_cli(["run"], env)
        assert "Traceback" not in final.stderr
    finally:
        serve.stop()
    assert reference.wait(timeout=120) == 0, reference.stderr.read()
    got, want = db_state(env["ORDERLY_DB"]), db_state(reference_env["ORDERLY_DB"])
    assert got["doubled_orders"] == [] and got["doubled_lines"] == [] and got["doubled_history"] == []
    for key in ("orders", "lines", "stock", "cursor", "history"):
        assert got[key] == want[key], key
    assert len(got["orders"]) == 3000


def test_two_serve_processes_never_decide_at_once(seeded_env, tmp_path):
    env = seeded_env
    first = ServeProcess(env, tmp_path / "serve-1.log")
    second = ServeProcess(env, tmp_path / "serve-2.log", pause=False)
    try:
        commands = [["reset", "--yes"], ["process"]] * 4
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda args: run_cli(args, env, check=False), commands))
        assert [r.returncode for r in results] == [0] * len(commands), [r.stderr for r in results]
    finally:
        first.stop()
        second.stop()
    runs = query(
        env["ORDERLY_DB"],
        "SELECT started_at, ended_at, pid FROM runs WHERE flow IN ('process-all', 'reset-state') ORDER BY started_at",
    )
    assert len(runs) == len(commands)
    for (_, ended, _), (started, _, _) in itertools.pairwise(runs):
        assert ended <= started, runs  # one decides, then the other: never two at once
    # Which worker takes a run is the Prefect server's choice (on a busy machine it may give all to one): what must
    # hold is that runs from two serve processes never overlap, whoever took them.
    assert {pid for *_, pid in runs} <= {first.process.pid, second.process.pid}
    # whatever order they ran in, the stock adds up: nothing allocated twice, nothing lost
    on_hand = dict(query(env["ORDERLY_DB"], "SELECT inventory_id, quantity FROM stock_items"))
    allocated = dict(
        query(
            env["ORDERLY_DB"],
            "SELECT l.inventory_id, sum(l.quantity) FROM order_lines l "
            "JOIN orders o USING (order_id) WHERE o.status = 'PROCESSED' GROUP BY 1",
        )
    )
    assert all(allocated[item] <= on_hand[item] for item in allocated), (allocated, on_hand)


def test_a_worker_whose_server_goes_away_exits_with_one_line(seeded_env, tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    server, api = start_prefect_server(home, timeout=120)
    env = {**seeded_env, "PREFECT_API_URL": api, "PREFECT_HOME": str(home)}
    try:
        serve = ServeProcess(env, tmp_path / "serve.log", pause=False)
    except BaseException:
        stop(server)
        raise
    try:
        assert run_cli(["process", "--json"], env).returncode == 0
        stop(server)
        gone = time.monotonic()
        serve.process.wait(timeout=60)
        took = time.monotonic() - gone
    finally:
        stop(server)
        log = serve.stop()
    last = log.strip().splitlines()[-1]
    assert "Traceback" not in log
    assert serve.process.returncode == 6 and "went away" in last and "orderly serve stops" in last, log[-2000:]
    assert took < 40, took
    # without a server nothing serves, and the command says so itself
    alone = run_cli(["process"], env, check=False)
    assert alone.returncode == 2 and "no Prefect server answers" in alone.stderr
