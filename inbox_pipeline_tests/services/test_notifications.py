"""Notifications, each cause triggered twice (or more) and told once, at a real SMTP server.

The newsletters go through the real per-email steps (``digest_world.World``):
inbox folder, SQLite or PostgreSQL, storage folder, and the mailer speaking
SMTP to an aiosmtpd server. What is asserted is what arrived there.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.services.digest_world import World

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(tmp_path, database_url, smtp_sink):
    w = World.create(tmp_path, database_url, smtp_sink.url)
    try:
        yield w
    finally:
        w.close()


def arrived(sink, to: str) -> list:
    """The messages the SMTP server accepted for ``to``, parsed."""
    return [msg for raw, msg in zip(sink.messages, sink.parsed()) if to in raw["to"]]


def text_of(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def rows(world: World, kind: str):
    from sqlalchemy import select

    from inbox_pipeline.db.models import Notification

    with world.pipeline.sessions() as session:
        return list(session.scalars(select(Notification).where(Notification.kind == kind).order_by(Notification.id)))


def set_plan_limit(world: World, user_id: int, limit: int) -> None:
    from inbox_pipeline.db.users import set_plan, set_user_plan

    with world.pipeline.sessions.begin() as session:
        set_plan(session, "tiny", monthly_limit=limit)
        set_user_plan(session, user_id, "tiny")


def test_no_kindle_is_told_once_per_missing_device_episode(world, smtp_sink) -> None:
    from sqlalchemy import update

    from inbox_pipeline.db.models import KindleDevice
    from inbox_pipeline.db.users import set_kindle

    carol = "carol@example.org"
    user_id = world.add_user(carol, timezone="UTC", delivery="instant", kindle=None)
    world.arrive(carol, NOW, expect="no_kindle")
    world.arrive(carol, NOW + timedelta(hours=1), expect="no_kindle")
    (notice,) = arrived(smtp_sink, carol)  # two newsletters, one notice
    assert "kindle" in notice["Subject"].lower()
    assert "no Send-to-Kindle address" in text_of(notice) and "kept" in text_of(notice)

    # A Kindle is added and served; then it is removed: a new episode, told again, once.
    with world.pipeline.sessions.begin() as session:
        set_kindle(session, user_id, "carol_k@kindle.example")
    world.arrive(carol, NOW + timedelta(hours=2), expect="sent")
    assert len(arrived(smtp_sink, "carol_k@kindle.example")) == 1
    with world.pipeline.sessions.begin() as session:
        session.execute(update(KindleDevice).where(KindleDevice.user_id == user_id).values(active=False))
    world.arrive(carol, NOW + timedelta(hours=3), expect="no_kindle")
    world.arrive(carol, NOW + timedelta(hours=4), expect="no_kindle")
    assert len(arrived(smtp_sink, carol)) == 2
    assert [(r.status, r.dedup_key.startswith("episode-")) for r in rows(world, "no_kindle")] == [("sent", True)] * 2
    assert not any("kindle.example" in rcpt for raw in smtp_sink.messages for rcpt in raw["to"] if "carol_k" not in rcpt)


def test_quota_reached_is_told_once_per_quota_month(world, smtp_sink) -> None:
    import time_machine

    from inbox_pipeline.services.route import record_newsletter

    bob = "bob@example.org"
    user_id = world.add_user(bob, timezone="UTC", delivery="instant", kindle="bob_k@kindle.example")
    set_plan_limit(world, user_id, 1)

    def over_quota(when: datetime) -> str:
        _, raw = world.mime(bob, when)
        _, parsed, routed = world.ingest(raw, when)
        ref, reason = record_newsletter(world.pipeline, parsed, routed)
        assert ref is None, "expected over quota"
        return reason

    for month, first in (("2026-03", datetime(2026, 3, 30, 9, tzinfo=timezone.utc)),
                         ("2026-04", datetime(2026, 4, 1, 9, tzinfo=timezone.utc))):
        with time_machine.travel(first, tick=True):
            world.arrive(bob, first, expect="sent")  # the month's one newsletter
            assert "over the monthly quota" in over_quota(first + timedelta(minutes=5))
            over_quota(first + timedelta(minutes=10))  # the second over-quota email: no second notice
        notices = arrived(smtp_sink, bob)
        assert notices[-1]["Subject"] == "Your monthly newsletter quota is used up"
        assert month in text_of(notices[-1]) and "kept but not sent" in text_of(notices[-1])
    assert len(arrived(smtp_sink, bob)) == 2  # one per month
    assert len(arrived(smtp_sink, "bob_k@kindle.example")) == 2
    assert [(r.dedup_key, r.status) for r in rows(world, "quota_reached")] == [("2026-03", "sent"), ("2026-04", "sent")]


def test_a_confirmation_is_forwarded_once_per_confirmation_email(world, smtp_sink) -> None:
    from inbox_pipeline.services.route import forward_to_user

    alice = "alice@example.org"
    world.add_user(alice, timezone="UTC", delivery="instant", kindle="alice_k@kindle.example")
    address = world.addresses[alice]
    first = world.ingest(mails.confirmation(address, n=1), NOW)
    second = world.ingest(mails.confirmation(address, n=2), NOW + timedelta(minutes=1))
    outcomes = [forward_to_user(world.pipeline, parsed, routed) for _, parsed, routed in (first, first, second, second)]
    assert [o.status for o in outcomes] == ["sent", "already_sent", "sent", "already_sent"]
    got = arrived(smtp_sink, alice)
    assert len(got) == 2 and not arrived(smtp_sink, "alice_k@kindle.example")
    for n, msg in zip((1, 2), got):
        assert msg["Subject"].startswith("Confirm: Please confirm your subscription")
        assert mails.CONFIRM_LINK.format(n=n) in text_of(msg)
    assert [(r.dedup_key, r.status) for r in rows(world, "confirmation_forwarded")] == [
        (f"inbound-{first[0]}", "sent"), (f"inbound-{second[0]}", "sent")
    ]


def _stored_epub(world: World, user: str):
    from inbox_pipeline.services.process import (
        build_newsletter_epub,
        clean_newsletter,
        embed_images,
        store_newsletter_epub,
    )
    from inbox_pipeline.services.route import record_newsletter

    p = world.pipeline
    arrival, raw = world.mime(user, NOW)
    email_id, parsed, routed = world.ingest(raw, NOW)
    ref, _ = record_newsletter(p, parsed, routed)
    return arrival, email_id, store_newsletter_epub(p, build_newsletter_epub(p, embed_images(p, clean_newsletter(p, ref))))


def test_delivery_failed_waits_out_the_grace_is_told_once_in_plain_words_and_a_refused_notice_is_sent_later(
    world, smtp_sink
) -> None:
    import time_machine

    from inbox_pipeline.services.deliver import give_up
    from inbox_pipeline.services.notify import DEFAULT_GRACE, resend_failed_notifications

    dora = "dora@example.org"
    world.add_user(dora, timezone="UTC", delivery="instant", kindle="dora_k@kindle.example")
    p = world.pipeline
    arrival, email_id, epub = _stored_epub(world, dora)
    internal = (
        f"the mail server refused delivery #7 to dora_k@kindle.example: 550 5.1.1 <dora_k@kindle.example>: "
        "Recipient address rejected (TransientMailError at /srv/outbox)"
    )
    with time_machine.travel(NOW, tick=False) as traveller:
        for _ in range(2):  # the op's last attempt, then a re-execution's
            give_up(p, epub, internal)
        assert resend_failed_notifications(p).sent == []  # within the grace: the operator may still fix it
        assert not smtp_sink.messages
        (row,) = rows(world, "delivery_failed")
        assert row.status == "deferred"

        traveller.shift(DEFAULT_GRACE + timedelta(seconds=1))
        smtp_sink.refuse_next = 100  # the mail server says "try later" to everything
        assert resend_failed_notifications(p).failed  # still refused: kept for later, not lost
        assert [r.status for r in rows(world, "delivery_failed")] == ["failed"]

        smtp_sink.refuse_next = 0
        resent = resend_failed_notifications(p)
        assert resent.sent == [row.id] and not resent.failed
        assert resend_failed_notifications(p).sent == []  # sent once
        give_up(p, epub, internal)  # the same item: not told again
    (notice,) = arrived(smtp_sink, dora)
    assert notice["Subject"] == f"Could not deliver: {arrival.subject}"
    text = text_of(notice)
    assert arrival.subject in text and "Check that the address in your settings is right" in text
    for internal_word in ("550", "TransientMailError", "/srv/outbox", "delivery #"):
        assert internal_word not in text
    assert not arrived(smtp_sink, "dora_k@kindle.example")
    assert [(r.dedup_key, r.status) for r in rows(world, "delivery_failed")] == [
        (f"newsletter-{epub.newsletter_id}", "sent")
    ]
    from inbox_pipeline.db.intake import get_inbound

    with p.sessions() as session:
        inbound = get_inbound(session, email_id)
        assert inbound.state == "failed" and "550" in inbound.reason  # the operator's record keeps the detail


def test_a_failure_notice_is_withdrawn_when_the_newsletter_was_delivered_since(world, smtp_sink) -> None:
    import time_machine

    from inbox_pipeline.services.deliver import deliver_epub, give_up
    from inbox_pipeline.services.notify import DEFAULT_GRACE, resend_failed_notifications

    emil = "emil@example.org"
    world.add_user(emil, timezone="UTC", delivery="instant", kindle="emil_k@kindle.example")
    p = world.pipeline
    arrival, email_id, epub = _stored_epub(world, emil)
    with time_machine.travel(NOW, tick=False) as traveller:
        give_up(p, epub, "deliver_to_kindle failed after 4 attempts: RuntimeError: worker lost")
        assert deliver_epub(p, epub).status == "sent"  # re-executed by the operator within the grace
        traveller.shift(DEFAULT_GRACE * 3)
        resent = resend_failed_notifications(p)
    assert resent.sent == [] and len(resent.withdrawn) == 1
    (row,) = rows(world, "delivery_failed")
    assert row.status == "withdrawn" and "delivered since" in row.reason
    assert not arrived(smtp_sink, emil)  # no failure notice, before or after
    assert len(arrived(smtp_sink, "emil_k@kindle.example")) == 1

