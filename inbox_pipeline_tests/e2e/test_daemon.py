"""End to end with real processes: dagster-daemon (sensors, queued runs, the default run launcher),
an S3 API server (moto), an SMTP server (aiosmtpd), PostgreSQL for the app and for Dagster.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import boto3
import dagster as dg
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.e2e.conftest import ROOT, SENDER, Daemon, run_worker_pids, seed, wait_for
from inbox_pipeline_tests.e2e.proxy import TcpProxy
from inbox_pipeline_tests.helpers import in_process_workspace

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TERMINAL = {
    "delivered", "unroutable", "duplicate", "quarantined", "unreadable", "confirmation_forwarded", "over_quota", "failed"
}


def rows(app_db: str) -> list[tuple[int, str, str, str | None]]:
    from sqlalchemy import select

    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.models import InboundEmail

    engine = make_engine(app_db)
    try:
        with session_factory(engine)() as session:
            return [
                (r.id, r.state, r.reason or "", r.subject)
                for r in session.scalars(select(InboundEmail).order_by(InboundEmail.id))
            ]
    finally:
        engine.dispose()


def ledger(app_db: str):
    from sqlalchemy import select

    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.models import Delivery

    engine = make_engine(app_db)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(Delivery).order_by(Delivery.id)))
    finally:
        engine.dispose()


def open_instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def finished_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun] | None:
    runs = instance.get_runs()
    return runs if runs and all(r.is_finished for r in runs) else None


def wait_all_final(app_db: str, count: int, daemon: Daemon, instance: dg.DagsterInstance, *, timeout: float) -> None:
    """Until ``count`` emails are registered and each is in a final state; else fail with the rows'
    states, the runs' statuses and the end of the daemon's log."""
    try:
        wait_for(
            lambda: len(r := rows(app_db)) == count and all(state in TERMINAL for _, state, _, _ in r),
            timeout=timeout,
            interval=1,
            what=f"all {count} emails to reach a final state",
        )
    except AssertionError as exc:
        states = Counter(state for _, state, _, _ in rows(app_db))
        statuses = Counter(r.status.value for r in instance.get_runs())
        raise AssertionError(f"{exc}: rows {dict(states)}, runs {dict(statuses)}\n{daemon.output()[-4000:]}") from None


def test_twenty_emails_through_the_daemon_with_s3_and_smtp_faults(
    tmp_path, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink, java_available
) -> None:
    host, port = moto_server.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))  # the daemon reaches S3 through this; the test cuts it
    home, env = daemon_env(smtp_sink.url, s3_endpoint=proxy.url)
    addresses = seed(
        postgres_url,
        [
            {"email": "alice@example.org", "kindle": "alice_k@kindle.example"},
            {"email": "bob@example.org", "kindle": "bob_k@kindle.example"},
            {"email": "erin@example.org", "kindle": "erin_k@kindle.example", "plan": "tiny", "limit": 2},
        ],
    )
    alice, bob, erin = (addresses[e] for e in ("alice@example.org", "bob@example.org", "erin@example.org"))
    emails = [mails.newsletter(n, alice) for n in range(1, 8)]  # 7 for alice
    emails += [mails.newsletter(n, bob) for n in range(11, 18)]  # 7 for bob
    emails.append(mails.newsletter(11, bob))  # the same Message-ID again: a duplicate
    emails.append(mails.newsletter(21, "stranger-abcdefgh@in.example"))  # unknown address
    emails.append(mails.confirmation(alice))  # forwarded to alice's own email
    emails += [mails.newsletter(n, erin) for n in range(31, 34)]  # erin's plan allows 2: one over quota
    assert len(emails) == 20

    proxy.cut()  # S3 unreachable while the first ticks run
    smtp_sink.refuse_next = 2  # the SMTP server answers 451 twice
    s3 = boto3.client("s3", endpoint_url=moto_server)
    for data in emails:  # SES names objects with unique ids, all landing in the same second
        s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=data)

    daemon = Daemon(env, tmp_path / "daemon.log")
    instance = open_instance(home)
    try:
        wait_for(lambda: proxy.refused >= 2 or not daemon.alive(), timeout=90, what="a tick to try S3")
        assert daemon.alive(), daemon.output()[-3000:]
        refused = proxy.refused  # S3 stays cut for a few more of the daemon's attempts
        wait_for(lambda: proxy.refused >= refused + 2 or not daemon.alive(), timeout=60, what="more refused calls")
        proxy.reconnect()
        started = time.monotonic()
        wait_all_final(postgres_url, 20, daemon, instance, timeout=240)
        runs = wait_for(lambda: finished_runs(instance), timeout=60, what="every run to finish")
        elapsed = time.monotonic() - started
    finally:
        daemon.stop()
        proxy.close()

    # Every email taken by one take run (the burst waited for S3) and worked on by a worker run (one
    # whose send failed went back in the queue and may have been claimed by another), every run a success.
    from inbox_pipeline.defs.common import TAG_TAKEN_IDS, email_ids_of_run

    taken = Counter(int(i) for r in runs if r.job_name == "take_inbox" for i in r.tags[TAG_TAKEN_IDS].split(","))
    worked = {i for r in runs if r.job_name == "process_inbox_batch" for i in email_ids_of_run(r)}
    ids = sorted(i for i, _, _, _ in rows(postgres_url))
    assert sorted(taken) == sorted(worked) == ids and set(taken.values()) == {1}, (taken, worked)
    assert {r.job_name for r in runs} == {"take_inbox", "process_inbox_batch"}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
    # The sensor's failed ticks while S3 was away are on record.
    (sensor_state,) = [s for s in instance.all_instigator_state() if s.instigator_name == "inbox_sensor"]
    ticks = instance.get_ticks(sensor_state.instigator_origin_id, sensor_state.selector_id)
    failed_ticks = [t for t in ticks if t.status.value == "FAILURE"]
    assert failed_ticks, "no failed inbox_sensor tick while S3 was unreachable"

    # Exactly the right emails at the SMTP server, each once.
    parsed = smtp_sink.parsed()
    sent = Counter((tuple(m["to"]), " ".join(str(p["Subject"]).split())) for m, p in zip(smtp_sink.messages, parsed))
    assert all(n == 1 for n in sent.values()), [k for k, n in sent.items() if n > 1]
    per_recipient = Counter(rcpt for (to, _subject) in sent for rcpt in to)
    assert per_recipient == {
        "alice_k@kindle.example": 7,
        "bob_k@kindle.example": 7,
        "erin_k@kindle.example": 2,
        "alice@example.org": 1,  # the confirmation, link first
        "erin@example.org": 1,  # quota reached, told once
    }
    assert smtp_sink.attempts == 18 + 2
    for message, p in zip(smtp_sink.messages, parsed):
        if message["to"][0].endswith("@kindle.example"):
            (epub,) = [a for a in p.iter_attachments() if a.get_content_type() == "application/epub+zip"]
            assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,45}\.k-[a-z2-7]{16}\.epub", epub.get_filename())
            assert p["From"] == SENDER and p.get_body(("plain",)).get_content().strip()
    confirm = next(p for m, p in zip(smtp_sink.messages, parsed) if m["to"] == ["alice@example.org"])
    body = confirm.get_body(("plain",)).get_content()
    assert body.index(mails.CONFIRM_LINK.format(n=1)) < body.index("Original message")

    # The right state and reason on every row.
    final = rows(postgres_url)
    assert Counter(state for _, state, _, _ in final) == {
        "delivered": 16,
        "duplicate": 1,
        "unroutable": 1,
        "confirmation_forwarded": 1,
        "over_quota": 1,
    }
    reasons = {state: reason for _, state, reason, _ in final if state != "delivered"}
    assert "same Message-ID" in reasons["duplicate"] and "bob@example.org" in reasons["duplicate"]
    assert "stranger-abcdefgh@in.example" in reasons["unroutable"]
    assert "alice@example.org" in reasons["confirmation_forwarded"]
    assert "quota" in reasons["over_quota"]
    assert all(r.startswith("sent to Kindle ") for _, s, r, _ in final if s == "delivered")
    deliveries = ledger(postgres_url)
    assert len(deliveries) == 16 and {d.status for d in deliveries} == {"sent"}
    # The two 451s fell on Kindle deliveries (retried, the ledger counts the attempts) or on
    # the confirmation forward (retried by its op): 20 attempts at the server, 18 messages kept.
    assert 16 <= sum(d.attempts for d in deliveries) <= 18
    print(f"20 emails processed in {elapsed:.0f} s after S3 came back")


TERMINATE = """
mutation($runId: String!) {
  terminateRun(runId: $runId, terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) {
    __typename
    ... on TerminateRunFailure { message }
    ... on PythonError { message }
  }
}
"""


def test_a_run_killed_during_delivery_and_reexecuted_from_the_api_does_not_send_twice(
    tmp_path, monkeypatch, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, stalling_smtp
) -> None:
    from dagster_graphql.client.query import LAUNCH_PIPELINE_REEXECUTION_MUTATION
    from dagster_graphql.test.utils import execute_dagster_graphql

    home, env = daemon_env(stalling_smtp.url, EPUBCHECK="false")
    for key, value in env.items():  # the API below loads the code location with the same settings
        monkeypatch.setenv(key, value)
    alice = seed(postgres_url, [{"email": "alice@example.org", "kindle": "alice_k@kindle.example"}])[
        "alice@example.org"
    ]
    stalling_smtp.stall.set()  # the relay takes the message and does not answer...
    boto3.client("s3", endpoint_url=moto_server).put_object(
        Bucket=s3_bucket, Key="incoming/one", Body=mails.newsletter(1, alice)
    )
    daemon = Daemon(env, tmp_path / "daemon.log")
    instance = open_instance(home)
    try:
        wait_for(lambda: stalling_smtp.arrived.is_set() or not daemon.alive(), timeout=150, what="DATA at the relay")
        assert daemon.alive(), daemon.output()[-3000:]
        (run,) = instance.get_runs()
        workers = wait_for(lambda: run_worker_pids(instance, run.run_id), timeout=10, what="the run worker")
        for pid in workers:  # ... and the run worker dies in the middle of delivery
            os.kill(pid, signal.SIGKILL)
        stalling_smtp.release.set()  # the relay had it: it delivers it

        # The code server sees its worker vanish and marks the run failed; if it has not yet, the
        # operator terminates it in the UI (the same GraphQL call).
        try:
            wait_for(lambda: instance.get_run_by_id(run.run_id).is_finished, timeout=20, what="the run to fail")
        except AssertionError:
            pass
        with in_process_workspace(instance, ROOT / "workspace.yaml") as ws:
            if not instance.get_run_by_id(run.run_id).is_finished:
                result = execute_dagster_graphql(ws.create_request_context(), TERMINATE, {"runId": run.run_id})
                assert result.data["terminateRun"]["__typename"] == "TerminateRunSuccess", result.data
            # Re-execute from failure, as the UI's button does.
            result = execute_dagster_graphql(
                ws.create_request_context(),
                LAUNCH_PIPELINE_REEXECUTION_MUTATION,
                {"reexecutionParams": {"parentRunId": run.run_id, "strategy": "FROM_FAILURE"}},
            )
            launched = result.data["launchPipelineReexecution"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            child_id = launched["run"]["runId"]
        child = wait_for(
            lambda: (r := instance.get_run_by_id(child_id)) and r.is_finished and r, timeout=120, what="the re-execution"
        )
    finally:
        daemon.stop()

    assert len(stalling_smtp.messages) == 1  # sent once, never twice
    assert child.status == dg.DagsterRunStatus.FAILURE  # it refuses to send again and says why
    steps = {
        e.step_key: e.dagster_event.event_type_value
        for e in instance.all_logs(child_id)
        if e.is_dagster_event and e.step_key and e.dagster_event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE")
    }
    assert steps == {"deliver_to_kindle": "STEP_FAILURE"}  # only the unfinished step ran again
    (delivery,) = ledger(postgres_url)
    assert delivery.status == "claimed" and delivery.attempts == 1
    ((_, state, reason, _),) = rows(postgres_url)
    assert state == "failed"
    assert f"delivery #{delivery.id}" in reason and "not sent again" in reason
