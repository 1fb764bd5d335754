"""The long-lived Orderly worker: `orderly serve` keeps one running, and the page's presses and the data-changing
commands are decided in it, warm, instead of in a fresh Python process each (which costs seconds of imports).

It is Prefect's background-task mechanism: a caller (`hand_off`: the page, the CLI) delays one run of the
`orderly-worker` task; the worker (`serve_worker`, a prefect.task_worker in `orderly serve`'s process) receives
it over the server's websocket and calls the command's flow in-process. So the flow run, its artifacts, its row
in `orderly runs`, its events and the automations are exactly those of a run started any other way; the task run
around it is only the envelope that carries the command there and its outcome back.

- One run at a time per worker (the task worker's limit of 1). Across workers and every other writer, each
  transaction takes the store's file lock, as command-line runs do (flows.write_slot says why those do not take
  the Prefect slot: a killed holder keeps it for minutes).
- Parameters and outcomes travel as JSON files beside the store (flows.worker_storage, called before Prefect's
  import): a worker and its callers share the store's filesystem anyway.
- The flow runs of the worker send no Prefect heartbeats: Prefect joins the heartbeat thread at the end of every
  flow run, which cost 0.5 s a press (measured, prefect 3.9.1). A run left RUNNING by a killed worker is found by
  the next run (store.writes.start_run) and by the next worker to start (`recover_crashed`), which records it
  CRASHED in the store and in Prefect.
- Without a worker (no PREFECT_API_URL, or nothing serving), callers run the flow themselves, as before.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path
from typing import Any, Callable

from prefect import Task, task

from orderly.errors import OrderlyError

COMMANDS = ("pipeline", "sync", "process", "reset", "reconcile")
STILL_SERVING_EVERY = 2.0  # seconds between checks, while a caller waits, that the worker still serves


class WorkerGone(OrderlyError):
    """No worker serves any more while a handed-off run was waiting or running."""

    exit_code = 6


class RunFailed(OrderlyError):
    """The flow run in the worker ended FAILED or CRASHED: its one line and its exit status, as if run here."""

    def __init__(self, message: str, exit_code: int, flow_run_id: str | None) -> None:
        super().__init__(message)
        self.exit_code, self.flow_run_id = exit_code, flow_run_id


def _flows() -> dict[str, Callable[..., Any]]:
    from flows import orders

    return {"pipeline": orders.pipeline, "sync": orders.sync, "process": orders.process_all,
            "reset": orders.reset_state, "reconcile": orders.reconcile}


def _run_command(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one Orderly command's flow here, in the worker; its outcome goes back as JSON, failures included (the
    flow run itself is FAILED or CRASHED in Prefect, where the automations see it)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from orderly import ending

    flow = _flows()[command]
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            state = flow(**params, return_state=True)
    finally:
        ending.run_over()
    run_id = state.state_details.flow_run_id
    ended = {"flow_run_id": str(run_id) if run_id else None, "state": state.type.value}
    if state.is_completed():
        return {**ended, "outcome": state.result()}
    error = state.result(raise_on_failure=False)
    message = str(error).strip().splitlines()[0] if str(error).strip() else (state.message or type(error).__name__)
    return {**ended, "message": message, "exit_code": getattr(error, "exit_code", 1)}


@functools.lru_cache(maxsize=None)
def for_store(db_path: Path) -> Task:
    """The worker's task for one store. Prefect routes a background task run to the workers of its task key, made
    of the function's name and code: a name per store means a worker only receives its own store's runs, and a
    caller only finds a worker of its store, however many Orderly stores share one Prefect server."""
    digest = hashlib.sha256(str(Path(db_path).absolute()).encode()).hexdigest()[:16]

    def run(command: str, params: dict[str, Any]) -> dict[str, Any]:
        return _run_command(command, params)

    run.__name__ = run.__qualname__ = f"orderly_worker_{digest}"
    return task(run, name="orderly-worker", task_run_name="worker: {command}", result_serializer="json")


# ---- the caller's side -------------------------------------------------------------------------------

def serving(api: str, db_path: Path) -> bool:
    """Whether a worker of this store is connected to the Prefect API at `api` (asked over plain HTTP)."""
    import httpx

    try:
        answer = httpx.post(f"{api.rstrip('/')}/task_workers/filter", timeout=2,
                            json={"task_worker_filter": {"task_keys": [for_store(db_path).task_key]}})
        return answer.status_code == 200 and bool(answer.json())
    except (httpx.HTTPError, ValueError):
        return False


def hand_off(command: str, params: dict[str, Any], api: str, db_path: Path,
             started: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run `command` in the worker and wait for it: {"flow_run_id", "state": "COMPLETED", "outcome": the flow's},
    or RunFailed / WorkerGone with one line. `started(task_run_id)` is called once the run is handed over."""
    if command not in COMMANDS:
        raise ValueError(f"not an Orderly command: {command}")
    future = for_store(db_path).delay(command, params)
    if started is not None:
        started(str(future.task_run_id))
    from prefect.exceptions import ObjectNotFound

    try:
        while True:
            future.wait(timeout=STILL_SERVING_EVERY)
            if future.state.is_final():
                break
            if not serving(api, db_path):  # plain HTTP: a server that is gone answers at once, where Prefect's client retries
                raise WorkerGone("the Orderly worker (or its Prefect server) went away before the run ended; "
                                 "`orderly runs` shows what it committed, and the next run decides whatever is left")
    except (ObjectNotFound, RuntimeError):  # a worker deletes a run it cannot start; Prefect then has no state for it
        raise WorkerGone("the Orderly worker could not start the run (its log says why); nothing was changed") from None
    ended = future.result()
    if ended["state"] != "COMPLETED":
        raise RunFailed(ended.get("message") or f"the run ended {ended['state']}", int(ended.get("exit_code", 1)),
                        ended.get("flow_run_id"))
    return ended


# ---- the worker's side -------------------------------------------------------------------------------

def recover_crashed(db_path: Path, lock_timeout: float) -> list[str]:
    """Runs a killed process left RUNNING: CRASHED in the store and in Prefect. Their ids."""
    from flows.run_record import crashed_in_prefect
    from orderly.store import open_store, writes

    if not db_path.exists():
        return []
    with open_store(db_path, lock_timeout=lock_timeout) as con:
        crashed = writes.crash_dead_runs(con)
    crashed_in_prefect(crashed)
    return crashed


def serve_worker(db_path: Path, lock_timeout: float) -> threading.Thread:
    """Start the worker in a daemon thread of this process (its event loop is Prefect's own loop thread)."""
    from prefect.task_worker import serve

    recover_crashed(db_path, lock_timeout)
    _flows()  # imported now, not on the first press
    thread = threading.Thread(target=serve, args=(for_store(db_path),), kwargs={"limit": 1}, name="orderly-worker",
                              daemon=True)
    thread.start()
    return thread
