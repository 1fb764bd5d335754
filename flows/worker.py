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
- Parameters and outcomes travel as JSON files in a directory beside the store (flows.handoff.exchange_dir).
- The flow runs of the worker send no Prefect heartbeats: Prefect joins the heartbeat thread at the end of every
  flow run, which cost 0.5 s a press (measured, prefect 3.9.1). A run left RUNNING by a killed worker is found by
  the next run (store.writes.start_run) and by the next `orderly serve` to start (`recover_crashed`), which
  record it CRASHED in the store and in Prefect.
- Without a worker (no PREFECT_API_URL, or nothing serving this store), callers run the flow themselves.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

from prefect import Task, task

from flows.handoff import KEY_PREFIX, exchange_dir, identity
from orderly.errors import explain, one_line
from orderly.settings import Settings

# Every run of this process goes through one thread: one run at a time (DuckDB's transactions in one process
# conflict rather than wait), and each in a fresh context (`_fresh`).
_RUNS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orderly-run")
POLL_S = 2.0  # how often the pipeline's scheduled runs are looked for (Prefect's runner: 10 s; `serve` sets 2)


def _flows() -> dict[str, Callable[..., Any]]:
    from flows import orders

    return orders.BY_COMMAND


def _fresh(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`call` on the runs thread, in an empty context: the flow run is a run of its own, as from the command line,
    not a child of the worker's task run (whose context would also make Prefect write the flow's result to
    storage), and without Prefect's per-run heartbeat."""

    def run() -> Any:
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from orderly.runtime import ending

        try:
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                return call(*args, **kwargs)
        finally:
            ending.run_over()

    return _RUNS.submit(contextvars.Context().run, run).result()


def finish_runs() -> None:
    """Let the run going on finish, and start no other: `serve` is stopping (Ctrl-C, SIGTERM)."""
    _RUNS.shutdown(wait=True, cancel_futures=True)


def _run_command(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one Orderly command's flow here, in the worker; its outcome goes back as JSON, failures included (the
    flow run itself is FAILED or CRASHED in Prefect, where the automations see it)."""
    state = _fresh(_flows()[command], **params, return_state=True)
    run_id = state.state_details.flow_run_id
    ended = {"flow_run_id": str(run_id) if run_id else None, "state": state.type.value}
    if state.is_completed():
        return {**ended, "outcome": state.result()}
    error = state.result(raise_on_failure=False)
    if not isinstance(error, BaseException):  # Prefect keeps no exception for some ends (a cancellation)
        return {**ended, "message": one_line(state.message) or state.type.value, "exit_code": 1}
    explained = explain(error)  # the line and status the caller would have printed, had it run the flow itself
    return {**ended, "message": explained.line, "exit_code": explained.exit_code}


def for_settings(settings: Settings) -> Task:
    """The worker's task for one store and its run settings (flows.handoff.identity). Prefect routes a background
    task run to the workers of its task key, made of the function's name and code: a name per identity means a
    worker only receives runs asked for with its own store and settings, however many Orderly stores share one
    Prefect server. Parameters and outcomes are kept in the exchange directory beside the store."""
    return _task(identity(settings), str(exchange_dir(settings.db_path)))


@functools.cache
def _task(name: str, exchange: str) -> Task:
    def run(command: str, params: dict[str, Any]) -> dict[str, Any]:
        return _run_command(command, params)

    run.__name__ = run.__qualname__ = KEY_PREFIX + name
    return task(
        run,
        name="orderly-worker",
        task_run_name="worker: {command}",
        result_serializer="json",
        result_storage=Path(exchange),
    )  # a Path: local storage there, with no block to register


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


def serve_worker(settings: Settings, log: Callable[[str], None]) -> threading.Thread:
    """Start the worker in a daemon thread of this process (its event loop is Prefect's own loop thread), and
    start it again should it stop: Prefect's subscription gives up on some answers of a restarting server."""
    from prefect.task_worker import serve

    _flows()  # imported now, not on the first press
    worker = for_settings(settings)

    def keep_serving() -> None:
        while True:
            try:
                serve(worker, limit=1)
            except Exception as error:  # noqa: BLE001 - said in one line; a server gone for good ends `serve`
                log(f"the worker lost its Prefect server ({error_line(error)}); connecting again in 5 s")
            time.sleep(5)

    thread = threading.Thread(target=keep_serving, name="orderly-worker", daemon=True)
    thread.start()
    return thread


def error_line(error: BaseException) -> str:
    """An error in one line, URLs masked (Prefect's and httpx's messages name the API URL)."""
    from orderly.settings import mask_urls_in

    return mask_urls_in(one_line(error)) or type(error).__name__


def serve_pipeline(deployment_id, log: Callable[[str], None]) -> threading.Thread:
    """Run the pipeline deployment's runs in this process, as Prefect's runner would run them in a new one."""
    thread = threading.Thread(target=_pipeline_runs, args=(deployment_id, log), name="orderly-pipeline", daemon=True)
    thread.start()
    return thread


def _pipeline_runs(deployment_id, log: Callable[[str], None]) -> None:
    from prefect.client.orchestration import get_client

    pipeline = _flows()["pipeline"]
    with get_client(sync_client=True) as client:
        while True:
            try:  # anything the server says or fails to say is one line, and the loop goes on
                _run_due(client, deployment_id, pipeline)
            except Exception as error:  # noqa: BLE001 - a server gone for good ends `serve` (prefect_watch)
                log(f"could not run the pipeline's runs: {error_line(error)}")
            time.sleep(POLL_S)


def _run_due(client, deployment_id, pipeline) -> None:
    """The pipeline's runs that are due: each claimed (Pending: one claimant, and only with the write slot free)
    and run in-process. Polling also tells the server the deployment is served (READY)."""
    from datetime import datetime

    from prefect.exceptions import Abort, ObjectNotFound
    from prefect.flow_engine import run_flow
    from prefect.states import Pending
    from prefect.utilities.engine import propose_state_sync

    for flow_run in client.get_scheduled_flow_runs_for_deployments([deployment_id], scheduled_before=datetime.now(UTC)):
        try:
            if not propose_state_sync(client, Pending(), flow_run_id=flow_run.id).is_pending():
                continue
        except (Abort, ObjectNotFound):  # claimed elsewhere, or deleted (a pause) since it was listed
            continue
        _fresh(run_flow, pipeline, flow_run=client.read_flow_run(flow_run.id), return_type="state")
