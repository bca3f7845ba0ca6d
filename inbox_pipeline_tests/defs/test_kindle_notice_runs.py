"""Amazon's notice arrives through the inbox at our sender address and is handled by the email jobs.

The real Definitions, inbox sensor and jobs on a Dagster test instance, an S3 inbox on the moto
server (mail as SES stores it) and the aiosmtpd sink. What is asserted is what arrived there, the
rows, the run's outcome tag and the ``kindle_delivery`` record.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from inbox_pipeline.defs.common import TAG_OUTCOME
from inbox_pipeline_tests.defs.harness import add_reader, current_definitions, deployment
from inbox_pipeline_tests.defs.test_one_path import orchard_newsletter
from inbox_pipeline_tests.defs.test_pipeline import by_recipient, epub_attachment
from inbox_pipeline_tests.fixtures.kindle_notices import E999_TEXT, kindle_notice
from inbox_pipeline_tests.helpers import via_ses

KINDLE = "alice_7kq2x@kindle.example"


@pytest.mark.parametrize("batch_size", ["1", "20"], ids=["process_email", "process_inbox_batch"])
def test_a_notice_at_the_sender_address_gets_one_safe_mode_resend(
    monkeypatch, tmp_path: Path, smtp_sink, s3_bucket, batch_size
) -> None:
    settings = dict(
        MAILER=smtp_sink.url, BATCH_SIZE=batch_size, INBOX=f"s3://{s3_bucket}/incoming/",
        STORAGE=f"s3://{s3_bucket}/books/",
    )
    with deployment(monkeypatch, tmp_path, **settings) as dep:
        sender = dep.settings.sender
        assert dep.settings.trusted_authserv_ids == ("amazonses.com",)  # an S3 inbox: SES's own verdicts
        alice = add_reader(dep, "alice@example.org", kindle=KINDLE)
        dep.pipeline().inbox.put("orchard.eml", via_ses(orchard_newsletter(alice), alice))
        assert all(run.success for run in dep.drain())
        (book,) = by_recipient(smtp_sink)[KINDLE]
        name, _ = epub_attachment(book)

        forged = kindle_notice(to=sender, text=E999_TEXT.format(document=name), auth="fail")
        dep.pipeline().inbox.put("forged.eml", forged)
        dep.pipeline().inbox.put("notice.eml", kindle_notice(to=sender, text=E999_TEXT.format(document=name)))
        runs = dep.drain()
        assert runs and all(run.success for run in runs)

        books = by_recipient(smtp_sink)[KINDLE]
        assert len(books) == 2  # the original and one safe-mode resend; the forged notice did nothing
        safe_name, _ = epub_attachment(books[1])
        assert safe_name != name
        assert not by_recipient(smtp_sink).get("alice@example.org")  # nothing to tell her yet
        states = sorted(state for _, state, _, _ in dep.rows())
        assert states == ["delivered", "kindle_notice", "kindle_notice"]
        reasons = [reason for _, state, reason, _ in dep.rows() if state == "kindle_notice"]
        assert any(r.startswith("not believed:") for r in reasons)
        assert any("safe mode resend" in r for r in reasons)
        records = dep.instance.fetch_materializations(dg.AssetKey("kindle_delivery"), limit=10).records
        rejected = [r.asset_materialization.metadata for r in records if r.asset_materialization.metadata["status"].value == "rejected"]
        assert [(m["cause"].value, m["action"].value, m["outcome"].value) for m in rejected] == [
            ("conversion", "safe_mode_resend", "safe-mode resend: sent")
        ]
        if batch_size == "1":
            outcomes = {run.dagster_run.tags.get(TAG_OUTCOME) for run in runs}
            assert {"kindle_notice:ignored", "kindle_notice:safe_mode_resend"} <= outcomes
        # the rejection rate is evaluated by the notice's step: 1 of 2 books (50%), but one refusal never warns
        (evaluation,) = rate_evaluations(dep.instance)
        assert evaluation.status.value == "SUCCEEDED"
        data = evaluation.event.dagster_event.event_specific_data
        assert (data.metadata["books_reached_amazon"].value, data.metadata["conversion_rejected"].value) == (2, 1)


RATE_CHECK = dg.AssetCheckKey(dg.AssetKey("kindle_delivery"), "amazon_rejection_rate")


def rate_evaluations(instance: dg.DagsterInstance):
    return instance.event_log_storage.get_asset_check_execution_history(RATE_CHECK, limit=10)


def test_the_rejection_rate_check_warns_when_one_cause_rises_and_clears_as_the_week_moves_on(
    monkeypatch, tmp_path: Path, postgres_url
) -> None:
    """Deliveries and Amazon's rejections recorded in the ledger; the daily schedule's run evaluates the check."""
    from datetime import timedelta

    import time_machine

    from inbox_pipeline.db.ledger import claim_delivery, mark_delivery_sent, reject_delivery
    from inbox_pipeline.services.context import utcnow

    with deployment(monkeypatch, tmp_path, DATABASE_URL=postgres_url) as dep:
        now = utcnow()

        def books(count: int, *, days_ago: float, rejected: dict[str, int] = {}) -> None:
            causes = [cause for cause, n in rejected.items() for _ in range(n)]
            with dep.pipeline().sessions.begin() as session:
                for n in range(count):
                    at = now - timedelta(days=days_ago)
                    row = claim_delivery(
                        session, item_kind="newsletter", item_id=len(dep.deliveries()) * 1000 + n,
                        recipient=f"r{n}@kindle.example", now=at,
                    )
                    mark_delivery_sent(session, row.id, provider_message_id=f"m{row.id}", now=at)
                    if n < len(causes):
                        reject_delivery(session, row.id, cause=causes[n], reason="rejected by Amazon (E999)", now=at)

        defs = current_definitions()
        job = defs.resolve_job_def(defs.get_schedule_def("kindle_rejection_rate_schedule").job_name)

        def evaluate(at=None):
            if at is None:
                assert job.execute_in_process(instance=dep.instance).success
            else:
                with time_machine.travel(at, tick=False):
                    assert job.execute_in_process(instance=dep.instance).success
            latest = rate_evaluations(dep.instance)[0]
            return latest.status.value, latest.event.dagster_event.event_specific_data

        books(30, days_ago=10, rejected={"conversion": 20})  # an old episode: outside the week
        books(36, days_ago=2, rejected={"conversion": 2, "not_approved": 1})
        status, data = evaluate()
        assert status == "SUCCEEDED"  # 2 of 36 conversion errors: below 5%, too few anyway
        assert data.metadata["books_reached_amazon"].value == 36 and data.metadata["conversion_rejected"].value == 2
        assert "conversion 2 (5.6%); not approved 1 (2.8%)" in data.description

        books(4, days_ago=1, rejected={"conversion": 2})  # 4 of 40: a rising rate
        status, data = evaluate()
        assert (status, data.severity) == ("FAILED", dg.AssetCheckSeverity.WARN) and not data.blocking
        assert data.metadata["conversion_rate"].value == 0.1 and data.metadata["not_approved_rate"].value == 0.025
        assert "rising: conversion" in data.description and "not approved" not in data.description.split("rising:")[1]

        # a week later, with no more rejections, the daily run clears it
        status, data = evaluate(now + timedelta(days=8))
        assert status == "SUCCEEDED" and data.metadata["books_reached_amazon"].value == 0


def test_a_kindle_check_without_a_notice_within_the_hour_becomes_unconfirmed_and_status_says_so(
    monkeypatch, tmp_path: Path, smtp_sink, capsys
) -> None:
    """The notification-retry sensor (every few minutes) ends the checks Amazon said nothing about."""
    from datetime import timedelta

    import time_machine
    from sqlalchemy import select

    from inbox_pipeline.cli import main
    from inbox_pipeline.db.models import User
    from inbox_pipeline.services.context import utcnow
    from inbox_pipeline.services.kindle_check import verify_kindle
    from inbox_pipeline_tests.defs.test_run_failure_sensor import evaluate_retry_sensor

    with deployment(monkeypatch, tmp_path, MAILER=smtp_sink.url) as dep:
        add_reader(dep, "dora@example.org", kindle="dora_7kq2x@kindle.example")
        add_reader(dep, "eve@example.org", kindle="eve_m3v9t@kindle.example")
        with dep.pipeline().sessions() as session:
            ids = dict(session.execute(select(User.email, User.id)).all())
        now = utcnow()
        with time_machine.travel(now - timedelta(minutes=61), tick=False):
            assert verify_kindle(dep.pipeline(), ids["dora@example.org"]).state == "pending"
        with time_machine.travel(now - timedelta(minutes=30), tick=False):
            verify_kindle(dep.pipeline(), ids["eve@example.org"])
        evaluate_retry_sensor(dep)
        with dep.pipeline().sessions() as session:
            states = {u.email: u.kindle.check_state for u in session.scalars(select(User))}
        assert states == {"dora@example.org": "unconfirmed", "eve@example.org": "pending"}
        assert main(["status"]) == 0
        assert "kindle checks: 1 pending, 1 unconfirmed" in capsys.readouterr().out
