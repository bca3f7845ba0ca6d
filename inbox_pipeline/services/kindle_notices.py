"""Amazon's notices arriving at the sender address: recorded, believed only when authenticated, acted on once.

What happens next, by cause (recorded on the delivery and on the notice's row):

- a conversion error (E999 and kin) on a newsletter: one automatic resend in safe mode (no
  images, minimal CSS, plain metadata, ASCII file name); if that is rejected too, the user is
  told in plain words, with the newsletter's own link where it has one;
- "sender not approved": the user is told exactly which address to approve and where; the
  book is sent again once they say it is done (``inbox-pipeline kindle verify``);
- a test book from ``kindle verify``: the device is marked rejected with the cause;
- anything else, or a notice naming no delivery of ours: the operator gets the text.

A notice that the receiving system did not authenticate as Amazon's is recorded and ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from inbox_pipeline.core.convert import ConvertOptions, convert_email
from inbox_pipeline.core.kindle_notice import read_notice
from inbox_pipeline.core.kindle_notice import rejection_rates as judge
from inbox_pipeline.core.kindle_notice import web_version_link
from inbox_pipeline.db.digests import digest_period_key
from inbox_pipeline.db.intake import get_inbound, raw_key, set_state
from inbox_pipeline.db.ledger import delivery_by_token, get_delivery, reject_delivery, rejections_by_cause
from inbox_pipeline.db.models import DeliveryVariant, InboundState, KindleCheck
from inbox_pipeline.db.newsletters import get_newsletter, newsletter_subject
from inbox_pipeline.db.notices import record_notice, recorded_notice
from inbox_pipeline.db.users import set_device_check
from inbox_pipeline.seams.mailer import build_epub_email
from inbox_pipeline.services.alerts import send_operator_alert
from inbox_pipeline.services.context import PermanentStepError, Pipeline, utcnow
from inbox_pipeline.services.ledger_send import send_once
from inbox_pipeline.services.notify import KINDLE_REJECTED, Notice, notify_user
from inbox_pipeline.services.process import load_email

if TYPE_CHECKING:
    from inbox_pipeline.core.kindle_notice import RejectionRate

# The rejection rate's window: a week evens out the weekday rhythm of newsletters, and a fault
# that refuses books shows within a day of it.
REJECTION_WINDOW = timedelta(days=7)

APPROVE_WHERE = (
    "Amazon: Manage Your Content and Devices > Preferences > Personal Document Settings > "
    "Approved Personal Document E-mail List"
)


@dataclass(frozen=True)
class NoticeOutcome:
    email_id: int
    action: str  # ignored, unmatched, safe_mode_resend, user_told, approval_requested, check_rejected, operator_told
    reason: str
    delivery_id: int | None = None
    user_id: int | None = None
    cause: str = ""  # what Amazon's notice says: conversion, not_approved, unknown


def approval_instructions(sender: str) -> str:
    """What a user does so Amazon accepts our books (Amazon stopped accepting wildcard domains in 2025)."""
    return (
        f"Add this exact address to your Approved Personal Document E-mail List:\n\n    {sender}\n\n"
        f"Where: {APPROVE_WHERE}. Amazon no longer accepts a whole domain there: add the address itself.\n"
        "Then run `inbox-pipeline kindle verify` (or tell your operator) and the newsletter is sent again."
    )


def handle_kindle_notice(pipeline: Pipeline, email_id: int) -> NoticeOutcome:
    """Decide once what an email to the sender address means, then do it (each action exactly once)."""
    with pipeline.sessions() as session:
        storage_key = raw_key(session, get_inbound(session, email_id))
        recorded = recorded_notice(session, email_id)
        decided = (recorded.action, recorded.delivery_id) if recorded else None
    email = load_email(pipeline, storage_key)
    notice = read_notice(email, trusted_authserv_ids=pipeline.options.trusted_authserv_ids)
    if decided is None:
        decided = _decide(pipeline, email_id, notice)
    action, delivery_id = decided
    return _act(pipeline, email_id, notice, action, delivery_id)


def _decide(pipeline: Pipeline, email_id: int, notice) -> tuple[str, int | None]:
    """Record the notice and its decision (and the rejection on its delivery) in one transaction."""
    with pipeline.sessions.begin() as session:
        delivery = None
        matches = [d for d in (delivery_by_token(session, t) for t in notice.tokens) if d is not None]
        if len({d.id for d in matches}) == 1:
            delivery = matches[0]
        if not notice.authentic:
            action, why = "ignored", f"not believed: {notice.why}; recorded and ignored"
        elif notice.cause == "unknown":
            action, why = "operator_told", "Amazon notice of an unknown kind: sent to the operator"
        elif delivery is None:
            action = "unmatched"
            why = "names no delivery of ours" if not matches else "names more than one delivery"
            why = f"Amazon notice ({notice.cause}) {why}: sent to the operator"
        elif delivery.item_kind == "kindle_check":
            action, why = "check_rejected", f"the test book was rejected ({notice.cause})"
            set_device_check(
                session, delivery.item_id, KindleCheck.REJECTED, f"{notice.cause}: {notice.summary[:300]}", now=utcnow()
            )
        else:
            if notice.cause == "not_approved":
                action = "approval_requested"
            elif delivery.item_kind == "newsletter" and delivery.variant == DeliveryVariant.STANDARD.value:
                action = "safe_mode_resend"
            else:
                action = "user_told"
            why = f"Amazon rejected delivery #{delivery.id} ({notice.code or notice.cause}): {action.replace('_', ' ')}"
        if delivery is not None and action != "operator_told" and notice.authentic:
            reject_delivery(
                session, delivery.id, cause=notice.cause,
                reason=f"rejected by Amazon ({notice.code or notice.cause}): {notice.summary}",
            )
        delivery_id = delivery.id if delivery is not None else None
        record_notice(session, notice, inbound_email_id=email_id, delivery_id=delivery_id, action=action)
        set_state(session, email_id, InboundState.KINDLE_NOTICE, why[:2000])
        return action, delivery_id


def _act(pipeline: Pipeline, email_id: int, notice, action: str, delivery_id: int | None) -> NoticeOutcome:
    user_id = None
    if delivery_id is not None:
        with pipeline.sessions() as session:
            delivery = get_delivery(session, delivery_id)
            user_id, item_kind, item_id = delivery.user_id, delivery.item_kind, delivery.item_id
            recipient = delivery.recipient
    if action == "ignored":
        return NoticeOutcome(email_id, action, notice.why, delivery_id, cause=notice.cause)
    if action in {"unmatched", "operator_told"}:
        _tell_operator(pipeline, email_id, notice, delivery_id)
        return NoticeOutcome(email_id, action, "the operator was sent the notice", delivery_id, user_id, cause=notice.cause)
    if action == "safe_mode_resend":
        status = resend(pipeline, delivery_id, variant="safe_mode")
        return NoticeOutcome(email_id, action, f"safe-mode resend: {status}", delivery_id, user_id, cause=notice.cause)
    if user_id is None:
        return NoticeOutcome(email_id, action, "no user to tell", delivery_id, cause=notice.cause)
    title = _title(pipeline, item_kind, item_id)
    if action in {"approval_requested", "check_rejected"} and notice.cause == "not_approved":
        subject = "Approve our address so your Kindle accepts your newsletters"
        body = (
            f"Amazon did not deliver \u201c{title}\u201d because {pipeline.options.sender} is not yet an approved "
            f"sender for your Kindle.\n\n{approval_instructions(pipeline.options.sender)}"
        )
        # once a day per Kindle address while Amazon keeps refusing: a burst of refusals tells the user once,
        # and a user who approved and later removed us (or never did) is reminded, not told once forever
        key = f"not-approved-{recipient}-{utcnow():%Y-%m-%d}"
    elif action == "check_rejected":
        subject = "Your Kindle did not accept our test book"
        body = f"Amazon did not accept the test book we sent to your Kindle. Amazon said: {notice.summary[:500]}"
        key = f"check-{delivery_id}"
    else:
        link = _original_link(pipeline, item_kind, item_id)
        subject = f"Your Kindle could not open: {title}"
        body = (
            f"Amazon could not convert \u201c{title}\u201d for your Kindle, even in a simpler version without "
            "images, so it is not on your Kindle."
            + (f"\n\nRead it here instead: {link}" if link else "\n\nIt is still in your email inbox.")
        )
        key = f"delivery-{delivery_id}"
    told = notify_user(pipeline, user_id, Notice(KINDLE_REJECTED, key, subject, body)).status
    return NoticeOutcome(email_id, action, f"user notice: {told}", delivery_id, user_id, cause=notice.cause)


def _title(pipeline: Pipeline, item_kind: str, item_id: int) -> str:
    with pipeline.sessions() as session:
        if item_kind == "newsletter":
            return newsletter_subject(session, item_id) or "a newsletter"
        if item_kind == "digest":
            return f"your digest ({digest_period_key(session, item_id) or ''})"
    return "the test book"


def _original_link(pipeline: Pipeline, item_kind: str, item_id: int) -> str | None:
    """The newsletter's own "view online" link, when the email had one (else None)."""
    if item_kind != "newsletter":
        return None
    with pipeline.sessions() as session:
        raw_key = get_newsletter(session, item_id).raw_key
    return web_version_link(load_email(pipeline, raw_key))


