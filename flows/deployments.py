"""`orderly serve`: one long-running process serving the three deployments an operator uses from the Prefect UI.

- `pipeline/pipeline`        every ORDERLY_SCHEDULE_SECONDS (default 300): sync stock, ingest orders, process NEW ones
- `process-all/process-all`  on demand ("Process All"), parameters `order_ids` (optional list) and `dry_run`
- `reset-state/reset-state`  on demand ("Reset State"), parameters `order_ids`, `status` and `reason` (optional)

Each deployment runs one flow run at a time (concurrency_limit=1, later runs wait their turn), and every
data-changing run also holds the one slot of the global limit `orderly-writes` (flows.write_slot), so no two
of them ever write at once. prefect.yaml describes the same deployments for a process work pool and worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from orderly.settings import Settings, SettingsError

DEFAULT_SCHEDULE_SECONDS = Settings.schedule_seconds
TAGS = ["orderly"]


class NeedsServer(SettingsError):
    """`orderly serve` was started without a real Prefect server to register with."""


def check_server(env: Mapping[str, str] | None = None) -> str:
    """The API URL of a real, answering Prefect server, or NeedsServer with one line saying what to do."""
    import httpx

    env = os.environ if env is None else env
    api = (env.get("PREFECT_API_URL") or "").rstrip("/")
    if not api:
        raise NeedsServer(
            "orderly serve needs a Prefect server (schedules do not run on the temporary one): "
            "run `make server`, then PREFECT_API_URL=http://127.0.0.1:4200/api orderly serve (or `make serve`)"
        )
    try:
        httpx.get(f"{api}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        raise NeedsServer(f"no Prefect server answers at PREFECT_API_URL={api} ({type(error).__name__}): "
                          "start one with `make server`") from None
    return api


def build(every_seconds: float = DEFAULT_SCHEDULE_SECONDS) -> list:
    """The three RunnerDeployments (module entrypoints, so they load from any working directory)."""
    from prefect.deployments.runner import EntrypointType

    from flows.orders import pipeline, process_all, reset_state

    common = dict(concurrency_limit=1, tags=TAGS, entrypoint_type=EntrypointType.MODULE_PATH)
    return [
        pipeline.to_deployment(
            name="pipeline", interval=timedelta(seconds=every_seconds), **common,
            description=f"Every {every_seconds:g} s: sync stock, ingest new orders, process every NEW order.",
        ),
        process_all.to_deployment(
            name="process-all", **common,
            description='"Process All": decide NEW orders (all, or the order_ids given) in ascending id; '
                        'dry_run decides and writes nothing, publishing the preview as the orders-process-preview artifact.',
        ),
        reset_state.to_deployment(
            name="reset-state", **common,
            description='"Reset State": put orders back to NEW (all, the order_ids given, and/or those with the '
                        'status and failure reason given).',
        ),
    ]


def serve_all() -> None:
    """Register the deployments and execute their runs until interrupted; schedules stay active across restarts."""
    every = Settings.from_env().schedule_seconds
    api = check_server()
    # Prefect's runner looks for triggered runs every 10 s by default; a button in the UI should answer sooner.
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
    from prefect import serve

    from flows.write_slot import WRITE_LIMIT, ensure_write_limit

    ensure_write_limit()
    print(f"serving pipeline (every {every:g} s), process-all and reset-state on {api}; "
          f"one writing run at a time (global concurrency limit {WRITE_LIMIT}). Ctrl-C stops.", flush=True)
    serve(*build(every), pause_on_shutdown=False, print_starting_message=False)
