"""Digests: compile every due digest into one EPUB per user (volumes when large) and deliver it once.

``compile_and_deliver_due(pipeline, now)`` is the whole hourly job; the
schedule's op calls it with the tick's time and tests call it with a moving
clock. What it picks up (``due_work``):

- the user's current period, once past its due hour in the user's zone and
  without a digest row (``db.digests.due_digests``): a tick missed earlier in
  the period is caught up by the next one;
- the previous period, when the missed tick fell across the period boundary
  (a ``daily@23`` user whose 23:00 tick never ran and the next ran after local
  midnight): no row, and newsletters held from before its due time. Dagster
  launches only the latest missed tick of a cron schedule, so this catch-up is
  ours;
- digests created but not finished (``pending``/``ready``): a run that died
  between choosing the newsletters and sending them is finished by the next.

Chapters come from each newsletter's stored EPUB (what the per-email job
built, checked and stored), not from a second conversion: no second image
download, the same text as an instant delivery, and cheap on an hourly tick.
A stored EPUB that is missing or unreadable is rebuilt from the raw email in
the inbox archive (``core.convert.prepare_chapter``).

Exactly once: the digest row is unique per (user, period) and a newsletter
is a member of one digest only (the database says so); each volume is a
ledger row (``item_kind="digest"``, ``part`` = volume number) claimed and
committed before sending. A re-run sends only volumes never claimed; a claim
never confirmed is not resent automatically (see ``db.ledger``).

Nothing new in a period: the digest row is ``empty`` and nothing is sent.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lxml import etree

from inbox_pipeline.core.convert import prepare_chapter
from inbox_pipeline.core.digest import DigestInputError, DigestVolume, build_digest_volumes, chapter_from_epub
from inbox_pipeline.core.epub import Chapter
from inbox_pipeline.db.digests import (
    UNFINISHED,
    DueDigest,
    create_digest,
    digest_members,
    due_digests,
    get_digest,
    missed_previous_periods,
    newsletters_still_in,
    set_digest_status,
    set_members_volume,
    unfinished_digests,
)
from inbox_pipeline.db.intake import advance_state
from inbox_pipeline.db.models import DigestStatus, InboundState, NewsletterStatus
from inbox_pipeline.db.newsletters import get_newsletter, newsletters_for_digest, set_newsletter_status
from inbox_pipeline.db.users import find_user
from inbox_pipeline.seams import ObjectNotFound
from inbox_pipeline.seams.mailer import build_epub_email, build_link_email, message_size_after_base64
from inbox_pipeline.services.context import PermanentStepError, Pipeline, utcnow
from inbox_pipeline.services.deliver import MESSAGE_OVERHEAD
from inbox_pipeline.services.ledger_send import send_once
from inbox_pipeline.services.notify import notify_delivery_failed, notify_no_kindle
from inbox_pipeline.services.process import check_epub_bytes, fail_email, image_policy, load_email


@dataclass(frozen=True)
class VolumeOutcome:
    number: int
    total: int
    status: str  # "sent", "link_sent", "already_sent", "in_flight", "retry", "failed", "unconfirmed"
    recipient: str
    reason: str
    bytes: int = 0
    delivery_id: int | None = None
    provider_message_id: str | None = None


@dataclass(frozen=True)
class DigestOutcome:
    user_id: int
    user_email: str
    period_key: str
    status: str  # "delivered", "empty", "no_kindle", "in_flight", "retry", "failed", "unconfirmed"
    reason: str
    digest_id: int | None = None
    newsletters: int = 0
    volumes: tuple[VolumeOutcome, ...] = ()

    @property
    def sent(self) -> int:
        return sum(v.status in ("sent", "link_sent") for v in self.volumes)


@dataclass
class DigestRun:
    now: datetime
    outcomes: list[DigestOutcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        """Emails sent by this run (one per volume)."""
        return sum(o.sent for o in self.outcomes)

    @property
    def retry(self) -> list[DigestOutcome]:
        """Digests that hit a transient error: worth retrying soon (the next run also picks them up)."""
        return [o for o in self.outcomes if o.status == "retry"]


@dataclass(frozen=True)
class DueWork:
    due: tuple[DueDigest, ...]  # periods to create a digest for
    unfinished: tuple[int, ...]  # digest ids created earlier and not finished

    def __bool__(self) -> bool:
        return bool(self.due or self.unfinished)


# --- what is due --------------------------------------------------------------------


def due_work(pipeline: Pipeline, now: datetime) -> DueWork:
    """Periods due at ``now`` (the current one, or a previous one a missed tick skipped) and unfinished digests."""
    _check_aware(now)
    with pipeline.sessions() as session:
        due = missed_previous_periods(session, now) + due_digests(session, now)
    return DueWork(tuple(due), tuple(_unfinished_ids(pipeline)))


def compile_and_deliver_due(pipeline: Pipeline, now: datetime | None = None) -> DigestRun:
    """Create every due digest and deliver every unfinished one; one digest's failure never stops the others."""
    now = now or utcnow()
    _check_aware(now)
    run = DigestRun(now)
    work = due_work(pipeline, now)
    for due in work.due:
        outcome = create_digest_for(pipeline, due, now)
        if outcome is not None:
            run.outcomes.append(outcome)
    # Again from the database: what was just created and what earlier runs left unfinished.
    for digest_id in _unfinished_ids(pipeline):
        run.outcomes.append(_deliver_guarded(pipeline, digest_id, now))
    return run


