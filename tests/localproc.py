"""Local helper processes for tests and benchmarks: a free loopback port, waiting for a server, stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from orderly.runtime.tempserver import free_port


def wait_for(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll `url` until it answers 200; fail early if the process dies, and after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_prefect_server(home: Path, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """A real `prefect server start` on a free loopback port with its own PREFECT_HOME; returns (process, API URL).
    Its output goes to home/server.log."""
    port = free_port()
    # A deployment run that finds the shared write slot taken (flows.write_slot) is retried after 5 s, not 30
    # (every retry is a state change with its events: retrying every second only slows the server down).
    env = {
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "5",
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    with open(Path(home) / "server.log", "w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(f"{api}/health", process, timeout=timeout)
    except BaseException:
        stop(process)
        raise
    return process, api


def pause_schedule(api_url: str, deployment_id: str, timeout: float = 120) -> None:
    """Pause a deployment's schedule and wait until none of its runs is scheduled or going. Pausing deletes the
    runs already scheduled (Prefect's first interval run is due at once); a run already going is let finish.
    Runs asked for by hand still run: only the scheduler skips a paused deployment.

    The scheduler can insert a batch of runs just after the pause (it read the deployment before; seen on a
    loaded machine: 13 runs left SCHEDULED on a paused deployment): those are deleted as the pause would have."""
    httpx.post(f"{api_url}/deployments/{deployment_id}/pause_deployment", timeout=10).raise_for_status()
    body = {
        "deployments": {"id": {"any_": [str(deployment_id)]}},
        "limit": 200,
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}}},
    }
    deadline = time.monotonic() + timeout
    while runs := httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10).raise_for_status().json():
        for run in runs:
            if run.get("auto_scheduled") and (run.get("state") or {}).get("type") == "SCHEDULED":
                httpx.delete(f"{api_url}/flow_runs/{run['id']}", timeout=10)
        if time.monotonic() > deadline:
            raise TimeoutError(f"a run of deployment {deployment_id} did not end within {timeout} s")
        time.sleep(0.5)


class ServeProcess:
    """`orderly serve` as a real process, returned once its worker is connected; with `pause`, the pipeline's
    schedule paused (pause_schedule) so no scheduled run lands between what a test or bench does."""

    def __init__(self, env: dict, log: Path, *, pause: bool = True, timeout: float = 120) -> None:
        from flows.handoff import worker_key
        from orderly.settings import Settings

        self.log = Path(log)
        with open(self.log, "w") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "orderly"), "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        settings = Settings.from_env(env)
        api = settings.prefect_api_url
        deadline = time.monotonic() + timeout
        while not worker_key(api, settings):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"orderly serve did not start its worker: {self.stop()[-3000:]}")
            time.sleep(0.3)
        if pause:
            pipeline = httpx.get(f"{api}/deployments/name/pipeline/pipeline", timeout=10).json()["id"]
            pause_schedule(api, pipeline)

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        """Stop it; what it printed."""
        stop(self.process)
        return self.log.read_text()
