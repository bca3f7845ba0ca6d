"""Route a parsed email: quarantine, unknown address, duplicate, confirmation, quota.

Every decision is stored on the inbound email (state + reason) in the same
transaction that makes it, so a retried or re-executed step finds it and
continues from there instead of deciding twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from inbox_pipeline.db.intake import advance_state, get_inbound, route_inbound, set_state
from inbox_pipeline.db.models import InboundState, NewsletterStatus
from inbox_pipeline.db.newsletters import create_newsletter, newsletter_of_email, set_newsletter_status
from inbox_pipeline.db.quota import consume_quota, quota_usage
from inbox_pipeline.db.users import user_email as email_of_user
from inbox_pipeline.seams.mailer import build_forward_email, build_notification_email
from inbox_pipeline.services.context import Pipeline, utcnow
from inbox_pipeline.services.notify import (
    CONFIRMATION_FORWARDED,
    Notice,
    claim_notification,
    notify_quota_reached,
    send_claimed,
)
from inbox_pipeline.services.process import NewsletterRef, ParsedSummary, load_email

# Inbound states after which the email goes on to its newsletter or forward step.
_ONWARD = {"routed", "ready", "delivered", "over_quota", "confirmation_forwarded"}


@dataclass(frozen=True)
class RouteOutcome:
    email_id: int
    state: str
    reason: str
    path: str  # "newsletter", "forward" (to the user's own email), "notice" (to our sender address) or "stop"
    user_id: int | None = None
    address_id: int | None = None
    user_email: str | None = None


@dataclass(frozen=True)
class ForwardOutcome:
    email_id: int
    to: str
    status: str  # "sent", "already_sent", "in_flight"
    reason: str


def route_parsed(pipeline: Pipeline, parsed: ParsedSummary) -> RouteOutcome:
    path_for_kind = "newsletter" if parsed.kind == "newsletter" else "forward"
    if pipeline.options.sender.lower() in parsed.recipients:
        # Amazon answers our sender address: operational mail, never a newsletter (services.kindle_notices).
        return RouteOutcome(
            parsed.email_id, "kindle_notice", f"to the sender address {pipeline.options.sender}: read as a notice",
            "notice",
        )
    with pipeline.sessions.begin() as session:
        if parsed.quarantine_reason:
            advance_state(session, parsed.email_id, InboundState.QUARANTINED, parsed.quarantine_reason)  # or a retry
            row = get_inbound(session, parsed.email_id)
            return RouteOutcome(parsed.email_id, row.state, row.reason or "", "stop", row.user_id, row.address_id)
        decision = route_inbound(
            session,
            parsed.email_id,
            recipients=parsed.recipients,
            message_id=parsed.message_id,
            content_sha256=parsed.content_sha256,
            now=utcnow(),
            note=parsed.envelope_note,
        )
        state = InboundState(decision.state).value
        user_email = email_of_user(session, decision.user_id) if decision.user_id else None
    path = path_for_kind if state in _ONWARD else "stop"
    return RouteOutcome(
        parsed.email_id, state, decision.reason, path, decision.user_id, decision.address_id, user_email
    )


def record_newsletter(pipeline: Pipeline, parsed: ParsedSummary, routed: RouteOutcome) -> tuple[NewsletterRef | None, str]:
    """The newsletter row, with the month's quota taken once; ``None`` when over quota (and why)."""
    assert routed.user_id is not None
    email = load_email(pipeline, parsed.storage_key)
    now = utcnow()
    over_quota: str | None = None
    period = ""
    with pipeline.sessions.begin() as session:
        row = newsletter_of_email(session, parsed.email_id)
        if row is None:
            inbound = get_inbound(session, parsed.email_id)
            row = create_newsletter(
                session,
                inbound_email_id=parsed.email_id,
                user_id=routed.user_id,
                address_id=routed.address_id,
                sender_name=email.sender.name,
                sender_email=email.sender.email,
                subject=email.subject,
                received_at=inbound.received_at,
                message_id=email.message_id,
                raw_key=parsed.storage_key,
                raw_html=email.html,
            )
            # Taken in the same transaction that creates the row: a retry never counts twice.
            if not consume_quota(session, routed.user_id, now):
                usage = quota_usage(session, routed.user_id, now)
                over_quota = (
                    f"over the monthly quota: {usage.used} of {usage.limit} newsletters in {usage.period} "
                    "already delivered; kept, not delivered"
                )
                set_newsletter_status(session, row.id, NewsletterStatus.OVER_QUOTA, over_quota)
                set_state(session, parsed.email_id, InboundState.OVER_QUOTA, over_quota)
                period = usage.period
        elif row.status == NewsletterStatus.OVER_QUOTA.value:
            over_quota = row.reason or "over the monthly quota"
            period = quota_usage(session, routed.user_id, now).period
        ref = NewsletterRef(
            row.id, parsed.email_id, routed.user_id, routed.user_email or "", email.subject, parsed.sender,
            parsed.storage_key,
        )
    if over_quota is not None:
        notify_quota_reached(pipeline, user_id=routed.user_id, period=period, reason=over_quota)
        return None, over_quota
    return ref, routed.reason


def forward_to_user(pipeline: Pipeline, parsed: ParsedSummary, routed: RouteOutcome) -> ForwardOutcome:
    """A confirmation (or other notice) goes to the user's own email, confirm link first; never to the Kindle."""
    assert routed.user_id is not None
    email = load_email(pipeline, parsed.storage_key)
    what = "subscription confirmation" if parsed.kind == "confirmation" else "notice"
    subject = f"Confirm: {email.subject}" if parsed.kind == "confirmation" else f"Fwd: {email.subject}"
    notification_id, to, why = claim_notification(
        pipeline,
        routed.user_id,
        Notice(
            CONFIRMATION_FORWARDED,
            f"inbound-{parsed.email_id}",
            subject=subject,
            body=f"{what} from {parsed.sender}: {parsed.confirm_link or ''}".strip(),
        ),
    )
    if notification_id is not None:
        if parsed.kind == "confirmation":
            message = build_forward_email(
                sender=pipeline.options.sender,
                to=to,
                subject=subject,
                confirm_link=parsed.confirm_link,
                original_sender=email.sender.email,
                original_subject=email.subject,
                original_html=email.html,
                original_text=email.text,
            )
        else:
            message = build_notification_email(
                sender=pipeline.options.sender,
                to=to,
                subject=subject,
                body_text=f"From: {email.sender.email}\nSubject: {email.subject}\n\n{email.text or ''}",
            )
        send_claimed(pipeline, notification_id, message)
        status = "sent"
    else:
        status = why
    if status == "in_flight":
        reason = f"{what} forward to {to} was started by an earlier attempt and not confirmed: not sent again"
    else:
        reason = f"{what} forwarded to {to} ({parsed.kind_reason})"
    with pipeline.sessions.begin() as session:
        advance_state(session, parsed.email_id, InboundState.CONFIRMATION_FORWARDED, reason)  # or an earlier attempt
    return ForwardOutcome(parsed.email_id, to, status, reason)
