"""Operations with the real daemon: operator alerts per run, notices only while true, an unreadable
inbox, and the UI's tick preview.

A dagster-daemon on a PostgreSQL instance, S3 (moto) for the inbox and storage, an aiosmtpd server.
Faults are S3's own answers: a bucket policy denying writes under ``books/`` (moto enforces a
bucket's Deny), a deleted inbox bucket. Runs are re-executed and sensors previewed through the
webserver's GraphQL API, as the UI does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import dagster as dg
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.e2e.conftest import ROOT, Daemon, seed, wait_for
from inbox_pipeline_tests.e2e.test_daemon import open_instance, rows, wait_all_final
from inbox_pipeline_tests.helpers import in_process_workspace

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OPERATOR = "ops@pipeline.example"
READER = {"email": "fay@example.org", "kindle": "fay_k@kindle.example"}


@contextmanager
def graphql(instance: dg.DagsterInstance, monkeypatch, env: dict[str, str]) -> Iterator:
    """``ask(query, variables)`` against the webserver's GraphQL schema, the code location loaded with ``env``."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with in_process_workspace(instance, ROOT / "workspace.yaml") as ws:
        yield lambda query, variables: execute_dagster_graphql(ws.create_request_context(), query, variables).data


@contextmanager
def running(env: dict[str, str], home, log, explain) -> Iterator[tuple[Daemon, dg.DagsterInstance]]:
    """The daemon and the instance; a failed wait or check also shows ``explain()`` and the daemon's log."""
    daemon = Daemon(env, log)
    instance = open_instance(home)
    try:
        yield daemon, instance
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain()}\n{daemon.output()[-6000:]}") from None
    finally:
        daemon.stop()
        instance.dispose()


def reexecute_from_failure(ask, run_id: str) -> str:
    from dagster_graphql.client.query import LAUNCH_PIPELINE_REEXECUTION_MUTATION

    data = ask(
        LAUNCH_PIPELINE_REEXECUTION_MUTATION,
        {"reexecutionParams": {"parentRunId": run_id, "strategy": "FROM_FAILURE"}},
    )
    launched = data["launchPipelineReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def finished(instance: dg.DagsterInstance, run_id: str, *, timeout: float = 150) -> dg.DagsterRun:
    return wait_for(
        lambda: (r := instance.get_run_by_id(run_id)) and r.is_finished and r, timeout=timeout, what=f"run {run_id}"
    )


def deny_writes(s3, bucket: str, prefix: str) -> None:
    statement = {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


def subjects_to(sink, address: str) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for raw, m in zip(sink.messages, sink.parsed()) if address in raw["to"]]


def notices(app_db: str) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.models import Notification

    engine = make_engine(app_db)
    try:
        with session_factory(engine)() as session:
            return [(n.kind, n.status) for n in session.scalars(select(Notification).order_by(Notification.id))]
    finally:
        engine.dispose()


def test_a_failed_run_reexecuted_fails_again_alerts_twice_and_succeeding_tells_the_operator_not_the_user(
    tmp_path, monkeypatch, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink
) -> None:
    grace_minutes = 1.5  # the failure-to-success below fits well inside it; the test then waits it out
    home, env = daemon_env(
        smtp_sink.url, EPUBCHECK="false", RETRY_DELAY_SECONDS="0", OPERATOR_EMAIL=OPERATOR,
        NOTICE_GRACE_MINUTES=str(grace_minutes), WATCHDOG_INTERVAL_SECONDS="2",
    )
    fay = seed(postgres_url, [READER])[READER["email"]]
    s3 = boto3.client("s3", endpoint_url=moto_server)
    deny_writes(s3, s3_bucket, "books/")  # the EPUB cannot be stored: a broken deployment, not an outage
    s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=mails.newsletter(4, fay))

    with running(env, home, tmp_path / "daemon.log", lambda: rows(postgres_url)) as (daemon, instance):
        first = wait_for(
            lambda: (r := instance.get_runs()) and r[-1].is_finished and r[-1], timeout=150, what="the first run"
        )
        assert first.status == dg.DagsterRunStatus.FAILURE
        with graphql(instance, monkeypatch, env) as ask:
            again = finished(instance, reexecute_from_failure(ask, first.run_id))  # still denied
            assert again.status == dg.DagsterRunStatus.FAILURE
            wait_for(lambda: len(subjects_to(smtp_sink, OPERATOR)) >= 2, timeout=60, what="two operator alerts")
            s3.delete_bucket_policy(Bucket=s3_bucket)
            fixed = finished(instance, reexecute_from_failure(ask, again.run_id))
        assert fixed.status == dg.DagsterRunStatus.SUCCESS
        (notice,) = [n for n in notices(postgres_url) if n[0] == "delivery_failed"]
        assert notice == ("delivery_failed", "deferred")  # success came within the grace
        wait_for(
            lambda: any(s.startswith("[inbox-pipeline] resolved:") for s in subjects_to(smtp_sink, OPERATOR)),
            timeout=60, what="the operator's resolved note",
        )
        # Past the grace the notice is re-checked and withdrawn, never sent.
        wait_for(
            lambda: ("delivery_failed", "withdrawn") in notices(postgres_url),
            timeout=grace_minutes * 60 + 60, interval=1, what="the deferred notice to be withdrawn",
        )
        alerts = subjects_to(smtp_sink, OPERATOR)  # before the daemon stops (its code server goes first)

    assert alerts[:2] == [
        f"[inbox-pipeline] process_email run {first.run_id[:8]} failed",
        f"[inbox-pipeline] process_email run {again.run_id[:8]} failed",
    ], alerts
    assert len(alerts) == 3 and alerts[2].startswith("[inbox-pipeline] resolved: process_email run"), alerts
    assert not subjects_to(smtp_sink, READER["email"])  # no failure notice, before or after
    assert len(subjects_to(smtp_sink, READER["kindle"])) == 1
    ((_, state, _, _),) = rows(postgres_url)
    assert state == "delivered"


