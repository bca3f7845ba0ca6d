"""Our outages with the real daemon: the mailer down during a burst, then back.

S3 (moto) for the inbox and storage, PostgreSQL for the app and the Dagster
instance, an aiosmtpd server that says "try later" (451) to everything until it
is told otherwise. Every email must reach its Kindle exactly once, no user be
told anything, and the operator get one alert and one recovery.
"""

from __future__ import annotations

import uuid

import boto3
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.e2e.conftest import Daemon, seed, wait_for
from inbox_pipeline_tests.e2e.test_daemon import open_instance, rows

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OPERATOR = "ops@pipeline.example"


def test_the_mailer_down_during_a_burst_then_back_delivers_each_once_tells_no_user_and_the_operator_twice(
    tmp_path, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink
) -> None:
    home, env = daemon_env(
        smtp_sink.url, EPUBCHECK="false", BATCH_SIZE="10", RETRY_DELAY_SECONDS="0", OPERATOR_EMAIL=OPERATOR,
        WATCHDOG_INTERVAL_SECONDS="2", WATCHDOG_RESUME_SECONDS="4",
    )
    readers = [{"email": f"r{n}@example.org", "kindle": f"r{n}_k@kindle.example"} for n in range(3)]
    addresses = seed(postgres_url, readers)
    s3 = boto3.client("s3", endpoint_url=moto_server)
    smtp_sink.refuse_next = 10**6  # down: "try later" to every message
    for n in range(12):
        to = addresses[f"r{n % 3}@example.org"]
        s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=mails.newsletter(n, to))

    daemon = Daemon(env, tmp_path / "daemon.log")
    instance = open_instance(home)
    try:
        try:
            wait_for(
                lambda: len(r := rows(postgres_url)) == 12 and all(state == "waiting" for _, state, _, _ in r),
                timeout=240, interval=1, what="all 12 emails to wait for the mailer",
            )
            assert not smtp_sink.messages
            smtp_sink.refuse_next = 0  # back
            wait_for(
                lambda: [state for _, state, _, _ in rows(postgres_url)] == ["delivered"] * 12,
                timeout=240, interval=1, what="all 12 emails delivered",
            )
            wait_for(
                lambda: any("recovered" in (raw.get("subject") or "") for raw in _operator(smtp_sink)),
                timeout=60, interval=1, what="the operator's recovery message",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{rows(postgres_url)}\n{daemon.output()[-6000:]}") from None
        runs = instance.get_runs()
    finally:
        daemon.stop()
        instance.dispose()

    kindle = [to for raw in smtp_sink.messages for to in raw["to"] if to.endswith("_k@kindle.example")]
    assert sorted(kindle) == sorted([f"r{n % 3}_k@kindle.example" for n in range(12)])  # each exactly once
    users = {f"r{n}@example.org" for n in range(3)}
    assert not [raw for raw in smtp_sink.messages if users & set(raw["to"])]  # no user notice at all
    subjects = [m["Subject"] for raw, m in zip(smtp_sink.messages, smtp_sink.parsed()) if OPERATOR in raw["to"]]
    assert subjects == ["[inbox-pipeline] problem: the mailer", "[inbox-pipeline] recovered: the mailer"]
    assert all(r.status.value == "SUCCESS" for r in runs)  # our outage failed no run


def _operator(sink) -> list[dict]:
    parsed = sink.parsed()
    return [{"subject": m["Subject"]} for raw, m in zip(sink.messages, parsed) if OPERATOR in raw["to"]]
