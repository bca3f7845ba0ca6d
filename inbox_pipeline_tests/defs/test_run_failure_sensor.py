"""The run-failure sensor on real Dagster runs: a failed run tells the user and the operator once,
a run Dagster will still retry tells nobody, and "try later" from the mail server is sent later.

Runs are executed on a temporary Dagster instance (with ``run_retries`` as in dagster.yaml
where the test needs it); the sensor is evaluated with ``dg.build_run_status_sensor_context``
on the run's real failure event. Mail goes to an aiosmtpd server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import dagster as dg
import pytest

from inbox_pipeline.defs.alerts import (
    NOTIFICATION_RETRY_SENSOR,
    RUN_FAILURE_SENSOR,
    TAG_OPERATOR_ALERT,
    build_notification_retry_sensor,
    build_run_failure_sensor,
)
from inbox_pipeline.defs.common import TAG_EMAIL_ID
from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import Deployment, add_reader, configure, deployment
from inbox_pipeline_tests.helpers import tags_kept_on_retry

OPERATOR = "ops@pipeline.example"


# A job whose worker "crashes" mid-way: nothing in it records the failure, as when a container dies.
@dg.op(config_schema={"message": str})
def lose_the_worker(context) -> None:
    raise RuntimeError(context.op_config["message"])


@dg.job(name="process_email_crashing")
def crashing_job() -> None:
    lose_the_worker()


@pytest.fixture
def dep(monkeypatch, tmp_path, database_url, smtp_sink) -> Iterator[Deployment]:
    """A deployment mailing through ``smtp_sink``, with an operator address."""
    with deployment(
        monkeypatch, tmp_path, DATABASE_URL=database_url, MAILER=smtp_sink.url, OPERATOR_EMAIL=OPERATOR
    ) as deployed:
        yield deployed


def crash(dep: Deployment, email_id: int, message: str) -> dg.ExecuteJobResult:
    """A run for the email whose worker is lost with ``message``."""
    return dg.execute_job(
        dg.reconstructable(crashing_job), instance=dep.instance,
        run_config={"ops": {"lose_the_worker": {"config": {"message": message}}}},
        tags={TAG_EMAIL_ID: str(email_id)}, raise_on_error=False,
    )


def resources(dep: Deployment):
    from inbox_pipeline.defs.resources import build_resources

    return build_resources(dep.settings)


def evaluate_failure_sensor(dep: Deployment, run_id: str, jobs):
    """One evaluation of the run-failure sensor on the run's stored failure event."""
    run = dep.instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    (failure,) = dep.instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    sensor = build_run_failure_sensor(jobs)
    with dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR,
        dagster_event=failure.dagster_event,
        dagster_instance=dep.instance,
        dagster_run=run,
        resources=resources(dep),
    ) as context:
        return sensor(context.for_run_failure())


def evaluate_retry_sensor(dep: Deployment):
    sensor = build_notification_retry_sensor()
    with dg.build_sensor_context(instance=dep.instance, resources=resources(dep)) as context:
        return sensor(context)


def arrived(sink, to: str) -> list:
    return [msg for raw, msg in zip(sink.messages, sink.parsed()) if to in raw["to"]]