def test_an_inbox_made_unreadable_alerts_once_and_recovers_once_it_is_back(
    tmp_path, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server)
    inbox_bucket = f"inbox-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=inbox_bucket)
    home, env = daemon_env(
        smtp_sink.url, EPUBCHECK="false", OPERATOR_EMAIL=OPERATOR, WATCHDOG_INTERVAL_SECONDS="2",
        INBOX=f"s3://{inbox_bucket}/incoming/",  # storage stays in s3_bucket
    )
    fay = seed(postgres_url, [READER])[READER["email"]]

    with running(env, home, tmp_path / "daemon.log", lambda: subjects_to(smtp_sink, OPERATOR)) as (daemon, instance):
        s3.put_object(Bucket=inbox_bucket, Key="incoming/before", Body=mails.newsletter(1, fay))
        wait_all_final(postgres_url, 1, daemon, instance, timeout=150)
        for obj in s3.list_objects_v2(Bucket=inbox_bucket).get("Contents", []):  # only an empty bucket goes
            s3.delete_object(Bucket=inbox_bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=inbox_bucket)
        wait_for(lambda: subjects_to(smtp_sink, OPERATOR), timeout=90, what="the operator's alert")
        s3.create_bucket(Bucket=inbox_bucket)
        s3.put_object(Bucket=inbox_bucket, Key="incoming/after", Body=mails.newsletter(2, fay))
        wait_all_final(postgres_url, 2, daemon, instance, timeout=150)
        wait_for(
            lambda: any("recovered" in s for s in subjects_to(smtp_sink, OPERATOR)),
            timeout=90, what="the operator's recovery message",
        )
        # A few more watchdog ticks: nothing else opens.
        ticks = _watchdog_ticks(instance)
        wait_for(lambda: _watchdog_ticks(instance) >= ticks + 3, timeout=60, what="three more watchdog ticks")
        alerts = subjects_to(smtp_sink, OPERATOR)  # before the daemon stops (its code server goes first)

    assert alerts == ["[inbox-pipeline] problem: the inbox", "[inbox-pipeline] recovered: the inbox"]
    assert len(subjects_to(smtp_sink, READER["kindle"])) == 2
    assert not subjects_to(smtp_sink, READER["email"])


def _watchdog_ticks(instance: dg.DagsterInstance) -> int:
    (state,) = [s for s in instance.all_instigator_state() if s.instigator_name == "deployment_watchdog"]
    return len(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000))


SENSOR_DRY_RUN = """
mutation($selectorData: SensorSelector!, $cursor: String) {
  sensorDryRun(selectorData: $selectorData, cursor: $cursor) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { runRequests { runKey } skipReason cursor error { message } }
    }
    ... on PythonError { message }
  }
}
"""


def test_previewing_the_inbox_sensors_tick_in_the_ui_changes_no_row_object_or_run(
    tmp_path, monkeypatch, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink
) -> None:
    home, env = daemon_env(smtp_sink.url, EPUBCHECK="false")
    fay = seed(postgres_url, [READER])[READER["email"]]
    s3 = boto3.client("s3", endpoint_url=moto_server)
    for n in range(2):
        s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=mails.newsletter(n, fay))

    def objects() -> list[str]:
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", []))

    before = (rows(postgres_url), objects())
    instance = open_instance(home)
    try:
        with graphql(instance, monkeypatch, env) as ask:
            data = ask(
                SENSOR_DRY_RUN,
                {"selectorData": {"repositoryLocationName": "inbox_pipeline", "repositoryName": "__repository__",
                                  "sensorName": "inbox_sensor"}, "cursor": None},  # the UI sends the cursor too
            )
        runs = instance.get_runs()
    finally:
        instance.dispose()

    tick = data["sensorDryRun"]
    assert tick["__typename"] == "DryRunInstigationTick", tick
    evaluation = tick["evaluationResult"]
    assert evaluation["error"] is None, evaluation["error"]
    assert evaluation["runRequests"], evaluation  # the preview saw the mail: what a real tick would launch
    assert (rows(postgres_url), objects()) == before
    assert before[0] == [] and len(before[1]) == 2
    assert runs == []
