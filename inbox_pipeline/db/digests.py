"""Digests: which are due now, and creating them exactly once per period.

Public functions (all take a ``Session``; none commits):

- ``due_digests(session, now_utc) -> list[DueDigest]``
- ``create_digest(session, user_id, period_key, newsletter_ids, *, period_start=None) -> Digest``
  idempotent on (user_id, period_key): a second call returns the first digest.
  With no newsletters the digest is ``empty`` (nothing is sent) and the period is done.
- ``get_digest(session, digest_id) -> Digest``, ``digest_newsletters(session, digest_id) -> list[Newsletter]``
- ``digest_members(session, digest_id) -> list[tuple[Newsletter, int]]``: each newsletter with its volume
- ``set_members_volume(session, digest_id, newsletter_ids, volume)``
- ``newsletters_still_in(session, digest_id) -> list[tuple[int, int]]``: (newsletter id, inbound email id)
  of members whose newsletter is still ``in_digest``
- ``unfinished_digests(session) -> list[int]``: ``UNFINISHED`` ones, oldest first
- ``digest_status(session, digest_id) -> str | None``, ``digest_period_key(session, digest_id) -> str | None``
- ``set_digest_status(session, digest_id, status, reason=None, *, epub_keys=None, epub_bytes=None, now=None)``
- ``digest_period(timezone, mode, hour, weekday, now_utc) -> DuePeriod`` (pure, for schedules/tests)

Rules, in the user's IANA zone (zoneinfo):
- ``daily@HH``: period = the local date, key ``daily:YYYY-MM-DD``, due at HH:00.
- ``weekly@DAY@HH``: period = the local ISO week, key ``weekly:YYYY-Www``, due on DAY at HH:00.
- A local HH:00 that does not exist (spring forward) is due at the first instant
  after the gap (02:00 -> 03:00 in Berlin); an HH:00 that happens twice (autumn)
  is due at its first occurrence.
- Due means ``now >= due time`` within the current period and no digest row for
  the period yet: a missed tick is caught up later in the same period, and the
  unique (user_id, period_key) row makes a period deliver at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, tuple_, update
from sqlalchemy.orm import Session

from inbox_pipeline.db._sql import get_row, upsert_insert
from inbox_pipeline.db.models import (
    Digest,
    DigestMember,
    DigestStatus,
    DeliveryMode,
    Newsletter,
    NewsletterStatus,
    User,
    utcnow,
)

UTC = timezone.utc
UNFINISHED = (DigestStatus.PENDING.value, DigestStatus.READY.value)  # a run must still finish these


@dataclass(frozen=True)
class DuePeriod:
    period_key: str
    period_start_utc: datetime  # local midnight starting the day / ISO week
    due_at_utc: datetime


@dataclass(frozen=True)
class DueDigest:
    user_id: int
    period_key: str
    period_start_utc: datetime
    due_at_utc: datetime
    timezone: str


def local_instant(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of local ``day`` at ``hour``:00, DST-safe (see module docstring)."""
    first = datetime.combine(day, time(hour), tzinfo=tz)  # fold=0: first occurrence if repeated
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != first.replace(tzinfo=None):
        # In a gap. fold=0 reads the wall time with the offset from before the
        # change, which lands past the gap; the first instant after the gap is
        # the earliest moment the wall clock reads at least HH:00.
        earlier = first.replace(fold=1).astimezone(UTC)  # before the gap
        later = utc
        lo, hi = min(earlier, later), max(earlier, later)
        while hi - lo > timedelta(minutes=1):  # bisect to the transition
            mid = lo + (hi - lo) / 2
            if mid.astimezone(tz).replace(tzinfo=None) >= first.replace(tzinfo=None):
                hi = mid
            else:
                lo = mid
        utc = hi.replace(second=0, microsecond=0)
    return utc


