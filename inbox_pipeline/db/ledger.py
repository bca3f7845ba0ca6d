"""The delivery ledger: claim before sending, mark sent or failed after.

Public functions (all take a ``Session``; none commits — commit the claim
before you send):

- ``claim_delivery(session, *, item_kind, item_id, recipient, now, user_id=None, device_id=None, part=1,
  variant="standard") -> Delivery | None``: the row for (item_kind, item_id, part, recipient, variant), or
  ``None`` when another run holds or finished it. Unique constraint + INSERT ..
  ON CONFLICT DO NOTHING: of any number of concurrent claims, across
  processes, exactly one wins.
- ``mark_delivery_sent(session, delivery_id, *, provider_message_id, now=None) -> Delivery``
- ``mark_delivery_failed(session, delivery_id, *, reason, retryable, now=None) -> Delivery``
- ``stale_deliveries(session, *, now, lease=LEASE) -> list[Delivery]``: claims older than the lease.
- ``release_delivery(session, delivery_id, *, reason, now=None) -> Delivery``: the operator's
  decision that a stale claim was never sent (it becomes failed + retryable).
- ``delivery_by_token(session, token) -> Delivery | None``: the one delivery an Amazon notice names.
- ``reject_delivery(session, delivery_id, *, cause, reason, now=None) -> Delivery``: Amazon's
  notice (E999, sender not approved...) recorded on the sent delivery it names.
- ``get_delivery(session, delivery_id)``, ``find_delivery(session, *, item_kind, item_id, recipient, part=1)``
- ``count_deliveries(session, *, since=None) -> dict[str, int]``
- ``may_have_arrived(session, item_kind, item_id) -> bool``: a claim never confirmed, or a failure the
  mailer could not rule out (reason starting ``MAY_HAVE_ARRIVED``): the Kindle may have it.
- ``was_sent(session, item_kind, item_id) -> bool``, ``claims_of(session, item_kind, item_id) -> int``
- ``newest_sent_to_device(session, user_id) -> int | None``: the user's newest delivery that reached a Kindle.
- ``refused_as_unapproved(session, user_id) -> list[int]``: the user's newsletters Amazon refused because
  our sender was not approved (standard sends only: a resend is its own row)

At most once, then the operator decides: a claim is taken again only when it
was explicitly marked failed *and* retryable (e.g. SMTP answered 4xx). A run
killed between the relay accepting the message and ``mark_delivery_sent``
leaves the row ``claimed``; it is never resent automatically, because the
Kindle may already have it. ``stale_deliveries`` lists such rows (after
``LEASE``) and ``release_delivery`` is how a person says "resend it".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from inbox_pipeline.db._sql import get_row, upsert_insert
from inbox_pipeline.db.errors import InvalidInput, InvalidTransition
from inbox_pipeline.core.kindle_notice import new_delivery_token
from inbox_pipeline.db.models import Delivery, DeliveryStatus, DeliveryVariant, utcnow

LEASE = timedelta(minutes=15)
MAY_HAVE_ARRIVED = "may have been sent"  # the reason's first words for a send that may have gone out
ITEM_KINDS = ("newsletter", "digest", "kindle_check")


def claim_delivery(
    session: Session,
    *,
    item_kind: str,
    item_id: int,
    recipient: str,
    now: datetime,
    user_id: int | None = None,
    device_id: int | None = None,
    part: int = 1,
    variant: str = DeliveryVariant.STANDARD.value,
) -> Delivery | None:
    if item_kind not in ITEM_KINDS:
        raise InvalidInput(f"item_kind must be one of {ITEM_KINDS}, not {item_kind!r}")
    variant = DeliveryVariant(variant).value
    recipient = recipient.strip().lower()
    table = Delivery.__table__
    new_id = session.execute(
        upsert_insert(session, table)
        .values(
            item_kind=item_kind,
            item_id=item_id,
            part=part,
            recipient=recipient,
            user_id=user_id,
            device_id=device_id,
            status=DeliveryStatus.CLAIMED.value,
            retryable=False,
            attempts=1,
            claimed_at=now,
            variant=variant,
            token=new_delivery_token(),
        )
        .on_conflict_do_nothing(index_elements=["item_kind", "item_id", "part", "recipient", "variant"])
        .returning(table.c.id)
    ).scalar()
    if new_id is None:
        # Only an explicitly retryable failure may be claimed again, and only by one run.
        new_id = session.execute(
            update(table)
            .where(
                table.c.item_kind == item_kind,
                table.c.item_id == item_id,
                table.c.part == part,
                table.c.recipient == recipient,
                table.c.variant == variant,
                table.c.status == DeliveryStatus.FAILED.value,
                table.c.retryable.is_(True),
            )
            .values(
                status=DeliveryStatus.CLAIMED.value,
                retryable=False,
                attempts=table.c.attempts + 1,
                claimed_at=now,
                finished_at=None,
                device_id=device_id,
            )
            .returning(table.c.id)
        ).scalar()
    if new_id is None:
        return None
    return get_delivery(session, new_id)


def get_delivery(session: Session, delivery_id: int) -> Delivery:
    return get_row(session, Delivery, delivery_id, "delivery")


def find_delivery(
    session: Session,
    *,
    item_kind: str,
    item_id: int,
    recipient: str,
    part: int = 1,
    variant: str = DeliveryVariant.STANDARD.value,
) -> Delivery | None:
    return session.scalar(
        select(Delivery)
        .where(
            Delivery.item_kind == item_kind,
            Delivery.item_id == item_id,
            Delivery.part == part,
            Delivery.recipient == recipient.strip().lower(),
            Delivery.variant == variant,
        )
        .execution_options(populate_existing=True)
    )


def _finish(
    session: Session,
    delivery_id: int,
    from_statuses: tuple[DeliveryStatus, ...],
    status: DeliveryStatus,
    now: datetime | None,
    **values: object,
) -> tuple[bool, Delivery]:
    """Move the delivery from one of ``from_statuses`` to ``status`` (finished at ``now``): whether it
    moved, and the row as it is now."""
    done = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_([s.value for s in from_statuses]))
        .values(status=status.value, finished_at=now or utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(done), get_delivery(session, delivery_id)


def mark_delivery_sent(
    session: Session, delivery_id: int, *, provider_message_id: str | None, now: datetime | None = None
) -> Delivery:
    done, row = _finish(
        session, delivery_id, (DeliveryStatus.CLAIMED,), DeliveryStatus.SENT, now,
        provider_message_id=provider_message_id, reason=None, retryable=False,
    )
    if not done and row.status != DeliveryStatus.SENT.value:
        raise InvalidTransition(f"delivery #{delivery_id} is {row.status}, not claimed: cannot mark it sent")
    return row


def mark_delivery_failed(
    session: Session, delivery_id: int, *, reason: str, retryable: bool, now: datetime | None = None
) -> Delivery:
    done, row = _finish(
        session, delivery_id, (DeliveryStatus.CLAIMED, DeliveryStatus.FAILED), DeliveryStatus.FAILED, now,
        reason=reason, retryable=retryable,
    )
    if not done:
        raise InvalidTransition(f"delivery #{delivery_id} was already sent: use reject_delivery for Amazon's notice")
    return row


def stale_deliveries(session: Session, *, now: datetime, lease: timedelta = LEASE) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.status == DeliveryStatus.CLAIMED.value, Delivery.claimed_at < now - lease)
            .order_by(Delivery.claimed_at)
        )
    )


def release_delivery(session: Session, delivery_id: int, *, reason: str, now: datetime | None = None) -> Delivery:
    done, row = _finish(
        session, delivery_id, (DeliveryStatus.CLAIMED,), DeliveryStatus.FAILED, now, reason=reason, retryable=True
    )
    if not done:
        raise InvalidTransition(f"delivery #{delivery_id} is {row.status}: only an unfinished claim can be released")
    return row


def delivery_by_token(session: Session, token: str) -> Delivery | None:
    return session.scalar(
        select(Delivery).where(Delivery.token == token.lower()).execution_options(populate_existing=True)
    )


def reject_delivery(
    session: Session, delivery_id: int, *, cause: str, reason: str, now: datetime | None = None
) -> Delivery:
    """Amazon's notice on a sent delivery; a second notice for the same row changes nothing."""
    _, row = _finish(
        session, delivery_id, (DeliveryStatus.SENT,), DeliveryStatus.REJECTED, now,
        rejection_cause=cause, reason=reason[:2000], retryable=False,
    )
    return row