def _unfinished_ids(pipeline: Pipeline) -> list[int]:
    with pipeline.sessions() as session:
        return unfinished_digests(session)


def create_digest_for(pipeline: Pipeline, due: DueDigest, now: datetime) -> DigestOutcome | None:
    """The period's digest row with the user's held newsletters (oldest first); ``None`` when it has members.

    A digest with members is delivered by the caller with the unfinished ones.
    An ``empty`` period or a user without a Kindle address is final here.
    """
    with pipeline.sessions.begin() as session:
        user = find_user(session, due.user_id)
        if user is None:
            return None
        user_email = user.email
        # Newsletters "from the future" of this clock wait for the next digest.
        held = [n.id for n in newsletters_for_digest(session, due.user_id) if n.received_at <= now]
        if user.kindle is None and held:
            no_kindle = True
        else:
            no_kindle = False
            digest = create_digest(session, due.user_id, due.period_key, held, period_start=due.period_start_utc)
            digest_id, status, reason = digest.id, digest.status, digest.reason or ""
    if no_kindle:
        # Kept held (no digest row): the first digest after a Kindle address is added takes them.
        _tell_no_kindle(pipeline, due.user_id)
        return DigestOutcome(
            due.user_id, user_email, due.period_key, "no_kindle",
            f"{len(held)} newsletter(s) kept: {user_email} has no Kindle address yet (user notified)",
            newsletters=len(held),
        )
    if status == DigestStatus.EMPTY.value:
        return DigestOutcome(due.user_id, user_email, due.period_key, "empty", reason or "nothing new", digest_id)
    return None


def _deliver_guarded(pipeline: Pipeline, digest_id: int, now: datetime) -> DigestOutcome:
    try:
        return deliver_digest(pipeline, digest_id, now)
    except PermanentStepError as exc:
        return _fail_digest(pipeline, digest_id, str(exc), notify=True)
    except Exception as exc:  # noqa: BLE001 - recorded; the digest stays unfinished and is retried
        who = _digest_identity(pipeline, digest_id)
        return DigestOutcome(
            who[0], who[1], who[2], "retry", f"{type(exc).__name__}: {exc}", digest_id
        )


# --- one digest ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    newsletter_id: int
    email_id: int
    subject: str
    sender_name: str
    sender_email: str
    received_at: datetime
    epub_key: str | None
    raw_key: str
    language: str | None
    message_id: str | None
    volume: int