def digest_period(timezone_name: str, mode: str, hour: int, weekday: int | None, now_utc: datetime) -> DuePeriod:
    tz = ZoneInfo(timezone_name)
    local_today = now_utc.astimezone(tz).date()
    if mode == DeliveryMode.DAILY.value:
        key = f"daily:{local_today.isoformat()}"
        start = local_instant(local_today, 0, tz)
        due = local_instant(local_today, hour, tz)
    elif mode == DeliveryMode.WEEKLY.value:
        iso = local_today.isocalendar()
        monday = local_today - timedelta(days=local_today.weekday())
        key = f"weekly:{iso.year}-W{iso.week:02d}"
        start = local_instant(monday, 0, tz)
        due = local_instant(monday + timedelta(days=weekday or 0), hour, tz)
    else:
        raise ValueError(f"no digest period for delivery mode {mode!r}")
    return DuePeriod(key, start, due)


def _digest_users(session: Session):
    return session.execute(
        select(User.id, User.timezone, User.delivery_mode, User.delivery_hour, User.delivery_weekday).where(
            User.delivery_mode.in_([DeliveryMode.DAILY.value, DeliveryMode.WEEKLY.value])
        )
    ).all()


def _without_digest(session: Session, candidates: list[DueDigest]) -> list[DueDigest]:
    """The candidates whose (user, period) has no digest row yet."""
    done: set[tuple[int, str]] = set()
    for chunk_start in range(0, len(candidates), 500):
        chunk = candidates[chunk_start : chunk_start + 500]
        done.update(
            (uid, key)
            for uid, key in session.execute(
                select(Digest.user_id, Digest.period_key).where(
                    tuple_(Digest.user_id, Digest.period_key).in_([(c.user_id, c.period_key) for c in chunk])
                )
            )
        )
    return [c for c in candidates if (c.user_id, c.period_key) not in done]


def due_digests(session: Session, now_utc: datetime) -> list[DueDigest]:
    """Users whose digest for the current local period is due and not created yet."""
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    candidates: list[DueDigest] = []
    for user_id, tz_name, mode, hour, weekday in _digest_users(session):
        period = digest_period(tz_name, mode, hour, weekday, now_utc)
        if now_utc >= period.due_at_utc:
            candidates.append(DueDigest(user_id, period.period_key, period.period_start_utc, period.due_at_utc, tz_name))
    return _without_digest(session, candidates) if candidates else []


def missed_previous_periods(session: Session, now_utc: datetime) -> list[DueDigest]:
    """Previous periods with no digest row whose newsletters would otherwise wait a whole period.

    Only while the current period is not due yet (when it is, its digest takes
    everything held), and only when newsletters received before the previous
    due time are still held: a user who just chose digests gets no back-dated one.
    """
    candidates: list[DueDigest] = []
    for user_id, tz_name, mode, hour, weekday in _digest_users(session):
        current = digest_period(tz_name, mode, hour, weekday, now_utc)
        if now_utc >= current.due_at_utc:
            continue
        previous = digest_period(tz_name, mode, hour, weekday, current.period_start_utc - timedelta(seconds=1))
        if previous.due_at_utc <= now_utc:
            candidates.append(
                DueDigest(user_id, previous.period_key, previous.period_start_utc, previous.due_at_utc, tz_name)
            )
    held = Newsletter.status == NewsletterStatus.HELD_FOR_DIGEST.value
    not_in_digest = Newsletter.id.not_in(select(DigestMember.newsletter_id))
    return [
        c
        for c in _without_digest(session, candidates)
        if session.scalar(
            select(
                exists().where(
                    Newsletter.user_id == c.user_id, held, Newsletter.received_at <= c.due_at_utc, not_in_digest
                )
            )
        )
    ]


