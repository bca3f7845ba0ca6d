"""The readers behind ``parse_email``: raw MIME and bare HTML documents -> ParsedEmail, and the
header, charset and address helpers the webhook reader shares.

Every header is capped before it is decoded and every charset degrades to a
replacement character; ``core/parse.parse_email`` wraps the readers so that a
surprise in the standard library becomes a readable error instead of a crash.
"""

from __future__ import annotations

import codecs
import hashlib
import html as html_lib
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timezone
from email.policy import EmailPolicy
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from inbox_pipeline.core.forwarded import unwrap_forwarded
from inbox_pipeline.core.message import Address, Attachment, EmailParseError, Envelope, InlinePart, ParsedEmail, Verdicts

MAX_BYTES = 50 * 1024 * 1024
MAX_HEADER_CHARS = 4096  # stored header values; longer ones are cut
MAX_PARSE_HEADER_CHARS = 16384  # what address/RFC 2047 decoding ever sees
MAX_HEADERS = 500
MAX_PARTS = 2000
MAX_DEFECTS = 30
MAX_STRUCTURED_HEADER_CHARS = 2048  # what the modern policy's (slow, pure-Python) header parser sees
MAX_CONTENT_TYPES = 10_000  # MIME parts; each costs the stdlib parser real time
MAX_TOP_HEADER_LINES = 50_000

# Envelope recipients come only from what the receiving system recorded: the
# topmost Received header (the receiver prepends it above anything the sender
# wrote) or a provider's envelope field. X-Original-To, Delivered-To,
# Envelope-To, X-Rcpt-To and the like are read from nowhere: a sender can write
# them. SES's inbound hosts are named inbound-smtp.<region>.amazonaws.com.
SES_INBOUND_HOST = re.compile(r"inbound-smtp\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?")
VISIBLE_RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc")

# WHATWG-style overrides: labels that in practice mean a superset encoding.
_CHARSET_OVERRIDES = {
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "ascii": "utf-8",  # "us-ascii" labels routinely hide UTF-8; a failure falls back to cp1252
}
_BLOCKED_CODECS = {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined"}

_SURROGATES = re.compile("[\udc80-\udcff]")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\s<>,;:\"'()\[\]]+")
_ANGLE = re.compile(r"<([^<>]*)>")
_RECEIVED_BY = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)
_RECEIVED_FOR = re.compile(r"\bfor\s+", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]*+>")  # excludes "<" so a flood of "<" stays linear
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def synthetic_message_id(raw: bytes) -> str:
    """A stable Message-ID for inputs without one: the same bytes give the same id."""
    return f"sha256-{hashlib.sha256(raw).hexdigest()}@inbox-pipeline"


# --- MIME ------------------------------------------------------------------------------


class _CappedPolicy(EmailPolicy):
    """``policy.default`` whose structured header parsing never sees more than a few KB.

    The modern header parser is pure Python and superlinear: a 1 MB Content-Type
    takes minutes. No real Content-Type or Content-Disposition is that long.
    """

    def header_fetch_parse(self, name, value):
        if isinstance(value, str) and len(value) > MAX_STRUCTURED_HEADER_CHARS:
            value = value[:MAX_STRUCTURED_HEADER_CHARS]
        return super().header_fetch_parse(name, value)


CAPPED_POLICY = _CappedPolicy()  # otherwise the same settings as policy.default


def _guard_shape(raw: bytes) -> None:
    """Refuse inputs whose shape alone would keep the stdlib parser busy for minutes."""
    parts = raw.count(b"ontent-Type:") + raw.count(b"ontent-type:") + raw.count(b"ONTENT-TYPE:")
    if parts > MAX_CONTENT_TYPES:
        raise EmailParseError(f"too many MIME parts: {parts:,} Content-Type headers (limit {MAX_CONTENT_TYPES:,})")
    end = min(len(raw), 8 * 1024 * 1024)
    for blank in (b"\n\n", b"\n\r\n"):
        found = raw.find(blank, 0, end)
        if found != -1:
            end = min(end, found)
    if raw.count(b"\n", 0, end) > MAX_TOP_HEADER_LINES:
        raise EmailParseError(f"header block too large: more than {MAX_TOP_HEADER_LINES:,} lines")


