"""Inbound-parse webhook JSON (Postmark, Mailgun, SendGrid; also SES SNS notifications) -> ParsedEmail.

Each provider posts the email already split into fields; we map those fields
onto ParsedEmail. When the payload carries the full raw MIME as well
(Postmark ``RawEmail``, Mailgun ``body-mime``, SendGrid ``email`` with "send
raw" on, SES ``content``) we parse that instead, since it is the most faithful
copy. The envelope (what routing reads) is the provider's envelope field, or
the SES receipt's recipients: never the payload's To/Cc or MIME headers.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from email.parser import HeaderParser

from inbox_pipeline.core.message import Address, Attachment, EmailParseError, Envelope, InlinePart, ParsedEmail, Verdicts
from inbox_pipeline.core.mime import (
    CAPPED_POLICY,
    MAX_BYTES,
    clean_message_id,
    decode_value,
    decoded_headers,
    finish,
    first_raw,
    parse_addresses,
    parse_date,
    parse_mime,
    recipients_from_headers,
    sender_from_headers,
    split_list_unsubscribe,
    synthetic_message_id,
)

POSTMARK_KEYS = frozenset({"HtmlBody", "TextBody", "FromFull", "ToFull", "MessageID", "OriginalRecipient", "RawEmail"})
MAILGUN_KEYS = frozenset(
    {"body-html", "body-plain", "stripped-html", "stripped-text", "message-headers", "body-mime", "content-id-map"}
)
SENDGRID_KEYS = frozenset({"envelope", "charsets", "email", "spam_score", "sender_ip", "attachment-info", "SPF", "dkim"})


def _too_large(size: int) -> EmailParseError:
    return EmailParseError(f"webhook payload too large: at least {size:,} bytes (limit {MAX_BYTES:,})")


def parse_webhook(raw: bytes | str | Mapping) -> ParsedEmail:
    """A provider's inbound JSON payload -> ParsedEmail; EmailParseError for bad JSON or an unknown shape."""
    if isinstance(raw, Mapping):
        payload, raw_bytes = raw, json.dumps(raw, sort_keys=True, default=str).encode()
    else:
        # Sized before it is copied or encoded: a str encodes to at least one byte per character.
        if len(raw) > MAX_BYTES:
            raise _too_large(len(raw))
        raw_bytes = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        if len(raw_bytes) > MAX_BYTES:
            raise _too_large(len(raw_bytes))
        try:
            payload = json.loads(raw_bytes.decode("utf-8-sig", errors="replace"))
        except RecursionError as exc:
            raise EmailParseError("webhook JSON is nested too deeply") from exc
        except ValueError as exc:
            raise EmailParseError(f"not valid JSON: {exc}") from exc
    if not isinstance(payload, Mapping):
        raise EmailParseError(f"webhook JSON must be an object, got a {type(payload).__name__}")

    provider = detect_provider(payload)
    if provider == "sns":
        return _from_ses_notification(payload)
    if provider == "postmark":
        return _from_postmark(payload, raw_bytes)
    if provider == "mailgun":
        return _from_mailgun(payload, raw_bytes)
    if provider == "sendgrid":
        return _from_sendgrid(payload, raw_bytes)
    keys = ", ".join(sorted(str(k) for k in payload)[:12]) or "none"
    raise EmailParseError(f"unknown webhook JSON shape: not Postmark, Mailgun or SendGrid (keys: {keys})")


def detect_provider(payload: Mapping) -> str | None:
    """'postmark' | 'mailgun' | 'sendgrid' | 'sns' from the payload's field names, else None."""
    keys = set(payload)
    if payload.get("Type") == "Notification" and isinstance(payload.get("Message"), str):
        return "sns"
    if payload.get("notificationType") == "Received" and isinstance(payload.get("content"), str):
        return "sns"
    if keys & POSTMARK_KEYS:
        return "postmark"
    lowered = {str(k).lower() for k in keys}
    if lowered & MAILGUN_KEYS:
        return "mailgun"
    if keys & SENDGRID_KEYS or ({"from", "to"} <= keys and keys & {"html", "text", "headers"}):
        return "sendgrid"
    return None


