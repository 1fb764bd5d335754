"""The long-lived Orderly worker: `orderly serve` keeps one running, and the page's presses and the data-changing
commands are decided in it, warm, instead of in a fresh Python process each (which costs seconds of imports).

It is Prefect's background-task mechanism: a caller (flows.handoff: the page, the CLI) schedules one run of the
worker's task; the worker (`serve_worker`, a prefect.task_worker in `orderly serve`'s process) receives it over
the server's websocket and calls the command's flow in-process. So the flow run, its artifacts, its row
in `orderly runs`, its events and the automations are exactly those of a run started any other way; the task run
around it is only the envelope that carries the command there and its outcome back.

- The pipeline deployment's runs (its schedule, or Run in the Prefect UI) are run here too (`serve_pipeline`):
  polled as Prefect's runner polls, claimed as it claims them (Pending, which takes the `orderly-writes` slot),
  then run in-process instead of in a new process each. The on-demand deployments stay on Prefect's runner.
- One run at a time in this process, each in a context of its own (`_fresh`). Across processes, each
  transaction takes the store's file lock, as command-line runs do (flows.write_slot says why presses do not
  take the Prefect slot: a killed holder keeps it for minutes).
- Parameters and outcomes travel as JSON files beside the store (flows.handoff.share_storage).
- The flow runs of the worker send no Prefect heartbeats: Prefect joins the heartbeat thread at the end of every
  flow run, which cost 0.5 s a press (measured, prefect 3.9.1). A run left RUNNING by a killed worker is found by
  the next run (store.writes.start_run) and by the next worker to start (`recover_crashed`), which records it
  CRASHED in the store and in Prefect.
- Without a worker (no PREFECT_API_URL, or nothing serving this store), callers run the flow themselves.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from prefect import Task, task

from flows.handoff import KEY_PREFIX, store_digest

# Every run of this process goes through one thread: one run at a time (DuckDB's transactions in one process
# conflict rather than wait), and each in a fresh context (`_fresh`).
_RUNS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orderly-run")
POLL_S = 2.0  # how often the pipeline's scheduled runs are looked for (Prefect's runner: 10 s; `serve` sets 2)


def _flows() -> dict[str, Callable[..., Any]]:
    from flows import orders

    return {"pipeline": orders.pipeline, "sync": orders.sync, "process": orders.process_all,
            "reset": orders.reset_state, "reconcile": orders.reconcile}


def _fresh(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`call` on the runs thread, in an empty context: the flow run is a run of its own, as from the command line,
    not a child of the worker's task run (whose context would also make Prefect write the flow's result to
    storage), and without Prefect's per-run heartbeat."""
    def run() -> Any:
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from orderly import ending

        try:
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                return call(*args, **kwargs)
        finally:
            ending.run_over()

    return _RUNS.submit(contextvars.Context().run, run).result()


def _run_command(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one Orderly command's flow here, in the worker; its outcome goes back as JSON, failures included (the
    flow run itself is FAILED or CRASHED in Prefect, where the automations see it)."""
    state = _fresh(_flows()[command], **params, return_state=True)
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


def serve_pipeline(deployment_id, log: Callable[[str], None]) -> threading.Thread:
    """Run the pipeline deployment's runs in this process, as Prefect's runner would run them in a new one."""
    thread = threading.Thread(target=_pipeline_runs, args=(deployment_id, log), name="orderly-pipeline", daemon=True)
    thread.start()
    return thread


def _pipeline_runs(deployment_id, log: Callable[[str], None]) -> None:
    import time
    from datetime import datetime, timezone

    from prefect.client.orchestration import get_client
    from prefect.exceptions import Abort
    from prefect.flow_engine import run_flow
    from prefect.states import Pending
    from prefect.utilities.engine import propose_state_sync

    pipeline = _flows()["pipeline"]
    with get_client(sync_client=True) as client:
        while True:
            try:  # polling also tells the server the deployment is served (READY)
                due = client.get_scheduled_flow_runs_for_deployments([deployment_id],
                                                                     scheduled_before=datetime.now(timezone.utc))
            except Exception as error:  # noqa: BLE001 - a server that went away ends `serve` (prefect_watch)
                log(f"could not look for the pipeline's runs: {str(error).splitlines()[0] if str(error) else error!r}")
                due = []
            for flow_run in due:
                try:  # the server gives the run to one claimant, and only with the write slot free
                    if not propose_state_sync(client, Pending(), flow_run_id=flow_run.id).is_pending():
                        continue
                except Abort:
                    continue
                try:
                    _fresh(run_flow, pipeline, flow_run=client.read_flow_run(flow_run.id), return_type="state")
                except Exception as error:  # noqa: BLE001 - the run's own state says it failed; keep serving
                    said = str(error).splitlines()[0] if str(error) else repr(error)
                    log(f"the pipeline run {flow_run.id} ended with {said}")
            time.sleep(POLL_S)
