"""The seed's click at the seed's speed: presses and commands through `orderly serve`'s worker (issue 18).

`press_bench` starts, on the seed data (15 orders): the sandbox, one `orderly sync`, `orderly serve` (its worker;
the pipeline's schedule paused so no scheduled run lands between presses) and `orderly ui`. Then:
  - press_p50_s / press_p95_s: Process All pressed through the page's HTTP API (POST /api/process, then
    GET /api/action until the run is final), `timed` presses, each after an untimed Reset State press;
  - cli_process_s: `orderly process`, the median wall of 5 (each after an untimed `orderly reset --yes`);
  - worker_rss_growth_mb: the serve process's RSS after all `presses` presses (Process All and Reset State
    alternately, the timed ones included) minus its RSS after the first 10 (imports and caches warm by then).
`incremental_through_worker` times `orderly run` handed to a warm worker serving a copy of the million-order store.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from localproc import ServeProcess, free_port, stop, wait_for  # noqa: E402 - tests/localproc.py

ORDERLY = str(Path(sys.executable).parent / "orderly")


def rss_mb(serve: ServeProcess) -> float:
    return psutil.Process(serve.process.pid).memory_info().rss / 2**20


def _press(client: httpx.Client, url: str, button: str) -> float:
    started = time.perf_counter()
    answer = client.post(f"{url}/api/{button}", headers={"Origin": url})
    if answer.status_code != 202:
        raise RuntimeError(f"the page refused the press: {answer.status_code} {answer.text}")
    while not (run := client.get(f"{url}/api/action").json()["run"])["final"]:
        time.sleep(0.01)
    if run["state"] != "COMPLETED" or run["mode"] != "worker":
        raise RuntimeError(f"the press did not complete in the worker: {run}")
    return time.perf_counter() - started


def _wall(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([ORDERLY, *args], env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def press_bench(base_env: dict, work: Path, presses: int = 500, timed: int = 20, log=print) -> dict:
    db = work / "seed.duckdb"
    env = {**base_env, "ORDERLY_DB": str(db), "ORDERLY_SCHEDULE_SECONDS": "86400"}
    port = free_port()
    sandbox = subprocess.Popen(
        [ORDERLY, "sandbox", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    serve = ui = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health", sandbox, timeout=60)
        env.update(ORDERLY_ORDERS_URL=url, ORDERLY_WAREHOUSE_URL=url)
        subprocess.run([ORDERLY, "sync"], env=env, cwd=ROOT, check=True, capture_output=True)
        serve = ServeProcess(env, work / "serve-presses.log")
        ui_port = free_port()
        ui = subprocess.Popen(
            [ORDERLY, "ui", "--port", str(ui_port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        page = f"http://127.0.0.1:{ui_port}"
        wait_for(f"{page}/api/config", ui, timeout=60)
        times, rss_warm = [], None
        with httpx.Client(timeout=60) as client:
            for done in range(0, presses, 2):
                _press(client, page, "reset")
                took = _press(client, page, "process")
                if len(times) < timed:
                    times.append(took)
                if done + 2 == min(10, presses):
                    rss_warm = rss_mb(serve)
        rss_end = rss_mb(serve)
        p95 = sorted(times)[math.ceil(0.95 * len(times)) - 1]  # nearest rank: the 19th of 20
        log(
            f"  {len(times)} presses of Process All: p50 {statistics.median(times):.2f} s, p95 {p95:.2f} s; "
            f"worker RSS {rss_warm:.0f} -> {rss_end:.0f} MB over {presses} presses"
        )
        cli = []
        for _ in range(5):
            _wall(["reset", "--yes"], env)
            cli.append(_wall(["process"], env))
        log(f"  `orderly process` with the worker serving: median {statistics.median(cli):.2f} s of 5")
        return {
            "press_p50_s": round(statistics.median(times), 3),
            "press_p95_s": round(p95, 3),
            "press_times_s": [round(t, 3) for t in times],
            "cli_process_s": round(statistics.median(cli), 3),
            "cli_process_times_s": [round(t, 3) for t in cli],
            "presses": presses,
            "worker_rss_warm_mb": round(rss_warm, 1),
            "worker_rss_end_mb": round(rss_end, 1),
            "worker_rss_growth_mb": round(rss_end - rss_warm, 1),
        }
    finally:
        for process in (ui, sandbox):
            if process is not None:
                stop(process)
        if serve is not None:
            serve.stop()


def incremental_through_worker(env: dict, work: Path, log=print) -> dict:
    """`orderly run` handed to a worker serving env's store, as the operator waits for it. The worker is
    long-lived, so it is timed warm: after one `orderly process` (which finds nothing NEW in this store), whose
    wall, the worker's first command, is kept beside it."""
    serve = ServeProcess({**env, "ORDERLY_SCHEDULE_SECONDS": "86400"}, work / "serve-incremental.log")
    try:
        first = _wall(["process"], env)
        took = _wall(["run"], env)
    finally:
        serve.stop()
    log(f"  incremental run through the worker: {took:.2f} s wall (the worker's first command: {first:.2f} s)")
    return {"incremental_worker_wall_s": round(took, 2), "worker_first_command_s": round(first, 2)}
