"""`orderly serve`: one long-running process serving the three deployments an operator uses from the Prefect UI.

- `pipeline/pipeline`        every ORDERLY_SCHEDULE_SECONDS (default 300): sync stock, ingest orders, process NEW ones
- `process-all/process-all`  on demand ("Process All"), parameters `order_ids` (optional list) and `dry_run`
- `reset-state/reset-state`  on demand ("Reset State"), parameters `order_ids`, `status` and `reason` (optional)
- `reconcile/reconcile`      daily: re-read the whole orders remote, store what is missing (an alert if anything was)
- `deliver/deliver`          every 30 s when ORDERLY_WEBHOOK_URL is set: the decision feed's backlog to the receiver

`serve` also runs the Orderly worker (flows.worker): the page's presses, the data-changing commands and the
pipeline's runs are decided in this process, warm, while it serves (`--no-worker`: as before).

The deployments but `deliver` share one concurrency limit, `orderly-writes` (1 slot, flows.write_slot): the server
starts one of their flow runs at a time, later ones wait their turn. `serve` also creates the alert automations
(flows.alerts).
prefect.yaml describes the same deployments for a process work pool and worker; after `prefect deploy --all`,
`python -m flows.deployments` does for them what `serve` does at start: the shared limit and the automations.
"""

from __future__ import annotations

import os
from datetime import timedelta

from orderly import settings as _settings
from orderly.errors import PrefectUnreachable, UsageError, explain
from orderly.settings import Settings

DEFAULT_SCHEDULE_SECONDS = Settings.schedule_seconds
TAGS = ["orderly"]
NAMES = (
    "pipeline/pipeline",
    "process-all/process-all",
    "reset-state/reset-state",
    "reconcile/reconcile",
)  # flow/deployment
# Daily at 03:30 UTC, not "every 24 h from now": a fixed hour keeps it off the operator's busy hours and does not
# start a full re-read the moment `serve` starts.
RECONCILE_CRON = "30 3 * * *"


def check_server(settings: Settings) -> str:
    """The API URL of a real, answering Prefect server, or PrefectUnreachable with one line saying what to do."""
    from orderly.runtime.prefect_health import why_not_answering
    from orderly.settings import mask_url

    api = settings.prefect_api_url
    if not api:
        raise PrefectUnreachable(
            "orderly serve needs a Prefect server (schedules do not run on the temporary one): "
            "run `make server`, then PREFECT_API_URL=http://127.0.0.1:4200/api orderly serve (or `make serve`)"
        )
    why = why_not_answering(api, timeout=5)
    if why:
        raise PrefectUnreachable(
            f"no Prefect server answers at PREFECT_API_URL={mask_url(api)} ({why}): start one with `make server`"
        )
    return api


def build(every_seconds: float = DEFAULT_SCHEDULE_SECONDS, deliver_feed: bool = False) -> list:
    """The RunnerDeployments (module entrypoints, so they load from any working directory); `deliver_feed`: the
    decision feed's too, last, with a limit of its own (it never waits for a writing run, nor one for it)."""
    from prefect.deployments.runner import EntrypointType

    from flows.orders import deliver, pipeline, process_all, reconcile, reset_state
    from flows.steps import DELIVER_EVERY_S

    # concurrency_limit=1 must stay: registering a deployment without one deletes the shared limit (flows.write_slot).
    common = {"concurrency_limit": 1, "entrypoint_type": EntrypointType.MODULE_PATH}
    # The UI's deployment list shows names and tags, not descriptions: the buttons' names go in a tag (the names
    # themselves stay: scripts and the web page start the deployments by them).
    return [
        pipeline.to_deployment(
            name="pipeline",
            interval=timedelta(seconds=every_seconds),
            **common,
            tags=TAGS,
            description=f"Every {every_seconds:g} s: sync stock, ingest new orders, process every NEW order.",
        ),
        process_all.to_deployment(
            name="process-all",
            **common,
            tags=[*TAGS, "Process All"],
            description='"Process All": decide NEW orders (all, or the order_ids given) in ascending id; '
            "dry_run decides and writes nothing, publishing the preview as the orders-process-preview artifact.",
        ),
        reset_state.to_deployment(
            name="reset-state",
            **common,
            tags=[*TAGS, "Reset State"],
            description='"Reset State": put orders back to NEW (all, the order_ids given, and/or those with the '
            "status and failure reason given).",
        ),
        reconcile.to_deployment(
            name="reconcile",
            cron=RECONCILE_CRON,
            **common,
            tags=[*TAGS, "Reconcile"],
            description="Daily: re-read the whole orders remote under the paging rules, store any order missing "
            "locally, and record what was found (orders-reconciliation); an alert if any was missing.",
        ),
    ] + (
        [
            deliver.to_deployment(
                name="deliver",
                interval=timedelta(seconds=DELIVER_EVERY_S),
                **common,
                tags=[*TAGS, "Decision feed"],
                description=f"Every {DELIVER_EVERY_S:g} s: the decisions not yet delivered, to ORDERLY_WEBHOOK_URL, "
                "signed, in ascending event id; a receiver that is down leaves a backlog (and an alert past "
                "ORDERLY_WEBHOOK_MAX_LAG), one that refuses fails the run.",
            )
        ]
        if deliver_feed
        else []
    )