# --- shared ------------------------------------------------------------------------


def _get(payload: Mapping, *names: str):
    """First present field, trying each name as given and case-insensitively."""
    for name in names:
        if name in payload and payload[name] not in (None, ""):
            return payload[name]
    lowered = {str(k).lower(): v for k, v in payload.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value not in (None, ""):
            return value
    return None


def _str(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _json_field(value):
    """Providers double-encode some fields as JSON strings (Mailgun message-headers, SendGrid envelope)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _envelope(recipients: Iterable[str], recorded_by: str) -> Envelope:
    """The provider's envelope; an empty one is "none" (nothing recorded who it was for)."""
    found = tuple(dict.fromkeys(r.strip().lower() for r in recipients if r and "@" in r))
    return Envelope(found, recorded_by if found else "none")  # type: ignore[arg-type]


def _with_envelope(email: ParsedEmail, envelope: Iterable[str], source: str, recorded_by: str) -> ParsedEmail:
    # The raw MIME inside the payload went through the provider's servers: its
    # Received headers are not ours to read, the provider's envelope field is.
    trusted = _envelope(envelope, recorded_by)
    recipients = tuple(dict.fromkeys([*trusted.recipients, *email.recipients]))
    return replace(
        email,
        recipients=recipients,
        envelope=trusted,
        source=source,  # type: ignore[arg-type]
    )


def _raw_mime(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def _build(
    *,
    raw_bytes: bytes,
    source: str,
    headers: list[tuple[str, str]],
    message_id: str | None,
    sender: Address | None,
    envelope: Iterable[str],
    visible: Iterable[str],
    subject: str | None,
    date: datetime | None,
    html: str | None,
    text: str | None,
    inline_parts: dict[str, InlinePart] | None = None,
    attachments: Iterable[Attachment] = (),
    defects: list[str] | None = None,
) -> ParsedEmail:
    defects = list(defects or [])
    mid = clean_message_id(first_raw(headers, "message-id")) or clean_message_id(message_id)
    if not mid:
        mid = synthetic_message_id(raw_bytes)
        defects.append("no Message-ID; synthesised from the content hash")
    if sender is None or not sender.email:
        from_headers = sender_from_headers(headers)
        sender = from_headers if from_headers.email else (sender or Address(name="", email=""))
    if date is None:
        date = parse_date(first_raw(headers, "date"))
    if date is None:
        defects.append("no usable Date")
    trusted = _envelope(envelope, source)
    recipients = list(trusted.recipients)
    recipients.extend(recipients_from_headers([(k, v) for k, v in headers if k.lower() != "received"]))
    recipients.extend(r.lower() for r in visible if r)
    email = ParsedEmail(
        message_id=mid,
        sender=sender,
        recipients=tuple(dict.fromkeys(r for r in recipients if "@" in r)),
        subject=decode_value(subject if subject is not None else first_raw(headers, "subject") or ""),
        date=date,
        html=html or None,
        text=text or None,
        inline_parts=inline_parts or {},
        attachments=tuple(attachments),
        list_unsubscribe=split_list_unsubscribe(first_raw(headers, "list-unsubscribe")),
        headers=decoded_headers(headers),
        verdicts=Verdicts(
            spam=_verdict(first_raw(headers, "x-ses-spam-verdict")),
            virus=_verdict(first_raw(headers, "x-ses-virus-verdict")),
        ),
        source=source,  # type: ignore[arg-type]
        envelope=trusted,
    )
    return finish(email, defects)


def _verdict(value: str | None) -> str | None:
    return value.strip().upper() or None if value else None


def _b64(value) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode("".join(value.split()), validate=False)
    except (binascii.Error, ValueError):
        return None


def _addresses(value) -> list[str]:
    """A recipient field that may be a string, a list of strings or a list of {Email: …} objects."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = [value]
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, Mapping):
                addr = _get(item, "Email", "email", "address")
                if addr:
                    out.append(str(addr).strip().lower())
            elif item:
                out.extend(_addresses(str(item)))
        return out
    return [a.email for a in parse_addresses(str(value)) if a.email]


# --- SES (SNS notification with the raw email) ----------------------------------------


def _from_ses_notification(payload: Mapping) -> ParsedEmail:
    if payload.get("Type") == "Notification":
        inner = _json_field(payload.get("Message"))
        if not isinstance(inner, Mapping) or not isinstance(inner.get("content"), str):
            raise EmailParseError("SNS notification without an SES 'content' field (enable the SNS action's raw content)")
        payload = inner
    email = parse_mime(_raw_mime(payload["content"]))
    receipt = payload.get("receipt") if isinstance(payload.get("receipt"), Mapping) else {}
    envelope = _addresses(receipt.get("recipients"))
    verdicts = email.verdicts
    spam = (receipt.get("spamVerdict") or {}).get("status") if isinstance(receipt.get("spamVerdict"), Mapping) else None
    virus = (receipt.get("virusVerdict") or {}).get("status") if isinstance(receipt.get("virusVerdict"), Mapping) else None
    if spam or virus:
        verdicts = Verdicts(spam=(spam or verdicts.spam), virus=(virus or verdicts.virus))
    return replace(_with_envelope(email, envelope, "mime", "ses-receipt"), verdicts=verdicts)


# --- Postmark --------------------------------------------------------------------------


def _from_postmark(payload: Mapping, raw_bytes: bytes) -> ParsedEmail:
    envelope = _addresses(payload.get("OriginalRecipient"))
    if payload.get("RawEmail"):
        return _with_envelope(parse_mime(_raw_mime(payload["RawEmail"])), envelope, "postmark", "postmark")
    headers = [
        (str(h.get("Name", "")), _str(h.get("Value")) or "")
        for h in payload.get("Headers") or []
        if isinstance(h, Mapping) and h.get("Name")
    ]
    full = payload.get("FromFull") if isinstance(payload.get("FromFull"), Mapping) else None
    if full and full.get("Email"):
        sender = Address(name=str(full.get("Name") or ""), email=str(full["Email"]).strip().lower())
    else:
        parsed = parse_addresses(_str(payload.get("From")))
        sender = parsed[0] if parsed else None
        if sender and not sender.name and payload.get("FromName"):
            sender = Address(name=str(payload["FromName"]), email=sender.email)
    visible = [
        *_addresses(payload.get("ToFull") or payload.get("To")),
        *_addresses(payload.get("CcFull") or payload.get("Cc")),
        *_addresses(payload.get("BccFull") or payload.get("Bcc")),
    ]
    inline: dict[str, InlinePart] = {}
    attachments: list[Attachment] = []
    defects: list[str] = []
    for item in payload.get("Attachments") or []:
        if not isinstance(item, Mapping):
            continue
        data = _b64(item.get("Content"))
        name = str(item.get("Name") or f"attachment-{len(attachments) + 1}")
        ctype = str(item.get("ContentType") or "application/octet-stream").lower()
        if data is None:
            defects.append(f"attachment {name!r} has no readable base64 content")
            continue
        cid = clean_message_id(_str(item.get("ContentID")))
        if cid:
            inline[cid] = InlinePart(content_id=cid, content_type=ctype, data=data, filename=name)
        else:
            attachments.append(Attachment(filename=name, content_type=ctype, data=data))
    return _build(
        raw_bytes=raw_bytes,
        source="postmark",
        headers=headers,
        message_id=_str(payload.get("MessageID")),
        sender=sender,
        envelope=envelope,
        visible=visible,
        subject=_str(payload.get("Subject")),
        date=parse_date(_str(payload.get("Date"))),
        html=_str(payload.get("HtmlBody")),
        text=_str(payload.get("TextBody")),
        inline_parts=inline,
        attachments=attachments,
        defects=defects,
    )


# --- Mailgun ---------------------------------------------------------------------------


def _from_mailgun(payload: Mapping, raw_bytes: bytes) -> ParsedEmail:
    envelope = _addresses(_get(payload, "recipient", "recipients"))
    mime = _get(payload, "body-mime")
    if mime:
        return _with_envelope(parse_mime(_raw_mime(mime)), envelope, "mailgun", "mailgun")
    pairs = _json_field(_get(payload, "message-headers")) or []
    headers = [
        (str(pair[0]), _str(pair[1]) or "")
        for pair in pairs
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0]
    ]
    defects = []
    count = _get(payload, "attachment-count")
    if count and str(count).strip() not in ("0", ""):
        defects.append(f"{count} attachment(s) posted as files, not in the JSON")
    date = None
    timestamp = _get(payload, "timestamp")
    if not first_raw(headers, "date") and timestamp is not None:
        try:
            date = datetime.fromtimestamp(float(timestamp), tz=timezone.utc)
        except (TypeError, ValueError, OverflowError, OSError):
            date = None
    from_value = _str(_get(payload, "from"))
    parsed = parse_addresses(from_value)
    return _build(
        raw_bytes=raw_bytes,
        source="mailgun",
        headers=headers,
        message_id=_str(_get(payload, "Message-Id")),
        sender=parsed[0] if parsed else None,
        envelope=envelope,
        visible=_addresses(_get(payload, "To")) + _addresses(_get(payload, "Cc")),
        subject=_str(_get(payload, "subject")),
        date=date,
        html=_str(_get(payload, "body-html", "stripped-html")),
        text=_str(_get(payload, "body-plain", "stripped-text")),
        defects=defects,
    )


# --- SendGrid --------------------------------------------------------------------------


def _from_sendgrid(payload: Mapping, raw_bytes: bytes) -> ParsedEmail:
    envelope_field = _json_field(payload.get("envelope"))
    envelope = _addresses(envelope_field.get("to")) if isinstance(envelope_field, Mapping) else []
    if payload.get("email"):
        return _with_envelope(parse_mime(_raw_mime(payload["email"])), envelope, "sendgrid", "sendgrid")
    headers: list[tuple[str, str]] = []
    header_block = payload.get("headers")
    if isinstance(header_block, str) and header_block.strip():
        parsed_headers = HeaderParser(policy=CAPPED_POLICY).parsestr(header_block[:1_000_000])
        headers = [(k, v if isinstance(v, str) else str(v)) for k, v in parsed_headers.raw_items()]
    elif isinstance(header_block, Mapping):
        headers = [(str(k), _str(v) or "") for k, v in header_block.items()]
    defects = []
    info = _json_field(payload.get("attachment-info"))
    attachments: list[Attachment] = []
    inline: dict[str, InlinePart] = {}
    if isinstance(info, Mapping):
        for key, meta in info.items():
            if not isinstance(meta, Mapping):
                continue
            data = _b64(payload.get(key))
            name = str(meta.get("filename") or meta.get("name") or key)
            if data is None:
                defects.append(f"attachment {name!r} posted as a file, not in the JSON")
                continue
            ctype = str(meta.get("type") or "application/octet-stream").lower()
            cid = clean_message_id(_str(meta.get("content-id")))
            if cid:
                inline[cid] = InlinePart(content_id=cid, content_type=ctype, data=data, filename=name)
            else:
                attachments.append(Attachment(filename=name, content_type=ctype, data=data))
    parsed = parse_addresses(_str(payload.get("from")))
    return _build(
        raw_bytes=raw_bytes,
        source="sendgrid",
        headers=headers,
        message_id=None,
        sender=parsed[0] if parsed else None,
        envelope=envelope,
        visible=_addresses(payload.get("to")) + _addresses(payload.get("cc")),
        subject=_str(payload.get("subject")),
        date=None,
        html=_str(payload.get("html")),
        text=_str(payload.get("text")),
        inline_parts=inline,
        attachments=attachments,
        defects=defects,
    )


__all__ = ["detect_provider", "parse_webhook"]
