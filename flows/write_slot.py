"""One deployment run that changes data at a time, across all three deployments: a Prefect global concurrency limit.

`concurrency_limit=1` on each deployment keeps runs of *one* deployment apart; the global limit
`orderly-writes` (1 slot) keeps the pipeline, Process All and Reset State deployments apart from each other.
Command-line runs do not take the slot: a slot held by a killed process is freed only when its lease
expires (measured: a run after a SIGKILL waited 318 s), and the DuckDB file lock (ORDERLY_LOCK_TIMEOUT)
already keeps every transaction whole. It needs a real Prefect server (PREFECT_API_URL) in any case.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

WRITE_LIMIT = "orderly-writes"
SLOT_WAIT_SECONDS = 1800.0  # a run waits this long for the one running before it (a big backlog takes minutes)


def ensure_write_limit() -> None:
    """Create the `orderly-writes` limit (1 slot) unless it exists; an operator's own setting is left alone."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(WRITE_LIMIT)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=WRITE_LIMIT, limit=1))
            except ObjectAlreadyExists:  # another process created it first
                pass


@contextmanager
def write_slot() -> Iterator[None]:
    """Hold the one `orderly-writes` slot for the body of a deployment run; other runs pass straight through."""
    from prefect import get_run_logger, runtime

    if not os.environ.get("PREFECT_API_URL") or not runtime.deployment.id:
        yield
        return
    from prefect.concurrency.sync import concurrency

    ensure_write_limit()
    logger = get_run_logger()
    started = time.monotonic()
    # Not strict: an operator who deactivates the limit in the UI gets a warning per run, not failed runs.
    with concurrency(WRITE_LIMIT, occupy=1, timeout_seconds=SLOT_WAIT_SECONDS, strict=False,
                     raise_on_lease_renewal_failure=False):
        waited = time.monotonic() - started
        if waited >= 1:
            logger.info("waited %.1f s for another run to finish writing (limit %s)", waited, WRITE_LIMIT)
        yield
