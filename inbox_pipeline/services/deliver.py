"""Deliver a stored EPUB: to the Kindle, as a link, held for the digest, or kept.

Exactly once through the ledger: the delivery row is claimed and committed
before the mailer is called, marked sent after. A retry (the mailer said "try
later") claims it again; a re-executed run finds it sent, or claimed and never
confirmed (the worker died mid-send: it may have gone out), and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from inbox_pipeline.db.intake import advance_state, get_inbound
from inbox_pipeline.db.models import InboundState, NewsletterStatus
from inbox_pipeline.db.newsletters import get_newsletter, set_newsletter_status
from inbox_pipeline.db.users import find_user
from inbox_pipeline.seams.mailer import (
    build_epub_email,
    build_link_email,
    delivery_file_name,
    message_size_after_base64,
)
from inbox_pipeline.services.context import PermanentStepError, Pipeline, utcnow
from inbox_pipeline.services.ledger_send import send_once
from inbox_pipeline.services.notify import notify_delivery_failed, notify_no_kindle
from inbox_pipeline.services.process import EpubSummary, WorkArea, fail_email

# Room for headers and the text part beside the base64 attachment.
MESSAGE_OVERHEAD = 16 * 1024


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # "sent", "link_sent", "already_sent", "held_for_digest", "no_kindle"
    recipient: str
    reason: str
    delivery_id: int | None = None
    provider_message_id: str | None = None
    message_bytes: int = 0
    paced_seconds: float = 0.0  # held back by the send-rate limiter


class DeliveryUnconfirmed(PermanentStepError):
    """An earlier attempt claimed this delivery and never confirmed it: not sent again."""


def deliver_epub(pipeline: Pipeline, epub: EpubSummary, work: WorkArea | None = None) -> DeliveryOutcome:
    """``work``: where the EPUB's stage left it (a worker's in-memory work area holds the copy it just
    stored, so the send does not read it back from storage); else storage."""
    with pipeline.sessions.begin() as session:
        user = find_user(session, epub.user_id)
        if user is None:
            raise PermanentStepError(f"user #{epub.user_id} no longer exists")
        user_email = user.email
        device = user.kindle
        device_id, kindle = (device.id, device.email) if device else (None, None)
        delivery_label = user.delivery_mode
        newsletter = get_newsletter(session, epub.newsletter_id)
        if epub.held_for_digest or newsletter.status == NewsletterStatus.HELD_FOR_DIGEST.value:
            reason = f"held for {user_email}'s {delivery_label} digest"
            advance_state(session, epub.email_id, InboundState.READY, reason)
            return DeliveryOutcome("held_for_digest", user_email, reason)
        if kindle is None:
            reason = f"kept: {user_email} has no Kindle address yet (user notified)"
            if newsletter.status != NewsletterStatus.DELIVERED.value:
                set_newsletter_status(session, epub.newsletter_id, NewsletterStatus.NO_DEVICE, reason)
                advance_state(session, epub.email_id, InboundState.READY, reason)
        inbound_state = get_inbound(session, epub.email_id).state
    if kindle is None:
        notify_no_kindle(
            pipeline,
            epub.user_id,
            "Newsletters are arriving for you, but there is no Send-to-Kindle address on your account, "
            "so they are kept until you add one.",
        )
        return DeliveryOutcome("no_kindle", user_email, reason)

    size = message_size_after_base64(epub.bytes) + MESSAGE_OVERHEAD
    if size > pipeline.options.size_budget_bytes:
        outcome = _send_once(pipeline, epub, work, recipient=user_email, device_id=None, as_link=True, size=size)
    else:
        outcome = _send_once(pipeline, epub, work, recipient=kindle, device_id=device_id, as_link=False, size=size)

    with pipeline.sessions.begin() as session:
        if get_newsletter(session, epub.newsletter_id).status != NewsletterStatus.DELIVERED.value:
            set_newsletter_status(session, epub.newsletter_id, NewsletterStatus.DELIVERED, outcome.reason)
        if inbound_state != InboundState.DELIVERED.value:
            advance_state(session, epub.email_id, InboundState.DELIVERED, outcome.reason)
    return outcome


def _send_once(
    pipeline: Pipeline,
    epub: EpubSummary,
    work: WorkArea | None,
    *,
    recipient: str,
    device_id: int | None,
    as_link: bool,
    size: int,
) -> DeliveryOutcome:
    now = utcnow()

    def build(token: str):
        return _message(pipeline, epub, work, recipient=recipient, as_link=as_link, now=now, token=token)

    sent = send_once(
        pipeline, item_kind="newsletter", item_id=epub.newsletter_id, recipient=recipient, build=build,
        user_id=epub.user_id, device_id=device_id,
    )
    number = sent.delivery_id
    if sent.status == "already_sent":
        return DeliveryOutcome(
            "already_sent", recipient, f"already sent to {recipient} (delivery #{number}, {sent.provider_message_id})",
            number, sent.provider_message_id,
        )
    if sent.status in {"in_flight", "unconfirmed"} and sent.error is None:
        raise DeliveryUnconfirmed(
            f"delivery #{number} to {recipient} was claimed at {sent.claimed_at:%Y-%m-%d %H:%M:%S} UTC "
            "by an earlier attempt that never confirmed it; it may have been sent, so it is not sent again. "
            "If the Kindle did not receive it, release the claim and re-execute."
        )
    if sent.status == "unconfirmed":
        raise DeliveryUnconfirmed(f"delivery #{number} to {recipient} may have been sent: {sent.detail}") from sent.error
    if sent.status == "retry":
        raise sent.error
    if sent.status == "failed" and sent.error is not None:
        raise PermanentStepError(
            f"the mail server refused delivery #{number} to {recipient}: {sent.detail}"
        ) from sent.error
    if sent.status != "sent":
        raise DeliveryUnconfirmed(f"delivery #{number} to {recipient} failed for good: {sent.detail}")
    if as_link:
        reason = (
            f"{epub.bytes} bytes is over the {pipeline.options.size_budget_bytes} byte email budget: "
            f"download link sent to {recipient}"
        )
        return DeliveryOutcome("link_sent", recipient, reason, number, sent.provider_message_id, size, sent.paced_seconds)
    reason = f"sent to Kindle {recipient} as {delivery_file_name(epub.file_name, sent.token)}"
    return DeliveryOutcome("sent", recipient, reason, number, sent.provider_message_id, size, sent.paced_seconds)


def _message(
    pipeline: Pipeline, epub: EpubSummary, work: WorkArea | None, *, recipient: str, as_link: bool, now, token: str | None = None
):
    """The EPUB attached, or a download link to it (too large for email)."""
    storage = pipeline.storage
    sender = pipeline.options.sender
    if as_link:
        expires = pipeline.options.link_expires_seconds
        link = storage.download_link(epub.key, expires, file_name=epub.file_name)
        return build_link_email(
            sender=sender,
            to=recipient,
            subject=f"Too large for email: {epub.title}",
            title=epub.title,
            link=link,
            size_bytes=epub.bytes,
            expires_at=now + timedelta(seconds=expires),
        )
    return build_epub_email(
        sender=sender,
        to=recipient,
        subject=epub.title,
        epub_bytes=(work or WorkArea.durable(pipeline)).get(epub.key),
        file_name=epub.file_name,
        body_text=f"{epub.title}\n{epub.words} words, about {epub.reading_minutes} min.",
        token=token,
    )


def give_up(pipeline: Pipeline, epub: EpubSummary, reason: str) -> None:
    """Delivery failed for good (or after its retries): record it; the user is told once, later, if it is
    still undelivered then (``notify_delivery_failed``)."""
    fail_email(pipeline, epub.email_id, reason, newsletter_id=epub.newsletter_id)
    notify_delivery_failed(
        pipeline,
        user_id=epub.user_id,
        title=epub.title,
        reason=reason,
        newsletter_id=epub.newsletter_id,
        email_id=epub.email_id,
    )
