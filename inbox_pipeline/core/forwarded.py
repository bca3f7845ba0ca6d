"""Unwrap "Forwarded message" wrappers (Gmail, Apple Mail, Outlook) around a newsletter.

A reader who forwards a newsletter from their own mailbox sends us the
newsletter inside a wrapper: a marker line, then From:/Date:/Subject:/To:
lines, then the original body. We cut the wrapper away on the HTML string
itself (no HTML parse: fast, and it keeps the inner markup byte for byte) and
report the original sender, subject and date.

Only a wrapper near the top counts: a newsletter that quotes a forwarded
email further down is left alone.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import decode_header
from email.utils import getaddresses, parsedate_to_datetime

from inbox_pipeline.core.message import Address

MAX_LEAD_CHARS = 1000  # visible text allowed before the marker (the forwarder's own note)
MAX_LEAD_MARKUP = 300_000  # markup before the marker (a Gmail wrapper has a few hundred bytes)
MAX_HEADER_WINDOW = 6000  # characters after the marker searched for header lines
MAX_DEPTH = 3  # a forward of a forward of a forward

_MARKER = re.compile(
    r"(?<![-_])(?:-{2,}+|_{2,}+)(?:\s|&nbsp;|&#160;|\u00a0){0,10}"
    r"(?:Forwarded message|Weitergeleitete Nachricht|Message transf[ée]r[ée]|Mensaje reenviado"
    r"|Messaggio inoltrato|Mensagem encaminhada|Doorgestuurd bericht|Original Message|Urspr[üu]ngliche Nachricht)"
    r"(?:\s|&nbsp;|&#160;|\u00a0){0,10}(?:-{2,}|_{2,})"
    r"|Begin forwarded message\s*:|Anfang der weitergeleiteten Nachricht\s*:"
    r"|D[ée]but du message r[ée]exp[ée]di[ée]\s*:|Inicio del mensaje reenviado\s*:",
    re.IGNORECASE,
)
_KEYWORDS = (  # lower-case substrings of the markers above, for a fast first pass
    "forwarded message",
    "weitergeleitete nachricht",
    "message transf",
    "mensaje reenviado",
    "messaggio inoltrato",
    "mensagem encaminhada",
    "doorgestuurd bericht",
    "original message",
    "ngliche nachricht",
    "begin forwarded message",
    "anfang der weitergeleiteten",
    "but du message r",
    "inicio del mensaje reenviado",
)
_FIELD = re.compile(
    r"^\s*\*?(From|Von|De|Da|Van|Från|Date|Datum|Fecha|Data|Sent|Gesendet|Envoy[ée]|Enviado|Inviato"
    r"|Subject|Betreff|Objet|Asunto|Oggetto|Assunto|Onderwerp|Ämne|To|An|À|A|Para|Aan|Till|Cc|Kopie|Reply-To|Antwort an)"
    r"\s*\*?\s*:\s*(.*)$",
    re.IGNORECASE,
)
_FIELD_KIND = {
    "from": "from", "von": "from", "de": "from", "da": "from", "van": "from", "från": "from",
    "date": "date", "datum": "date", "fecha": "date", "data": "date", "sent": "date",
    "gesendet": "date", "envoyé": "date", "envoye": "date", "enviado": "date", "inviato": "date",
    "subject": "subject", "betreff": "subject", "objet": "subject", "asunto": "subject",
    "oggetto": "subject", "assunto": "subject", "onderwerp": "subject", "ämne": "subject",
}  # fmt: skip
_HTML_SEPARATOR = re.compile(r"<br\s*/?>|</div\s*>|</p\s*>|</tr\s*>|<hr[^>]{0,200}>", re.IGNORECASE)
_TAGS = re.compile(r"<[^<>]*+>")  # excludes "<" so a flood of "<" stays linear
_OPENING_TAG = re.compile(r"<(?!/|br\b|!--)[a-zA-Z]", re.IGNORECASE)
_BODY_OPEN = re.compile(r"<body\b[^>]{0,2000}>", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u202f\u200b\u200c\u2007]+")
_GMT_OFFSET = re.compile(r"\s*(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?\s*$", re.IGNORECASE)
_DATE_FORMATS = (
    "%a, %b %d, %Y at %I:%M %p",  # Gmail: Fri, Feb 18, 2022 at 11:57 PM
    "%a, %b %d, %Y, %I:%M %p",
    "%a, %d %b %Y at %H:%M",  # Gmail, day-first locales
    "%a, %d %b %Y, %H:%M",
    "%B %d, %Y at %I:%M:%S %p",  # Apple Mail: February 18, 2022 at 11:57:29 PM GMT+1
    "%B %d, %Y at %I:%M %p",
    "%d %B %Y at %H:%M:%S",
    "%d %B %Y at %H:%M",
    "%A, %B %d, %Y %I:%M %p",  # Outlook: Friday, February 18, 2022 11:57 PM
    "%A, %B %d, %Y at %I:%M %p",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d.%m.%Y %H:%M",
)


@dataclass(frozen=True)
class Unwrapped:
    """What was inside the wrapper; ``date`` may be naive (wrappers often omit the zone)."""

    html: str | None
    text: str | None
    sender: Address | None
    subject: str | None
    date: datetime | None


@dataclass(frozen=True)
class _Found:
    body: str
    fields: dict[str, str]


def unwrap_forwarded(html: str | None, text: str | None) -> Unwrapped | None:
    """Remove forwarded-message wrappers from the HTML and text bodies; None when there is none."""
    found_html = _repeat(_unwrap_html, html)
    found_text = _repeat(_unwrap_text, text)
    if found_html is None and found_text is None:
        return None
    fields: dict[str, str] = {}
    for found in (found_text, found_html):  # HTML fields win: they are not hard-wrapped
        if found is not None:
            fields.update({k: v for k, v in found.fields.items() if v})
    return Unwrapped(
        html=found_html.body if found_html is not None else html,
        text=found_text.body if found_text is not None else text,
        sender=_address(fields.get("from")),
        subject=_decode(fields["subject"]) if fields.get("subject") else None,
        date=parse_forwarded_date(fields.get("date")),
    )


def unwrap_html(html: str) -> _Found | None:
    return _repeat(_unwrap_html, html)


def unwrap_text(text: str) -> _Found | None:
    return _repeat(_unwrap_text, text)


def _repeat(step, body: str | None) -> _Found | None:
    if not body:
        return None
    result = None
    for _ in range(MAX_DEPTH):
        found = step(body)
        if found is None:
            break
        fields = dict(result.fields) if result else {}
        fields.update({k: v for k, v in found.fields.items() if v})  # innermost wins
        result = _Found(found.body, fields)
        body = found.body
    return result


def _find_marker(body: str, limit: int) -> re.Match | None:
    """The earliest wrapper marker: cheap substring search first, the regex only around hits."""
    lowered = body[:limit].lower()
    best = None
    for keyword in _KEYWORDS:
        index = lowered.find(keyword)
        while index != -1 and (best is None or index < best.start()):
            match = _MARKER.search(body, max(0, index - 100), index + len(keyword) + 100)
            if match:
                best = match
                break
            index = lowered.find(keyword, index + 1)
    return best


def _unwrap_html(html: str) -> _Found | None:
    match = _find_marker(html, len(html))
    if match is None:
        return None
    body_open = _BODY_OPEN.search(html, 0, match.start())
    lead_start = body_open.end() if body_open else 0
    lead = html[lead_start : match.start()]
    if len(lead) > MAX_LEAD_MARKUP or len(_visible(_drop_blocks(lead, ("head", "style", "title")))) > MAX_LEAD_CHARS:
        return None

    fields: dict[str, str] = {}
    cut = None
    pos = match.end()
    window_end = min(len(html), match.end() + MAX_HEADER_WINDOW)
    for sep in _HTML_SEPARATOR.finditer(html, pos, window_end):
        segment = html[pos : sep.start()]
        line = _visible(segment)
        field = _FIELD.match(line) if line else None
        if field:
            kind = _FIELD_KIND.get(field.group(1).lower())
            if kind and kind not in fields:
                fields[kind] = field.group(2).strip()
        elif line or (fields and _OPENING_TAG.search(segment)):
            cut = pos  # the first segment that is content, not wrapper
            break
        pos = sep.end()
    if cut is None:
        cut = pos
    if not fields:
        return None  # a marker with no From/Subject lines is not a wrapper we understand
    head = html[:lead_start] if body_open else ""
    inner = head + html[cut:]
    return _Found(inner, fields)


def _unwrap_text(text: str) -> _Found | None:
    match = _find_marker(text, MAX_LEAD_CHARS + 500)
    if match is None or len(_SPACES.sub(" ", text[: match.start()]).strip()) > MAX_LEAD_CHARS:
        return None
    fields: dict[str, str] = {}
    rest = text[match.end() :].replace("\r\n", "\n")
    lines = rest.split("\n")
    index = 0
    # the marker line itself may carry trailing dashes or spaces
    while index < len(lines) and index < 60:
        line = lines[index].strip().lstrip(">").strip()
        field = _FIELD.match(line) if line else None
        if field:
            kind = _FIELD_KIND.get(field.group(1).lower())
            if kind and kind not in fields:
                fields[kind] = field.group(2).strip()
        elif line and not set(line) <= set("-_"):
            break
        index += 1
    if not fields:
        return None
    return _Found("\n".join(lines[index:]).strip("\n"), fields)


def _drop_blocks(fragment: str, tags: tuple[str, ...]) -> str:
    """Remove <tag>…</tag> blocks with plain string search (linear, unlike a lazy regex)."""
    lowered = fragment.lower()
    keep = []
    pos = 0
    nxt = {t: lowered.find("<" + t) for t in tags}
    while True:
        for t in tags:  # refresh only the stale positions, so each find scans forward once
            if 0 <= nxt[t] < pos:
                nxt[t] = lowered.find("<" + t, pos)
        live = [(i, t) for t, i in nxt.items() if i != -1]
        if not live:
            break
        start, tag = min(live)
        keep.append(fragment[pos:start])
        end = lowered.find("</" + tag, start)
        close = lowered.find(">", end) if end != -1 else -1
        pos = len(fragment) if close == -1 else close + 1
        if pos >= len(fragment):
            break
    keep.append(fragment[pos:])
    return " ".join(keep)


def _visible(fragment: str) -> str:
    return _SPACES.sub(" ", html_lib.unescape(_TAGS.sub(" ", fragment))).strip()


def _decode(value: str) -> str:
    value = _SPACES.sub(" ", value).strip()
    if "=?" not in value:
        return value
    try:
        parts = []
        for chunk, charset in decode_header(value):
            if isinstance(chunk, bytes):
                parts.append(chunk.decode(charset or "utf-8", errors="replace"))
            else:
                parts.append(chunk)
        return "".join(parts).strip()
    except Exception:
        return value


def _address(value: str | None) -> Address | None:
    if not value:
        return None
    value = _SPACES.sub(" ", value).strip()
    try:
        pairs = getaddresses([value])
    except Exception:
        pairs = []
    for name, addr in pairs:
        addr = addr.strip().lower()
        if "@" in addr:
            return Address(name=_decode(name).strip("\"' "), email=addr)
    # "Name [mailto:x@y]" (Outlook) or a bare name
    for token in re.split(r"[\s<>\[\]()\"',;]+", value):
        token = token.removeprefix("mailto:")
        if token.count("@") == 1:
            name = value.split(token)[0].replace("mailto:", "").strip(" <[(\"'")
            return Address(name=_decode(name), email=token.lower())
    return Address(name=_decode(value), email="")


def parse_forwarded_date(value: str | None) -> datetime | None:
    """Dates as forwarding clients write them; naive when they give no zone."""
    if not value:
        return None
    value = _SPACES.sub(" ", value).strip()[:200]
    original = value
    tz = None
    offset = _GMT_OFFSET.search(value)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        try:
            tz = timezone(sign * delta)
        except ValueError:
            tz = None
        value = value[: offset.start()].strip()
    elif value.upper().endswith((" GMT", " UTC")):
        tz = timezone.utc
        value = value[:-4].strip()
    for fmt in _DATE_FORMATS:  # before RFC 5322, which would read "11:57 PM" as 11:57
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=tz) if tz else parsed
    try:
        return parsedate_to_datetime(original)
    except Exception:
        return None