def parse_mime(raw: bytes, *, source: str = "mime") -> ParsedEmail:
    """Parse an RFC 5322 message with the stdlib modern policy."""
    _guard_shape(raw)
    msg = BytesParser(policy=CAPPED_POLICY).parsebytes(raw)
    defects: list[str] = []
    raw_headers = list(msg.raw_items())
    check_is_mail(raw_headers)
    headers = decoded_headers(raw_headers)
    body = extract_bodies(msg, defects)
    check_body_is_text(body.html, body.text)
    if body.html:
        body.html = flatten_deep_html(body.html, body.defects)

    message_id = clean_message_id(first_raw(raw_headers, "message-id")) or ""
    if not message_id:
        message_id = synthetic_message_id(raw)
        defects.append("no Message-ID; synthesised from the content hash")

    date = parse_date(first_raw(raw_headers, "date"))
    if date is None:
        date = _received_date(raw_headers)
        defects.append("no usable Date header" + ("; used the Received time" if date else ""))

    envelope = envelope_from_headers(raw_headers)
    email = ParsedEmail(
        message_id=message_id,
        sender=sender_from_headers(raw_headers),
        recipients=recipients_from_headers(raw_headers, envelope),
        envelope=envelope,
        subject=decode_value(first_raw(raw_headers, "subject") or ""),
        date=date,
        html=body.html,
        text=body.text,
        inline_parts=body.inline_parts,
        attachments=tuple(body.attachments),
        list_unsubscribe=split_list_unsubscribe(first_raw(raw_headers, "list-unsubscribe")),
        headers=headers,
        verdicts=Verdicts(
            spam=_verdict(first_raw(raw_headers, "x-ses-spam-verdict")),
            virus=_verdict(first_raw(raw_headers, "x-ses-virus-verdict")),
        ),
        source=source,  # type: ignore[arg-type]
        defects=(),
    )
    return finish(email, defects + body.defects)


def finish(email: ParsedEmail, defects: Iterable[str]) -> ParsedEmail:
    """Shared last step: unwrap forwarded wrappers, generate HTML for text-only mail, record defects."""
    html, text = email.html, email.text
    changes: dict = {}
    unwrapped = unwrap_forwarded(html, text)
    if unwrapped is not None:
        html, text = unwrapped.html, unwrapped.text
        changes["forwarded"] = True
        if unwrapped.sender is not None and unwrapped.sender.email:
            changes["sender"] = unwrapped.sender
        if unwrapped.subject:
            changes["subject"] = unwrapped.subject
        if unwrapped.date is not None:
            date = unwrapped.date
            if date.tzinfo is None:
                # Gmail writes the forwarded date in the forwarder's local time, the
                # zone of the outer Date header.
                outer = email.date.tzinfo if email.date is not None else None
                date = date.replace(tzinfo=outer or timezone.utc)
            changes["date"] = date
    defects = list(defects)
    if not html and text and text.strip():
        html = text_to_html(text)
    if not html:
        html = None
        defects.append("no HTML or text body")
    changes.update(html=html, text=text or None)
    unique = tuple(dict.fromkeys(d for d in defects if d))[:MAX_DEFECTS]
    changes["defects"] = unique
    return replace(email, **changes)


class _Bodies:
    __slots__ = ("html", "text", "inline_parts", "attachments", "defects")

    def __init__(self) -> None:
        self.html: str | None = None
        self.text: str | None = None
        self.inline_parts: dict[str, InlinePart] = {}
        self.attachments: list[Attachment] = []
        self.defects: list[str] = []


