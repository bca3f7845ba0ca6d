"""Notifications to a user's own email, each told once.

Public functions (all take a ``Session``; none commits):

- ``notify_once(session, *, user_id, kind, dedup_key, subject, body, now=None, send_after=None) -> Notification | None``:
  the new notification, or ``None`` when (user_id, kind, dedup_key) was already
  recorded (unique constraint, INSERT .. ON CONFLICT DO NOTHING: also across
  concurrent runs). Kinds in use: see ``KINDS``.
- ``pending_notifications(session, *, limit=100) -> list[Notification]``
- ``mark_notification_sent(session, notification_id, *, now=None) -> Notification``
- ``mark_notification_failed(session, notification_id, *, reason) -> Notification``
- ``mark_notification_withdrawn(session, notification_id, *, reason) -> Notification``
- ``find_notification(session, *, user_id, kind, dedup_key) -> Notification | None``,
  ``notification_by_id(session, notification_id) -> Notification | None``
- ``claim_again(session, row) -> bool``: back to ``pending`` if the row is still as the caller read it
  (one winner among concurrent callers)
- ``due_for_resend(session, *, now, since, limit) -> list[int]``: deferred ones due, and failures marked
  ``RETRY_MARK`` (claimable again), created since ``since``
- ``count_unconfirmed(session, *, before) -> int``: still ``pending`` (being sent) since before ``before``
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from inbox_pipeline.db._sql import get_row, upsert_insert
from inbox_pipeline.db.models import Notification, NotificationStatus, utcnow

RETRY_MARK = "transient: "  # reason prefix of a failure that may be claimed again

KINDS = (
    "delivery_failed",  # dedup_key: the delivery id
    "no_kindle",  # dedup_key: e.g. the newsletter id, or "once"
    "quota_reached",  # dedup_key: the month, "2026-03"
    "confirmation_forwarded",  # dedup_key: the inbound email id
    "kindle_rejected",  # dedup_key: the provider message id
)


def notify_once(
    session: Session,
    *,
    user_id: int,
    kind: str,
    dedup_key: str,
    subject: str,
    body: str,
    now: datetime | None = None,
    send_after: datetime | None = None,
) -> Notification | None:
    """``send_after``: recorded as ``deferred``, to be sent then (if still true), else ``pending`` (sent now)."""
    table = Notification.__table__
    new_id = session.execute(
        upsert_insert(session, table)
        .values(
            user_id=user_id,
            kind=kind,
            dedup_key=dedup_key,
            subject=subject,
            body=body,
            status=(NotificationStatus.PENDING if send_after is None else NotificationStatus.DEFERRED).value,
            send_after=send_after,
            created_at=now or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["user_id", "kind", "dedup_key"])
        .returning(table.c.id)
    ).scalar()
    if new_id is None:
        return None
    return session.get(Notification, new_id, populate_existing=True)


def pending_notifications(session: Session, *, limit: int = 100) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.status == NotificationStatus.PENDING.value)
            .order_by(Notification.id)
            .limit(limit)
        )
    )


def find_notification(session: Session, *, user_id: int, kind: str, dedup_key: str) -> Notification | None:
    return session.scalar(
        select(Notification).where(
            Notification.user_id == user_id, Notification.kind == kind, Notification.dedup_key == dedup_key
        )
    )


def notification_by_id(session: Session, notification_id: int) -> Notification | None:
    return session.get(Notification, notification_id, populate_existing=True)


def claim_again(session: Session, row: Notification) -> bool:
    """Set ``row`` back to ``pending`` if its status and reason are still what the caller read."""
    taken = session.execute(
        update(Notification)
        .where(
            Notification.id == row.id,
            Notification.status == row.status,
            (Notification.reason == row.reason) if row.reason is not None else Notification.reason.is_(None),
        )
        .values(status=NotificationStatus.PENDING.value, reason=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return taken == 1


def due_for_resend(session: Session, *, now: datetime, since: datetime, limit: int) -> list[int]:
    return list(
        session.scalars(
            select(Notification.id)
            .where(
                or_(
                    and_(
                        Notification.status == NotificationStatus.FAILED.value,
                        Notification.reason.like(RETRY_MARK + "%"),
                    ),
                    and_(Notification.status == NotificationStatus.DEFERRED.value, Notification.send_after <= now),
                ),
                Notification.created_at >= since,
            )
            .order_by(Notification.id)
            .limit(limit)
        )
    )


def count_unconfirmed(session: Session, *, before: datetime) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Notification.status == NotificationStatus.PENDING.value, Notification.created_at < before
            )
        )
        or 0
    )


def _get(session: Session, notification_id: int) -> Notification:
    return get_row(session, Notification, notification_id, "notification")


def mark_notification_sent(session: Session, notification_id: int, *, now: datetime | None = None) -> Notification:
    row = _get(session, notification_id)
    row.status, row.sent_at, row.reason = NotificationStatus.SENT.value, now or utcnow(), None
    session.flush()
    return row


def mark_notification_failed(session: Session, notification_id: int, *, reason: str) -> Notification:
    row = _get(session, notification_id)
    row.status, row.reason = NotificationStatus.FAILED.value, reason
    session.flush()
    return row


def mark_notification_withdrawn(session: Session, notification_id: int, *, reason: str) -> Notification:
    """No longer true when it was to be sent (delivered since, ...): never sent."""
    row = _get(session, notification_id)
    row.status, row.reason = NotificationStatus.WITHDRAWN.value, reason
    session.flush()
    return row
