"""Is this email a newsletter to deliver, a subscription confirmation, or a transactional notice?

- ``confirmation``: double opt-in ("confirm your subscription", "Anmeldung
  bestätigen", "confirmez votre inscription", ...). It goes to the user's own
  address with the confirm link first, never to the Kindle, so we extract that
  link here.
- ``transactional``: welcome notes, "you were added to an email list",
  receipts, password resets, sign-in codes: short mail with nothing to read.
- ``newsletter``: everything else.

Phrases in the subject count for more than phrases in the body, and body
phrases only count in short emails: a long newsletter that says "thanks for
subscribing" in its footer is still a newsletter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree
from lxml import html as lxml_html

from inbox_pipeline.core.message import Classification, ParsedEmail

SHORT_EMAIL_WORDS = 600  # confirmations and notices are short; newsletters are not
NOTICE_MAX_WORDS = 800  # a subject that says "Welcome" on a long issue is still an issue
BODY_NOTICE_MAX_WORDS = 350
BODY_WINDOW = 4000  # characters of visible text searched for phrases

_I = re.IGNORECASE

# Double opt-in in EN / DE / FR / ES / IT / PT / NL.
CONFIRM_PHRASES = re.compile(
    r"\b(?:please\s+)?confirm\s+(?:your\s+|my\s+|the\s+)?(?:subscription|e-?mail(?:\s+address)?|sign-?up|registration|address)"
    r"|\bplease\s+confirm\b|\bconfirm\s+(?:that\s+)?you\s+want\s+to\s+(?:subscribe|receive)"
    r"|\bverify\s+(?:your\s+|my\s+)?(?:e-?mail(?:\s+address)?|subscription|address)"
    r"|\bdouble[\s-]opt[\s-]?in\b|\bactivate\s+your\s+subscription"
    r"|best[äa]tig\w*\s+(?:\w+\s+){0,2}?(?:anmeldung|e-?mail|newsletter\w*|abonnement|registrierung|adresse)"
    r"|(?:anmeldung|newsletter-?anmeldung|abonnement|registrierung|e-?mail-?adresse|e-?mail)\s+(?:\w+\s+){0,2}?best[äa]tigen"
    r"|\bbitte\s+best[äa]tig\w*"
    r"|confirme[zr]?\s+(?:votre|ton|ta|vos)\s+(?:inscription|abonnement|adresse|e-?mail)|veuillez\s+confirmer"
    r"|confirma(?:r)?\s+(?:tu|su)\s+(?:suscripci[óo]n|correo|direcci[óo]n|e-?mail|registro)|por\s+favor,?\s+confirma"
    r"|conferma(?:re)?\s+(?:la\s+tua|il\s+tuo|la\s+sua|il\s+suo|la)\s+(?:iscrizione|indirizzo|e-?mail|registrazione)"
    r"|confirme\s+(?:sua|seu|a\s+sua|o\s+seu)\s+(?:inscri[çc][ãa]o|assinatura|e-?mail)"
    r"|bevestig\s+(?:je|uw)\s+(?:inschrijving|aanmelding|e-?mailadres|abonnement)",
    _I,
)

WELCOME = re.compile(
    r"^\W*(?:welcome|willkommen|herzlich\s+willkommen|bienvenue|bienvenid[oa]s?|benvenut[oia])\b"
    r"|\bwelcome\s+(?:to|aboard)\b"
    r"|\bthanks?\s+(?:you\s+)?for\s+(?:subscribing|signing\s+up|joining|your\s+subscription)"
    r"|\byou(?:'|’)?re\s+(?:now\s+)?(?:subscribed|on\s+the\s+list|in)\b|\byou\s+are\s+(?:now\s+)?subscribed"
    r"|\bsubscription\s+(?:is\s+)?confirmed|\bconfirmed\s+your\s+subscription"
    r"|danke\s+f[üu]r\s+(?:deine|ihre)\s+anmeldung|merci\s+(?:pour\s+votre|de\s+votre)\s+inscription"
    r"|gracias\s+por\s+(?:suscribirte|tu\s+suscripci[óo]n)|grazie\s+per\s+(?:l'iscrizione|esserti\s+iscritt)",
    _I,
)
ADDED_TO_LIST = re.compile(
    r"\badded\s+you\s+to\s+(?:their|an|the|his|her|our)\s+(?:e-?mail\s+)?(?:list|newsletter)"
    r"|\bimported\s+your\s+e-?mail\s+address|\byou(?:'|’)?ve\s+been\s+added\s+to|\byou\s+(?:were|have\s+been)\s+added\s+to",
    _I,
)
RECEIPT = re.compile(
    r"\b(?:receipt|invoice|order\s+confirmation|your\s+order|payment\s+(?:received|confirmation|failed)"
    r"|rechnung|bestellbest[äa]tigung|(?:ihre|deine)\s+bestellung|zahlungsbest[äa]tigung|quittung"
    r"|facture|re[çc]u\s+de\s+paiement|votre\s+commande|recibo|factura|tu\s+pedido|ricevuta|fattura|il\s+tuo\s+ordine)\b",
    _I,
)
ACCOUNT = re.compile(
    r"\b(?:reset|change)\s+(?:your\s+)?password|\bpassword\s+(?:reset|change)"
    r"|passwort\s+(?:zur[üu]cksetzen|vergessen)|r[ée]initialis\w*\s+(?:votre\s+)?mot\s+de\s+passe"
    r"|restablecer\s+(?:tu\s+)?contrase[ñn]a|reimposta\w*\s+(?:la\s+)?password"
    r"|\b(?:sign[\s-]?in|log[\s-]?in)\s+(?:link|code)\b|\bmagic\s+link\b|\bverification\s+code\b"
    r"|\bone[\s-]time\s+(?:code|password|passcode)\b|\byour\s+(?:login|security)\s+code\b",
    _I,
)

# A link that performs the confirmation: its text or its URL says so.
CONFIRM_LINK_TEXT = re.compile(
    r"confirm|verif|best[äa]tig|aktivier|activate|opt[\s-]?in|subscribe\s+me|yes,?\s+(?:i|subscribe|sign)"
    r"|ja,?\s+ich|confirme[rz]?|\boui\b|confirma|conferma|bevestig|click\s+here\s+to\s+(?:confirm|verify|activate)",
    _I,
)
STRONG_URL = re.compile(r"confirm|verif|opt[-_]?in|activat|bestaetig|best%c3%a4tig|validat", _I)
NOT_CONFIRM = re.compile(  # link labels that are never the confirm link
    r"unsubscri|abmeld|abbestell|d[ée]sinscri|d[ée]sabonn|desuscrib|darse\s+de\s+baja|darme\s+de\s+baja|cancella"
    r"|opt[-_\s]?out|preferenc|manage|profil|privacy|datenschutz|impressum|view\s+(?:in|this)|browser|forward"
    r"|not\s+(?:you|subscribe)|didn(?:'|’)?t\s+(?:sign|subscribe|request)|report|spam",
    _I,
)
NOT_CONFIRM_URL = re.compile(  # URLs that are never the confirm link (hosts like list-manage.com are fine)
    r"unsub|abmeld|abbestell|d[ée]sinscri|desabonn|desuscrib|/baja|cancella|opt[-_]?out|preferenc|/profile|privacy"
    r"|datenschutz|impressum|disable_email",
    _I,
)
# Words that sit beside "you are subscribed" in a footer, and never in a welcome's first lines.
FOOTER_NEIGHBOURS = re.compile(
    r"unsubscri|opt[\s-]?out|preferences|abmelde|abbestell|d[ée]sinscri|d[ée]sabonn|darse\s+de\s+baja|disiscri"
    r"|uitschrijven|afmelden|descadastr|\bas:?\s+\S+@|\bals:?\s+\S+@|\bcomme:?\s+\S+@",
    _I,
)
FOOTER_REACH = 160  # characters either side of a phrase: its sentence and the next
_URL = re.compile(r"https?://[^\s<>\"'\])]+", _I)
_SPACES = re.compile(r"\s+")
_INVISIBLE = str.maketrans("", "", "\u200c\u200b\u034f\xad\u2007")


@dataclass(frozen=True)
class _Text:
    subject: str
    body: str  # visible text, whitespace collapsed
    words: int


@dataclass(frozen=True)
class _Link:
    href: str
    label: str


def classify(email: ParsedEmail) -> Classification:
    """Newsletter, confirmation (with its confirm link) or transactional notice."""
    doc = _document(email.html)
    text = _visible(email, doc)
    head = text.body[:BODY_WINDOW]

    subject_confirm = CONFIRM_PHRASES.search(text.subject)
    body_confirm = CONFIRM_PHRASES.search(head) if text.words <= SHORT_EMAIL_WORDS else None
    if subject_confirm or body_confirm:
        link = _best_link(_links(doc)) or (_confirm_link_in_text(email.text) if email.text else None)
        if link or subject_confirm:
            where = "subject" if subject_confirm else "body"
            phrase = _SPACES.sub(" ", (subject_confirm or body_confirm).group(0)).strip()
            reason = f"{where} says {phrase!r}"
            if not link:
                reason += "; no confirm link found"
            return Classification(kind="confirmation", reason=reason, confirm_link=link)

    for label, pattern in (
        ("added to a list", ADDED_TO_LIST),
        ("account notice", ACCOUNT),
        ("receipt", RECEIPT),
        ("welcome", WELCOME),
    ):
        hit = pattern.search(text.subject)
        if hit and text.words <= NOTICE_MAX_WORDS:
            return Classification(kind="transactional", reason=f"{label}: subject says {hit.group(0).strip()!r}")
        if text.words <= BODY_NOTICE_MAX_WORDS:
            hit = _said_up_front(pattern, text.body)
            if hit:
                return Classification(kind="transactional", reason=f"{label}: body says {hit.group(0).strip()!r}")
    if text.words == 0:
        return Classification(kind="newsletter", reason="no readable text; treated as a newsletter")
    return Classification(kind="newsletter", reason=f"{text.words} words, no confirmation or notice phrases")


def _said_up_front(pattern: re.Pattern[str], body: str) -> re.Match[str] | None:
    """A notice phrase where a notice says what it is: in the first half of the text, not in a
    footer sentence ("You are subscribed to X as you@... Unsubscribe" closes many newsletters)."""
    for hit in pattern.finditer(body, 0, min(len(body), BODY_WINDOW)):
        if hit.start() > len(body) / 2:
            return None
        around = body[max(0, hit.start() - FOOTER_REACH) : hit.end() + FOOTER_REACH]
        if not FOOTER_NEIGHBOURS.search(around):
            return hit
    return None


def find_confirm_link(html: str | None, text: str | None = None) -> str | None:
    """The link to click to confirm: the best anchor whose text or URL says confirm/verify/bestätigen/..."""
    link = _best_link(_links(_document(html)))
    if link is None and text:
        link = _confirm_link_in_text(text)
    return link


def _document(html: str | None):
    """lxml's C parser: linear on any input, unlike tag-matching regexes."""
    if not html or not html.strip():
        return None
    try:
        parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True)
        return lxml_html.document_fromstring(html.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError, TypeError):
        return None


