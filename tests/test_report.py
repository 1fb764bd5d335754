"""The report's wording: who started a run, as the artifacts' descriptions say it."""

from __future__ import annotations

import uuid

from prefect.client.schemas.objects import CreatedBy, FlowRun

from tasks.report import run_origin


def flow_run(**fields) -> FlowRun:
    return FlowRun(flow_id=uuid.uuid4(), name="process all", **fields)


def test_a_run_without_a_deployment_was_started_from_the_command_line():
    assert run_origin(flow_run()) == "the command line"
    assert run_origin(None) == "the command line"


def test_a_deployment_run_names_the_schedule_the_ui_or_an_automation():
    deployment = uuid.uuid4()
    assert run_origin(flow_run(deployment_id=deployment, auto_scheduled=True)) == "the schedule"
    assert run_origin(flow_run(deployment_id=deployment)) == "the UI or API"
    by_automation = CreatedBy(id=uuid.uuid4(), type="AUTOMATION", display_value="Orderly: run failed or crashed")
    assert (
        run_origin(flow_run(deployment_id=deployment, created_by=by_automation))
        == "automation Orderly: run failed or crashed"
    )
