"""Every job has a run time limit: past it, Dagster's run monitoring ends the run, the email is
recorded as failed with the reason and the operator is told.

The run is created and started on a temporary instance as the daemon would see a stuck one;
time travels past the job's ``dagster/max_runtime`` and run monitoring's own check is applied.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import time_machine

from inbox_pipeline.defs.common import TAG_EMAIL_ID
from inbox_pipeline.defs.run_limits import EMAIL_RUN_SECONDS, MAX_RUNTIME_TAG
from inbox_pipeline_tests.defs.test_run_failure_sensor import (
    OPERATOR,
    add_reader,
    arrived,
    dep_job,
    deployment,
    evaluate_failure_sensor,
    midway_email,
    state_of,
    text_of,
)
from inbox_pipeline_tests.helpers import check_run_timeout


def test_every_job_carries_a_max_runtime_within_the_instance_default(monkeypatch, tmp_path) -> None:
    from inbox_pipeline_tests.defs.harness import configure

    configure(monkeypatch, tmp_path)
    from inbox_pipeline.definitions import defs

    jobs = defs().resolve_all_job_defs()
    assert jobs
    for job in jobs:
        if job.name.startswith("__"):
            continue  # Dagster's implicit asset job
        limit = int(job.tags[MAX_RUNTIME_TAG])
        assert 0 < limit <= 2 * 60 * 60, job.name


def test_a_stuck_run_is_ended_at_its_limit_recorded_and_reported(
    monkeypatch, tmp_path, database_url, smtp_sink
) -> None:
    started = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
    with deployment(
        monkeypatch, tmp_path, DATABASE_URL=database_url, MAILER=smtp_sink.url, OPERATOR_EMAIL=OPERATOR
    ) as dep:
        reader = add_reader(dep, "dora@example.org", kindle="dora_k@kindle.example")
        email_id, _ = midway_email(dep, reader, 4)
        job = dep_job(dep)
        with time_machine.travel(started, tick=False):
            run = dep.instance.create_run_for_job(
                job_def=job,
                run_config={"ops": {"parse_email": {"config": {"inbound_email_id": email_id}}}},
                tags={**job.tags, TAG_EMAIL_ID: str(email_id)},
            )
            dep.instance.report_dagster_event(
                dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_START.value, job_name=job.name), run.run_id
            )
        # Just inside its limit the run goes on; just past it, run monitoring ends it.
        for elapsed, status in [(EMAIL_RUN_SECONDS - 60, dg.DagsterRunStatus.STARTED),
                                (EMAIL_RUN_SECONDS + 60, dg.DagsterRunStatus.FAILURE)]:
            with time_machine.travel(started + timedelta(seconds=elapsed), tick=False):
                record = dep.instance.get_run_record_by_id(run.run_id)
                check_run_timeout(dep.instance, record)  # with the instance's default of an hour
            assert dep.instance.get_run_by_id(run.run_id).status == status

        said = [e.dagster_event.message or "" for e in dep.instance.all_logs(run.run_id) if e.dagster_event]
        assert f"Canceling due to exceeding maximum runtime of {EMAIL_RUN_SECONDS} seconds." in said

        assert evaluate_failure_sensor(dep, run.run_id, [job]) is None
        state, reason = state_of(dep, email_id)
        assert state == "failed" and run.run_id in reason
        (alert,) = arrived(smtp_sink, OPERATOR)
        assert run.run_id in text_of(alert)
        # The reader's notice waits out the grace period (time to re-execute), then goes once, still true.
        assert not arrived(smtp_sink, "dora@example.org")
        from inbox_pipeline.services.notify import DEFAULT_GRACE, resend_failed_notifications

        for _ in range(2):  # the retry sensor's next ticks
            with time_machine.travel(datetime.now(timezone.utc) + DEFAULT_GRACE + timedelta(minutes=1), tick=False):
                resend_failed_notifications(dep.pipeline())
        assert len(arrived(smtp_sink, "dora@example.org")) == 1
