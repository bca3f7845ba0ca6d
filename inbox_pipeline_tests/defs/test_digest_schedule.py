"""The digest and cleanup schedules and jobs inside the real, merged Definitions.

The schedule is evaluated as the daemon would (``build_schedule_context`` +
``evaluate_tick``) and its run executed in process against a real database,
storage folder and SMTP server.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from sqlalchemy import select, update

from inbox_pipeline.config import Settings
from inbox_pipeline_tests.services.digest_world import SENDER, World, received_digests

UTC = timezone.utc
ALICE = "alice@readers.example"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def deployment(tmp_path, database_url, smtp_sink, monkeypatch):
    from inbox_pipeline.definitions import build_definitions

    for key in list(os.environ):  # resources read INBOX_PIPELINE_* from the process too
        if key.startswith("INBOX_PIPELINE_") and key != "INBOX_PIPELINE_TEST_PG":
            monkeypatch.delenv(key)
    settings = Settings.from_env(
        {
            "INBOX_PIPELINE_DATA_DIR": str(tmp_path / "data"),
            "INBOX_PIPELINE_DATABASE_URL": database_url,
            "INBOX_PIPELINE_INBOX": str(tmp_path / "inbox"),
            "INBOX_PIPELINE_STORAGE": str(tmp_path / "storage"),
            "INBOX_PIPELINE_MAILER": smtp_sink.url,
            "INBOX_PIPELINE_SENDER": SENDER,
            "INBOX_PIPELINE_FETCH_IMAGES": "false",
            "INBOX_PIPELINE_RETRY_DELAY_SECONDS": "0",
        }
    )
    world = World.create(tmp_path, database_url, smtp_sink.url)
    world.add_user(ALICE, timezone="Europe/Berlin", delivery="daily@07", kindle="alice@kindle.example")
    defs = build_definitions(settings)
    yield defs, world
    world.close()


def evaluate(defs: dg.Definitions, name: str, tick: datetime):
    schedule = defs.get_schedule_def(name)
    with dg.build_schedule_context(
        scheduled_execution_time=tick, resources={"pipeline": defs.resources["pipeline"]}
    ) as context:
        return schedule.evaluate_tick(context)


def test_definitions_load_with_both_schedules_running(deployment):
    defs, _ = deployment
    dg.Definitions.validate_loadable(defs)
    digests = defs.get_schedule_def("digest_schedule")
    assert (digests.cron_schedule, digests.execution_timezone) == ("0 * * * *", "UTC")
    assert digests.default_status == dg.DefaultScheduleStatus.RUNNING
    assert digests.job_name == "compile_digests"
    cleanup = defs.get_schedule_def("cleanup_schedule")
    assert cleanup.default_status == dg.DefaultScheduleStatus.RUNNING and cleanup.job_name == "clean_up_expired"
    for job_name in ("compile_digests", "clean_up_expired"):
        job = defs.get_job_def(job_name)
        assert job.description and all(node.definition.description for node in job.nodes)
    assert digests.description and cleanup.description
    assert dg.AssetKey("digest") in {spec.key for spec in defs.assets}


def test_schedule_asks_for_a_run_when_due_and_the_run_delivers_once(deployment, smtp_sink):
    defs, world = deployment
    early = world.arrive(ALICE, at("2026-10-26 05:10"))
    # 06:00 UTC is 07:00 in Berlin (CET): due. Before that, no run.
    before = evaluate(defs, "digest_schedule", at("2026-10-26 05:00"))
    assert before.run_requests == [] and "no digest due" in before.skip_message

    # The daemon is down at 06:00, 07:00 and 08:00; after downtime it evaluates only the latest tick.
    late = world.arrive(ALICE, at("2026-10-26 07:30"))
    data = evaluate(defs, "digest_schedule", at("2026-10-26 09:00"))
    (request,) = data.run_requests
    assert request.run_key == "digests@2026-10-26T09:00Z"
    assert request.tags["inbox-pipeline/digests-due"] == "1"

    job = defs.get_job_def("compile_digests")
    result = job.execute_in_process(run_config=request.run_config, tags=request.tags)
    assert result.success
    got = received_digests([m["data"] for m in smtp_sink.messages])
    assert [(d.to, d.subject, d.markers()) for d in got] == [
        ("alice@kindle.example", "Daily digest — 26 Oct 2026", [early.marker, late.marker])
    ]
    materializations = result.asset_materializations_for_node("compile_and_deliver_digests")
    assert [m.asset_key for m in materializations] == [dg.AssetKey("digest")]
    assert materializations[0].metadata["newsletters"].value == 2

    # The same run again (a re-execution): nothing is sent twice; the next tick has nothing to do.
    again = job.execute_in_process(run_config=request.run_config)
    assert again.success and len(smtp_sink.messages) == 1
    assert evaluate(defs, "digest_schedule", at("2026-10-26 10:00")).run_requests == []


def test_a_digest_run_refuses_a_time_in_the_future(deployment):
    defs, _ = deployment
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    result = defs.get_job_def("compile_digests").execute_in_process(
        run_config={"ops": {"compile_and_deliver_digests": {"config": {"as_of": future}}}}, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("compile_and_deliver_digests")
    assert "in the future" in failure.error.message or "in the future" in str(failure.user_failure_data)


def test_cleanup_job_removes_what_is_past_retention(deployment):
    from inbox_pipeline.db.models import InboundEmail, Newsletter

    defs, world = deployment
    world.add_user("ivy@readers.example", timezone="UTC", delivery="instant", kindle="ivy@kindle.example")
    old = world.arrive("ivy@readers.example", datetime.now(UTC) - timedelta(days=40), expect="sent")
    young = world.arrive("ivy@readers.example", datetime.now(UTC) - timedelta(days=2), expect="sent")
    with world.pipeline.sessions.begin() as session:
        old_email = session.scalar(
            select(Newsletter.inbound_email_id).where(Newsletter.id == world.newsletter_ids[old.number])
        )
        session.execute(
            update(InboundEmail)
            .where(InboundEmail.id == old_email)
            .values(state_changed_at=datetime.now(UTC) - timedelta(days=31))
        )
    result = defs.get_job_def("clean_up_expired").execute_in_process()
    assert result.success
    with world.pipeline.sessions() as session:
        remaining = set(session.scalars(select(Newsletter.id)))
    assert remaining == {world.newsletter_ids[young.number]}
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["inbound_emails"].value == 1