def extract_bodies(msg: Message, defects: list[str]) -> _Bodies:
    """Walk the MIME tree once: pick the HTML and text bodies, collect cid: parts and attachments."""
    out = _Bodies()
    html_candidates: list[tuple[bool, str]] = []  # (inside an attached message, body)
    text_candidates: list[tuple[bool, str]] = []
    count = 0
    for part, in_attached in _walk(msg):
        count += 1
        if count > MAX_PARTS:
            out.defects.append(f"more than {MAX_PARTS} MIME parts; the rest ignored")
            break
        for defect in getattr(part, "defects", ()) or ():
            out.defects.append(f"{type(defect).__name__} in {_safe_content_type(part)}")
        ctype = _safe_content_type(part)
        if part.is_multipart():
            continue
        if ctype.startswith("multipart/") or ctype == "message/rfc822":
            # A multipart whose boundary never matched: the parser left its body as text.
            salvaged = _salvage_multipart(part)
            if salvaged is not None:
                sub = extract_bodies(salvaged, defects)
                out.defects.append("multipart boundary never matched; salvaged the parts")
                out.defects.extend(sub.defects)
                if sub.html:
                    html_candidates.append((in_attached, sub.html))
                if sub.text:
                    text_candidates.append((in_attached, sub.text))
                out.inline_parts.update(sub.inline_parts)
                out.attachments.extend(sub.attachments)
                continue
            body = _decoded_text(part)
            if body.strip():
                out.defects.append(f"{ctype} without readable parts; kept its body as text")
                text_candidates.append((in_attached, body))
            continue
        disposition = _safe(part.get_content_disposition) or ""
        filename = _filename(part)
        content_id = clean_message_id(_raw_header(part, "content-id"))
        is_body_type = ctype in ("text/html", "text/plain") or ctype == "text/enriched"
        if is_body_type and disposition != "attachment" and not (filename and disposition == "inline" and content_id):
            body = _decoded_text(part)
            if ctype == "text/html":
                html_candidates.append((in_attached, body))
            else:
                text_candidates.append((in_attached, body))
            continue
        data = _payload_bytes(part)
        if content_id:
            out.inline_parts[content_id] = InlinePart(
                content_id=content_id, content_type=ctype, data=data, filename=filename
            )
            if disposition != "attachment":
                continue
        if not filename:
            filename = f"attachment-{len(out.attachments) + 1}{_extension(ctype)}"
        out.attachments.append(Attachment(filename=filename, content_type=ctype, data=data))

    outer_html = [b for attached, b in html_candidates if not attached and b.strip()]
    outer_text = [b for attached, b in text_candidates if not attached and b.strip()]
    inner_html = [b for attached, b in html_candidates if attached and b.strip()]
    inner_text = [b for attached, b in text_candidates if attached and b.strip()]
    if not outer_html and inner_html:
        # A newsletter forwarded as an attachment (message/rfc822): the attached message is the
        # body, and its own text alternative goes with it rather than the forwarder's note.
        out.defects.append("body taken from an attached message")
        outer_html, outer_text = inner_html, inner_text
    out.html = _choose(outer_html, out.defects, "HTML")
    out.text = _choose(outer_text or inner_text, out.defects, "text")
    return out


def _walk(msg: Message, in_attached: bool = False) -> Iterable[tuple[Message, bool]]:
    """Depth-first walk without recursion (so deep nesting cannot exhaust the stack)."""
    stack: list[tuple[Message, bool]] = [(msg, in_attached)]
    while stack:
        part, attached = stack.pop()
        yield part, attached
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                inner = attached or (part is not msg and _safe_content_type(part) == "message/rfc822")
                for child in reversed(children):
                    if isinstance(child, Message):
                        stack.append((child, inner))


def _choose(bodies: list[str], defects: list[str], label: str) -> str | None:
    if not bodies:
        return None
    if len(bodies) > 1:
        defects.append(f"{len(bodies)} {label} parts; kept the largest")
        return max(bodies, key=len)
    return bodies[0]