def create_digest(
    session: Session,
    user_id: int,
    period_key: str,
    newsletter_ids: Sequence[int],
    *,
    period_start: datetime | None = None,
) -> Digest:
    """The period's digest with ``newsletter_ids`` as members (in the given order).

    A newsletter already in another digest is skipped (unique member), so two
    overlapping digests never carry the same newsletter.
    """
    now = utcnow()
    table = Digest.__table__
    new_id = session.execute(
        upsert_insert(session, table)
        .values(
            user_id=user_id,
            period_key=period_key,
            period_start=period_start,
            status=DigestStatus.PENDING.value,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "period_key"])
        .returning(table.c.id)
    ).scalar()
    if new_id is not None:
        position = 0
        for newsletter_id in newsletter_ids:
            inserted = session.execute(
                upsert_insert(session, DigestMember.__table__)
                .values(digest_id=new_id, newsletter_id=newsletter_id, position=position, volume=1)
                .on_conflict_do_nothing(index_elements=["newsletter_id"])
                .returning(DigestMember.__table__.c.newsletter_id)
            ).scalar()
            if inserted is not None:
                position += 1
                session.execute(
                    Newsletter.__table__.update()
                    .where(Newsletter.__table__.c.id == newsletter_id)
                    .values(status=NewsletterStatus.IN_DIGEST.value, updated_at=now)
                )
        if position == 0:
            session.execute(
                table.update()
                .where(table.c.id == new_id)
                .values(status=DigestStatus.EMPTY.value, reason="nothing new in this period")
            )
    digest = session.scalar(
        select(Digest)
        .where(Digest.user_id == user_id, Digest.period_key == period_key)
        .execution_options(populate_existing=True)
    )
    assert digest is not None
    return digest


def get_digest(session: Session, digest_id: int) -> Digest:
    return get_row(session, Digest, digest_id, "digest")


def digest_newsletters(session: Session, digest_id: int) -> list[Newsletter]:
    """The digest's newsletters in member order (oldest first when created that way)."""
    return list(
        session.scalars(
            select(Newsletter)
            .join(DigestMember, DigestMember.newsletter_id == Newsletter.id)
            .where(DigestMember.digest_id == digest_id)
            .order_by(DigestMember.position)
        )
    )


def digest_members(session: Session, digest_id: int) -> list[tuple[Newsletter, int]]:
    """The digest's newsletters in member order, each with its volume (0: left out of every volume)."""
    return [
        (newsletter, volume)
        for newsletter, volume in session.execute(
            select(Newsletter, DigestMember.volume)
            .join(DigestMember, DigestMember.newsletter_id == Newsletter.id)
            .where(DigestMember.digest_id == digest_id)
            .order_by(DigestMember.position)
        )
    ]


def set_members_volume(session: Session, digest_id: int, newsletter_ids: Sequence[int], volume: int) -> None:
    session.execute(
        update(DigestMember)
        .where(DigestMember.digest_id == digest_id, DigestMember.newsletter_id.in_(newsletter_ids))
        .values(volume=volume)
    )


def newsletters_still_in(session: Session, digest_id: int) -> list[tuple[int, int]]:
    """(newsletter id, inbound email id) of the members whose newsletter is still ``in_digest``."""
    rows = session.execute(
        select(Newsletter.id, Newsletter.inbound_email_id)
        .join(DigestMember, DigestMember.newsletter_id == Newsletter.id)
        .where(DigestMember.digest_id == digest_id, Newsletter.status == NewsletterStatus.IN_DIGEST.value)
    ).all()
    return [(newsletter_id, email_id) for newsletter_id, email_id in rows]


def unfinished_digests(session: Session) -> list[int]:
    return list(session.scalars(select(Digest.id).where(Digest.status.in_(UNFINISHED)).order_by(Digest.id)))


def digest_status(session: Session, digest_id: int) -> str | None:
    return session.scalar(select(Digest.status).where(Digest.id == digest_id))


def digest_period_key(session: Session, digest_id: int) -> str | None:
    return session.scalar(select(Digest.period_key).where(Digest.id == digest_id))


def set_digest_status(
    session: Session,
    digest_id: int,
    status: DigestStatus | str,
    reason: str | None = None,
    *,
    epub_keys: list[str] | None = None,
    epub_bytes: int | None = None,
    now: datetime | None = None,
) -> Digest:
    row = get_digest(session, digest_id)
    row.status = DigestStatus(status).value
    row.reason = reason
    if epub_keys is not None:
        row.epub_keys = epub_keys
    if epub_bytes is not None:
        row.epub_bytes = epub_bytes
    if row.status == DigestStatus.DELIVERED.value:
        row.delivered_at = now or utcnow()
    session.flush()
    return row