def deliver_digest(pipeline: Pipeline, digest_id: int, now: datetime) -> DigestOutcome:
    """Build (or reuse) the digest's volumes and send each once; the newsletters follow their volume's fate."""
    with pipeline.sessions() as session:
        digest = get_digest(session, digest_id)
        user = find_user(session, digest.user_id)
        if user is None:
            raise PermanentStepError(f"user #{digest.user_id} no longer exists")
        user_id, user_email, tz_name = user.id, user.email, user.timezone
        weekday = user.delivery_weekday
        device = user.kindle
        kindle, device_id = (device.email, device.id) if device else (None, None)
        period_key, status, keys = digest.period_key, digest.status, list(digest.epub_keys or [])
        members = [
            _Member(
                n.id, n.inbound_email_id, n.subject, n.sender_name, n.sender_email, n.received_at, n.epub_key,
                n.raw_key, n.language, n.message_id, volume,
            )
            for n, volume in digest_members(session, digest_id)
        ]
    if status not in UNFINISHED:
        return DigestOutcome(user_id, user_email, period_key, status, f"digest #{digest_id} is {status}", digest_id)
    if kindle is None:  # removed since the digest was made: it waits, unfinished, for a new one
        _tell_no_kindle(pipeline, user_id)
        reason = f"digest #{digest_id} waits: {user_email} has no Kindle address (user notified)"
        return DigestOutcome(user_id, user_email, period_key, "no_kindle", reason, digest_id, len(members))

    storage = pipeline.storage
    volumes: list[tuple[int, str, bytes, str, list[_Member]]]  # (number, key, bytes, title, members)
    if status == DigestStatus.READY.value and keys and all(storage.exists(k) for k in keys):
        # Built by an earlier attempt: the same volumes (and ledger parts) again.
        volumes = []
        total = len(keys)
        for number, key in enumerate(keys, start=1):
            data = storage.get(key)
            volumes.append((number, key, data, _title_of(data), [m for m in members if m.volume == number]))
    else:
        volumes = _build_and_store(
            pipeline, digest_id, user_id, user_email, tz_name, weekday, period_key, members
        )
        total = len(volumes)

    budget = pipeline.options.size_budget_bytes
    outcomes: list[VolumeOutcome] = []
    for number, key, data, title, vol_members in volumes:
        outcome = _send_volume(
            pipeline, digest_id, user_id, number, total, key, data, title, vol_members,
            kindle=kindle, device_id=device_id, user_email=user_email, budget=budget, now=now,
        )
        outcomes.append(outcome)
        if outcome.status in ("sent", "link_sent", "already_sent"):
            _mark_members_delivered(pipeline, vol_members, outcome.reason)
        else:
            break  # in order: a later volume waits for the earlier one
    count = sum(len(v[4]) for v in volumes)
    last = outcomes[-1]
    if all(o.status in ("sent", "link_sent", "already_sent") for o in outcomes) and len(outcomes) == total:
        reason = f"{count} newsletter(s) in {total} volume(s) sent to {kindle}"
        with pipeline.sessions.begin() as session:
            set_digest_status(session, digest_id, DigestStatus.DELIVERED, reason, now=now)
        return DigestOutcome(user_id, user_email, period_key, "delivered", reason, digest_id, count, tuple(outcomes))
    if last.status in ("failed", "unconfirmed"):
        # Unconfirmed: it may have arrived, so the user is not told it failed.
        _fail_digest(pipeline, digest_id, last.reason, notify=last.status == "failed")
        return DigestOutcome(user_id, user_email, period_key, last.status, last.reason, digest_id, count, tuple(outcomes))
    return DigestOutcome(user_id, user_email, period_key, last.status, last.reason, digest_id, count, tuple(outcomes))


def _title_of(epub: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        rootfile = etree.fromstring(zf.read("META-INF/container.xml")).find(".//{*}rootfile")
        opf = etree.fromstring(zf.read(rootfile.get("full-path")))
    title = opf.find(".//{http://purl.org/dc/elements/1.1/}title")
    return (title.text or "Digest") if title is not None else "Digest"


def epub_budget(size_budget_bytes: int) -> int:
    """The largest EPUB whose email (base64 attachment, headers, text) fits ``size_budget_bytes``."""
    lo, hi = 0, max(0, size_budget_bytes)
    while lo < hi:  # the message size grows with the EPUB: bisect for the last that fits
        mid = (lo + hi + 1) // 2
        if message_size_after_base64(mid) + MESSAGE_OVERHEAD <= size_budget_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def period_label_and_date(period_key: str, timezone_name: str, weekday: int | None) -> tuple[str, datetime]:
    """("Daily", the period's local date at noon) from ``daily:2026-10-25`` / ``weekly:2026-W43``."""
    kind, _, value = period_key.partition(":")
    if kind == "weekly":
        year, week = value.split("-W")
        day = date.fromisocalendar(int(year), int(week), (weekday or 0) + 1)
    else:
        day = date.fromisoformat(value)
    # Noon: the same calendar date in any zone the cover or dc:date is read in.
    return kind.capitalize() or "Digest", datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(timezone_name))