def _links(doc) -> list[_Link]:
    if doc is None:
        return []
    links = []
    for anchor in doc.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href.lower().startswith(("http://", "https://")):
            continue
        alts = " ".join(img.get("alt") or "" for img in anchor.iter("img"))
        label = " ".join(
            part for part in (anchor.text_content(), alts, anchor.get("title") or "", anchor.get("aria-label") or "") if part
        )
        links.append(_Link(href=href, label=_SPACES.sub(" ", label.translate(_INVISIBLE)).strip()))
    return links


def _best_link(links: list[_Link]) -> str | None:
    best: tuple[int, int, str] | None = None
    for index, link in enumerate(links):
        score = _score(link.label, link.href)
        if score > 0 and (best is None or score > best[0]):
            best = (score, index, link.href)
    return best[2] if best else None


def _score(label: str, href: str) -> int:
    if NOT_CONFIRM.search(label) or NOT_CONFIRM_URL.search(href):
        return 0
    score = 0
    if CONFIRM_LINK_TEXT.search(label):
        score += 4
    if STRONG_URL.search(href):
        score += 2
    if score == 0:
        return 0
    return score + (1 if len(label) <= 60 else 0)  # buttons have short labels


def _confirm_link_in_text(text: str) -> str | None:
    text = text[:20000]
    urls = [(m.start(), m.group(0).rstrip(".,;:!?")) for m in _URL.finditer(text)]
    candidates = [(pos, url) for pos, url in urls if not NOT_CONFIRM_URL.search(url)]
    for _pos, url in candidates:
        if STRONG_URL.search(url):
            return url
    phrase = CONFIRM_PHRASES.search(text) or CONFIRM_LINK_TEXT.search(text)
    if phrase:
        for pos, url in candidates:
            if pos >= phrase.start() and pos - phrase.end() < 500:
                return url
    return None


def _visible(email: ParsedEmail, doc) -> _Text:
    body = ""
    if doc is not None:
        etree.strip_elements(doc, "script", "style", "head", "title", "noscript", with_tail=False)
        body = doc.text_content()
    if len(body.strip()) < 20 and email.text:
        body = email.text
    body = _SPACES.sub(" ", body.translate(_INVISIBLE)).strip()
    return _Text(subject=_SPACES.sub(" ", email.subject or "").strip(), body=body, words=len(body.split()))
