"""Retention: the rows past their time, and deleting them with everything keyed by their ids.

Public functions (all take a ``Session``; none commits). ``services.cleanup``
deletes the objects first, then the rows with these:

- ``expired_emails(session, states, cutoff, *, after_id, limit) -> list[ExpiredEmail]``: emails in
  ``states`` since before ``cutoff`` (id order, after ``after_id``), except newsletters inside a digest
  still being delivered.
- ``delete_emails(session, email_ids, newsletter_ids) -> dict[str, int]``: their ledger rows, notifications,
  newsletters (with digest membership) and the emails; copies marked duplicate of them keep their row.
  The counts are keyed ``inbound_emails``, ``newsletters``, ``digests``, ``deliveries``, ``notifications``.
- ``expired_digests(session, statuses, cutoff, *, after_id, limit) -> list[tuple[int, list[str]]]``:
  (digest id, volume keys) of digests in ``statuses`` last changed before ``cutoff``.
- ``delete_digests(session, digest_ids) -> dict[str, int]``: their ledger rows, notifications, members and rows.

Deletes are said explicitly, not left to ON DELETE CASCADE / SET NULL: SQLite
applies those only on connections that turned foreign keys on.
"""

from __future__ import annotations

from collections.abc import Collection
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import Session

from inbox_pipeline.db.digests import UNFINISHED
from inbox_pipeline.db.models import Delivery, Digest, DigestMember, InboundEmail, Newsletter, Notification

@dataclass(frozen=True)
class ExpiredEmail:
    email_id: int
    storage_key: str
    newsletter_id: int | None
    epub_key: str | None
    fanout_of_id: int | None


def expired_emails(
    session: Session, states: Collection[str], cutoff: datetime, *, after_id: int, limit: int
) -> list[ExpiredEmail]:
    in_open_digest = exists().where(
        DigestMember.newsletter_id == Newsletter.id,
        Digest.id == DigestMember.digest_id,
        Digest.status.in_(UNFINISHED),  # still being delivered: its newsletters stay with it
    )
    rows = session.execute(
        select(
            InboundEmail.id, InboundEmail.storage_key, Newsletter.id, Newsletter.epub_key, InboundEmail.fanout_of_id
        )
        .outerjoin(Newsletter, Newsletter.inbound_email_id == InboundEmail.id)
        .where(
            InboundEmail.state.in_(states),
            InboundEmail.state_changed_at < cutoff,
            InboundEmail.id > after_id,
            ~and_(Newsletter.id.is_not(None), in_open_digest),
        )
        .order_by(InboundEmail.id)
        .limit(limit)
    ).all()
    return [ExpiredEmail(*row) for row in rows]


def delete_emails(session: Session, email_ids: Collection[int], newsletter_ids: Collection[int]) -> dict[str, int]:
    deleted: Counter[str] = Counter()
    if newsletter_ids:
        deleted["deliveries"] = session.execute(
            delete(Delivery).where(Delivery.item_kind == "newsletter", Delivery.item_id.in_(newsletter_ids))
        ).rowcount
    keys = [f"newsletter-{n}" for n in newsletter_ids] + [f"inbound-{e}" for e in email_ids]
    deleted["notifications"] = session.execute(
        delete(Notification).where(
            Notification.kind.in_(("delivery_failed", "confirmation_forwarded")),
            Notification.dedup_key.in_(keys),
        )
    ).rowcount
    if newsletter_ids:
        session.execute(delete(DigestMember).where(DigestMember.newsletter_id.in_(newsletter_ids)))
        deleted["newsletters"] = session.execute(delete(Newsletter).where(Newsletter.id.in_(newsletter_ids))).rowcount
    session.execute(
        update(InboundEmail).where(InboundEmail.duplicate_of_id.in_(email_ids)).values(duplicate_of_id=None)
    )
    deleted["inbound_emails"] = session.execute(delete(InboundEmail).where(InboundEmail.id.in_(email_ids))).rowcount
    return dict(deleted)


def expired_digests(
    session: Session, statuses: Collection[str], cutoff: datetime, *, after_id: int, limit: int
) -> list[tuple[int, list[str]]]:
    rows = session.execute(
        select(Digest.id, Digest.epub_keys)
        .where(
            Digest.status.in_(statuses),
            func.coalesce(Digest.delivered_at, Digest.created_at) < cutoff,
            Digest.id > after_id,
        )
        .order_by(Digest.id)
        .limit(limit)
    ).all()
    return [(digest_id, list(keys or [])) for digest_id, keys in rows]


def delete_digests(session: Session, digest_ids: Collection[int]) -> dict[str, int]:
    deleted: Counter[str] = Counter()
    deleted["deliveries"] = session.execute(
        delete(Delivery).where(Delivery.item_kind == "digest", Delivery.item_id.in_(digest_ids))
    ).rowcount
    deleted["notifications"] = session.execute(
        delete(Notification).where(
            Notification.kind == "delivery_failed", Notification.dedup_key.in_([f"digest-{d}" for d in digest_ids])
        )
    ).rowcount
    session.execute(delete(DigestMember).where(DigestMember.digest_id.in_(digest_ids)))
    deleted["digests"] = session.execute(delete(Digest).where(Digest.id.in_(digest_ids))).rowcount
    return dict(deleted)
