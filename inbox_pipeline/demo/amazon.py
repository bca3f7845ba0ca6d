"""The demo plays Amazon: the notice Send to Kindle would mail back for the newest book in the outbox.

With the local defaults nothing reaches Amazon: books land in the outbox folder. To show the loop
anyway, ``python -m inbox_pipeline.demo --amazon-says e999`` (or ``not-approved``) reads the newest
book there and writes the notice Amazon sends in that case, in its real shape (plain and HTML
parts, the document's name with its delivery token), into the inbox folder, addressed to the
sender address, as a receiving mail server would store it: a ``Received`` line naming the
envelope recipient and that server's ``Authentication-Results``.

That receiver is the demo's own, ``demo.localhost``. A folder inbox believes no receiver's
verdicts unless ``INBOX_PIPELINE_TRUSTED_AUTHSERV_IDS`` names it; ``scripts/dev.sh`` names
``demo.localhost`` for the demo. Without it the notice is recorded and ignored, which is the
trust rule at work too.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from inbox_pipeline.seams.inbox import inbox_from_uri

if TYPE_CHECKING:
    from inbox_pipeline.config import Settings

DEMO_RECEIVER = "demo.localhost"
AMAZON_SENDER = "do-not-reply@amazon.com"

# Amazon's words, from users' reports of real notices (the document's name is filled in).
E999_TEXT = (
    "Dear Send to Kindle customer,\n\n"
    "The following document(s), could not be delivered due to E999 - Send to Kindle Internal Error.\n\n"
    "Document: {document}\n\n"
    "Please try again later.\n\nThanks for using Send to Kindle"
)
NOT_APPROVED_TEXT = (
    "Dear Send to Kindle customer,\n\nThank you for using Send to Kindle.\n\n"
    "We apologize for the inconvenience, but there is problem with {sender}\u2019s account and we are "
    "unable to deliver the document {document} they sent to you. Please contact them regarding this issue.\n\n"
    "Thanks for using Send to Kindle"
)
TEXTS = {"e999": E999_TEXT, "not-approved": NOT_APPROVED_TEXT}


def amazon_notice(
    *,
    to: str,
    text: str,
    subject: str = "Your document could not be delivered",
    from_addr: str = AMAZON_SENDER,
    auth: str | None = "pass",
    authserv_id: str = "amazonses.com",
    received_by: str = "inbound-smtp.us-east-1.amazonaws.com",
    received_for: str | None = None,
    in_reply_to: str | None = None,
    when: datetime | None = None,
) -> bytes:
    """Raw bytes of one notice as the receiver stores it (SES by default: its Received line, spam and
    virus verdicts, Received-SPF, Authentication-Results, X-SES-RECEIPT on top of Amazon's headers).

    ``auth``: "pass" (SPF, DKIM and DMARC pass for the From domain), "fail" (all fail), or None (the
    receiver recorded no Authentication-Results)."""
    domain = from_addr.rpartition("@")[2]
    when = when or datetime.now(timezone.utc)
    msg = EmailMessage()
    received: list[tuple[str, str]] = [
        ("Return-Path", f"<bounce-{domain.replace('.', '-')}@{domain}>"),
        (
            "Received",
            f"from a27-18.smtp-out.us-west-2.amazonses.com (a27-18.smtp-out.us-west-2.amazonses.com [54.240.27.18]) "
            f"by {received_by} with SMTP id 8s1nq2c4e6g8i0k2m4o6q8s0u2w4y6a8 "
            f"for {received_for or to}; {format_datetime(when)}",
        ),
        ("X-SES-Spam-Verdict", "PASS"),
        ("X-SES-Virus-Verdict", "PASS"),
    ]
    if auth == "pass":
        received += [
            ("Received-SPF", f"pass (spf=pass) client-ip=54.240.27.18; envelope-from=bounce@{domain};"),
            (
                "Authentication-Results",
                f"{authserv_id}; spf=pass (spf: domain of bounce@{domain} designates 54.240.27.18 as permitted sender) "
                f"smtp.mailfrom=bounce@{domain}; dkim=pass header.i=@{domain}; dmarc=pass header.from={domain};",
            ),
        ]
    elif auth == "fail":
        received += [
            ("Received-SPF", "fail (spf=fail) client-ip=203.0.113.9;"),
            (
                "Authentication-Results",
                f"{authserv_id}; spf=fail smtp.mailfrom=bounce@{domain}; dkim=fail header.i=@{domain}; "
                f"dmarc=fail header.from={domain};",
            ),
        ]
    received.append(("X-SES-RECEIPT", "AEFBQUFBQUFBQUFIcGxhY2Vob2xkZXIgcmVjZWlwdCBmb3IgdGVzdHM="))
    for name, value in received:
        msg[name] = value
    msg["DKIM-Signature"] = f"v=1; a=rsa-sha256; d={domain}; s=sel; h=From:To:Subject; b=ZmFrZQ=="
    msg["From"] = f'"Amazon Kindle" <{from_addr}>'
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<0100018c.notice.{uuid.uuid4().hex[:16]}@email.amazon.com>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(text)
    paragraphs = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
    msg.add_alternative(
        f"<html><body><table><tr><td><img src='https://m.media-amazon.com/logo.png' alt='amazon kindle'>"
        f"{paragraphs}</td></tr></table></body></html>",
        subtype="html",
    )
    return msg.as_bytes()


def newest_book(outbox: Path) -> tuple[str, str] | None:
    """(the Kindle address, the attachment's name) of the newest EPUB email in the outbox folder."""
    for path in sorted(outbox.glob("*.eml"), reverse=True):  # names start with the send time
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        for part in message.iter_attachments():
            if part.get_content_type() == "application/epub+zip" and part.get_filename():
                return str(message["To"]), part.get_filename()
    return None


def answer_newest_book(settings: "Settings", says: str) -> str:
    """Write Amazon's notice (``says``: "e999" or "not-approved") for the newest book into the inbox.

    Returns what was done, in words; raises ``ValueError`` when there is nothing to answer."""
    if not settings.mailer.startswith("outbox:"):
        raise ValueError(f"the demo answers books in an outbox folder; the mailer is {settings.mailer!r}")
    found = newest_book(Path(settings.mailer.removeprefix("outbox:")).expanduser())
    if found is None:
        raise ValueError("no book in the outbox yet: let the pipeline deliver one first")
    kindle, document = found
    text = TEXTS[says].format(document=document, sender=settings.sender)
    data = amazon_notice(to=settings.sender, text=text, authserv_id=DEMO_RECEIVER, received_by=DEMO_RECEIVER)
    key = f"amazon-{says}-{uuid.uuid4().hex[:8]}.eml"
    inbox_from_uri(settings.inbox).put(key, data)
    return (
        f"Amazon ({says}) answered {document} sent to {kindle}: {key} in {settings.inbox} "
        f"(believed where INBOX_PIPELINE_TRUSTED_AUTHSERV_IDS names {DEMO_RECEIVER}, as scripts/dev.sh does)"
    )