def _build_and_store(
    pipeline: Pipeline,
    digest_id: int,
    user_id: int,
    user_email: str,
    tz_name: str,
    weekday: int | None,
    period_key: str,
    members: list[_Member],
) -> list[tuple[int, str, bytes, str, list[_Member]]]:
    chapters: list[Chapter] = []
    included: list[_Member] = []
    for member in members:
        try:
            chapters.append(_chapter_for(pipeline, member))
            included.append(member)
        except Exception as exc:  # noqa: BLE001 - one unreadable newsletter never blocks the digest
            fail_email(
                pipeline, member.email_id, f"left out of digest #{digest_id}: {exc}",
                newsletter_id=member.newsletter_id,
            )
    if not chapters:
        raise PermanentStepError(f"none of the {len(members)} newsletter(s) of digest #{digest_id} could be read")
    label, when = period_label_and_date(period_key, tz_name, weekday)
    built: list[DigestVolume] = build_digest_volumes(
        chapters,
        user_label=user_email,
        period_label=label,
        date=when,
        budget_bytes=epub_budget(pipeline.options.size_budget_bytes),
    )
    for volume in built:
        check = check_epub_bytes(volume.epub, epubcheck=pipeline.options.epubcheck)
        if not check.passed:
            raise PermanentStepError(
                f"volume {volume.number} of digest #{digest_id} failed validation: " + "; ".join(check.problems[:5])
            )
    result = []
    keys = []
    for volume in built:
        key = f"digests/{user_id}/{digest_id}/{volume.file_name}"
        pipeline.storage.put(key, volume.epub, "application/epub+zip")
        keys.append(key)
        result.append((volume.number, key, volume.epub, volume.title, [included[i] for i in volume.positions]))
    left_out = [m.newsletter_id for m in members if m not in included]
    with pipeline.sessions.begin() as session:
        # Volume 0: in no volume (left out), so a later attempt reusing the volumes never marks it delivered.
        for number, ids in [(0, left_out)] + [
            (v.number, [included[i].newsletter_id for i in v.positions]) for v in built
        ]:
            if ids:
                set_members_volume(session, digest_id, ids, number)
        set_digest_status(
            session, digest_id, DigestStatus.READY,
            f"{len(included)} newsletter(s) in {len(built)} volume(s), {sum(v.size for v in built)} bytes",
            epub_keys=keys, epub_bytes=sum(v.size for v in built),
        )
    return result


def _chapter_for(pipeline: Pipeline, member: _Member) -> Chapter:
    """The chapter from the stored EPUB; rebuilt from the raw email when that cannot be read."""
    sender = member.sender_name or member.sender_email or None
    if member.epub_key:
        try:
            return chapter_from_epub(
                pipeline.storage.get(member.epub_key),
                title=member.subject or None,
                author=sender,
                date=member.received_at,
                group=sender,
                language=member.language,
                message_id=member.message_id,
            )
        except (ObjectNotFound, DigestInputError):
            pass
    email = load_email(pipeline, member.raw_key)
    chapter = prepare_chapter(email, policy=image_policy(pipeline), group=sender).chapter
    return replace(chapter, language=member.language or chapter.language, message_id=member.message_id)


