"""``inbox-pipeline kindle verify``: prove a Kindle address is ready with a tiny test book.

Amazon says nothing to the sender when a document arrives, only when it fails. So a check
ends in one of: ``rejected`` (a notice came back: the reason says which), ``unconfirmed``
(the window passed without a notice: most likely fine, not proven), or ``verified`` (the
user says the test book is on their Kindle). ``CHECK_WINDOW`` is an hour: Amazon's notices
reach the sender within minutes of the send, SES adds seconds, and a user who just set up
their Kindle should hear the outcome the same hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from inbox_pipeline.core.kindle_check import guessable, test_book
from inbox_pipeline.db.ledger import claims_of, refused_as_unapproved
from inbox_pipeline.db.models import KindleCheck
from inbox_pipeline.db.users import find_user, set_device_check, settle_device_checks
from inbox_pipeline.seams.mailer import build_epub_email
from inbox_pipeline.services.context import PermanentStepError, Pipeline, utcnow
from inbox_pipeline.services.kindle_notices import approval_instructions, resend
from inbox_pipeline.services.ledger_send import send_once
from inbox_pipeline.services.notify import Notice, notify_user

CHECK_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class KindleCheckOutcome:
    state: str  # the device's check state afterwards
    kindle: str
    sent: str  # the test book's ledger outcome ("sent", "retry", ...) or "" when none was sent
    resent: int  # rejected newsletters sent again after the user approved our sender
    warnings: tuple[str, ...]


def verify_kindle(pipeline: Pipeline, user_id: int, *, arrived: bool = False) -> KindleCheckOutcome:
    """Send a test book (and resend what Amazon refused for an unapproved sender); or record that it arrived."""

    sender = pipeline.options.sender
    now = utcnow()
    with pipeline.sessions.begin() as session:
        user = find_user(session, user_id)
        device = user.kindle if user is not None else None
        if device is None:
            raise PermanentStepError("no Kindle address to verify: set one first (`inbox-pipeline kindle set`)")
        kindle, device_id, user_email = device.email, device.id, user.email
        if arrived:
            set_device_check(session, device_id, KindleCheck.VERIFIED, "the user saw the test book on their Kindle", now=now)
            return KindleCheckOutcome(KindleCheck.VERIFIED.value, kindle, "", 0, ())
        attempt = 1 + claims_of(session, "kindle_check", device_id)
        refused = refused_as_unapproved(session, user_id)
    warning = guessable(kindle, user_email)
    warnings = (
        (f"{kindle} looks easy to guess ({warning}): Amazon then asks you to confirm each document. "
         "Add a few random characters to it in Amazon's Personal Document Settings."),
    ) if warning else ()

    def build(token: str):
        return build_epub_email(
            sender=sender, to=kindle, subject="Your Kindle is ready", body_text="A test book from inbox-pipeline.",
            epub_bytes=test_book(sender=sender, kindle_address=kindle, when=now), file_name="kindle-test", token=token,
        )

    sent = send_once(
        pipeline, item_kind="kindle_check", item_id=device_id, part=attempt, recipient=kindle, build=build,
        user_id=user_id, device_id=device_id,
    )
    state = KindleCheck.PENDING if sent.status == "sent" else KindleCheck.UNCONFIRMED
    reason = (
        f"test book sent at {now:%Y-%m-%d %H:%M} UTC; no notice from Amazon yet"
        if sent.status == "sent" else f"the test book could not be sent: {sent.detail or sent.status}"
    )
    with pipeline.sessions.begin() as session:
        set_device_check(session, device_id, state, reason, now=now)
    resent = sum(resend(pipeline, delivery_id, variant="resend") == "sent" for delivery_id in refused)
    notify_user(
        pipeline,
        user_id,
        Notice(
            "kindle_check",
            f"device-{device_id}-{attempt}",
            subject="Check your Kindle for a test book",
            body="\n\n".join(
                (
                    f"We sent a small test book to {kindle}. If it does not appear on your Kindle within a few "
                    "minutes, Amazon has not approved our address yet.",
                    approval_instructions(sender),
                    *warnings,
                )
            ),
        ),
        raise_transient=False,
    )
    return KindleCheckOutcome(state.value, kindle, sent.status, resent, warnings)


def settle_kindle_checks(pipeline: Pipeline, *, now: datetime | None = None, window: timedelta = CHECK_WINDOW) -> int:
    """Checks still pending after ``window`` without a notice become ``unconfirmed``; how many."""
    now = now or utcnow()
    reason = (
        f"no notice from Amazon within {int(window.total_seconds() // 60)} minutes of the test book "
        "(most likely delivered; confirm with `kindle verify --arrived`)"
    )
    with pipeline.sessions.begin() as session:
        return settle_device_checks(session, checked_before=now - window, reason=reason)
