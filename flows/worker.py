"""The long-lived Orderly worker: `orderly serve` keeps one running, and the page's presses and the data-changing
commands are decided in it, warm, instead of in a fresh Python process each (which costs seconds of imports).

It is Prefect's background-task mechanism: a caller (flows.handoff: the page, the CLI) schedules one run of the
worker's task; the worker (`serve_worker`, a prefect.task_worker in `orderly serve`'s process) receives it over
the server's websocket and calls the command's flow in-process. So the flow run, its artifacts, its row
in `orderly runs`, its events and the automations are exactly those of a run started any other way; the task run
around it is only the envelope that carries the command there and its outcome back.

- One run at a time per worker (the task worker's limit of 1). Across workers and every other writer, each
  transaction takes the store's file lock, as command-line runs do (flows.write_slot says why those do not take
  the Prefect slot: a killed holder keeps it for minutes).
- Parameters and outcomes travel as JSON files beside the store (flows.handoff.share_storage).
- The flow runs of the worker send no Prefect heartbeats: Prefect joins the heartbeat thread at the end of every
  flow run, which cost 0.5 s a press (measured, prefect 3.9.1). A run left RUNNING by a killed worker is found by
  the next run (store.writes.start_run) and by the next worker to start (`recover_crashed`), which records it
  CRASHED in the store and in Prefect.
- Without a worker (no PREFECT_API_URL, or nothing serving this store), callers run the flow themselves.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any, Callable

from prefect import Task, task

from flows.handoff import KEY_PREFIX, store_digest


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
    def run(command: str, params: dict[str, Any]) -> dict[str, Any]:
        return _run_command(command, params)

    run.__name__ = run.__qualname__ = KEY_PREFIX + store_digest(db_path)
    return task(run, name="orderly-worker", task_run_name="worker: {command}", result_serializer="json")


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