def _salvage_multipart(part: Message) -> Message | None:
    """Re-read a multipart whose declared boundary is absent, using the first '--' line as boundary."""
    payload = part.get_payload()
    if not isinstance(payload, str) or "\n" not in payload:
        return None
    for line in payload.splitlines()[:200]:
        line = line.strip()
        if line.startswith("--") and len(line) > 3 and not line.endswith("--"):
            boundary = line[2:]
            if '"' in boundary or "\\" in boundary:
                return None
            head = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
            data = (head + payload).encode("ascii", "surrogateescape")
            salvaged = BytesParser(policy=CAPPED_POLICY).parsebytes(data)
            if salvaged.is_multipart() and salvaged.get_payload():
                return salvaged
            return None
    return None


def _decoded_text(part: Message) -> str:
    data = _payload_bytes(part)
    cte = (_raw_header(part, "content-transfer-encoding") or "").strip().lower()
    if cte == "base64" and _looks_like_plain_text_not_base64(part):
        # Senders that label plain text as base64: decoding it gives noise.
        raw_payload = part.get_payload(decode=False)
        if isinstance(raw_payload, str):
            data = raw_payload.encode("ascii", "surrogateescape")
    charset = _safe(part.get_content_charset)
    return decode_bytes(data, charset)


def _looks_like_plain_text_not_base64(part: Message) -> bool:
    payload = part.get_payload(decode=False)
    if not isinstance(payload, str):
        return False
    compact = "".join(payload.split())
    if not compact:
        return False
    return len(compact) % 4 != 0 and any(d.__class__.__name__.startswith("InvalidBase64") for d in part.defects)


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload(decode=False)
    if isinstance(payload, str):
        return payload.encode("ascii", "surrogateescape")
    return b""


def _safe_content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _safe(getter):
    try:
        return getter()
    except Exception:
        return None


def _filename(part: Message) -> str | None:
    name = _safe(part.get_filename)
    if not name:
        return None
    name = clean_text(decode_value(str(name)))[:200]
    return name or None


def _raw_header(part: Message, name: str) -> str | None:
    for key, value in part.raw_items():
        if key.lower() == name:
            return value if isinstance(value, str) else str(value)
    return None


def _extension(ctype: str) -> str:
    return mimetypes.guess_extension(ctype) or ".bin"


# --- headers ---------------------------------------------------------------------


