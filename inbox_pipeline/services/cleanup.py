"""Cleanup: raw emails and EPUBs past retention leave storage and the database.

``clean_up(pipeline, now, policy)`` is what the daily maintenance schedule
runs. Configuration (environment variables, read by ``RetentionPolicy.from_env``):

- ``INBOX_PIPELINE_RETENTION_DAYS`` (default 30): finished emails (delivered,
  unroutable, duplicate, quarantined, confirmation forwarded, over quota)
  and delivered or empty digests, counted from their last state change.
- ``INBOX_PIPELINE_FAILED_RETENTION_DAYS`` (default 90, never less than the
  above): failed emails and failed digests, kept longer for inspection.

What goes, for an inbound email past its retention: the raw email in the
inbox archive, its newsletter's EPUB and any work files a failed run left,
then the rows: delivery ledger rows and notifications keyed by its ids,
the newsletter (its digest membership cascades) and the inbound email
(copies marked duplicate of it keep their row, the link is set to NULL).
For a digest: its volume EPUBs, its ledger rows and its row.

What stays whatever its age: emails still on their way (received, parsed,
routed, ready: held for a digest, waiting for a Kindle address, or mid-run)
and digests not finished; they get a retention once they reach a final state.

Order and idempotence: objects are deleted before rows, so a cleanup that
dies half way leaves rows pointing at missing objects (deleted again next
time, harmlessly) and never objects nobody points at.

Why ledger rows go with their item rather than staying as tombstones: once
the item is gone no run can send it again, so the row guards nothing; and
SQLite reuses the ids of deleted rows (``INTEGER PRIMARY KEY`` without
AUTOINCREMENT takes max(id)+1), so a leftover ``sent`` row for newsletter #7
would make a *new* newsletter #7 look already delivered and never send it.
The same goes for notifications keyed by ids ("newsletter-7", "inbound-7",
"digest-7"). Counts of what was sent are in the Dagster run history.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from inbox_pipeline.config import PREFIX
from inbox_pipeline.services.context import Pipeline, utcnow

DEFAULT_RETENTION_DAYS = 30
DEFAULT_FAILED_RETENTION_DAYS = 90
BATCH = 200  # rows per transaction
# A digest row is what stops its period from being compiled again (unique per user and
# period); keep it past the longest period plus the previous-period catch-up (two weeks).
DIGEST_ROW_MIN_DAYS = 15

FINISHED_STATES = (
    "delivered", "unroutable", "duplicate", "quarantined", "unreadable", "confirmation_forwarded", "over_quota"
)
FAILED_STATES = ("failed",)


@dataclass(frozen=True)
class RetentionPolicy:
    days: int = DEFAULT_RETENTION_DAYS
    failed_days: int = DEFAULT_FAILED_RETENTION_DAYS

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"{PREFIX}RETENTION_DAYS must be at least 1, not {self.days}")
        if self.failed_days < self.days:
            raise ValueError(
                f"{PREFIX}FAILED_RETENTION_DAYS ({self.failed_days}) must be at least "
                f"{PREFIX}RETENTION_DAYS ({self.days}): failed items are kept longer, not shorter"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RetentionPolicy":
        env = os.environ if environ is None else environ

        def days(name: str, default: int) -> int:
            text = env.get(PREFIX + name, "").strip()
            if not text:
                return default
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{PREFIX}{name} must be a whole number of days, not {text!r}") from None

        return cls(days("RETENTION_DAYS", DEFAULT_RETENTION_DAYS), days("FAILED_RETENTION_DAYS", DEFAULT_FAILED_RETENTION_DAYS))

    def describe(self) -> str:
        return f"finished items after {self.days} days, failed ones after {self.failed_days} days"


@dataclass
class CleanupReport:
    inbound_emails: int = 0
    newsletters: int = 0
    digests: int = 0
    deliveries: int = 0
    notifications: int = 0
    raw_objects: int = 0  # raw emails deleted from the inbox archive
    epub_objects: int = 0  # newsletter and digest EPUBs (and work files) deleted from storage
    errors: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return self.inbound_emails + self.digests


def clean_up(pipeline: Pipeline, now: datetime | None = None, policy: RetentionPolicy | None = None) -> CleanupReport:
    """Remove everything past its retention at ``now``; an object that cannot be deleted keeps its row."""
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    policy = policy or RetentionPolicy.from_env()
    report = CleanupReport()
    _clean_inbound(pipeline, report, FINISHED_STATES, now - timedelta(days=policy.days))
    _clean_inbound(pipeline, report, FAILED_STATES, now - timedelta(days=policy.failed_days))
    _clean_digests(pipeline, report, ("delivered", "empty"), now - timedelta(days=max(policy.days, DIGEST_ROW_MIN_DAYS)))
    _clean_digests(pipeline, report, ("failed",), now - timedelta(days=max(policy.failed_days, DIGEST_ROW_MIN_DAYS)))
    return report


def _clean_inbound(pipeline: Pipeline, report: CleanupReport, states: tuple[str, ...], cutoff: datetime) -> None:
    from sqlalchemy import and_, exists, select

    from inbox_pipeline.db.models import Digest, DigestMember, InboundEmail, Newsletter

    # A newsletter inside a digest that is still being delivered stays with it.
    in_open_digest = exists().where(
        DigestMember.newsletter_id == Newsletter.id,
        Digest.id == DigestMember.digest_id,
        Digest.status.in_(("pending", "ready")),
    )
    after_id = 0
    while True:
        with pipeline.sessions() as session:
            rows = session.execute(
                select(
                    InboundEmail.id, InboundEmail.storage_key, Newsletter.id, Newsletter.epub_key,
                    InboundEmail.fanout_of_id,
                )
                .outerjoin(Newsletter, Newsletter.inbound_email_id == InboundEmail.id)
                .where(
                    InboundEmail.state.in_(states),
                    InboundEmail.state_changed_at < cutoff,
                    InboundEmail.id > after_id,
                    ~and_(Newsletter.id.is_not(None), in_open_digest),
                )
                .order_by(InboundEmail.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        after_id = rows[-1][0]
        done: list[tuple[int, int | None]] = []
        for email_id, storage_key, newsletter_id, epub_key, fanout_of_id in rows:
            try:
                if fanout_of_id is None:  # a fan-out copy reads its original's raw email: it has none
                    pipeline.inbox.delete_archived(storage_key)
                    report.raw_objects += 1
                if newsletter_id is not None:
                    from inbox_pipeline.services.process import WORK_FILES, work_key

                    keys = ([epub_key] if epub_key else []) + [work_key(newsletter_id, n) for n in WORK_FILES]
                    for key in keys:
                        pipeline.storage.delete(key)
                    report.epub_objects += 1 if epub_key else 0
            except Exception as exc:  # noqa: BLE001 - kept for the next cleanup; the others go on
                report.errors.append(f"inbound email #{email_id}: {type(exc).__name__}: {exc}")
                continue
            done.append((email_id, newsletter_id))
        if done:
            _delete_inbound_rows(pipeline, report, done)


def _delete_inbound_rows(pipeline: Pipeline, report: CleanupReport, done: list[tuple[int, int | None]]) -> None:
    from sqlalchemy import delete, update

    from inbox_pipeline.db.models import Delivery, DigestMember, InboundEmail, Newsletter, Notification

    email_ids = [e for e, _ in done]
    newsletter_ids = [n for _, n in done if n is not None]
    with pipeline.sessions.begin() as session:
        if newsletter_ids:
            report.deliveries += session.execute(
                delete(Delivery).where(Delivery.item_kind == "newsletter", Delivery.item_id.in_(newsletter_ids))
            ).rowcount
        keys = [f"newsletter-{n}" for n in newsletter_ids] + [f"inbound-{e}" for e in email_ids]
        report.notifications += session.execute(
            delete(Notification).where(
                Notification.kind.in_(("delivery_failed", "confirmation_forwarded")),
                Notification.dedup_key.in_(keys),
            )
        ).rowcount
        # Said explicitly, not left to ON DELETE CASCADE / SET NULL: SQLite applies those only
        # on connections that turned foreign keys on.
        if newsletter_ids:
            session.execute(delete(DigestMember).where(DigestMember.newsletter_id.in_(newsletter_ids)))
            report.newsletters += session.execute(delete(Newsletter).where(Newsletter.id.in_(newsletter_ids))).rowcount
        session.execute(
            update(InboundEmail).where(InboundEmail.duplicate_of_id.in_(email_ids)).values(duplicate_of_id=None)
        )
        report.inbound_emails += session.execute(delete(InboundEmail).where(InboundEmail.id.in_(email_ids))).rowcount


def _clean_digests(pipeline: Pipeline, report: CleanupReport, statuses: tuple[str, ...], cutoff: datetime) -> None:
    from sqlalchemy import delete, func, select

    from inbox_pipeline.db.models import Delivery, Digest, DigestMember, Notification

    after_id = 0
    while True:
        with pipeline.sessions() as session:
            rows = session.execute(
                select(Digest.id, Digest.epub_keys)
                .where(
                    Digest.status.in_(statuses),
                    func.coalesce(Digest.delivered_at, Digest.created_at) < cutoff,
                    Digest.id > after_id,
                )
                .order_by(Digest.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        after_id = rows[-1][0]
        done: list[int] = []
        for digest_id, keys in rows:
            try:
                for key in keys or []:
                    pipeline.storage.delete(key)
                    report.epub_objects += 1
            except Exception as exc:  # noqa: BLE001 - kept for the next cleanup
                report.errors.append(f"digest #{digest_id}: {type(exc).__name__}: {exc}")
                continue
            done.append(digest_id)
        if not done:
            continue
        with pipeline.sessions.begin() as session:
            report.deliveries += session.execute(
                delete(Delivery).where(Delivery.item_kind == "digest", Delivery.item_id.in_(done))
            ).rowcount
            report.notifications += session.execute(
                delete(Notification).where(
                    Notification.kind == "delivery_failed", Notification.dedup_key.in_([f"digest-{d}" for d in done])
                )
            ).rowcount
            session.execute(delete(DigestMember).where(DigestMember.digest_id.in_(done)))
            report.digests += session.execute(delete(Digest).where(Digest.id.in_(done))).rowcount