# A server that refuses connections this long is taken as gone: long enough for an operator's restart of it.
SERVER_GONE_AFTER_S = 15.0


def serve_all(settings: Settings, worker: bool = True) -> None:
    """Register the deployments, start the worker, and execute their runs until interrupted; schedules stay active
    across restarts. A Prefect server that goes away ends `serve` with one line (exit 6), never a hang."""
    every = settings.schedule_seconds
    api = check_server(settings)
    # The worker's task run has no flow run of its own (its flow run has), so Prefect would warn on each of its
    # log lines that they cannot go to the API: they still reach this terminal.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # Prefect's runner looks for triggered runs every 10 s by default; a button in the UI should answer sooner.
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
    from prefect import serve

    _errors_in_one_line()
    from flows.alerts import ensure_automations
    from flows.write_slot import WRITE_LIMIT, share_write_limit

    deployments = build(every, deliver_feed=bool(settings.webhook_url))
    # Registered here first, so the shared limit is in place before serve() starts taking runs; serve() registers
    # them again (same names, same limit of 1), which leaves the link alone.
    deployment_ids = [deployment.apply() for deployment in deployments]
    share_write_limit(deployment_ids[: len(NAMES)])
    alerts = ensure_automations(every)
    from flows.worker import finish_runs, recover_crashed, serve_pipeline, serve_worker
    from orderly.runtime import prefect_watch
    from orderly.settings import mask_url

    served = deployments

    def log(line: str) -> None:
        print(line, flush=True)

    recover_crashed(settings.db_path, settings.lock_timeout)  # what a killed `serve` left RUNNING
    if worker:  # the pipeline's runs go to the worker, in-process; Prefect's runner keeps the on-demand ones
        serve_worker(settings, log)
        serve_pipeline(deployment_ids[0], log)
        served = deployments[1:]
    prefect_watch.watch(
        api,
        refused_for=SERVER_GONE_AFTER_S,
        line=f"error: the Prefect server at {mask_url(api)} went away; orderly serve stops "
        "(start it again once the server is back)",
    )
    print(
        f"serving pipeline (every {every:g} s), process-all, reset-state and reconcile (daily)"
        + (", deliver (every 30 s)" if settings.webhook_url else "")
        + f" on {api}; "
        f"one writing run at a time (global concurrency limit {WRITE_LIMIT}); "
        f"alerts: {', '.join(alerts)}"
        + (
            "; the Orderly worker decides the page's presses, the commands and the pipeline's runs here"
            if worker
            else ""
        )
        + ". Ctrl-C stops.",
        flush=True,
    )
    try:
        serve(*served, pause_on_shutdown=False, print_starting_message=False)
    finally:
        finish_runs()  # a run going on ends, and reports its end, before the interpreter shuts down


def _errors_in_one_line() -> None:
    """Prefect's own errors on serve's terminal, one line each: a server going away otherwise prints pages of
    tracebacks (its event and log clients) before `serve` says, in one line, that it stops. ORDERLY_DEBUG keeps them."""
    import logging

    from flows.worker import error_line

    if _settings.debug_wanted():
        return

    class Untraced(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.exc_info and record.exc_info[1] is not None:
                record.msg, record.args = f"{record.getMessage()} ({error_line(record.exc_info[1])})", ()
                record.exc_info = record.exc_text = None
            return True

    handlers = {
        handler
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("prefect") and isinstance(logger, logging.Logger)
        for handler in logger.handlers
    }
    for handler in handlers | set(logging.root.handlers):
        handler.addFilter(Untraced())


def set_up_deployed() -> list[str]:
    """For deployments registered by `prefect deploy` (prefect.yaml): share the write limit, create the automations.
    Returns one line per thing done."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.alerts import ensure_automations
    from flows.write_slot import WRITE_LIMIT, share_write_limit

    with get_client(sync_client=True) as client:
        try:
            deployments = [client.read_deployment_by_name(name) for name in NAMES]
        except ObjectNotFound:
            raise UsageError(
                "the deployments are not registered: run `prefect --no-prompt deploy --all` in the checkout first"
            ) from None
    share_write_limit([deployment.id for deployment in deployments])
    # The pipeline's interval is whatever prefect.yaml gave it, not ORDERLY_SCHEDULE_SECONDS (the serve path's).
    intervals = [
        s.schedule.interval.total_seconds()
        for s in deployments[0].schedules
        if s.active and getattr(s.schedule, "interval", None)
    ]
    alerts = ensure_automations(min(intervals) if intervals else _settings.current().schedule_seconds)
    return [
        f"{', '.join(NAMES)}: one run at a time between them (global concurrency limit {WRITE_LIMIT})",
        *(f"automation: {name}" for name in alerts),
    ]


def main() -> int:
    """`python -m flows.deployments`: the work-pool path's step after `prefect --no-prompt deploy --all`."""
    import sys

    try:
        if not _settings.current().prefect_api_url:
            raise PrefectUnreachable(
                "python -m flows.deployments sets up deployments on a Prefect server: set "
                "PREFECT_API_URL to the one the workers use (e.g. http://127.0.0.1:4200/api)"
            )
        check_server(_settings.current())
        lines = set_up_deployed()
    except Exception as error:  # noqa: BLE001 - one line, as the command line says it (orderly.errors.explain)
        explained = explain(error)
        print(explained.on_terminal(), file=sys.stderr)
        return explained.exit_code
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
