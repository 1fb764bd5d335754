"""Handing a command to the Orderly worker (flows.worker) and waiting for its outcome, without importing Prefect.

Importing Prefect costs a command 1.3-1.9 s (measured), more than a whole press in a warm worker, so the callers
(the CLI, the page) speak the few REST calls of a Prefect background task run themselves, as `Task.delay()` and
its future would:
  1. find a worker of this store and these settings: POST /task_workers/filter lists the connected workers and
     their task keys, and a worker's key names its store and run settings (`identity`);
  2. write the parameters where the worker reads them: a JSON result record in the exchange directory beside the
     store (the worker task's result storage, flows.worker), under a new id;
  3. POST /task_runs/ a run of that key, Scheduled and deferred, naming that id: the server pushes it to the
     worker's websocket;
  4. poll GET /task_runs/{id} until it is final; its state points at the outcome, a JSON result record.
These are Prefect 3.9's formats (constraints.txt pins it). tests/test_handoff.py round-trips them with Prefect's
own code, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from orderly.errors import NotStarted, RunFailed, WorkerGone
from orderly.settings import Settings, mask_url

COMMANDS = ("pipeline", "sync", "process", "reset", "reconcile")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
KEY_PREFIX = "orderly_worker_"
STILL_SERVING_EVERY = 2.0  # seconds between checks, while a caller waits, that the worker still serves
TIMEOUT = httpx.Timeout(10.0, connect=2.0)
# A busy server (SQLite under several writers) can answer 5xx or slowly for a while: it is gone only once it has
# failed every request for this long (`orderly serve` gives a restarting server the same).
GONE_AFTER_S = 15.0
NOT_STARTED_S = 120.0


# ---- where the two sides exchange parameters and outcomes --------------------------------------------


def exchange_dir(db_path: Path) -> Path:
    return Path(f"{Path(db_path).absolute()}.worker")


# The settings that change what a run does. A caller whose values differ from the worker's runs the command itself,
# so a handed-off run is the run the caller asked for. Left out: secrets (never hashed either), and what only
# shapes waiting or serving (ORDERLY_LOCK_TIMEOUT, ORDERLY_SCHEDULE_SECONDS, ORDERLY_UI_TOKEN).
RUN_SETTINGS = (
    "max_stock_age",
    "http_timeout",
    "http_retries",
    "retry_after_cap",
    "page_size",
    "fetch_concurrency",
    "max_stock_pages",
    "max_order_pages",
    "lookback_orders",
    "max_body_bytes",
    "webhook_batch",
    "webhook_max_lag",
)


def identity(settings: Settings) -> str:
    """The part of the worker's task key that names its store and its run settings (flows.worker.for_settings)."""
    shown = [
        str(Path(settings.db_path).absolute()),
        *(mask_url(url or "") for url in (settings.orders_url, settings.warehouse_url, settings.webhook_url)),
        # a pipeline run signs the feed with the worker's secret: one that differs is another identity (a digest)
        hashlib.sha256((settings.webhook_secret or "").encode()).hexdigest(),
    ]
    shown += [repr(getattr(settings, name)) for name in RUN_SETTINGS]
    if settings.orders_url is None:  # the built-in sandbox: its data set is a setting too (its token is not shown)
        shown.append(repr(settings.sandbox))
    return hashlib.sha256("\n".join(shown).encode()).hexdigest()[:16]


def _record(result: Any, storage_key: str) -> bytes:
    """A JSON result record as Prefect's ResultRecord writes one (prefect._internal.result_records)."""
    from importlib.metadata import version

    metadata = {
        "storage_key": storage_key,
        "expiration": None,
        "serializer": {"type": "json"},
        "prefect_version": version("prefect"),
        "storage_block_id": None,
    }
    return json.dumps({"metadata": metadata, "result": json.dumps(result)}).encode()


def _read_record(path: Path) -> Any:
    return json.loads(json.loads(path.read_bytes())["result"])


# ---- the caller's side -----------------------------------------------------------------------------------


def worker_key(api: str, settings: Settings) -> str | None:
    """The task key of a worker of this store and these settings connected to the Prefect API at `api`, or None."""
    prefix = KEY_PREFIX + identity(settings) + "-"
    try:
        answer = httpx.post(f"{api.rstrip('/')}/task_workers/filter", json={}, timeout=TIMEOUT)
        workers = answer.json() if answer.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return None
    keys = [key for worker in workers for key in worker.get("task_keys", []) if key.startswith(prefix)]
    return keys[0] if keys else None


