"""The operator's alarms: Prefect automations, created or updated by name (`orderly serve`, and
`python -m flows.deployments` on the work-pool path).

- "Orderly: pipeline not completing" (proactive): no flow run of the `pipeline` flow reached Completed within 3
  schedule intervals: the schedule is paused, `serve` or the workers are down, or every run fails.
- "Orderly: run failed or crashed" (reactive): a flow run of pipeline, sync, process-all, reset-state or reconcile
  (deployment or command line) ended Failed or Crashed; one firing per flow run.
- "Orderly: reconcile found missing orders" (reactive): a reconciliation emitted `orderly.reconcile.missing`.
- "Orderly: webhook refused decisions" (reactive): the receiver answered a 4xx (not 408 or 429) to a batch, so
  delivery stops at it until the receiver is fixed (`orderly.webhook.refused`).
- "Orderly: decisions not delivered" (reactive): a delivery found the oldest undelivered event older than
  ORDERLY_WEBHOOK_MAX_LAG (`orderly.webhook.lagging`; the receiver is down, slow, or refusing).

Their first action needs no network: DoNothing, so each firing is recorded by Prefect itself
(`prefect.automation.triggered` and `prefect.automation.action.executed` events, on the Events page and the
automation's page). If the operator saved a notification block named `orderly-alerts` (Slack, e-mail, ...; README),
each also sends a notification through it. Matching is by flow name, so the automations need no deployment ids
and survive re-deploys. Every Orderly run also emits an `orderly.run.completed` or `orderly.run.failed` event with
its counts (flows.run_record) for operators' own automations.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

STALLED = "Orderly: pipeline not completing"
FAILED = "Orderly: run failed or crashed"
NOTIFY_BLOCK = "orderly-alerts"  # the name of the operator's notification block, of any type
INTERVALS_BEFORE_ALARM = 3
FLOWS = ("pipeline", "sync", "process-all", "reset-state", "reconcile")
MISSING = "Orderly: reconcile found missing orders"
REFUSED = "Orderly: webhook refused decisions"
LAGGING = "Orderly: decisions not delivered"

STALLED_BODY = (
    "No Orderly pipeline run has completed in the last {window}. Check `orderly serve` or the workers, the "
    "pipeline deployment's schedule, and the latest runs (`orderly runs`)."
)
FAILED_BODY = (
    "Orderly flow run {{ flow_run.name }} ({{ flow.name }}) ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}"
)


def definitions(schedule_seconds: float, notify_block_ids: list[UUID] = ()) -> list:
    """The automations as Prefect AutomationCore objects (actions: DoNothing, plus one notification per block)."""
    from prefect.automations import AutomationCore, DoNothing, EventTrigger, Posture, SendNotification

    window = timedelta(seconds=INTERVALS_BEFORE_ALARM * schedule_seconds)
    told = (
        f"Notifies the block {NOTIFY_BLOCK}."
        if notify_block_ids
        else f"Shows in the Event Feed; save a notification block named {NOTIFY_BLOCK} to be told (README)."
    )

    def actions(subject: str, body: str) -> list:
        return [
            DoNothing(),
            *(SendNotification(block_document_id=b, subject=subject, body=body) for b in notify_block_ids),
        ]

    stalled = AutomationCore(
        name=STALLED,
        description=f"No pipeline flow run completed within {INTERVALS_BEFORE_ALARM} schedule intervals "
        f"({window.total_seconds():g} s). {told}",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Completed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": "pipeline"},
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        actions=actions(
            "Orderly: the pipeline has stopped completing", STALLED_BODY.format(window=f"{window.total_seconds():g} s")
        ),
    )
    failed = AutomationCore(
        name=FAILED,
        description=f"A flow run of {', '.join(FLOWS)} ended Failed or Crashed. {told}",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(FLOWS)},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=actions("Orderly: {{ flow_run.name }} {{ flow_run.state.name }}", FAILED_BODY),
    )
    from tasks.report import RECONCILE_MISSING_EVENT

    missing = AutomationCore(
        name=MISSING,
        description="A reconciliation found orders at the remote that were missing locally: the incremental path "
        f"lost them (they are stored now). {told}",
        trigger=EventTrigger(
            expect={RECONCILE_MISSING_EVENT},
            match={"prefect.resource.id": "orderly.run.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=actions(
            "Orderly: reconcile found missing orders",
            "A reconciliation found {{ event.payload.missing }} orders missing locally "
            "({{ event.payload.added }} added now). See `orderly runs` and the orders-reconciliation "
            "artifact.",
        ),
    )
    from tasks.deliver import WEBHOOK_LAGGING_EVENT, WEBHOOK_REFUSED_EVENT

    def on_feed_event(name: str, event: str, description: str, body: str) -> AutomationCore:
        return AutomationCore(
            name=name,
            description=f"{description} {told}",
            trigger=EventTrigger(
                expect={event},
                match={"prefect.resource.id": "orderly.feed"},
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=actions(name, body),
        )

    refused = on_feed_event(
        REFUSED,
        WEBHOOK_REFUSED_EVENT,
        "The webhook receiver refused a batch of decisions (a 4xx): delivery stops at it until the receiver is "
        "fixed; the next delivery sends the same batch again.",
        "{{ event.payload.message }}",
    )
    lagging = on_feed_event(
        LAGGING,
        WEBHOOK_LAGGING_EVENT,
        "The oldest decision not yet delivered to the webhook is older than ORDERLY_WEBHOOK_MAX_LAG.",
        "The oldest undelivered decision has waited {{ event.payload.lag_s }} s (the bound is "
        "{{ event.payload.max_lag_s }} s) for {{ event.payload.url }}. See `orderly runs`.",
    )
    return [stalled, failed, missing, refused, lagging]


def ensure_automations(schedule_seconds: float) -> dict[str, UUID]:
    """Create the automations, or update them where they differ; returns their ids by name. An operator who
    disabled one in the UI finds it still disabled: only what it watches for and does is put back."""
    from prefect.client.orchestration import get_client

    ids: dict[str, UUID] = {}
    with get_client(sync_client=True) as client:
        for wanted in definitions(schedule_seconds, _notification_blocks(client)):
            first, *extra = client.read_automations_by_name(wanted.name) or [None]
            for duplicate in extra:  # two `serve` processes started at once both created it
                client.delete_automation(duplicate.id)
            if first is None:
                ids[wanted.name] = client.create_automation(wanted)
                continue
            wanted.enabled = first.enabled
            if _essence(first) != _essence(wanted):
                # An update starts the proactive window again, so an unchanged automation is left as it is.
                client.update_automation(first.id, wanted)
            ids[wanted.name] = first.id
    return ids


def _essence(automation) -> tuple:
    # The models, not their JSON: a trigger's `expect` is a set, and its JSON order differs between processes.
    return (automation.name, automation.description, automation.enabled, automation.trigger, automation.actions)


def _notification_blocks(client) -> list[UUID]:
    """The ids of the operator's notification blocks named `orderly-alerts` (none: no notification action)."""
    return [
        block.id
        for block in client.read_block_documents(include_secrets=False)
        if block.name == NOTIFY_BLOCK and "notify" in (block.block_schema.capabilities if block.block_schema else [])
    ]
