"""Run sizing with the real daemon: a burst in batch runs, an unreadable email failing nothing, a quiet email alone."""

from __future__ import annotations

import uuid
from collections import Counter

import boto3
import dagster as dg
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.e2e.conftest import ALICE_AND_BOB, Daemon, seed, wait_for
from inbox_pipeline_tests.e2e.test_daemon import finished_runs, open_instance, rows, wait_all_final

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BROKEN = b'{"From": "a@b.example", "Subject": "cut off'  # an inbound-parse webhook body cut short


def test_a_burst_goes_through_batch_runs_an_unreadable_email_fails_nothing_and_a_quiet_one_runs_alone(
    tmp_path, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink
) -> None:
    home, env = daemon_env(smtp_sink.url, EPUBCHECK="false", BATCH_SIZE="10")
    addresses = seed(postgres_url, ALICE_AND_BOB)
    alice, bob = addresses["alice@example.org"], addresses["bob@example.org"]
    s3 = boto3.client("s3", endpoint_url=moto_server)
    burst = [mails.newsletter(n, alice) for n in range(1, 13)] + [mails.newsletter(n, bob) for n in range(21, 33)]
    burst.insert(7, BROKEN)
    for data in burst:  # all waiting before the daemon's first tick: one tick takes them all
        s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=data)

    daemon = Daemon(env, tmp_path / "daemon.log")
    instance = open_instance(home)
    try:
        wait_all_final(postgres_url, 25, daemon, instance, timeout=180)
        runs = wait_for(lambda: finished_runs(instance), timeout=60, what="the batch runs to finish")
        burst_rows = rows(postgres_url)

        # A quiet inbox: one email, its own per-email run.
        s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=mails.newsletter(41, bob))
        wait_for(lambda: len(smtp_sink.messages) == 25, timeout=90, what="the quiet email at the SMTP server")
        quiet = wait_for(
            lambda: [r for r in instance.get_runs() if r.job_name == "process_email" and r.is_finished],
            timeout=30,
            what="the quiet email's run",
        )
    finally:
        daemon.stop()

    from inbox_pipeline.defs.common import TAG_TAKEN_IDS, email_ids_of_run

    # 25 emails, 10 named in the take run's config (BATCH_SIZE): it listed the inbox after them and
    # took the other 15 itself, so one take run took them all; every email was worked on by exactly
    # one worker run (they claim one at a time from the queue).
    takes = [r for r in runs if r.job_name == "take_inbox"]
    workers = [r for r in runs if r.job_name == "process_inbox_batch"]
    assert len(takes) == 1 and len(takes) + len(workers) == len(runs) and workers
    assert takes[0].tags["inbox-pipeline/email-count"] == "10"
    taken = Counter(int(i) for r in takes for i in r.tags[TAG_TAKEN_IDS].split(","))
    worked = Counter(i for r in workers for i in email_ids_of_run(r))
    ids = [i for i, _, _, _ in burst_rows]
    assert sorted(taken) == sorted(worked) == ids and set(taken.values()) == set(worked.values()) == {1}
    (broken_id,) = [i for i, state, _, _ in burst_rows if state == "unreadable"]
    # The email that is not an email ends unreadable in a green run; every other one was delivered once.
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    states = Counter(state for _, state, _, _ in burst_rows)
    assert states == {"delivered": 24, "unreadable": 1}, states
    assert next(reason for i, _, reason, _ in burst_rows if i == broken_id).startswith("not valid JSON: ")
    sent = Counter((tuple(m["to"]), " ".join(str(p["Subject"]).split())) for m, p in zip(smtp_sink.messages, smtp_sink.parsed()))
    assert set(sent.values()) == {1} and len(sent) == 25
    assert sum(n for (to, _), n in sent.items() if to == ("alice_k@kindle.example",)) == 12
    assert sum(n for (to, _), n in sent.items() if to == ("bob_k@kindle.example",)) == 13  # 12 + the quiet one

    # The quiet email: a per-email run, found by its Message-ID tag.
    (run,) = quiet
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["inbox-pipeline/message-id"] == mails.message_id(41)
    assert Counter(state for _, state, _, _ in rows(postgres_url)) == {"delivered": 25, "unreadable": 1}
