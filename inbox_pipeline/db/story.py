"""What the operator reads about emails: one email's whole story, and the reasons behind each state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from inbox_pipeline.db.models import Delivery, Digest, DigestMember, InboundEmail, Newsletter, Notification, User


ITEM_KEY_PREFIXES = ("inbound-", "newsletter-", "digest-", "delivery-")  # notices about one item
NOTICE_MARGIN = timedelta(minutes=1)


@dataclass
class EmailStory:
    email: InboundEmail
    user: User | None
    newsletter: Newsletter | None
    digest: Digest | None
    duplicate_of: InboundEmail | None
    deliveries: list[Delivery] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    count: int
    email_ids: tuple[int, ...]  # a few examples, newest first


def find_emails(session: Session, ref: str) -> list[InboundEmail]:
    """Inbound emails by id (``42`` or ``#42``) or by Message-ID (with or without ``<>``), oldest first."""
    text = ref.strip()
    if text.lstrip("#").isdigit():
        email = session.get(InboundEmail, int(text.lstrip("#")))
        if email is not None:
            return [email]
    bare = text.strip("<>")
    if not bare:
        return []
    candidates = {bare, f"<{bare}>"}
    return list(
        session.scalars(select(InboundEmail).where(InboundEmail.message_id.in_(candidates)).order_by(InboundEmail.id))
    )


def email_story(session: Session, email: InboundEmail) -> EmailStory:
    """Everything recorded about ``email``: its user, newsletter, digest, ledger rows and notices."""
    newsletter = session.scalar(select(Newsletter).where(Newsletter.inbound_email_id == email.id))
    digest = None
    if newsletter is not None:
        digest = session.scalar(
            select(Digest).join(DigestMember, DigestMember.digest_id == Digest.id).where(
                DigestMember.newsletter_id == newsletter.id
            )
        )
    items = []
    if newsletter is not None:
        items.append((Delivery.item_kind == "newsletter") & (Delivery.item_id == newsletter.id))
    if digest is not None:
        items.append((Delivery.item_kind == "digest") & (Delivery.item_id == digest.id))
    deliveries = list(session.scalars(select(Delivery).where(or_(*items)).order_by(Delivery.id))) if items else []
    keys = [f"inbound-{email.id}"] + [f"delivery-{d.id}" for d in deliveries]
    if newsletter is not None:
        keys.append(f"newsletter-{newsletter.id}")
    if digest is not None:
        keys.append(f"digest-{digest.id}")
    notice_filter = Notification.dedup_key.in_(keys)
    if email.user_id is not None:
        # The user's notices about their account (no Kindle address, quota reached) sent while this
        # email was on its way: it is what set them off, or was held by the same cause.
        about_user = and_(
            ~or_(*(Notification.dedup_key.startswith(p) for p in ITEM_KEY_PREFIXES)),
            Notification.created_at >= email.created_at - NOTICE_MARGIN,
            Notification.created_at <= email.state_changed_at + NOTICE_MARGIN,
        )
        notice_filter = (Notification.user_id == email.user_id) & or_(notice_filter, about_user)
    notifications = list(session.scalars(select(Notification).where(notice_filter).order_by(Notification.id)))
    return EmailStory(
        email=email,
        user=session.get(User, email.user_id) if email.user_id is not None else None,
        newsletter=newsletter,
        digest=digest,
        duplicate_of=session.get(InboundEmail, email.duplicate_of_id) if email.duplicate_of_id else None,
        deliveries=deliveries,
        notifications=notifications,
    )


def reasons_by_state(
    session: Session, *, since: datetime | None = None, states: Sequence[str] | None = None, top: int = 3
) -> dict[str, list[ReasonCount]]:
    """The most frequent reasons of each state's emails (registered since ``since``), with example ids."""
    query = (
        select(InboundEmail.state, InboundEmail.reason, func.count(), func.max(InboundEmail.id))
        .where(InboundEmail.reason.is_not(None))
        .group_by(InboundEmail.state, InboundEmail.reason)
    )
    if since is not None:
        query = query.where(InboundEmail.created_at >= since)
    if states is not None:
        query = query.where(InboundEmail.state.in_(list(states)))
    grouped: dict[str, list[tuple[str, int, int]]] = {}
    for state, reason, count, newest in session.execute(query):
        grouped.setdefault(state, []).append((reason, int(count), int(newest)))
    result: dict[str, list[ReasonCount]] = {}
    for state, rows in grouped.items():
        rows.sort(key=lambda r: (-r[1], -r[2]))
        result[state] = []
        for reason, count, _ in rows[:top]:
            ids_query = (
                select(InboundEmail.id)
                .where(InboundEmail.state == state, InboundEmail.reason == reason)
                .order_by(InboundEmail.id.desc())
                .limit(3)
            )
            if since is not None:
                ids_query = ids_query.where(InboundEmail.created_at >= since)
            result[state].append(ReasonCount(reason, count, tuple(session.scalars(ids_query))))
    return result
