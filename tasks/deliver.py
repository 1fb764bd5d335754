"""Deliver task: the decision feed's events to the webhook (orderly.feed.deliver), and the events the two feed
automations alert on (flows.alerts): a receiver that refused a batch, and a backlog older than
ORDERLY_WEBHOOK_MAX_LAG."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger

from orderly.errors import WebhookRefused
from orderly.feed.deliver import deliver
from orderly.settings import Settings, mask_url
from orderly.store import open_store, queries
from tasks import step

WEBHOOK_REFUSED_EVENT = "orderly.webhook.refused"
WEBHOOK_LAGGING_EVENT = "orderly.webhook.lagging"
_FEED = {"prefect.resource.id": "orderly.feed", "prefect.resource.name": "decision feed"}


@step
def deliver_events(settings: Settings, run_id: str, budget_s: float) -> dict[str, Any]:
    """POST the undelivered events to ORDERLY_WEBHOOK_URL for at most about `budget_s` seconds. A receiver that
    is down leaves a backlog and a note; one that refuses fails the run with its one line."""
    from prefect.events import emit_event

    try:
        done = deliver(settings, run_id, budget_s=budget_s)
    except WebhookRefused as refused:
        emit_event(event=WEBHOOK_REFUSED_EVENT, resource=_FEED, payload={"message": str(refused)})
        raise
    finally:  # refused or not, a backlog past its bound is said
        _say_if_lagging(settings)
    outcome: dict[str, Any] = {"delivered": done.delivered}
    if done.problem:
        outcome["note"] = f"delivery: {done.backlog:,} events wait ({done.problem})"
    get_run_logger().info("delivered %d events to %s", done.delivered, mask_url(settings.webhook_url or ""))
    return outcome


def _say_if_lagging(settings: Settings) -> None:
    from prefect.events import emit_event

    lag = feed_lag(settings)
    if lag is not None and lag > settings.webhook_max_lag:
        emit_event(
            event=WEBHOOK_LAGGING_EVENT,
            resource=_FEED,
            payload={
                "lag_s": round(lag),
                "max_lag_s": settings.webhook_max_lag,
                "url": mask_url(settings.webhook_url or ""),
            },
        )


def feed_lag(settings: Settings) -> float | None:
    """Seconds the oldest undelivered event has waited (None: nothing waits)."""
    with open_store(settings.db_path, lock_timeout=settings.lock_timeout, read_only=True) as con:
        oldest = queries.feed_state(con)["oldest_undelivered_at"]
    return None if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