def _tell_operator(pipeline: Pipeline, email_id: int, notice, delivery_id: int | None) -> None:
    subject = f"Amazon notice #{email_id} ({notice.cause}{', ' + notice.code if notice.code else ''})"
    body = (
        f"An Amazon notice arrived at {pipeline.options.sender} (inbound email #{email_id}).\n"
        f"Delivery: {'#' + str(delivery_id) if delivery_id else 'none of ours matched'}\n"
        f"Trusted: {notice.why}\n\n{notice.summary}\n"
    )
    logging.getLogger(__name__).warning("%s\n%s", subject, body)
    to = pipeline.options.operator_email
    if to:
        send_operator_alert(pipeline, to, subject, body)


def resend(pipeline: Pipeline, delivery_id: int, *, variant: str) -> str:
    """Send a rejected delivery's newsletter again as ``variant`` (its own ledger row: at most once)."""
    with pipeline.sessions() as session:
        original = get_delivery(session, delivery_id)
        if original.item_kind != "newsletter":
            raise PermanentStepError(f"delivery #{delivery_id} is a {original.item_kind}: only newsletters are resent")
        item_id, recipient, user_id, device_id = original.item_id, original.recipient, original.user_id, original.device_id
        raw_key = get_newsletter(session, item_id).raw_key

    def build(token: str):
        safe = variant == "safe_mode"
        raw = pipeline.inbox.read_archived(raw_key)
        conversion = convert_email(
            raw, options=ConvertOptions(fetch_images=pipeline.options.fetch_images and not safe, safe_mode=safe)
        )
        return build_epub_email(
            sender=pipeline.options.sender, to=recipient, subject=conversion.title, epub_bytes=conversion.epub,
            file_name=conversion.file_name, body_text=conversion.title, token=token,
        )

    sent = send_once(
        pipeline, item_kind="newsletter", item_id=item_id, recipient=recipient, build=build,
        user_id=user_id, device_id=device_id, variant=variant,
    )
    if sent.status == "retry":
        raise sent.error
    return sent.status


def rejection_rates(
    pipeline: Pipeline, *, now: datetime | None = None, window: timedelta = REJECTION_WINDOW
) -> tuple[int, tuple["RejectionRate", ...]]:
    """Books that reached Amazon within ``window``, and per cause how many it refused (and whether to warn)."""
    with pipeline.sessions() as session:
        reached, rejected = rejections_by_cause(session, since=(now or utcnow()) - window)
    return reached, judge(reached, rejected)
