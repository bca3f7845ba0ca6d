"""Which recipients routing may use: only those a receiving system the inbox trusts recorded."""

from __future__ import annotations

from collections.abc import Collection

from inbox_pipeline.core.message import ParsedEmail

_RECORDED_BY = {
    "ses": "SES's Received header",
    "ses-receipt": "the SES receipt",
    "postmark": "Postmark's OriginalRecipient",
    "mailgun": "Mailgun's recipient field",
    "sendgrid": "SendGrid's envelope",
    "mta": "the receiving server's Received header",
    "unreceived": "To/Cc of a file placed by hand (no Received header)",
}


def envelope_recipients(email: ParsedEmail, trusted_receivers: Collection[str]) -> tuple[tuple[str, ...], str]:
    """The recipients routing may use, and where they came from (or why there are none).

    Only what a receiving system the inbox trusts recorded; To, Cc, Delivered-To,
    X-Original-To and the like are the sender's words and never route.
    """
    envelope = email.envelope
    where = _RECORDED_BY.get(envelope.recorded_by)
    if envelope.recorded_by not in trusted_receivers:
        if envelope.recorded_by in ("mta", "unreceived"):
            got = f"{where}{f' ({envelope.host})' if envelope.host else ''}"
            return (), f"no envelope recorded by a receiver this inbox trusts (only {got})"
        return (), "no envelope recipient recorded (headers naming recipients are not trusted)"
    if envelope.recorded_by == "unreceived":
        return email.recipients, where or ""
    if not envelope.recipients:
        return (), f"no envelope recipient in {where}"
    return envelope.recipients, where or ""