def text_of(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def midway_email(dep: Deployment, address: str, n: int) -> tuple[int, int]:
    """A newsletter taken in, parsed, routed and recorded (its run then crashes): (email id, newsletter id)."""
    import hashlib

    from inbox_pipeline.db.intake import register_inbound
    from inbox_pipeline.services.process import parse_inbound
    from inbox_pipeline.services.route import record_newsletter, route_parsed

    p = dep.pipeline()
    raw = mails.newsletter(n, address)
    p.inbox.put(f"n{n}.eml", raw)
    archived = p.inbox.archive(f"n{n}.eml")
    with p.sessions.begin() as session:
        row, _ = register_inbound(
            session, storage_key=archived, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
            received_at=datetime.now(timezone.utc),
        )
        email_id = row.id
    parsed = parse_inbound(p, email_id)
    ref, _ = record_newsletter(p, parsed, route_parsed(p, parsed))
    return email_id, ref.newsletter_id


def state_of(dep: Deployment, email_id: int) -> tuple[str, str]:
    return next((state, reason) for i, state, reason, _ in dep.rows() if i == email_id)


def evaluate_success_sensor(dep: Deployment, run_id: str, jobs):
    from inbox_pipeline.defs.alerts import build_run_success_sensor

    run = dep.instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    (success,) = dep.instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    with dg.build_run_status_sensor_context(
        sensor_name="email_run_success_sensor",
        dagster_event=success.dagster_event,
        dagster_instance=dep.instance,
        dagster_run=run,
        resources=resources(dep),
    ) as context:
        return build_run_success_sensor(jobs)(context)


def reexecute_as_the_ui_does(dep: Deployment, parent_run_id: str) -> dg.ExecuteJobResult:
    """From failure, with the parent's tags (the UI and the run-retry daemon copy them; execute_job does not)."""
    from inbox_pipeline_tests.defs.harness import job_for

    parent = dep.instance.get_run_by_id(parent_run_id)
    tags = tags_kept_on_retry(parent.tags)
    with dg.execute_job(
        job_for(parent.job_name), instance=dep.instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(parent_run_id, dep.instance),
        tags=tags, raise_on_error=False,
    ) as result:
        return result


def break_storage(dep: Deployment) -> None:
    """The EPUB storage folder replaced by a file: every write fails (not an outage: a broken deployment)."""
    import shutil

    storage = dep.data_dir / "storage"
    shutil.rmtree(storage, ignore_errors=True)
    storage.write_text("not a folder")


def mend_storage(dep: Deployment) -> None:
    storage = dep.data_dir / "storage"
    storage.unlink()
    storage.mkdir()


def test_a_reexecution_failing_again_alerts_again_and_one_that_succeeds_closes_the_episode_untold_to_the_user(
    dep, smtp_sink
) -> None:
    import time_machine

    from inbox_pipeline.defs.alerts import TAG_OPERATOR_ALERT_RUN, TAG_RESOLVED_BY
    from inbox_pipeline.services.notify import DEFAULT_GRACE

    jobs = [dep_job(dep)]
    fay = add_reader(dep, "fay@example.org", kindle="fay_k@kindle.example")
    dep.pipeline().inbox.put("f.eml", mails.newsletter(4, fay))
    break_storage(dep)
    (first,) = dep.drain()
    assert not first.success
    assert evaluate_failure_sensor(dep, first.run_id, jobs) is None
    evaluate_failure_sensor(dep, first.run_id, jobs)  # seen twice: one alert

    again = reexecute_as_the_ui_does(dep, first.run_id)  # storage still broken
    assert not again.success
    inherited = dep.instance.get_run_by_id(again.run_id).tags
    assert inherited[TAG_OPERATOR_ALERT] == "sent" and inherited[TAG_OPERATOR_ALERT_RUN] == first.run_id
    assert evaluate_failure_sensor(dep, again.run_id, jobs) is None
    assert [a["Subject"] for a in arrived(smtp_sink, OPERATOR)] == [
        f"[inbox-pipeline] process_email run {first.run_id[:8]} failed",
        f"[inbox-pipeline] process_email run {again.run_id[:8]} failed",
    ]

    mend_storage(dep)
    fixed = reexecute_as_the_ui_does(dep, again.run_id)
    assert fixed.success
    evaluate_success_sensor(dep, fixed.run_id, jobs)
    evaluate_success_sensor(dep, fixed.run_id, jobs)  # seen twice: one note
    with time_machine.travel(datetime.now(timezone.utc) + DEFAULT_GRACE * 2, tick=False):
        evaluate_retry_sensor(dep)

    alerts = arrived(smtp_sink, OPERATOR)
    assert len(alerts) == 3 and alerts[2]["Subject"].startswith("[inbox-pipeline] resolved: process_email run")
    assert first.run_id in text_of(alerts[2]) and again.run_id in text_of(alerts[2])
    assert dep.instance.get_run_by_id(fixed.run_id).tags[TAG_OPERATOR_ALERT] == "resolved"
    for failed in (first, again):
        assert dep.instance.get_run_by_id(failed.run_id).tags[TAG_RESOLVED_BY] == fixed.run_id
    assert not arrived(smtp_sink, "fay@example.org")  # no failure notice, before or after
    assert len(arrived(smtp_sink, "fay_k@kindle.example")) == 1
    (notice,) = [n for n in dep.notifications() if n.kind == "delivery_failed"]
    assert notice.status == "withdrawn"
    assert state_of(dep, 1)[0] == "delivered"


def test_a_mail_server_saying_try_later_holds_the_email_without_failing_the_run_or_telling_anyone(
    dep, smtp_sink
) -> None:
    alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
    dep.pipeline().inbox.put("a.eml", mails.newsletter(1, alice))
    smtp_sink.refuse_next = 1000  # the mail server says "try later" to everything for a while
    (run,) = dep.drain()
    assert run.success  # our outage is not the email's failure
    state, reason = state_of(dep, 1)
    assert state == "waiting" and reason.startswith("waiting for the mailer: deliver_to_kindle") and "451" in reason
    assert dep.instance.get_run_by_id(run.run_id).tags["inbox-pipeline/outcome"] == "waiting"
    assert not smtp_sink.messages and not dep.notifications()


def dep_job(dep: Deployment) -> dg.JobDefinition:
    from inbox_pipeline.defs.email.job import build_process_email_job

    return build_process_email_job(dep.settings.retry_delay_seconds)


def test_a_run_dagster_will_retry_tells_nobody_until_its_last_retry_fails(
    monkeypatch, tmp_path, database_url, smtp_sink
) -> None:
    import time_machine

    from inbox_pipeline.services.notify import DEFAULT_GRACE

    with deployment(
        monkeypatch, tmp_path, instance_overrides={"run_retries": {"enabled": True, "max_retries": 1}},
        DATABASE_URL=database_url, MAILER=smtp_sink.url, OPERATOR_EMAIL=OPERATOR,
    ) as dep:
        bea = add_reader(dep, "bea@example.org", kindle="bea_k@kindle.example")
        email_id, newsletter_id = midway_email(dep, bea, 2)
        first = crash(dep, email_id, "the worker container was lost")
        assert not first.success
        assert dep.instance.get_run_by_id(first.run_id).tags.get("dagster/will_retry") == "true"
        skipped = evaluate_failure_sensor(dep, first.run_id, [crashing_job])
        assert isinstance(skipped, dg.SkipReason) and "will retry" in skipped.skip_message
        assert state_of(dep, email_id)[0] == "routed"  # untouched: the retry may still deliver it
        assert not smtp_sink.messages and TAG_OPERATOR_ALERT not in dep.instance.get_run_by_id(first.run_id).tags

        # Dagster's retry fails too: a re-execution in the same run group, tagged as the daemon tags it.
        daemon_tags = {"dagster/parent_run_id": first.run_id, "dagster/root_run_id": first.run_id,
                       "dagster/retry_number": "1"}
        retry = dg.execute_job(
            dg.reconstructable(crashing_job), instance=dep.instance,
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, dep.instance),
            tags={TAG_EMAIL_ID: str(email_id), **daemon_tags}, raise_on_error=False,
        )
        assert not retry.success
        assert dep.instance.get_run_by_id(retry.run_id).tags.get("dagster/will_retry") == "false"
        assert evaluate_failure_sensor(dep, retry.run_id, [crashing_job]) is None
        evaluate_failure_sensor(dep, retry.run_id, [crashing_job])  # seen twice: told once

        state, reason = state_of(dep, email_id)
        assert state == "failed" and retry.run_id in reason and "the worker container was lost" in reason
        (alert,) = arrived(smtp_sink, OPERATOR)
        assert retry.run_id in text_of(alert) and "lose_the_worker" in text_of(alert)
        assert not arrived(smtp_sink, "bea@example.org")  # the user's notice waits out the grace ...
        with time_machine.travel(datetime.now(timezone.utc) + DEFAULT_GRACE * 2, tick=False):
            evaluate_retry_sensor(dep)
            evaluate_retry_sensor(dep)
        (told,) = arrived(smtp_sink, "bea@example.org")  # ... then goes out once, in plain words
        assert told["Subject"] == f"Could not deliver: {mails.subject(2)}"
        assert "went wrong on our side" in text_of(told)
        assert "worker container" not in text_of(told) and retry.run_id not in text_of(told)
        assert [(n.kind, n.dedup_key, n.status) for n in dep.notifications()] == [
            ("delivery_failed", f"newsletter-{newsletter_id}", "sent")
        ]


