"""One deployment run that changes data at a time, across all three deployments: a Prefect global concurrency limit.

`orderly-writes` (1 slot) is the concurrency limit of all three deployments at once (share_write_limit): the server
gives a run the slot before it starts, so a run that finds it taken waits in Prefect's AwaitingConcurrencySlot state
(retried every PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS) and no two flow runs of the pipeline,
Process All and Reset State are ever running at once, whichever worker or `serve` process runs them. Prefect's
client cannot say that (prefect.yaml and `to_deployment` only give each deployment a limit of its own), so
share_write_limit points each deployment at the shared limit through the REST API once they are registered.
A deployment that is not linked (deployed but not set up, or its limit deleted) takes the same slot from inside
its run instead (write_slot): its writes still never overlap, only its flow run may show as running while it waits.
Command-line runs do not take the slot: a slot held by a killed process is freed only when its lease
expires (measured: a run after a SIGKILL waited 318 s), and the DuckDB file lock (ORDERLY_LOCK_TIMEOUT)
already keeps every transaction whole. It needs a real Prefect server (PREFECT_API_URL) in any case.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

WRITE_LIMIT = "orderly-writes"
SLOT_WAIT_SECONDS = 1800.0  # a run waits this long for the one running before it (a big backlog takes minutes)


def ensure_write_limit(client=None):
    """The `orderly-writes` limit, created with 1 slot unless it exists (an operator's own setting is left alone)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    if client is None:
        with get_client(sync_client=True) as client:
            return ensure_write_limit(client)
    try:
        return client.read_global_concurrency_limit_by_name(WRITE_LIMIT)
    except ObjectNotFound:
        with suppress(ObjectAlreadyExists):  # another process created it first
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=WRITE_LIMIT, limit=1))
        return client.read_global_concurrency_limit_by_name(WRITE_LIMIT)


def share_write_limit(deployment_ids) -> None:
    """Make `orderly-writes` the concurrency limit of each deployment (instead of a limit of its own).

    The deployments must keep `concurrency_limit: 1` wherever they are declared: re-registering one without a limit
    makes the server delete the limit it points at, the shared one; deleting a deployment deletes it too (the
    other deployments then fall back to write_slot, and the next setup recreates and links it)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        limit = ensure_write_limit(client)
        for deployment_id in deployment_ids:
            own = client.read_deployment(deployment_id).global_concurrency_limit
            if own is not None and own.id == limit.id:
                continue
            client.request(
                "PATCH",
                "/deployments/{id}",
                path_params={"id": deployment_id},
                json={"global_concurrency_limit_id": str(limit.id)},
            ).raise_for_status()
            if own is not None and own.name == f"deployment:{deployment_id}" and not own.active_slots:
                client.delete_global_concurrency_limit_by_name(own.name)  # its own limit, now unused


def _holds_write_limit(deployment_id) -> bool:
    """Whether the server gave this deployment's run the `orderly-writes` slot before it started."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        limit = client.read_deployment(deployment_id).global_concurrency_limit
    return limit is not None and limit.name == WRITE_LIMIT


def _deployment_id():
    """The running flow run's deployment, from the run the context holds. (prefect.runtime.deployment.id looks for
    it on the context itself, never finds it there, and reads the flow run from the API: 0.15 s of every run.)"""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.flow_run.deployment_id if context is not None and context.flow_run is not None else None


@contextmanager
def write_slot() -> Iterator[None]:
    """Hold the one `orderly-writes` slot for the body of a deployment run whose deployment is not linked to it
    (share_write_limit); linked deployments' runs already hold it, and command-line runs pass straight through."""
    from prefect import get_run_logger

    deployment_id = _deployment_id()
    # A deployment's run always has a real Prefect server (deployments live there); a command's has no deployment.
    if not deployment_id or _holds_write_limit(deployment_id):
        yield
        return
    from prefect.concurrency.sync import concurrency

    ensure_write_limit()
    logger = get_run_logger()
    started = time.monotonic()
    # Not strict: an operator who deactivates the limit in the UI gets a warning per run, not failed runs.
    with concurrency(
        WRITE_LIMIT, occupy=1, timeout_seconds=SLOT_WAIT_SECONDS, strict=False, raise_on_lease_renewal_failure=False
    ):
        waited = time.monotonic() - started
        if waited >= 1:
            logger.info("waited %.1f s for another run to finish writing (limit %s)", waited, WRITE_LIMIT)
        yield
