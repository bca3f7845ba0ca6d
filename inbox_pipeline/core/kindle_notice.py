"""Amazon's Send to Kindle notices: recognise one, trust it only on the receiver's verdict, find our token.

SMTP "250 OK" only means Amazon's gateway took a message; a document can still fail
afterwards, and Amazon says so by email to the *sender* address. Those notices come back
through the inbox. Anyone can write "E999" in an email, so a notice counts only when the
receiving system (SES) recorded that it authenticated as Amazon, and it names a delivery
only through the unguessable token every delivery carries in its attachment file name and
Message-ID, never through a title alone.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

from inbox_pipeline.core.message import ParsedEmail

# 16 characters of RFC 4648 base32 (lower case): 80 random bits, safe in file names and
# Message-IDs, and never produced by a title's slug (which keeps hyphens between words).
TOKEN_LENGTH = 16
_TOKEN = r"[a-z2-7]{16}"
_TOKEN_IN_NAME = re.compile(rf"(?i)(?:^|[^A-Za-z0-9])k-({_TOKEN})(?=\.epub\b|[^A-Za-z0-9]|$)")
_TOKEN_IN_MESSAGE_ID = re.compile(rf"(?i)<?kindle\.({_TOKEN})\.[A-Za-z0-9]+@")

# Domains Amazon sends Send to Kindle mail from. amazonses.com is deliberately absent: every
# SES customer's mail passes SPF for it.
AMAZON_DOMAINS = frozenset(
    {
        "amazon.com", "kindle.com", "amazon.co.uk", "amazon.de", "amazon.fr", "amazon.es", "amazon.it",
        "amazon.nl", "amazon.ca", "amazon.com.au", "amazon.co.jp", "amazon.in", "amazon.com.br",
        "amazon.com.mx", "amazon.cn", "kindle.cn",
    }
)

NoticeCause = Literal["conversion", "not_approved", "unknown"]

# What Amazon's notices say, by cause (from users' reports of real notices; lower-cased).
_CONVERSION = (
    re.compile(r"\be9\d\d\b", re.I),
    re.compile(r"send to kindle internal error", re.I),
    re.compile(r"(?:could|can)\s*not be (?:converted|processed)", re.I),
    re.compile(r"unable to (?:convert|process)", re.I),
    re.compile(r"not (?:a )?supported (?:file|document|format)", re.I),
)
_NOT_APPROVED = (
    re.compile(r"approved personal document e-?mail list", re.I),
    re.compile(r"(?:there is|there's) (?:a )?problem with \S+ account", re.I),
    re.compile(r"not (?:an? )?(?:approved|authori[sz]ed) (?:sender|e-?mail)", re.I),
    re.compile(r"verify (?:the|this) (?:request|document)", re.I),
)
_ERROR_CODE = re.compile(r"\b(E\d{3})\b")
_DOCUMENT = re.compile(
    r"(?i)(?:the document|document\(s\)|documents?:?)\s+[\"\u201c\u2018']?([^\s\"\u201d\u2019'<>]{1,200}\.(?:epub|mobi|pdf|docx?|azw3?))"
)


@dataclass(frozen=True)
class ReceiverVerdict:
    """What the receiving system recorded about a message's authentication."""

    authserv_id: str
    spf: str | None
    dkim: str | None
    dkim_domains: tuple[str, ...]
    dmarc: str | None
    dmarc_from: str | None


@dataclass(frozen=True)
class KindleNotice:
    """An Amazon Send to Kindle notice, as far as its text tells."""

    cause: NoticeCause
    code: str | None  # "E999" and kin
    documents: tuple[str, ...]  # attachment names the notice quotes
    tokens: tuple[str, ...]  # our delivery tokens found in it (names, Message-IDs)
    summary: str  # the notice's own words, one paragraph, for the record and the operator
    authentic: bool  # the receiver verified it came from Amazon
    why: str  # why it is (not) trusted, for the record


