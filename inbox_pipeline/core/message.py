"""Typed values shared by the core: a parsed email and its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


class EmailParseError(ValueError):
    """The input cannot be read as an email; the message says why, for a person."""


@dataclass(frozen=True)
class Address:
    name: str
    email: str  # lower-cased addr-spec, "" when absent

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True)
class InlinePart:
    """A MIME part referenced from the HTML as ``cid:<content_id>``."""

    content_id: str  # without angle brackets
    content_type: str
    data: bytes
    filename: str | None = None


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Verdicts:
    """SES receipt verdicts (X-SES-Spam-Verdict / X-SES-Virus-Verdict)."""

    spam: str | None = None  # "PASS", "FAIL", "GRAY", "PROCESSING_FAILED" or None
    virus: str | None = None

    @property
    def quarantine_reason(self) -> str | None:
        if self.virus == "FAIL":
            return "SES virus verdict FAIL"
        if self.spam == "FAIL":
            return "SES spam verdict FAIL"
        return None


# Who recorded an email's envelope recipients: SES's own Received header ("ses"), the
# SES receipt of an SNS notification ("ses-receipt"), an inbound-parse provider's
# envelope field ("postmark", "mailgun", "sendgrid"), the topmost Received header
# of another server ("mta"), a Received header without a usable "for" clause or a
# webhook without an envelope ("none"), or no mail server at all: the email has no
# Received header ("unreceived", a file someone placed by hand).
EnvelopeSource = Literal["ses", "ses-receipt", "postmark", "mailgun", "sendgrid", "mta", "none", "unreceived"]


@dataclass(frozen=True)
class Envelope:
    """The recipients a receiving system recorded (SMTP RCPT TO), never headers the sender wrote."""

    recipients: tuple[str, ...] = ()  # lower-cased addr-specs, de-duplicated
    recorded_by: EnvelopeSource = "none"
    host: str = ""  # the Received header's "by" host, for "ses" and "mta"


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str  # without angle brackets; synthesised from the content hash when missing
    sender: Address
    recipients: tuple[str, ...]  # the envelope's, then To/Cc (for the record: routing uses ``envelope``)
    subject: str
    date: datetime | None  # timezone-aware when known
    html: str | None  # the HTML body (text-only emails get simple generated HTML)
    text: str | None
    inline_parts: dict[str, InlinePart] = field(default_factory=dict)  # keyed by content_id
    attachments: tuple[Attachment, ...] = ()
    list_unsubscribe: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, decoded value), for platform detection
    verdicts: Verdicts = Verdicts()
    forwarded: bool = False  # a Gmail-style "Forwarded message" wrapper was removed
    source: Literal["mime", "postmark", "mailgun", "sendgrid", "html"] = "mime"
    defects: tuple[str, ...] = ()  # what the parser had to repair, for the record
    envelope: Envelope = Envelope()

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


EmailKind = Literal["newsletter", "confirmation", "transactional"]


@dataclass(frozen=True)
class Classification:
    kind: EmailKind
    reason: str  # a short phrase saying why, shown to users and operators
    confirm_link: str | None = None  # for confirmations: the link to click
