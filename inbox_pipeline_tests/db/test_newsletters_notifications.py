"""Newsletter rows and notifications told once."""

from __future__ import annotations

import pytest

from inbox_pipeline.db.errors import InvalidInput
from inbox_pipeline.db.intake import register_inbound
from inbox_pipeline.db.models import NewsletterStatus
from inbox_pipeline.db.newsletters import (
    create_newsletter,
    get_newsletter,
    set_newsletter_epub,
    set_newsletter_status,
)
from inbox_pipeline.db.notifications import (
    mark_notification_failed,
    mark_notification_sent,
    notify_once,
    pending_notifications,
)
from inbox_pipeline.db.users import add_user

from .conftest import NOW


def test_create_newsletter_is_idempotent_per_inbound_email(factory) -> None:
    with factory.begin() as s:
        uid = add_user(s, email="a@example.com").id
        email, _ = register_inbound(s, storage_key="k1", size=10, sha256="x" * 64, received_at=NOW)
        fields = dict(
            inbound_email_id=email.id, user_id=uid, address_id=None, sender_name="Money Stuff",
            sender_email="noreply@news.example", subject="The bank", received_at=NOW, message_id="m1",
            raw_key="k1",
        )
        first = create_newsletter(s, **fields, raw_html="<p>hi</p>")
        second = create_newsletter(s, **{**fields, "subject": "changed"})
        assert second.id == first.id and second.subject == "The bank" and second.status == "pending"
        ready = set_newsletter_epub(s, first.id, epub_key="epubs/1.epub", epub_bytes=2048, words=900, images=2,
                                    reading_minutes=4)
        assert (ready.status, ready.epub_bytes, ready.reading_minutes) == ("ready", 2048, 4)
        with pytest.raises(InvalidInput):
            set_newsletter_epub(s, first.id, epub_key="k", epub_bytes=1, words=1, images=0, reading_minutes=1,
                                status="delivered")
        set_newsletter_status(s, first.id, NewsletterStatus.DELIVERED, "sent to a@kindle.com", now=NOW)
    with factory.begin() as s:
        row = get_newsletter(s, first.id)
        assert (row.status, row.reason, row.delivered_at, row.raw_html) == (
            "delivered", "sent to a@kindle.com", NOW, "<p>hi</p>"
        )


def test_notify_once_tells_a_user_once_per_key(factory) -> None:
    with factory.begin() as s:
        uid = add_user(s, email="a@example.com").id
        other = add_user(s, email="b@example.com").id
        n1 = notify_once(s, user_id=uid, kind="quota_reached", dedup_key="2026-03", subject="Quota", body="50 of 50")
        assert n1 is not None and n1.status == "pending"
    with factory.begin() as s:
        assert notify_once(s, user_id=uid, kind="quota_reached", dedup_key="2026-03", subject="Q", body="b") is None
        assert notify_once(s, user_id=uid, kind="quota_reached", dedup_key="2026-04", subject="Q", body="b")
        assert notify_once(s, user_id=other, kind="quota_reached", dedup_key="2026-03", subject="Q", body="b")
        assert notify_once(s, user_id=uid, kind="no_kindle", dedup_key="2026-03", subject="Q", body="b")
        assert [n.subject for n in pending_notifications(s)] == ["Quota", "Q", "Q", "Q"]
        mark_notification_sent(s, n1.id, now=NOW)
        failed = pending_notifications(s)[0]
        mark_notification_failed(s, failed.id, reason="SMTP 550")
    with factory.begin() as s:
        assert len(pending_notifications(s)) == 2