def new_delivery_token() -> str:
    """A fresh, unguessable delivery token (80 random bits)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(secrets.choice(alphabet) for _ in range(TOKEN_LENGTH))


def tokened_file_name(stem: str, token: str) -> str:
    """The attachment's stem with its token: ``stem.k-<token>`` (``.epub`` added by the caller)."""
    return f"{stem}.k-{token}" if stem else f"k-{token}"


def tokened_message_id_left(token: str) -> str:
    """The left-hand side of a delivery's Message-ID, carrying its token."""
    return f"kindle.{token}.{secrets.token_hex(4)}"


def tokens_in(text: str) -> tuple[str, ...]:
    """Delivery tokens named in free text: in an attachment name or one of our Message-IDs."""
    found: list[str] = []
    for pattern in (_TOKEN_IN_NAME, _TOKEN_IN_MESSAGE_ID):
        for match in pattern.finditer(text or ""):
            token = match.group(1).lower()
            if token not in found:
                found.append(token)
    return tuple(found)


def receiver_verdict(email: ParsedEmail, trusted_authserv_ids: tuple[str, ...]) -> ReceiverVerdict | None:
    """The receiving system's ``Authentication-Results``, or None when it recorded none.

    Receivers prepend their headers, so only the first ``Authentication-Results`` can be the
    receiver's own; one a sender wrote lies below it. It counts only when its authserv-id is
    one the deployment trusts (SES: ``amazonses.com``); a folder inbox trusts none.
    """
    value = email.header("authentication-results")
    if not value or not trusted_authserv_ids:
        return None
    authserv, _, rest = value.partition(";")
    authserv_id = authserv.strip().split()[0].lower() if authserv.strip() else ""
    if authserv_id not in {a.lower() for a in trusted_authserv_ids}:
        return None
    methods: dict[str, tuple[str, str]] = {}
    dkim_domains: list[str] = []
    for clause in rest.split(";"):
        match = re.match(r"\s*(spf|dkim|dmarc)\s*=\s*([a-z]+)(.*)", clause, re.I | re.S)
        if not match:
            continue
        method, result, props = match.group(1).lower(), match.group(2).lower(), match.group(3)
        if method == "dkim" and result == "pass":
            for domain in re.findall(r"header\.(?:d|i)\s*=\s*@?([A-Za-z0-9.-]+)", props):
                dkim_domains.append(domain.lower())
        if method not in methods or result == "pass":
            methods[method] = (result, props)
    dmarc_from = None
    if "dmarc" in methods:
        found = re.search(r"header\.from\s*=\s*([A-Za-z0-9.-]+)", methods["dmarc"][1])
        dmarc_from = found.group(1).lower() if found else None
    return ReceiverVerdict(
        authserv_id=authserv_id,
        spf=methods.get("spf", (None, ""))[0],
        dkim=methods.get("dkim", (None, ""))[0],
        dkim_domains=tuple(dkim_domains),
        dmarc=methods.get("dmarc", (None, ""))[0],
        dmarc_from=dmarc_from,
    )


def _amazon(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in AMAZON_DOMAINS)


def authenticated_as_amazon(email: ParsedEmail, trusted_authserv_ids: tuple[str, ...]) -> tuple[bool, str]:
    """Did the receiver verify that this message's From is Amazon's? (and why, in words)"""
    from_domain = email.sender.email.rpartition("@")[2]
    if not from_domain or not _amazon(from_domain):
        return False, f"From {email.sender.email or '(none)'} is not an Amazon address"
    verdict = receiver_verdict(email, trusted_authserv_ids)
    if verdict is None:
        return False, "the receiving system recorded no authentication result for it"
    if verdict.dmarc == "pass" and verdict.dmarc_from and _amazon(verdict.dmarc_from):
        return True, f"DMARC pass for {verdict.dmarc_from} ({verdict.authserv_id})"
    aligned = [d for d in verdict.dkim_domains if _amazon(d) and (from_domain == d or from_domain.endswith("." + d) or d.endswith("." + from_domain))]
    if verdict.dkim == "pass" and aligned:
        return True, f"DKIM pass for {aligned[0]} ({verdict.authserv_id})"
    return False, (
        f"authentication did not pass for {from_domain} "
        f"(spf={verdict.spf}, dkim={verdict.dkim}, dmarc={verdict.dmarc}; {verdict.authserv_id})"
    )


