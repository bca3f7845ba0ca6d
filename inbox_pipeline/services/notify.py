"""Messages to a user's own email address, each told once per cause.

The notification row is the claim (``notify_once``: unique per user, kind and
key), written before sending, like the delivery ledger: ``pending`` while
sending, ``sent`` after, ``failed`` when the mailer refused. A "try later"
failure is marked claimable again (``RETRY_MARK``) and re-sent by the next
attempt or by ``resend_failed_notifications`` (the notification retry
sensor): never lost. A run killed while sending leaves it ``pending`` and it
is not sent again: at most once, like a Kindle delivery.

A notice is sent only while it is still true (``no_longer_true``, checked just
before every send and resend): a newsletter delivered since, a Kindle address
added since, is ``withdrawn`` and never sent. ``delivery_failed`` is deferred by
the pipeline's ``options.notice_grace`` (``deferred`` until ``send_after``), so an operator who
re-executes the run in time leaves the user untold. Users read plain sentences
(``plain_reason``); the internals go to the operator's alert.

The causes and their keys (one notice per key):

- ``no_kindle``: per missing-device episode (``no_kindle_episode``): a new
  episode starts when a device is added or something reaches a Kindle.
- ``quota_reached``: per quota month, ``"2026-03"`` (the user's own month).
- ``confirmation_forwarded``: per confirmation email, ``"inbound-<id>"``; the
  forward itself is the notice.
- ``delivery_failed``: per delivery item once Dagster gave up retrying,
  ``"newsletter-<id>"``, ``"digest-<id>"`` or ``"inbound-<id>"`` (see
  ``delivery_failed_key``).
- ``kindle_rejected``: per rejected delivery, ``"delivery-<id>"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from inbox_pipeline.db.digests import digest_status
from inbox_pipeline.db.intake import inbound_state
from inbox_pipeline.db.ledger import LEASE, newest_sent_to_device, was_sent
from inbox_pipeline.db.models import DigestStatus, InboundState, Notification, NotificationStatus
from inbox_pipeline.db.newsletters import newsletter_email_id
from inbox_pipeline.db.notifications import (
    RETRY_MARK,
    claim_again,
    count_unconfirmed,
    due_for_resend,
    find_notification,
    mark_notification_failed,
    mark_notification_sent,
    mark_notification_withdrawn,
    notification_by_id,
    notify_once,
)
from inbox_pipeline.db.users import has_active_kindle, newest_device_id, user_email
from inbox_pipeline.seams.mailer import TransientMailError, build_notification_email
from inbox_pipeline.services.context import DEFAULT_NOTICE_GRACE, Pipeline, utcnow

RESEND_WITHIN = timedelta(days=3)  # older "try later" notices are no longer worth sending
DEFAULT_GRACE = DEFAULT_NOTICE_GRACE  # time for the operator to re-execute before the user hears of it

NO_KINDLE = "no_kindle"
QUOTA_REACHED = "quota_reached"
CONFIRMATION_FORWARDED = "confirmation_forwarded"
DELIVERY_FAILED = "delivery_failed"
KINDLE_REJECTED = "kindle_rejected"


@dataclass(frozen=True)
class Notice:
    """What the user is told (``subject``, ``body``), and its cause: once per user, ``kind`` and ``dedup_key``."""

    kind: str
    dedup_key: str
    subject: str
    body: str


@dataclass(frozen=True)
class NotifyOutcome:
    status: str  # "sent", "already_sent", "in_flight", "failed", "deferred", "withdrawn"
    notification_id: int | None
    to: str
    detail: str = ""


@dataclass(frozen=True)
class Resent:
    """What ``resend_failed_notifications`` did."""

    sent: list[int]  # notification ids that went out now
    failed: list[tuple[int, str]]  # (id, why): still failing; transient ones are tried again later
    unconfirmed: int  # pending notices older than the lease: may have gone out, not sent again
    withdrawn: list[int] = field(default_factory=list)  # no longer true when due: never sent


# --- keys ----------------------------------------------------------------------------


def no_kindle_episode(session: Session, user_id: int) -> str:
    """The user's current missing-device episode.

    It changes when a Kindle address is added (the newest device id) and when
    something reached a Kindle (the newest sent device delivery), so a user who
    had a Kindle, was served, and lost it is told again; two newsletters in
    the same episode are one notice.
    """
    device = newest_device_id(session, user_id)
    served = newest_sent_to_device(session, user_id)
    return f"episode-d{device or 0}-s{served or 0}"


def delivery_failed_key(
    *, newsletter_id: int | None = None, digest_id: int | None = None, email_id: int | None = None
) -> str:
    """One ``delivery_failed`` notice per item: the newsletter, else the digest, else the inbound email."""
    if newsletter_id is not None:
        return f"newsletter-{newsletter_id}"
    if digest_id is not None:
        return f"digest-{digest_id}"
    if email_id is not None:
        return f"inbound-{email_id}"
    raise ValueError("delivery_failed_key needs a newsletter, digest or email id")


def _scoped_key(session: Session, kind: str, user_id: int, dedup_key: str) -> str:
    """``no_kindle`` keys are scoped to the episode: callers say "once" and mean "once per episode"."""
    if kind != NO_KINDLE:
        return dedup_key
    episode = no_kindle_episode(session, user_id)
    return episode if dedup_key in ("", "once") else f"{episode}:{dedup_key}"


# --- claim and send ---------------------------------------------------------------------


def claim_notification(
    pipeline: Pipeline, user_id: int, notice: Notice, *, defer: timedelta | None = None
) -> tuple[int | None, str, str]:
    """(notification id to send, or None; the user's email; why not) in one committed transaction.

    ``defer``: recorded as ``deferred`` and sent later by ``resend_failed_notifications`` (if still true).
    """
    with pipeline.sessions.begin() as session:
        to = user_email(session, user_id) or ""
        kind = notice.kind
        dedup_key = _scoped_key(session, kind, user_id, notice.dedup_key)
        send_after = utcnow() + defer if defer is not None else None
        row = notify_once(
            session, user_id=user_id, kind=kind, dedup_key=dedup_key, subject=notice.subject, body=notice.body,
            send_after=send_after,
        )
        if row is not None:
            if send_after is not None:
                return None, to, "deferred"
            return (row.id, to, "") if _still_true(session, row) else (None, to, "withdrawn")
        existing = find_notification(session, user_id=user_id, kind=kind, dedup_key=dedup_key)
        assert existing is not None
        if existing.status in (NotificationStatus.SENT.value, NotificationStatus.WITHDRAWN.value):
            return None, to, "already_sent" if existing.status == NotificationStatus.SENT.value else "withdrawn"
        if existing.status == NotificationStatus.DEFERRED.value and send_after is not None:
            return None, to, "deferred"  # the same cause again: still one notice, at its first time
        if _take_again(session, existing, due_now=send_after is None):
            return (existing.id, to, "") if _still_true(session, existing) else (None, to, "withdrawn")
        return None, to, "in_flight" if existing.status == NotificationStatus.PENDING.value else "failed"


def no_longer_true(session: Session, kind: str, user_id: int, dedup_key: str) -> str | None:
    """Why a notice of ``kind`` about ``dedup_key`` would now be false (never sent then), or None."""
    if kind == NO_KINDLE:
        return "a Kindle address was added since" if has_active_kindle(session, user_id) else None
    if kind != DELIVERY_FAILED:
        return None
    item, _, number = dedup_key.partition("-")
    if not number.isdigit():
        return None
    item_id = int(number)
    if item == "digest":
        failed = digest_status(session, item_id) == DigestStatus.FAILED.value
        kind_of_item = "digest"
    else:
        email_id = newsletter_email_id(session, item_id) if item == "newsletter" else item_id
        failed = email_id is not None and inbound_state(session, email_id) == InboundState.FAILED.value
        kind_of_item = "newsletter" if item == "newsletter" else None
    if kind_of_item is not None and was_sent(session, kind_of_item, item_id):
        return "delivered since"
    if not failed:
        return "no longer failed (re-executed, resumed or replayed since)"
    return None


def _still_true(session: Session, row: Notification) -> bool:
    """Re-checked just before sending: a notice that became false is withdrawn, never sent."""
    why = no_longer_true(session, row.kind, row.user_id, row.dedup_key)
    if why is None:
        return True
    mark_notification_withdrawn(session, row.id, reason=f"not sent: {why}")
    return False


def _take_again(session: Session, row: Notification, *, due_now: bool = False) -> bool:
    """Claim a notice whose last attempt said "try later", or a deferred one that is due (``due_now``:
    the caller's notice is due now, whatever its ``send_after``); one winner among concurrent callers."""
    retry = row.status == NotificationStatus.FAILED.value and (row.reason or "").startswith(RETRY_MARK)
    due = row.status == NotificationStatus.DEFERRED.value and (
        due_now or row.send_after is None or row.send_after <= utcnow()
    )
    return (retry or due) and claim_again(session, row)


def send_claimed(pipeline: Pipeline, notification_id: int, message) -> str:
    """Send a claimed notification's message and record the outcome; returns the provider's id.

    A transient mailer error is recorded as claimable again and raised (the op retries).
    """
    try:
        result = pipeline.mailer.send(message)
    except TransientMailError as exc:
        reason = f"may have been sent: {exc}" if exc.maybe_sent else f"{RETRY_MARK}{exc}"
        with pipeline.sessions.begin() as session:
            mark_notification_failed(session, notification_id, reason=reason[:2000])
        raise
    except Exception as exc:
        with pipeline.sessions.begin() as session:
            mark_notification_failed(session, notification_id, reason=str(exc)[:2000])
        raise
    with pipeline.sessions.begin() as session:
        mark_notification_sent(session, notification_id, now=utcnow())
    return result.provider_message_id


def notify_user(
    pipeline: Pipeline,
    user_id: int,
    notice: Notice,
    *,
    raise_transient: bool = True,
    defer: timedelta | None = None,
) -> NotifyOutcome:
    """Tell the user once per (kind, key). A "try later" from the mailer is raised (the op retries and the
    notice is claimed again) unless ``raise_transient`` is False; either way it stays claimable and the
    notification retry sensor sends it later. Other mail errors are recorded and reported."""
    notification_id, to, why = claim_notification(pipeline, user_id, notice, defer=defer)
    if notification_id is None:
        return NotifyOutcome(why, None, to)
    message = build_notification_email(
        sender=pipeline.options.sender, to=to, subject=notice.subject, body_text=notice.body
    )
    try:
        send_claimed(pipeline, notification_id, message)
    except TransientMailError as exc:
        if raise_transient:
            raise
        return NotifyOutcome("failed", notification_id, to, str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded on the notification row
        return NotifyOutcome("failed", notification_id, to, str(exc))
    return NotifyOutcome("sent", notification_id, to)


# --- the causes ---------------------------------------------------------------------------


def notify_delivery_failed(
    pipeline: Pipeline,
    *,
    user_id: int,
    title: str,
    reason: str,
    newsletter_id: int | None = None,
    digest_id: int | None = None,
    email_id: int | None = None,
    defer: timedelta | None = None,
) -> NotifyOutcome:
    """Tell the user an item could not be delivered; once per item, after ``options.notice_grace`` (by the
    notification retry sensor) and only if it has not been delivered meanwhile. ``reason`` is the
    internal one: the user reads ``plain_reason(reason)``."""
    return notify_user(
        pipeline,
        user_id,
        Notice(
            DELIVERY_FAILED,
            delivery_failed_key(newsletter_id=newsletter_id, digest_id=digest_id, email_id=email_id),
            subject=f"Could not deliver: {title}",
            body=f"\u201c{title}\u201d could not be sent to your Kindle.\n\n{plain_reason(reason)}",
        ),
        raise_transient=False,  # already failing: the notice is recorded and re-sent later
        defer=pipeline.options.notice_grace if defer is None else defer,
    )


def plain_reason(reason: str) -> str:
    """What a user reads about a failure: what happened to their newsletter and what to do, in plain
    words. Exception texts, paths and server replies stay with the operator."""
    text = (reason or "").lower()
    if "refused delivery" in text or "rejected by amazon" in text:
        return (
            "The mail server for your Send-to-Kindle address did not accept it. Check that the address in "
            "your settings is right, and that our sender address is on your Approved Personal Document "
            "E-mail List at Amazon."
        )
    if "failed validation" in text or "kindle preflight" in text:
        return "We could not turn it into a book your Kindle accepts. We keep the original; nothing is needed from you."
    if "not a readable email" in text or "missing from the archive" in text:
        return "The email could not be read. If the newsletter matters to you, forward it to your address again."
    return "Something went wrong on our side while preparing it. We keep it and have been told; nothing is needed from you."


def notify_no_kindle(pipeline: Pipeline, user_id: int, body: str) -> NotifyOutcome:
    """Tell the user to add a Kindle address (``body``: what is kept for them); once per missing-device
    episode, whichever path (instant delivery, a digest) noticed."""
    return notify_user(
        pipeline, user_id, Notice(NO_KINDLE, "once", "Add your Kindle address to get your newsletters", body)
    )


def notify_quota_reached(pipeline: Pipeline, *, user_id: int, period: str, reason: str) -> NotifyOutcome:
    """Tell the user the month's quota is used up; once per quota month (``period``, "YYYY-MM")."""
    return notify_user(
        pipeline,
        user_id,
        Notice(
            QUOTA_REACHED,
            period,
            subject="Your monthly newsletter quota is used up",
            body=(
                f"Newsletters that arrive for the rest of {period} are kept but not sent to your Kindle "
                f"({reason}). Upgrade your plan, or wait for next month."
            ),
        ),
    )


# --- later attempts -------------------------------------------------------------------------


def resend_failed_notifications(pipeline: Pipeline, *, limit: int = 50, within: timedelta = RESEND_WITHIN) -> Resent:
    """Send the deferred notices that are due and again those whose last attempt got "try later"
    (created within ``within``), each only if still true then.

    Each is claimed first (the same conditional update as ``claim_notification``), so two
    callers never send one twice. The message is rebuilt from the row's subject and body.
    """
    now = utcnow()
    with pipeline.sessions() as session:
        candidates = due_for_resend(session, now=now, since=now - within, limit=limit)
        unconfirmed = count_unconfirmed(session, before=now - LEASE)
    sent: list[int] = []
    failed: list[tuple[int, str]] = []
    withdrawn: list[int] = []
    for notification_id in candidates:
        with pipeline.sessions.begin() as session:
            row = notification_by_id(session, notification_id)
            if row is None or not _take_again(session, row):
                continue  # someone else took it
            if not _still_true(session, row):
                withdrawn.append(notification_id)
                continue
            to = user_email(session, row.user_id) or ""
            message = build_notification_email(
                sender=pipeline.options.sender, to=to, subject=row.subject, body_text=row.body
            )
        try:
            send_claimed(pipeline, notification_id, message)
        except Exception as exc:  # noqa: BLE001 - recorded on the row by send_claimed
            failed.append((notification_id, str(exc)))
        else:
            sent.append(notification_id)
    return Resent(sent, failed, unconfirmed, withdrawn)
