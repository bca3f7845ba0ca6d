"""Intake: take new objects from the inbox, register each once, archive it.

Crash safety, step by step (the sensor may be killed between any two):

1. ``read`` the pending object (size, sha256): nothing written yet.
2. ``register_inbound`` under the pending name: idempotent on the key, so a
   tick that dies after this and before 3 redoes it next tick (same row).
3. ``archive`` (move out of the pending listing): idempotent, returns the
   archived key. Dying after this and before the run is requested leaves a row
   in ``received`` with no run: ``unlaunched`` finds those rows and the sensor
   requests them again. Every request uses the storage key as Dagster's run
   key, which Dagster de-duplicates, so a row never gets two runs.
4. The sensor yields the run requests.

Where the objects come from: an inbox with an announcement source (S3 event
notifications through SQS, ``?queue=``) hands over the objects announced since
the last tick, so a tick's cost does not depend on the bucket; a reconciling
tick also lists the inbox prefix, for objects whose notification was lost
(the queue created after they arrived, messages expired). An inbox without
announcements is listed on every tick. An announcement whose object is no
longer pending (taken by a reconciling tick before its message arrived) is
dropped (``forget``).

A pending name that was used before by a *different* email (same name, other
bytes: a person dropping ``issue.eml`` twice) is archived first, because the
archive picks its ``-dupN`` name, and registered under that name after: the
one window where a crash between the two leaves the object only in the
archive (it is still there, never deleted, and the log says which).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from inbox_pipeline.services.context import Pipeline, utcnow

if TYPE_CHECKING:
    from inbox_pipeline.seams.inbox import Inbox, InboxObject

# A registered email whose run has not started after this long is requested again.
UNLAUNCHED_AFTER = timedelta(minutes=2)
# ... but only within this window: older rows need a person (they are listed by status).
UNLAUNCHED_WINDOW = timedelta(days=2)


@dataclass(frozen=True)
class Registered:
    email_id: int
    storage_key: str  # the archived key: what the run reads, and its Dagster run key
    size: int
    new: bool  # False when an earlier tick registered it (the run request is repeated safely)
    registered_at: datetime | None = None

    @property
    def run_key(self) -> str:
        """Stable for this registration (Dagster launches one run per key), new if the row is ever re-created."""
        stamp = f"{self.registered_at:%Y%m%dT%H%M%S.%f}" if self.registered_at else "-"
        return f"{self.storage_key}#{self.email_id}@{stamp}"


@dataclass
class IntakeTick:
    registered: list[Registered] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already registered, not pending anymore
    errors: list[str] = field(default_factory=list)  # objects that could not be taken (still pending; the rest went on)
    listed: int = 0  # objects the listing returned (0 when the prefix was not listed)
    announced: int | None = None  # objects announced; None: the inbox has no announcement source
    reconciled: bool = False  # the prefix was listed (always, without an announcement source)
    unannounced: int = 0  # listed objects that were not announced (a lost or late notification)


# Objects are taken in parallel: each is a few S3 and database round trips, so a burst of
# 200 waits ~1/8 as long before its runs are requested.
INTAKE_THREADS = 8


def take_new_emails(
    pipeline: Pipeline, *, limit: int, now: datetime | None = None, reconcile: bool = True
) -> IntakeTick:
    """Register and archive up to ``limit`` pending emails.

    With an announcing inbox the announced objects are taken, and with
    ``reconcile`` the prefix is listed too; without announcements it is always
    listed. Listing and queue errors propagate (the tick fails and the next one
    starts over); an error on one object is reported in ``errors`` and the object
    stays pending, while every other object is taken (each is complete on its own,
    see above): one bad object never holds the others back.
    """
    from concurrent.futures import ThreadPoolExecutor

    tick = IntakeTick()
    pending = _pending(pipeline.inbox, limit, reconcile, tick)
    if not pending:
        return tick  # the common tick: no threads to start

    def take(obj):
        try:
            return _take_one(pipeline, obj, now)
        except Exception as exc:  # noqa: BLE001 - reported by the sensor; the next tick retries
            return exc

    with ThreadPoolExecutor(min(INTAKE_THREADS, len(pending)), thread_name_prefix="intake") as pool:
        for obj, result in zip(pending, pool.map(take, pending)):
            if isinstance(result, Exception):
                tick.errors.append(f"{obj.key!r}: {type(result).__name__}: {result}")
            elif isinstance(result, Registered):
                tick.registered.append(result)
            elif isinstance(result, str):
                tick.skipped.append(result)
    return tick


def _pending(inbox: "Inbox", limit: int, reconcile: bool, tick: IntakeTick) -> "list[InboxObject]":
    """Announced objects, plus (reconciling, or with no announcements) the listed ones, in key order."""
    announced = inbox.take_announced(limit)
    tick.announced = None if announced is None else len(announced)
    if announced is not None and not reconcile:
        return announced
    listed = inbox.list_pending(limit)
    tick.listed, tick.reconciled = len(listed), True
    if announced is None:
        return listed
    taken = {obj.key for obj in announced}
    missed = [obj for obj in listed if obj.key not in taken]  # their notification was lost or is late
    tick.unannounced = len(missed)
    return sorted(announced + missed[: max(0, limit - len(announced))], key=lambda obj: obj.key)


def _take_one(pipeline: Pipeline, obj, now: datetime | None) -> "Registered | str | None":
    """Register and archive one pending object: its registration, its archived key when it was
    registered and finished before (skipped), or None when another tick archived it meanwhile."""
    from inbox_pipeline.db.intake import register_inbound
    from inbox_pipeline.db.models import InboundState
    from inbox_pipeline.seams.inbox import ObjectNotFound, ObjectTooLarge
    from inbox_pipeline.seams.inbox import archive_name as inbox_archive_name

    inbox, sessions = pipeline.inbox, pipeline.sessions
    try:
        data = inbox.read(obj.key)
        size, sha = len(data), hashlib.sha256(data).hexdigest()
    except ObjectNotFound:
        inbox.forget(obj.key)  # archived meanwhile (by another tick, or announced after a listing took it)
        return None
    except ObjectTooLarge as exc:
        # Registered unread (its size says enough), so it is recorded, not retried: parsing fails it.
        size, sha = exc.size, hashlib.sha256(f"unread {obj.key} {obj.version}".encode()).hexdigest()
    received_at = obj.last_modified or now or utcnow()
    name = inbox_archive_name(obj.key)  # a plain, registrable name, whatever the sender or writer chose
    with sessions.begin() as session:
        row, created = register_inbound(session, storage_key=name, size=size, sha256=sha, received_at=received_at)
        row_id, row_sha, row_state, row_created = row.id, row.sha256, row.state, row.created_at
    if not created and row_sha != sha:
        # The name was used before by another email: archive first (the
        # archive chooses the new name), then register that name.
        archived = inbox.archive(obj.key)
        with sessions.begin() as session:
            row, created = register_inbound(
                session, storage_key=archived, size=size, sha256=sha, received_at=received_at
            )
            row_id, row_state, row_created = row.id, row.state, row.created_at
    else:
        archived = inbox.archive(obj.key)
        if archived != name:
            _rename_storage_key(pipeline, row_id, archived)
    if row_state == InboundState.RECEIVED.value:
        return Registered(row_id, archived, size, created, row_created)
    return archived


def _rename_storage_key(pipeline: Pipeline, email_id: int, archived_key: str) -> None:
    from sqlalchemy import update

    from inbox_pipeline.db.models import InboundEmail

    with pipeline.sessions.begin() as session:
        session.execute(update(InboundEmail).where(InboundEmail.id == email_id).values(storage_key=archived_key))


def unlaunched(
    pipeline: Pipeline,
    *,
    older_than: timedelta = UNLAUNCHED_AFTER,
    limit: int = 100,
    now: datetime | None = None,
) -> list[Registered]:
    """Registered emails still in ``received`` after ``older_than``: their run may never have been requested."""
    from sqlalchemy import or_, select

    from inbox_pipeline.db.models import InboundEmail, InboundState

    now = now or utcnow()
    with pipeline.sessions() as session:
        rows = session.execute(
            select(InboundEmail.id, InboundEmail.storage_key, InboundEmail.size, InboundEmail.created_at)
            .where(
                InboundEmail.state == InboundState.RECEIVED.value,
                # A fan-out copy (made by routing, for a further user) has no run yet: request it at once.
                or_(InboundEmail.created_at < now - older_than, InboundEmail.fanout_of_id.is_not(None)),
                InboundEmail.created_at > now - UNLAUNCHED_WINDOW,
            )
            .order_by(InboundEmail.id)
            .limit(limit)
        ).all()
    return [Registered(row.id, row.storage_key, int(row.size), False, row.created_at) for row in rows]