def may_have_arrived(session: Session, item_kind: str, item_id: int) -> bool:
    rows = session.execute(
        select(Delivery.status, Delivery.reason).where(Delivery.item_kind == item_kind, Delivery.item_id == item_id)
    ).all()
    return any(
        status == DeliveryStatus.CLAIMED.value or (reason or "").startswith(MAY_HAVE_ARRIVED) for status, reason in rows
    )


def was_sent(session: Session, item_kind: str, item_id: int) -> bool:
    return session.scalar(
        select(Delivery.id)
        .where(Delivery.item_kind == item_kind, Delivery.item_id == item_id, Delivery.status == DeliveryStatus.SENT.value)
        .limit(1)
    ) is not None


def claims_of(session: Session, item_kind: str, item_id: int) -> int:
    """How many ledger rows (parts, recipients, variants) the item has."""
    return int(
        session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.item_kind == item_kind, Delivery.item_id == item_id)
        )
        or 0
    )


def newest_sent_to_device(session: Session, user_id: int) -> int | None:
    return session.scalar(
        select(func.max(Delivery.id)).where(
            Delivery.user_id == user_id, Delivery.device_id.is_not(None), Delivery.status == DeliveryStatus.SENT.value
        )
    )


def refused_as_unapproved(session: Session, user_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Delivery.id).where(
                Delivery.user_id == user_id,
                Delivery.item_kind == "newsletter",
                Delivery.status == DeliveryStatus.REJECTED.value,
                Delivery.rejection_cause == "not_approved",
                Delivery.variant == DeliveryVariant.STANDARD.value,
            )
        )
    )


