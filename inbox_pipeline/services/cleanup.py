"""Cleanup: raw emails and EPUBs past retention leave storage and the database.

``clean_up(pipeline, now, policy)`` is what the daily maintenance schedule
runs. Configuration (environment variables, read by ``Settings``; ``RetentionPolicy.from_settings``):

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from inbox_pipeline.config import FAILED_RETENTION_DAYS, PREFIX, RETENTION_DAYS, Settings
from inbox_pipeline.services.context import Pipeline, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

Row = TypeVar("Row")  # an expired item as the repository returns it

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
    days: int = RETENTION_DAYS
    failed_days: int = FAILED_RETENTION_DAYS

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"{PREFIX}RETENTION_DAYS must be at least 1, not {self.days}")
        if self.failed_days < self.days:
            raise ValueError(
                f"{PREFIX}FAILED_RETENTION_DAYS ({self.failed_days}) must be at least "
                f"{PREFIX}RETENTION_DAYS ({self.days}): failed items are kept longer, not shorter"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetentionPolicy":
        """The deployment's policy; a ValueError says which variable is wrong."""
        return cls(settings.retention_days, settings.failed_retention_days)

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

    def add(self, deleted: Mapping[str, int]) -> None:
        """Count rows deleted, keyed by the field they add to (``inbound_emails``, ``deliveries``, ...)."""
        for name, rows in deleted.items():
            setattr(self, name, getattr(self, name) + rows)


def clean_up(pipeline: Pipeline, now: datetime | None = None, policy: RetentionPolicy | None = None) -> CleanupReport:
    """Remove everything past its retention at ``now``; an object that cannot be deleted keeps its row."""
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    policy = policy or RetentionPolicy()
    report = CleanupReport()
    _clean_inbound(pipeline, report, FINISHED_STATES, now - timedelta(days=policy.days))
    _clean_inbound(pipeline, report, FAILED_STATES, now - timedelta(days=policy.failed_days))
    _clean_digests(pipeline, report, ("delivered", "empty"), now - timedelta(days=max(policy.days, DIGEST_ROW_MIN_DAYS)))
    _clean_digests(pipeline, report, ("failed",), now - timedelta(days=max(policy.failed_days, DIGEST_ROW_MIN_DAYS)))
    return report


def _clean_inbound(pipeline: Pipeline, report: CleanupReport, states: tuple[str, ...], cutoff: datetime) -> None:
    # Lazy: the maintenance definitions import this module (RetentionPolicy) on Dagster's load path.
    from inbox_pipeline.db.retention import delete_emails, expired_emails
    from inbox_pipeline.services.process import WORK_FILES, work_key

    def delete_objects(row) -> None:
        if row.fanout_of_id is None:  # a fan-out copy reads its original's raw email: it has none
            pipeline.inbox.delete_archived(row.storage_key)
            report.raw_objects += 1
        if row.newsletter_id is not None:
            keys = ([row.epub_key] if row.epub_key else []) + [work_key(row.newsletter_id, n) for n in WORK_FILES]
            for key in keys:
                pipeline.storage.delete(key)
            report.epub_objects += 1 if row.epub_key else 0

    def delete_rows(session: Session, rows: list) -> Mapping[str, int]:
        newsletter_ids = [r.newsletter_id for r in rows if r.newsletter_id is not None]
        return delete_emails(session, [r.email_id for r in rows], newsletter_ids)

    _clean_expired(
        pipeline,
        report,
        "inbound email",
        lambda session, after_id: expired_emails(session, states, cutoff, after_id=after_id, limit=BATCH),
        lambda row: row.email_id,
        delete_objects,
        delete_rows,
    )


def _clean_digests(pipeline: Pipeline, report: CleanupReport, statuses: tuple[str, ...], cutoff: datetime) -> None:
    from inbox_pipeline.db.retention import delete_digests, expired_digests  # lazy, as in _clean_inbound

    def delete_objects(row: tuple[int, list[str]]) -> None:
        for key in row[1]:
            pipeline.storage.delete(key)
            report.epub_objects += 1

    _clean_expired(
        pipeline,
        report,
        "digest",
        lambda session, after_id: expired_digests(session, statuses, cutoff, after_id=after_id, limit=BATCH),
        lambda row: row[0],
        delete_objects,
        lambda session, rows: delete_digests(session, [digest_id for digest_id, _ in rows]),
    )


def _clean_expired(
    pipeline: Pipeline,
    report: CleanupReport,
    what: str,
    find: Callable[[Session, int], list[Row]],
    row_id: Callable[[Row], int],
    delete_objects: Callable[[Row], None],
    delete_rows: Callable[[Session, list[Row]], Mapping[str, int]],
) -> None:
    """Page through what ``find`` returns after an id, ``BATCH`` rows a transaction: each row's objects
    go first, then the rows whose objects all went; a row whose objects could not be deleted stays for
    the next cleanup (the error reported) and the others go on."""
    after_id = 0
    while True:
        with pipeline.sessions() as session:
            rows = find(session, after_id)
        if not rows:
            return
        after_id = row_id(rows[-1])
        done: list[Row] = []
        for row in rows:
            try:
                delete_objects(row)
            except Exception as exc:  # noqa: BLE001 - kept for the next cleanup; the others go on
                report.errors.append(f"{what} #{row_id(row)}: {type(exc).__name__}: {exc}")
                continue
            done.append(row)
        if done:
            with pipeline.sessions.begin() as session:
                report.add(delete_rows(session, done))