def first_raw(raw_headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in raw_headers:
        if key.lower() == name:
            return value if isinstance(value, str) else str(value)
    return None


def all_raw(raw_headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v if isinstance(v, str) else str(v) for k, v in raw_headers if k.lower() == name]


def decoded_headers(raw_headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """All headers as (lower-case name, decoded, single-line, capped value)."""
    out = []
    for name, value in raw_headers[:MAX_HEADERS]:
        key = clean_text(str(name)).lower()[:100]
        if not key:
            continue
        out.append((key, decode_value(value if isinstance(value, str) else str(value))[:MAX_HEADER_CHARS]))
    return tuple(out)


def unescape_8bit(value: str) -> str:
    """Undo the parser's surrogateescape: raw 8-bit header bytes as UTF-8, else windows-1252."""
    if not _SURROGATES.search(value):
        return value
    return guess_decode(value.encode("utf-8", "surrogateescape"))


def guess_decode(data: bytes) -> str:
    """Bytes of unknown charset: UTF-8 when most of the 8-bit bytes are valid UTF-8, else windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    as_utf8 = data.decode("utf-8", errors="replace")
    high = sum(1 for b in data[:200_000] if b > 0x7F)
    if as_utf8.count("\ufffd") * 10 <= high:  # a stray bad byte among much good UTF-8
        return as_utf8
    return data.decode("cp1252", errors="replace")


def decode_value(value: str) -> str:
    """RFC 2047 encoded words and raw 8-bit bytes -> one clean line of text."""
    if value is None:
        return ""
    value = unescape_8bit(str(value)[:MAX_PARSE_HEADER_CHARS])
    if "=?" in value:
        try:
            pieces = []
            for chunk, charset in decode_header(value):
                if isinstance(chunk, bytes):
                    if charset is None:
                        pieces.append(chunk.decode("raw-unicode-escape", errors="replace"))
                    else:
                        pieces.append(decode_bytes(chunk, charset))
                else:
                    pieces.append(chunk)
            value = "".join(pieces)
        except Exception:
            pass  # a broken encoded word: keep the raw text
    return clean_text(value)


def clean_text(value: str) -> str:
    value = _CONTROL_CHARS.sub("", value.replace("\ufffd\ufffd", "\ufffd"))
    return _WHITESPACE.sub(" ", value).strip()


def clean_message_id(value: str | None) -> str | None:
    if not value:
        return None
    value = unescape_8bit(str(value)[:2000])
    match = _ANGLE.search(value)
    inner = match.group(1) if match else value
    inner = "".join(inner.split())
    inner = _CONTROL_CHARS.sub("", inner).strip("<>")
    return inner[:998] or None


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    text = clean_text(unescape_8bit(str(value)[:300]))
    try:
        date = parsedate_to_datetime(text)
    except Exception:
        return None
    if date is None:
        return None
    if date.tzinfo is None:  # "-0000": UTC with unknown local zone
        date = date.replace(tzinfo=timezone.utc)
    try:
        date.utcoffset()
        date.astimezone(timezone.utc)
    except Exception:
        return None
    return date


def _received_date(raw_headers: list[tuple[str, str]]) -> datetime | None:
    received = first_raw(raw_headers, "received")
    if received and ";" in received:
        return parse_date(received.rsplit(";", 1)[1])
    return None


def _verdict(value: str | None) -> str | None:
    if not value:
        return None
    return clean_text(unescape_8bit(value[:100])).upper() or None


def parse_addresses(value: str | None) -> list[Address]:
    """An address header -> Addresses; names decoded after splitting, so encoded commas are safe."""
    if not value:
        return []
    raw = unescape_8bit(str(value)[:MAX_PARSE_HEADER_CHARS]).replace("\r", " ").replace("\n", " ")
    try:
        pairs = getaddresses([raw])
    except Exception:
        pairs = []
    out = []
    for name, addr in pairs:
        addr = "".join(addr.split()).lower()
        if addr and "@" not in addr:
            addr = ""
        name = decode_value(name).strip().strip('"').strip("'").strip()
        if addr or name:
            out.append(Address(name=name, email=addr))
    if not out:
        found = addresses_in(raw)
        if found:
            out.append(Address(name="", email=found[0]))
    return out


def addresses_in(value: str) -> list[str]:
    """Addr-specs found in free text (envelope headers, Received clauses); linear time."""
    found = []
    for token in _SEPARATORS.split(value[:MAX_PARSE_HEADER_CHARS]):
        if token.count("@") == 1:
            local, _, domain = token.partition("@")
            # "localhost" too: the local default's sender (kindle@localhost) must be recognised.
            dotted = "." in domain and not domain.startswith(".") and not domain.endswith(".")
            if local and (dotted or domain.lower() == "localhost"):
                found.append(token.lower().removeprefix("mailto:"))
    return found


def sender_from_headers(raw_headers: list[tuple[str, str]]) -> Address:
    sender = None
    for name in ("from", "sender", "return-path"):
        addresses = parse_addresses(first_raw(raw_headers, name))
        if addresses:
            sender = addresses[0]
            break
    # Google Groups (and similar list relays) rewrite From to "'X' via Group <group@…>" and keep
    # the real author in X-Original-From; the newsletter is the author's, not the list's.
    original = parse_addresses(first_raw(raw_headers, "x-original-from"))
    if original and original[0].email and (sender is None or " via " in sender.name):
        return original[0]
    return sender or Address(name="", email="")


def envelope_from_headers(raw_headers: list[tuple[str, str]]) -> Envelope:
    """The envelope recipients in the ``for`` clause of the topmost Received header, and who wrote it.

    Only the topmost header is read: the receiving server prepends it, so every
    Received below it (and any other header) may be the sender's. Within it, the
    last ``by`` clause is the server's own (an SMTP client's HELO name comes
    before it), and the ``for`` clause is the last one before the date.
    """
    received = all_raw(raw_headers, "received")
    if not received:
        return Envelope((), "unreceived")
    top = " ".join(unescape_8bit(received[0])[:MAX_HEADER_CHARS].split())
    by = None
    for by in _RECEIVED_BY.finditer(top):
        pass
    if by is None:
        return Envelope((), "none")
    host = by.group(1).lower().rstrip(".")
    source = "ses" if SES_INBOUND_HOST.fullmatch(host) else "mta"
    tail = top[by.end():]
    semicolon = tail.rfind(";")
    clause = None
    for clause in _RECEIVED_FOR.finditer(tail, 0, max(semicolon, 0)):
        pass
    if clause is None:
        return Envelope((), source, host)  # type: ignore[arg-type]
    found = addresses_in(tail[clause.end() : semicolon])
    return Envelope(tuple(dict.fromkeys(found)), source, host)  # type: ignore[arg-type]


_TOP_RECEIVED = re.compile(r"^received:(.*(?:\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_TO = re.compile(r"^to:(.*(?:\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def recipient_hint(raw: bytes) -> str:
    """Whom raw MIME is for, read cheaply: the first ``for`` address of its topmost Received
    header (the receiving system's), else the first To address, else "". Only for taking turns
    by recipient in the work queue (a sender can write To; routing never reads this, it reads the
    full parse)."""
    head = raw[:65536].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("latin-1")
    match = _TOP_RECEIVED.search(head)
    if match is not None:
        found = envelope_from_headers([("received", match.group(1))]).recipients
        if found:
            return found[0]
    match = _TO.search(head)
    found = addresses_in(match.group(1)) if match else []
    return found[0] if found else ""


def recipients_from_headers(raw_headers: list[tuple[str, str]], envelope: Envelope | None = None) -> tuple[str, ...]:
    """The envelope recipients, then To/Cc (for the record; routing reads only the envelope).

    ``envelope``: ``envelope_from_headers(raw_headers)`` when the caller has already read it."""
    if envelope is None:
        envelope = envelope_from_headers(raw_headers)
    found: list[str] = list(envelope.recipients)
    for name in VISIBLE_RECIPIENT_HEADERS:
        for value in all_raw(raw_headers, name):
            found.extend(a.email for a in parse_addresses(value) if a.email)
    return tuple(dict.fromkeys(found))


def split_list_unsubscribe(value: str | None) -> tuple[str, ...]:
    """'<https://…>, <mailto:…>' -> the URLs and mailto: links."""
    if not value:
        return ()
    value = unescape_8bit(str(value)[:MAX_PARSE_HEADER_CHARS])
    items = _ANGLE.findall(value) or value.split(",")
    out = []
    for item in items:
        item = "".join(item.split())  # folding may have put whitespace inside a long URL
        if item.lower().startswith(("http://", "https://", "mailto:")):
            out.append(item)
    return tuple(dict.fromkeys(out))


# --- charsets ------------------------------------------------------------------


def codec_for(charset: str | None) -> str | None:
    """A Python codec for a declared charset label, or None when unknown/unsafe."""
    if not charset:
        return None
    label = str(charset).strip().strip("\"'").lower()[:60]
    candidates = [label]
    if label.startswith("x-"):
        candidates.append(label[2:])
    if label.startswith("cp-"):
        candidates.append("cp" + label[3:])
    if label.endswith(("-i", "-e")) and label.startswith("iso-8859-"):
        candidates.append(label[:-2])
    if label in ("x-sjis", "sjis", "shift-jis", "ms_kanji", "windows-31j"):
        candidates.append("cp932")
    for candidate in candidates:
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if not getattr(info, "_is_text_encoding", True) or info.name in _BLOCKED_CODECS:
            return None
        return _CHARSET_OVERRIDES.get(info.name, info.name)
    return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset -> text; unknown or wrong charsets degrade, never raise."""
    codec = codec_for(charset)
    if codec is None or codec == "utf-8":
        if "utf" in (charset or "").lower():
            # Declared UTF-8 but broken: keep it, with replacement characters.
            return data.decode("utf-8-sig", errors="replace")
        # Undeclared, unknown or "us-ascii" with 8-bit bytes.
        return guess_decode(data)
    try:
        return data.decode(codec, errors="replace")
    except Exception:
        return data.decode("utf-8", errors="replace")


# --- what counts as an email ------------------------------------------------------------
# Anyone can drop anything into an inbox. An email is a header block that parses (the first
# line is a header) naming at least one of the headers every mail program writes, or a bare
# MIME entity (Content-Type / MIME-Version), whose body is text rather than binary data.
# Random bytes, an image renamed .eml and plain text without headers are refused; a bare
# HTML document is accepted on purpose (``parse_html_document``: previews of saved pages).

MAIL_HEADERS = ("from", "to", "subject", "date", "message-id")
MIME_HEADERS = ("content-type", "mime-version")
# A body whose first characters hold more than this share of control characters is binary data
# (an image, an archive, random bytes) decoded as text; real text has none.
MAX_CONTROL_SHARE = 0.02
_BINARY_SAMPLE = 65536
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def check_is_mail(raw_headers: list[tuple[str, str]]) -> None:
    """Raise ``EmailParseError`` unless the header block names a mail or MIME header."""
    names = {name.strip().lower() for name, _ in raw_headers[:MAX_HEADERS]}
    if names.intersection(MAIL_HEADERS) or names.intersection(MIME_HEADERS):
        return
    if not raw_headers:
        raise EmailParseError(
            "not an email: it does not start with mail headers (From, To, Subject, Date or Message-ID)"
        )
    shown = ", ".join(sorted(names)[:5])
    raise EmailParseError(
        f"not an email: none of From, To, Subject, Date, Message-ID or Content-Type among its headers ({shown})"
    )


def check_body_is_text(html: str | None, text: str | None) -> None:
    """Raise ``EmailParseError`` when the body is binary data decoded as text."""
    for label, body in (("HTML", html), ("text", text)):
        if not body:
            continue
        sample = body[:_BINARY_SAMPLE]
        controls = len(_BINARY_CONTROLS.findall(sample))
        if controls > 16 and controls > MAX_CONTROL_SHARE * len(sample):
            share = controls / len(sample)
            raise EmailParseError(
                f"not an email: its {label} body is binary data, not text ({share:.0%} control characters)"
            )


# HTML nested deeper than this is flattened: the cleaner's parser (libxml2) stops reading at a
# depth of 2048 and drops everything below it, and the cleaning steps walk the tree.
MAX_HTML_DEPTH = 256
_TAG_NAME = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")  # findall on this costs ~0.3 ms for 100 KB
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*>")
# Elements that never hold content, or whose end tag HTML lets authors leave out: they do not
# deepen the tree as written, so they are not counted. ("<div/>" opens a div in HTML.)
_UNCOUNTED = frozenset(
    "area base br col embed hr img input link meta param source track wbr "
    "p li dt dd tr td th thead tbody tfoot option optgroup colgroup caption rb rt rtc rp".split()
)


def flatten_deep_html(html: str, defects: list[str]) -> str:
    """``html`` with the tags nested below ``MAX_HTML_DEPTH`` removed, their text kept in place."""
    depth = deepest = 0
    for closing, name in _TAG_NAME.findall(html):
        if name.lower() in _UNCOUNTED:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
    if deepest <= MAX_HTML_DEPTH:
        return html
    pieces: list[str] = []
    depth = last = 0
    for match in _TAG.finditer(html):
        if match.group(2).lower() in _UNCOUNTED:
            continue
        closing = bool(match.group(1))
        keep = depth <= MAX_HTML_DEPTH if closing else depth < MAX_HTML_DEPTH
        depth = max(0, depth - 1) if closing else depth + 1
        if not keep:
            pieces.append(html[last : match.start()])
            last = match.end()
    pieces.append(html[last:])
    defects.append(f"HTML nested {deepest:,} elements deep; flattened below {MAX_HTML_DEPTH} (text kept)")
    return "".join(pieces)


# --- bare HTML documents ---------------------------------------------------------------


def parse_html_document(raw: bytes) -> ParsedEmail:
    """A bare HTML body (no headers): subject from <title>, id from the content hash."""
    text = decode_html_bytes(raw)
    check_body_is_text(text, None)
    defects: list[str] = ["bare HTML document: no headers"]
    text = flatten_deep_html(text, defects)
    subject = _html_title(text)
    email = ParsedEmail(
        message_id=synthetic_message_id(raw),
        sender=Address(name="", email=""),
        recipients=(),
        subject=subject,
        date=None,
        html=text,
        text=None,
        source="html",
    )
    return finish(email, defects)


def _html_title(text: str) -> str:
    head = text[:65536]
    lowered = head.lower()
    start = lowered.find("<title")
    if start == -1:
        return ""
    start = lowered.find(">", start)
    end = lowered.find("</title", start)
    if start == -1 or end == -1:
        return ""
    return clean_text(html_lib.unescape(_TAGS.sub("", head[start + 1 : end])))[:500]


def decode_html_bytes(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8", errors="replace")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", errors="replace")
    match = _META_CHARSET.search(raw[:4096])
    return decode_bytes(raw, match.group(1).decode("ascii") if match else None)


# --- text -> HTML ------------------------------------------------------------------


def text_to_html(text: str) -> str:
    """Plain text -> a small HTML document: blank-line blocks become paragraphs, URLs links."""
    text = _CONTROL_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    paragraphs = []
    for block in _BLANK_LINES.split(text):
        block = block.strip("\n")
        if not block.strip():
            continue
        lines = [_linkify(line.rstrip()) for line in block.split("\n")]
        paragraphs.append("<p>" + "<br/>\n".join(lines) + "</p>")
    body = "\n".join(paragraphs)
    return f'<html><head><meta charset="utf-8"/></head><body>\n{body}\n</body></html>'


def _linkify(line: str) -> str:
    out = []
    pos = 0
    for match in _URL.finditer(line):
        url = match.group(0)
        trimmed = url.rstrip(_URL_TRAILING)
        if trimmed.endswith("(") or not trimmed:
            continue
        # Keep a closing parenthesis that belongs to the URL (Wikipedia-style links).
        while url[len(trimmed) : len(trimmed) + 1] == ")" and trimmed.count("(") > trimmed.count(")"):
            trimmed += ")"
        start, end = match.start(), match.start() + len(trimmed)
        href = trimmed if trimmed.lower().startswith("http") else "http://" + trimmed
        out.append(html_lib.escape(line[pos:start], quote=False))
        out.append(f'<a href="{html_lib.escape(href, quote=True)}">{html_lib.escape(trimmed, quote=False)}</a>')
        pos = end
    out.append(html_lib.escape(line[pos:], quote=False))
    return "".join(out)


__all__ = [
    "MAX_BYTES",
    "check_body_is_text",
    "check_is_mail",
    "flatten_deep_html",
    "decode_bytes",
    "decode_value",
    "envelope_from_headers",
    "parse_html_document",
    "parse_mime",
    "synthetic_message_id",
    "text_to_html",
]