def count_deliveries(session: Session, *, since: datetime | None = None) -> dict[str, int]:
    """Deliveries of newsletters and digests per status (every status present), claimed since ``since``.

    Kindle test books (``kindle verify``) are not deliveries of anything a user subscribed to.
    """
    query = (
        select(Delivery.status, func.count())
        .where(Delivery.item_kind.in_(("newsletter", "digest")))
        .group_by(Delivery.status)
    )
    if since is not None:
        query = query.where(Delivery.claimed_at >= since)
    counts = {s.value: 0 for s in DeliveryStatus}
    counts.update({status: int(n) for status, n in session.execute(query)})
    return counts


def rejections_by_cause(session: Session, *, since: datetime) -> tuple[int, dict[str, int]]:
    """Books (newsletters and digests, resends included) that reached Amazon, claimed since ``since``:
    how many (sent, or sent and then refused), and the refused ones per cause."""
    counts = session.execute(
        select(Delivery.status, Delivery.rejection_cause, func.count())
        .where(
            Delivery.item_kind.in_(("newsletter", "digest")),
            Delivery.status.in_((DeliveryStatus.SENT.value, DeliveryStatus.REJECTED.value)),
            Delivery.claimed_at >= since,
        )
        .group_by(Delivery.status, Delivery.rejection_cause)
    ).all()
    reached = sum(int(n) for _, _, n in counts)
    rejected: dict[str, int] = {}
    for status, cause, n in counts:
        if status == DeliveryStatus.REJECTED.value:
            rejected[cause or "unknown"] = rejected.get(cause or "unknown", 0) + int(n)
    return reached, rejected