def _send_volume(
    pipeline: Pipeline,
    digest_id: int,
    user_id: int,
    number: int,
    total: int,
    key: str,
    data: bytes,
    title: str,
    members: list[_Member],
    *,
    kindle: str,
    device_id: int | None,
    user_email: str,
    budget: int,
    now: datetime,
) -> VolumeOutcome:
    """One volume, once, through the ledger; as a link when over budget."""
    size = message_size_after_base64(data) + MESSAGE_OVERHEAD
    as_link = size > budget
    recipient = user_email if as_link else kindle
    sender = pipeline.options.sender
    count = len(members)

    def build(token: str):
        if as_link:
            expires = pipeline.options.link_expires_seconds
            link = pipeline.storage.download_link(key, expires, file_name=key.rsplit("/", 1)[-1])
            return build_link_email(
                sender=sender, to=recipient, subject=f"Too large for email: {title}", title=title, link=link,
                size_bytes=len(data), expires_at=now + timedelta(seconds=expires),
            )
        contents = "\n".join(f"- {m.subject} ({m.sender_name or m.sender_email})" for m in members)
        return build_epub_email(
            sender=sender, to=recipient, subject=title, epub_bytes=data, file_name=key.rsplit("/", 1)[-1],
            body_text=f"{title}\n{count} newsletter(s):\n{contents}", token=token,
        )

    sent = send_once(
        pipeline, item_kind="digest", item_id=digest_id, part=number, recipient=recipient, build=build,
        user_id=user_id, device_id=None if as_link else device_id,
    )
    claim_id = sent.delivery_id
    what = f"volume {number} of {total}"
    if sent.status == "already_sent":
        return VolumeOutcome(
            number, total, "already_sent", recipient, f"{what} already sent to {recipient} (delivery #{claim_id})",
            len(data), claim_id, sent.provider_message_id,
        )
    if sent.status == "in_flight":
        return VolumeOutcome(
            number, total, "in_flight", recipient, f"{what} is being sent by another run (delivery #{claim_id})",
            len(data), claim_id,
        )
    if sent.status == "unconfirmed" and sent.error is None:
        reason = (
            f"delivery #{claim_id} of volume {number} to {recipient} was claimed at "
            f"{sent.claimed_at:%Y-%m-%d %H:%M:%S} UTC and never confirmed; it may have been sent, so it is "
            "not sent again. If the Kindle did not receive it, release the claim and set the digest back to ready."
        )
        return VolumeOutcome(number, total, "unconfirmed", recipient, reason, len(data), claim_id)
    if sent.status == "unconfirmed":
        return VolumeOutcome(
            number, total, "unconfirmed", recipient, f"{what} to {recipient} may have been sent: {sent.detail}",
            len(data), claim_id,
        )
    if sent.status == "retry":
        return VolumeOutcome(number, total, "retry", recipient, f"mail server busy, will retry: {sent.detail}", len(data), claim_id)
    if sent.status == "failed" and sent.error is not None:
        return VolumeOutcome(
            number, total, "failed", recipient, f"the mail server refused volume {number} to {recipient}: {sent.detail}",
            len(data), claim_id,
        )
    if sent.status != "sent":
        reason = f"delivery #{claim_id} of volume {number} to {recipient} failed for good: {sent.detail}"
        return VolumeOutcome(number, total, "failed", recipient, reason, len(data), claim_id)
    if as_link:
        reason = (
            f"volume {number} of {total} ({len(data)} bytes) is over the {budget} byte email budget: "
            f"download link sent to {recipient}"
        )
        return VolumeOutcome(number, total, "link_sent", recipient, reason, len(data), claim_id,
                             sent.provider_message_id)
    reason = f"volume {number} of {total} ({count} newsletter(s)) sent to Kindle {recipient}"
    return VolumeOutcome(number, total, "sent", recipient, reason, len(data), claim_id, sent.provider_message_id)


def _mark_members_delivered(pipeline: Pipeline, members: list[_Member], reason: str) -> None:
    with pipeline.sessions.begin() as session:
        for member in members:
            if get_newsletter(session, member.newsletter_id).status != NewsletterStatus.DELIVERED.value:
                set_newsletter_status(session, member.newsletter_id, NewsletterStatus.DELIVERED, f"in a digest: {reason}")
            advance_state(session, member.email_id, InboundState.DELIVERED, f"in a digest: {reason}")


def _digest_identity(pipeline: Pipeline, digest_id: int) -> tuple[int, str, str]:
    with pipeline.sessions() as session:
        digest = get_digest(session, digest_id)
        user = find_user(session, digest.user_id)
        return digest.user_id, user.email if user else "", digest.period_key


def _fail_digest(pipeline: Pipeline, digest_id: int, reason: str, *, notify: bool) -> DigestOutcome:
    """Record the digest and its undelivered newsletters as failed (kept for inspection); tell the user once."""
    user_id, user_email, period_key = _digest_identity(pipeline, digest_id)
    with pipeline.sessions.begin() as session:
        set_digest_status(session, digest_id, DigestStatus.FAILED, reason[:2000])
        waiting = newsletters_still_in(session, digest_id)
    for newsletter_id, email_id in waiting:
        fail_email(pipeline, email_id, f"digest #{digest_id} failed: {reason}", newsletter_id=newsletter_id)
    if notify and user_id:
        notify_delivery_failed(
            pipeline, user_id=user_id, title=f"your digest ({period_key})", reason=reason, digest_id=digest_id
        )
    return DigestOutcome(user_id, user_email, period_key, "failed", reason, digest_id, len(waiting))


def _tell_no_kindle(pipeline: Pipeline, user_id: int) -> None:
    notify_no_kindle(
        pipeline,
        user_id,
        "Your digest is ready, but there is no Send-to-Kindle address on your account, "
        "so your newsletters are kept until you add one.",
    )


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
