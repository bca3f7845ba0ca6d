"""Newsletters: one row per routed inbound email.

Public functions (all take a ``Session``; none commits):

- ``create_newsletter(session, *, inbound_email_id, user_id, address_id, sender_name, sender_email,
  subject, received_at, message_id, raw_key, raw_html=None, platform=None, language=None) -> Newsletter``
  idempotent per inbound email (a retry returns the existing row).
- ``get_newsletter(session, newsletter_id) -> Newsletter``
- ``newsletter_of_email(session, email_id) -> Newsletter | None``: the row routing made for an inbound email
- ``newsletter_subject(session, newsletter_id) -> str | None``, ``newsletter_email_id(session, newsletter_id)
  -> int | None``
- ``set_newsletter_epub(session, newsletter_id, *, epub_key, epub_bytes, words, images, reading_minutes,
  status=NewsletterStatus.READY) -> Newsletter``  (READY or HELD_FOR_DIGEST)
- ``set_newsletter_article(session, newsletter_id, *, platform, language, words) -> Newsletter``: what cleaning found
- ``set_newsletter_status(session, newsletter_id, status, reason=None, *, now=None) -> Newsletter``
- ``newsletters_for_digest(session, user_id) -> list[Newsletter]``: held for a digest, in none yet,
  oldest first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from inbox_pipeline.db._sql import get_row, upsert_insert
from inbox_pipeline.db.errors import InvalidInput
from inbox_pipeline.db.models import DigestMember, Newsletter, NewsletterStatus, utcnow


def create_newsletter(
    session: Session,
    *,
    inbound_email_id: int,
    user_id: int,
    address_id: int | None,
    sender_name: str,
    sender_email: str,
    subject: str,
    received_at: datetime,
    message_id: str | None,
    raw_key: str,
    raw_html: str | None = None,
    platform: str | None = None,
    language: str | None = None,
) -> Newsletter:
    now = utcnow()
    session.execute(
        upsert_insert(session, Newsletter.__table__)
        .values(
            inbound_email_id=inbound_email_id,
            user_id=user_id,
            address_id=address_id,
            sender_name=sender_name or "",
            sender_email=sender_email or "",
            subject=subject or "",
            received_at=received_at,
            message_id=message_id,
            raw_key=raw_key,
            raw_html=raw_html,
            platform=platform,
            language=language,
            status=NewsletterStatus.PENDING.value,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["inbound_email_id"])
    )
    row = session.scalar(
        select(Newsletter)
        .where(Newsletter.inbound_email_id == inbound_email_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def get_newsletter(session: Session, newsletter_id: int) -> Newsletter:
    return get_row(session, Newsletter, newsletter_id, "newsletter")


def newsletter_of_email(session: Session, email_id: int) -> Newsletter | None:
    return session.scalar(select(Newsletter).where(Newsletter.inbound_email_id == email_id))


def newsletter_subject(session: Session, newsletter_id: int) -> str | None:
    return session.scalar(select(Newsletter.subject).where(Newsletter.id == newsletter_id))


def newsletter_email_id(session: Session, newsletter_id: int) -> int | None:
    return session.scalar(select(Newsletter.inbound_email_id).where(Newsletter.id == newsletter_id))


def set_newsletter_epub(
    session: Session,
    newsletter_id: int,
    *,
    epub_key: str,
    epub_bytes: int,
    words: int,
    images: int,
    reading_minutes: int,
    status: NewsletterStatus | str = NewsletterStatus.READY,
) -> Newsletter:
    status = NewsletterStatus(status)
    if status not in (NewsletterStatus.READY, NewsletterStatus.HELD_FOR_DIGEST):
        raise InvalidInput(f"a stored EPUB makes a newsletter ready or held_for_digest, not {status.value}")
    row = get_newsletter(session, newsletter_id)
    row.epub_key, row.epub_bytes = epub_key, epub_bytes
    row.words, row.images, row.reading_minutes = words, images, reading_minutes
    row.status, row.reason = status.value, None
    session.flush()
    return row


def set_newsletter_article(
    session: Session, newsletter_id: int, *, platform: str | None, language: str | None, words: int
) -> Newsletter:
    row = get_newsletter(session, newsletter_id)
    row.platform, row.language, row.words = platform, language, words
    session.flush()
    return row


def set_newsletter_status(
    session: Session,
    newsletter_id: int,
    status: NewsletterStatus | str,
    reason: str | None = None,
    *,
    now: datetime | None = None,
) -> Newsletter:
    row = get_newsletter(session, newsletter_id)
    row.status = NewsletterStatus(status).value
    row.reason = reason
    if row.status == NewsletterStatus.DELIVERED.value:
        row.delivered_at = now or utcnow()
    session.flush()
    return row


def newsletters_for_digest(session: Session, user_id: int) -> list[Newsletter]:
    in_a_digest = select(DigestMember.newsletter_id)
    return list(
        session.scalars(
            select(Newsletter)
            .where(
                Newsletter.user_id == user_id,
                Newsletter.status == NewsletterStatus.HELD_FOR_DIGEST.value,
                Newsletter.id.not_in(in_a_digest),
            )
            .order_by(Newsletter.received_at, Newsletter.id)
        )
    )