def _plain(email: ParsedEmail) -> str:
    if email.text and email.text.strip():
        return email.text
    return re.sub(r"<[^>]+>", " ", email.html or "")


def read_notice(email: ParsedEmail, *, trusted_authserv_ids: tuple[str, ...]) -> KindleNotice:
    """What an email arriving at the sender address says, and whether to believe it."""
    text = " ".join(_plain(email).split())
    whole = f"{email.subject} {text}"
    references = " ".join(
        value for name, value in email.headers if name in {"in-reply-to", "references", "x-original-message-id"}
    )
    if any(p.search(whole) for p in _NOT_APPROVED):
        cause: NoticeCause = "not_approved"
    elif any(p.search(whole) for p in _CONVERSION):
        cause = "conversion"
    else:
        cause = "unknown"
    code = _ERROR_CODE.search(whole)
    documents = tuple(dict.fromkeys(m.group(1) for m in _DOCUMENT.finditer(whole)))
    tokens = tokens_in(" ".join((*documents, whole, references)))
    authentic, why = authenticated_as_amazon(email, trusted_authserv_ids)
    return KindleNotice(
        cause=cause,
        code=code.group(1).upper() if code else None,
        documents=documents,
        tokens=tokens,
        summary=text[:1000],
        authentic=authentic,
        why=why,
    )


def web_version_link(email: ParsedEmail) -> str | None:
    """The newsletter's own "view online" link (http or https), for a reader whose Kindle could not open it."""
    # Lazy: the mailer seam imports this module on Dagster's load path, and classify brings lxml.
    from inbox_pipeline.core.classify import _document, _links
    from inbox_pipeline.core.clean.phrases import SIGNALS

    view_online = SIGNALS["view_online"]  # the cleaner's own lexicon (lower-cased text)
    for link in _links(_document(email.html)):  # http(s) anchors, as the confirm-link finder reads them
        if view_online.search(link.label.lower()):
            return link.href
    return None


# --- how often Amazon refuses our books, per cause -----------------------------------------

# Every book passes the Kindle preflight (and EPUBCheck when on) before it is sent, so Amazon
# should refuse few: a conversion error is Amazon's own hiccup or a writer change of ours, and
# "not approved" a new user who has not approved the sender yet (told once, their books wait).
# One book in twenty refused for one cause over a week is far above that noise and is what a
# systematic fault looks like (a changed sender address refuses nearly every book; a converter
# regression many); three rejections at least, so that a small deployment (a dozen books a
# week) does not warn on one unlucky book.
REJECTION_RATE_WARN = 0.05
REJECTION_MIN_COUNT = 3
REJECTION_CAUSES = ("conversion", "not_approved")


@dataclass(frozen=True)
class RejectionRate:
    cause: str
    rejected: int
    rate: float  # of the books that reached Amazon in the window
    rising: bool  # above REJECTION_RATE_WARN with at least REJECTION_MIN_COUNT rejections


def rejection_rates(
    reached: int,
    rejected_by_cause: dict[str, int],
    *,
    warn_above: float = REJECTION_RATE_WARN,
    min_count: int = REJECTION_MIN_COUNT,
) -> tuple[RejectionRate, ...]:
    """Per cause: how many of the ``reached`` books Amazon refused, and whether that is a warning."""
    causes = (*REJECTION_CAUSES, *sorted(set(rejected_by_cause) - set(REJECTION_CAUSES)))
    rates = []
    for cause in causes:
        rejected = rejected_by_cause.get(cause, 0)
        rate = rejected / reached if reached else 0.0
        rates.append(RejectionRate(cause, rejected, rate, rejected >= min_count and rate > warn_above))
    return tuple(rates)
