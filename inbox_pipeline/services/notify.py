"""Messages to a user's own email address, each told once.

The notification row is the claim (``notify_once``: unique per user, kind and
key), written before sending, like the delivery ledger: ``pending`` while
sending, ``sent`` after, ``failed`` (and claimable again) when the mailer
said "try later". A run killed while sending leaves it ``pending`` and it is
not sent again: at most once.
"""

from __future__ import annotations

from dataclasses import dataclass

from inbox_pipeline.services.context import Pipeline, utcnow

RETRY_MARK = "transient: "  # reason prefix of a failure that may be claimed again


@dataclass(frozen=True)
class Notice:
    status: str  # "sent", "already_sent", "in_flight", "failed"
    notification_id: int | None
    to: str
    detail: str = ""


def claim_notification(
    pipeline: Pipeline, *, user_id: int, kind: str, dedup_key: str, subject: str, body: str
) -> tuple[int | None, str, str]:
    """(notification id to send, or None; the user's email; why not) in one committed transaction."""
    from sqlalchemy import select, update

    from inbox_pipeline.db.models import Notification, NotificationStatus, User
    from inbox_pipeline.db.notifications import notify_once

    with pipeline.sessions.begin() as session:
        to = session.scalar(select(User.email).where(User.id == user_id)) or ""
        row = notify_once(session, user_id=user_id, kind=kind, dedup_key=dedup_key, subject=subject, body=body)
        if row is not None:
            return row.id, to, ""
        existing = session.scalar(
            select(Notification).where(
                Notification.user_id == user_id, Notification.kind == kind, Notification.dedup_key == dedup_key
            )
        )
        assert existing is not None
        if existing.status == NotificationStatus.SENT.value:
            return None, to, "already_sent"
        if existing.status == NotificationStatus.FAILED.value and (existing.reason or "").startswith(RETRY_MARK):
            taken = session.execute(
                update(Notification)
                .where(Notification.id == existing.id, Notification.status == NotificationStatus.FAILED.value)
                .values(status=NotificationStatus.PENDING.value, reason=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 1:
                return existing.id, to, ""
        return None, to, "in_flight" if existing.status == NotificationStatus.PENDING.value else "failed"


def send_claimed(pipeline: Pipeline, notification_id: int, message) -> str:
    """Send a claimed notification's message and record the outcome; returns the provider's id.

    A transient mailer error is recorded as claimable again and raised (the op retries).
    """
    from inbox_pipeline.db.notifications import mark_notification_failed, mark_notification_sent
    from inbox_pipeline.seams.mailer import TransientMailError

    try:
        result = pipeline.mailer.send(message)
    except TransientMailError as exc:
        reason = f"may have been sent: {exc}" if exc.maybe_sent else f"{RETRY_MARK}{exc}"
        with pipeline.sessions.begin() as session:
            mark_notification_failed(session, notification_id, reason=reason)
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
    *,
    user_id: int,
    kind: str,
    dedup_key: str,
    subject: str,
    body: str,
    raise_transient: bool = True,
) -> Notice:
    """Tell the user once. A "try later" from the mailer is raised (the op retries and the notice is
    claimed again) unless ``raise_transient`` is False; other mail errors are recorded and reported."""
    from inbox_pipeline.seams.mailer import TransientMailError, build_notification_email

    notification_id, to, why = claim_notification(
        pipeline, user_id=user_id, kind=kind, dedup_key=dedup_key, subject=subject, body=body
    )
    if notification_id is None:
        return Notice(why, None, to)
    message = build_notification_email(sender=pipeline.options.sender, to=to, subject=subject, body_text=body)
    try:
        send_claimed(pipeline, notification_id, message)
    except TransientMailError as exc:
        if raise_transient:
            raise
        return Notice("failed", notification_id, to, str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded on the notification row
        return Notice("failed", notification_id, to, str(exc))
    return Notice("sent", notification_id, to)
