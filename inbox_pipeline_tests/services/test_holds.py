"""Which failures are our outages (the email waits) and the watchdog's episodes (one alert, one recovery)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError, EndpointConnectionError

from inbox_pipeline.core.epubcheck import EpubCheckUnavailable
from inbox_pipeline.seams.mailer import PermanentMailError, TransientMailError
from inbox_pipeline.services.health import Watch
from inbox_pipeline.services.holds import UnusableConfiguration, cause_of, outage_cause, reason_for


def test_our_outages_are_told_apart_from_an_emails_own_failure() -> None:
    no_bucket = ClientError({"Error": {"Code": "NoSuchBucket", "Message": "gone"}}, "PutObject")
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")
    assert outage_cause(TransientMailError("451 try later")) == "mailer"
    assert outage_cause(TransientMailError("timeout after DATA", maybe_sent=True)) is None  # never resent
    assert outage_cause(PermanentMailError("550 no such mailbox")) is None
    assert outage_cause(EpubCheckUnavailable("no Java runtime on PATH")) == "epubcheck"
    assert outage_cause(UnusableConfiguration("INBOX_PIPELINE_MAILER cannot work")) == "configuration"
    assert outage_cause(EndpointConnectionError(endpoint_url="http://127.0.0.1:9")) == "storage"
    assert outage_cause(no_bucket) == "storage"
    assert outage_cause(denied) is None
    assert outage_cause(RuntimeError("a bug")) is None
    for cause in ("mailer", "storage", "epubcheck", "configuration"):
        assert cause_of(reason_for(cause, "deliver_email: 451\n  try later")) == cause
    assert cause_of("failed after 4 attempts") is None


def test_an_episode_queues_one_alert_and_one_recovery_and_keeps_them_until_sent() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
    watch = Watch()
    for minute in range(3):
        watch.update({"mailer": f"{minute + 1} email(s) wait for the mailer"}, now + timedelta(minutes=minute))
        watch = Watch.from_cursor(watch.to_cursor())  # as the daemon keeps it between ticks
    assert [s for s, _ in watch.unsent] == ["[inbox-pipeline] problem: the mailer"]  # not sent yet: kept, once
    watch.update({}, now + timedelta(minutes=5))
    watch.update({}, now + timedelta(minutes=6))
    assert [s for s, _ in watch.unsent] == [
        "[inbox-pipeline] problem: the mailer",
        "[inbox-pipeline] recovered: the mailer",
    ]
    assert "began 2026-12-03 09:00:00 UTC" in watch.unsent[1][1] and "3 email(s)" in watch.unsent[1][1]
    assert not watch.open