def test_production_retries_skip_op_failures_and_without_an_operator_address_the_alert_is_recorded(
    monkeypatch, tmp_path, smtp_sink
) -> None:
    # deploy/*/dagster.yaml: run retries only for crashes, not for op failures.
    retries = {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
    with deployment(monkeypatch, tmp_path, instance_overrides={"run_retries": retries}, MAILER=smtp_sink.url) as dep:
        cid = add_reader(dep, "cid@example.org", kindle="cid_k@kindle.example")
        email_id, _ = midway_email(dep, cid, 3)
        run = crash(dep, email_id, "out of memory")
        assert evaluate_failure_sensor(dep, run.run_id, [crashing_job]) is None
        assert state_of(dep, email_id)[0] == "failed"
        assert [n.status for n in dep.notifications()] == ["deferred"]  # the user hears after the grace
        assert not smtp_sink.messages  # no operator address: no alert mail ...
        tags = dep.instance.get_run_by_id(run.run_id).tags
        assert tags[TAG_OPERATOR_ALERT] == "logged"  # ... but recorded on the run
        assert "INBOX_PIPELINE_OPERATOR_EMAIL" in tags["inbox-pipeline/operator-alert-detail"]
        engine = [e.dagster_event.message or "" for e in dep.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
        assert any("inbox-pipeline: no INBOX_PIPELINE_OPERATOR_EMAIL" in m for m in engine)


def test_the_sensors_load_with_the_jobs_they_watch(monkeypatch, tmp_path) -> None:
    from inbox_pipeline.config import Settings
    from inbox_pipeline.defs.digests.jobs import build_digest_job
    from inbox_pipeline.defs.resources import build_resources

    configure(monkeypatch, tmp_path)
    settings = Settings.from_env()
    digest_job = build_digest_job(settings.retry_delay_seconds)
    process_email = build_process_email_job_for(settings)
    failure = build_run_failure_sensor([process_email, digest_job])
    defs = dg.Definitions(
        jobs=[process_email, digest_job],
        sensors=[failure, build_notification_retry_sensor()],
        resources=build_resources(settings),
    )
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert repo.get_sensor_def(RUN_FAILURE_SENSOR).default_status == dg.DefaultSensorStatus.RUNNING
    assert repo.get_sensor_def(NOTIFICATION_RETRY_SENSOR).default_status == dg.DefaultSensorStatus.RUNNING
    assert "compile_digests" in failure.description and "will not retry" in failure.description


def build_process_email_job_for(settings) -> dg.JobDefinition:
    from inbox_pipeline.defs.email.job import build_process_email_job

    return build_process_email_job(settings.retry_delay_seconds)


def test_the_emails_of_a_run_come_from_its_tags_or_its_config() -> None:
    from inbox_pipeline.defs.common import email_ids_of_run

    def run(tags=None, config=None) -> dg.DagsterRun:
        return dg.DagsterRun(job_name="j", run_id="r", tags=tags or {}, run_config=config or {})

    assert email_ids_of_run(run({TAG_EMAIL_ID: "7"})) == [7]
    assert email_ids_of_run(run({"inbox-pipeline/email-ids": "3, 4,4"})) == [3, 4]
    assert email_ids_of_run(run(config={"ops": {"parse_email": {"config": {"inbound_email_id": 9, "storage_key": "k"}}}})) == [9]
    take = {"ops": {"take_inbox_emails": {"config": {"emails": [{"key": "a"}, {"key": "b"}]}}}}
    assert email_ids_of_run(run(config=take)) == []  # pending objects: a take run queues them, works on none
    assert email_ids_of_run(run(config={"ops": {"compile_and_deliver_digests": {"config": {"as_of": ""}}}})) == []
    resumed = {"ops": {"work_queue": {"config": {"registered": [21, 22]}}}}
    assert email_ids_of_run(run(config=resumed)) == [21, 22]
    assert email_ids_of_run(run(config={"ops": {"parse_email": {"config": {"inbound_email_id": 0}}}})) == []
