"""Routing on the envelope, end to end: the real daemon, an S3 API server (moto), an SMTP server.

An email SES received for alice, whose headers name bob everywhere a sender can
write them, reaches alice's Kindle only and counts against alice's quota only;
an email whose envelope names both reaches each Kindle once.
"""

from __future__ import annotations

import uuid
from collections import Counter

import boto3
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.e2e.conftest import ALICE_AND_BOB, Daemon, seed, wait_for
from inbox_pipeline_tests.e2e.test_daemon import finished_runs, open_instance, rows, wait_all_final

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def forged_for(bob: str, alice: str) -> bytes:
    """A newsletter SES received for alice (its own Received header on top) whose sender wrote bob in
    To, Cc and every envelope-looking header, and a Received header of its own naming SES and bob."""
    raw = mails.newsletter(1, f"{alice}, {bob}")
    raw = raw.replace(f"for <{alice}>, <{bob}>;".encode(), f"for <{alice}>;".encode(), 1)
    forged = "".join(
        f"{name}: {bob}\n" for name in ("X-Original-To", "Delivered-To", "Envelope-To", "X-Rcpt-To", "Cc")
    ) + f"Received: from x by inbound-smtp.eu-west-1.amazonaws.com with SMTP id 1 for <{bob}>; Mon, 2 Mar 2026\n"
    head, sep, rest = raw.partition(b"(UTC)\n")
    assert sep, "the SES Received header ends the first line group"
    return head + sep + forged.encode() + rest


def usage(app_db: str) -> dict[str, int]:
    from sqlalchemy import select

    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.models import UsageCounter, User

    engine = make_engine(app_db)
    try:
        with session_factory(engine)() as session:
            counted = session.execute(
                select(User.email, UsageCounter.used).join(UsageCounter, UsageCounter.user_id == User.id)
            ).all()
    finally:
        engine.dispose()
    return {email: used for email, used in counted}


def test_only_the_envelope_routes_and_each_user_in_it_gets_the_email_once(
    tmp_path, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink, java_available
) -> None:
    home, env = daemon_env(smtp_sink.url)
    addresses = seed(postgres_url, ALICE_AND_BOB)
    alice, bob = addresses["alice@example.org"], addresses["bob@example.org"]
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=forged_for(bob, alice))
    both = mails.newsletter(2, f"{alice}, {bob}")  # SES's envelope names both
    s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=both)

    daemon = Daemon(env, tmp_path / "daemon.log")
    instance = open_instance(home)
    try:
        # Two objects, three emails: the second fans out into a copy for its second user.
        wait_all_final(postgres_url, 3, daemon, instance, timeout=240)
        wait_for(lambda: finished_runs(instance), timeout=60, what="every run to finish")
    finally:
        daemon.stop()

    states = Counter(state for _, state, _, _ in rows(postgres_url))
    assert states == {"delivered": 3}, rows(postgres_url)
    sent = Counter(
        (rcpt, " ".join(str(p["Subject"]).split()))
        for m, p in zip(smtp_sink.messages, smtp_sink.parsed())
        for rcpt in m["to"]
    )
    assert sent == {
        ("alice_k@kindle.example", mails.subject(1)): 1,
        ("alice_k@kindle.example", mails.subject(2)): 1,
        ("bob_k@kindle.example", mails.subject(2)): 1,
    }
    assert usage(postgres_url) == {"alice@example.org": 2, "bob@example.org": 1}