def hand_off(command: str, params: dict[str, Any], api: str, db_path: Path, key: str) -> dict[str, Any]:
    """Run `command` in the worker whose task key is `key` and wait for it. Returns {"flow_run_id", "state":
    "COMPLETED", "outcome": the flow's}; raises RunFailed (the run's one line and exit status) or WorkerGone."""
    if command not in COMMANDS:
        raise ValueError(f"not an Orderly command: {command}")
    api = api.rstrip("/")
    exchange = exchange_dir(db_path)
    parameters_id = str(uuid.uuid4())
    parameters = exchange / "parameters" / parameters_id
    parameters.parent.mkdir(parents=True, exist_ok=True)
    parameters.write_bytes(_record({"parameters": {"command": command, "params": params}}, parameters_id))
    state = {
        "type": "SCHEDULED",
        "name": "Scheduled",
        "state_details": {
            "deferred": True,
            "task_parameters_id": parameters_id,
            "scheduled_time": datetime.now(UTC).isoformat(),
        },
    }
    body = {
        "name": f"worker: {command}",
        "task_key": key,
        "dynamic_key": f"{key}-{uuid.uuid4().hex}",
        "flow_run_id": None,
        "task_inputs": {"command": [], "params": []},
        "state": state,
    }
    try:
        with httpx.Client(base_url=api, timeout=TIMEOUT) as client:
            # The same dynamic key again returns the run already made: asking twice never makes two runs.
            run_id = _ask(client, "POST", "/task_runs/", api, json=body).json()["id"]
            try:
                final = _wait(client, run_id, api, key)
            except NotStarted:  # withdrawn: first what it needs to start, then the run itself
                parameters.unlink(missing_ok=True)
                with contextlib.suppress(httpx.HTTPError):  # a run with no parameters cannot start anyway
                    client.delete(f"/task_runs/{run_id}")
                raise
    finally:  # read by the worker once it started the run; a run it never started cannot start without it
        parameters.unlink(missing_ok=True)
    if final["type"] != "COMPLETED":
        raise RunFailed(final.get("message") or f"the worker's run ended {final['type']}", 1, None)
    outcome = _inside(exchange, (final.get("data") or {}).get("storage_key"))
    ended = _read_record(outcome)
    outcome.unlink(missing_ok=True)  # read once, by its one caller
    if ended["state"] != "COMPLETED":
        raise RunFailed(
            ended.get("message") or f"the run ended {ended['state']}",
            int(ended.get("exit_code", 1)),
            ended.get("flow_run_id"),
        )
    return ended


def _wait(client: httpx.Client, run_id: str, api: str, key: str) -> dict[str, Any]:
    """The run's final state; polled often at first (a press takes about a second), less as it goes on. A run the
    worker has not started within NOT_STARTED_S (it is busy with a long run, or its server restarted and forgot
    the queue) is withdrawn (NotStarted)."""
    begun = checked = time.monotonic()
    missed = 0
    while True:
        answer = _ask(client, "GET", f"/task_runs/{run_id}", api)
        if answer.status_code == 404:  # a worker deletes a run it could not start
            raise WorkerGone("the Orderly worker could not start the run (its log says why); nothing was changed")
        state = answer.json().get("state") or {}
        if state.get("type") in FINAL:
            return state
        now = time.monotonic()
        if state.get("type") == "SCHEDULED" and now - begun > NOT_STARTED_S:
            raise NotStarted(
                f"the Orderly worker did not start the run within {NOT_STARTED_S:g} s (it is busy with "
                "a long run, or its Prefect server restarted); nothing was changed: run it again"
            )
        if now - checked >= STILL_SERVING_EVERY:
            checked = now
            listed = _ask(
                client, "POST", "/task_workers/filter", api, json={"task_worker_filter": {"task_keys": [key]}}
            )
            missed = 0 if listed.status_code == 200 and listed.json() else missed + 1
            if missed >= 2:  # twice in a row: not one slow answer
                raise WorkerGone(
                    "the Orderly worker went away before the run ended; `orderly runs` shows what it "
                    "committed, and the next run decides whatever is left"
                )
        time.sleep(0.05 if now - begun < 3 else 0.25)


def _ask(client: httpx.Client, method: str, path: str, api: str, **kwargs: Any) -> httpx.Response:
    """One request, asked again while the server is busy (5xx, no answer) until GONE_AFTER_S have passed."""
    failing_since = None
    while True:
        try:
            answer = client.request(method, path, **kwargs)
            if answer.status_code < 500:
                if answer.status_code >= 400 and answer.status_code != 404:
                    raise RunFailed(
                        f"the Prefect server at {mask_url(api)} refused to hand the run over "
                        f"({answer.status_code} to {method} {path})",
                        1,
                        None,
                    )
                return answer
            why = f"it answered {answer.status_code}"
        except httpx.TransportError as error:
            from orderly.runtime.prefect_health import failure_in_words

            why = failure_in_words(error, TIMEOUT.read or 0)
        failing_since = failing_since or time.monotonic()
        if time.monotonic() - failing_since >= GONE_AFTER_S:
            raise WorkerGone(
                f"the Prefect server at {mask_url(api)} stopped answering ({why}) while the worker had "
                "the run; `orderly runs` shows what it committed"
            )
        time.sleep(0.5)


def _inside(exchange: Path, storage_key: str | None) -> Path:
    """The outcome's file, which must be in the exchange directory (the path comes from the server)."""
    path = Path(storage_key or "")
    path = path if path.is_absolute() else exchange / path
    if exchange.resolve() not in path.resolve().parents:
        raise RunFailed(f"the worker's outcome is not where this store's worker writes ({exchange})", 1, None)
    return path
