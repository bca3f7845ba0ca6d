"""Boilerplate phrases of email newsletters (lexicon.toml: EN, DE, FR, ES, IT, NL, PT).

Two kinds of pattern:

- *signals*: found anywhere in a block of text, they mark it as email furniture
  (unsubscribe, "you receive this because", view in browser, legal footer, postal address).
- *buttons*: matched against the whole text of a short link or block ("Share",
  "Subscribe now", "Open in app"); never against running prose.

Patterns are matched on text that was lower-cased and had its whitespace collapsed.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

_I = re.IGNORECASE | re.UNICODE


def _alt(*parts: str) -> str:
    return "(?:" + "|".join(parts) + ")"


# --- signals: found anywhere in a block ------------------------------------------------
#
# The phrases are data: lexicon.toml beside this module, one table per kind of furniture and
# one list per language. Adding a language or a phrase needs no code.

LEXICON_PATH = Path(__file__).with_name("lexicon.toml")


@cache
def _read(path: Path) -> dict:
    """The lexicon's tables, read once for all the loaders below (never changed by them)."""
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def load_lexicon(path: Path = LEXICON_PATH) -> dict[str, str]:
    """Each kind of signal as one alternation of all its languages' patterns, in file order."""
    return {
        kind: _alt(*(p for patterns in languages.values() for p in patterns))
        for kind, languages in _read(path).items()
        if kind not in ("labels", "link_targets", "image_names")
    }


def load_labels(path: Path = LEXICON_PATH) -> dict[str, re.Pattern[str]]:
    """Each kind of block label as a pattern matching a whole lower-cased text."""
    labels = _read(path).get("labels", {})
    return {
        kind: re.compile(r"^" + _alt(*(p for patterns in languages.values() for p in patterns)) + r"$", re.UNICODE)
        for kind, languages in labels.items()
    }


LABELS = load_labels()


def load_link_targets(kind: str = "preferences", path: Path = LEXICON_PATH) -> tuple[str, ...]:
    """Pieces of lower-cased hrefs of one kind: "preferences" (a preference centre or an
    unsubscribe endpoint), "help" (a help centre, a support page or mailbox), "ads" (an ad server)."""
    targets = _read(path).get("link_targets", {})
    return tuple(piece.lower() for piece in targets.get(kind, ()))


def load_image_names(kind: str = "sponsor", path: Path = LEXICON_PATH) -> frozenset[str]:
    """Words of an image's file name that make a small image a label of ``kind``."""
    return frozenset(word.lower() for word in _read(path).get("image_names", {}).get(kind, ()))


SPONSOR_IMAGE_NAMES = load_image_names("sponsor")
PREFERENCE_LINKS = load_link_targets("preferences")
HELP_LINKS = load_link_targets("help")
AD_LINKS = load_link_targets("ads")
_LABEL_TRIM = " \t\n\r\xa0|·•-–—:»«›‹→←>!?.*#_"


def label_kind(text: str) -> str | None:
    """The kind of label ``text`` is as a whole ("sponsor", "navigation", "help"), or None;
    emoji and punctuation aside. A colon is read both ways: "SPONSOR: Tidewear" names its
    sponsor after one, "Sponsored by: Tidewear" says the same as without it."""
    with_colon = "".join(c for c in text if c.isalnum() or c in " '’.&$€£-:").replace(" :", ":").strip(_LABEL_TRIM).lower()
    if not with_colon or len(with_colon) > 60:
        return None
    candidates = (with_colon, " ".join(with_colon.replace(":", " ").split())) if ":" in with_colon else (with_colon,)
    for kind, pattern in LABELS.items():
        if any(pattern.match(candidate) for candidate in candidates):
            return kind
    return None


# A postal address: a street with a number, or a postcode beside a place name. Case matters
# here ("(?-i:...)"), so these run on the original text: capitals tell places from prose.
_STATES = "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|ON|QC|BC|AB|NSW|VIC"
ADDRESS = _alt(
    r"(?-i:\b\d{1,5}[A-Za-z]?,? (?:[A-Z][\w.'-]* ){1,4}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Highway|Hwy|Court|Ct|Place|Pl|Square|Sq|Parkway|Pkwy|Broadway)\b)",
    r"(?-i:\b(?:" + _STATES + r"),? \d{5}(?:-\d{4})?\b)",
    r"(?-i:, [A-Z][a-z]+(?: [A-Z][a-z]+)? \d{5}(?:-\d{4})?\b)",  # "Illinois 60680", "York 10003"
    r"\b(?:p\.? ?o\.? box|postfach|boîte postale|apartado de correos|casella postale) \d+",
    # "Hauptstraße 5", "Bahnhofstr. 12": a word boundary always precedes a run of word
    # characters, so the street-name prefix needs no matching of its own.
    r"(?-i:(?:straße|strasse|Straße|Strasse|str\.|Str\.)\s*,?\s*\d+)",
    r"(?-i:\b[A-ZÄÖÜ][a-zäöüß-]+(?:weg|platz|allee|ring|gasse|damm|ufer|chaussee) \d+)",
    r"(?-i:(?:^|[^\w.,])(?:[A-Z]{1,2}-)?\d{5},? [A-ZÄÖÜÉ][\w-]+)",  # postcode + town (de, fr, es, it)
    r"(?-i:\b(?:Rue|Avenue|Boulevard|Chemin|Allée|Impasse|Calle|C/|Avda\.?|Avenida|Paseo|Plaza|Camino|Via|Viale|Piazza|Corso|Piazzale|Circonvallazione) [\w'’. -]{2,40}?\d)",
    r"(?-i:\b[1-9]\d{3} ?[A-Z]{2} [A-Z][a-z]+)",  # Dutch postcode + town: "1015 CJ Amsterdam"
    r"(?-i:\b\d{4}-\d{3} [A-ZÁÉÍÓÚ][a-zà-ú]+)",  # Portuguese: "1250-096 Lisboa"
    r"(?-i:\b[A-Z][a-z]+(?:gracht|straat|laan|plein|kade|dijk|weg) \d+)",  # Dutch streets
    r"(?-i:\b(?:Rua|Avenida|Travessa|Largo|Praça|Estrada) [\w'’. -]{2,40}?\d)",  # Portuguese streets
    r"(?-i:\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b)",  # UK postcode
    r"(?-i:\b[A-Z]\d[A-Z] ?\d[A-Z]\d\b)",  # Canadian postcode
)


def _scan(pattern: str) -> Iterator[tuple[int, str, int, bool]]:
    """``pattern`` piece by piece (an escape pair or one character): where the piece starts, the piece,
    the group depth after it, and whether it is a grouping ``(``, ``)`` or ``|`` (not escaped, not in
    a ``[...]`` class)."""
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            yield i, pattern[i : i + 2], depth, False
            i += 2
            continue
        grouping = not in_class and c in "()|"
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        yield i, c, depth, grouping
        i += 1


def _split_top(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern."""
    out, current = [], ""
    for _, piece, depth, grouping in _scan(pattern):
        if grouping and piece == "|" and depth == 0:
            out.append(current)
            current = ""
        else:
            current += piece
    out.append(current)
    return out


_CATEGORIES = load_lexicon()


def _leading_group_end(pattern: str) -> int:
    """Index of the ``)`` closing the ``(?:`` group ``pattern`` starts with; -1 when there is none."""
    if not pattern.startswith("(?:"):
        return -1
    for i, piece, depth, grouping in _scan(pattern):
        if grouping and piece == ")" and depth == 0:
            return i
    return -1


def _group_closes_at_end(pattern: str) -> bool:
    """True when ``pattern`` is one ``(?:...)`` group as a whole."""
    return _leading_group_end(pattern) == len(pattern) - 1


def _alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern, one level of ``(?:...)`` unwrapped."""
    parts: list[str] = []
    for part in _split_top(pattern[3:-1] if _group_closes_at_end(pattern) else pattern):
        parts.extend(_split_top(part[3:-1]) if _group_closes_at_end(part) else [part])
    return parts


def _compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile with the word boundary factored out: ``\\b(?:a|b)`` scans far faster than ``\\ba|\\bb``."""
    parts = _alternatives(pattern)
    bounded = [p[2:] for p in parts if p.startswith(r"\b")]
    other = [p for p in parts if not p.startswith(r"\b")]
    alternatives = ([r"\b(?:" + "|".join(bounded) + ")"] if bounded else []) + other
    return re.compile("|".join(alternatives), flags | re.UNICODE)


# --- one fast scan for every category ---------------------------------------------------
#
# Python's regex engine tries each alternative in turn at every word start, so ~200 phrase
# alternatives cost ~200 tests a word. The scan pattern below matches at exactly the same
# positions as the union of the categories, but with the alternatives merged into a trie on
# their literal prefixes ("unsubscrib", "view ", ...): a word start that begins no phrase is
# rejected after a test or two. Which category matched is then settled at that one position.

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '’,:;/-_=&@%~!<>\"éèêàâäöüßçíóúñìòùî")
_QUANTIFIERS = frozenset("?*+{")


def _literal_prefix(pattern: str) -> tuple[str, str]:
    """(literal, rest): the plain characters every match of ``pattern`` starts with."""
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in ".()-/&|?*+[]{}":
            char, width = pattern[i + 1], 2
        elif c in _PLAIN:
            char, width = c, 1
        else:
            break
        if i + width < len(pattern) and pattern[i + width] in _QUANTIFIERS:
            break  # "e-?mail": the "e" is required, the "-" is not; stop before it
        literal.append(char)
        i += width
    return "".join(literal), pattern[i:]


def _expand_group(pattern: str, limit: int = 64) -> list[str]:
    """``(?:a|b)rest`` -> ``[arest, brest]``; ``(?:a)?rest`` -> ``[arest, rest]``, recursively.

    The expansion matches at the same positions as the pattern, and its pieces start with
    plain letters the trie can share. Stops at ``limit`` pieces.
    """
    i = _leading_group_end(pattern)
    if i < 0:
        return [pattern]
    inner, rest = pattern[3:i], pattern[i + 1 :]
    optional = rest[:1] == "?"
    if optional:
        rest = rest[2:] if rest[1:2] == "?" else rest[1:]  # "?" or the lazy "??"
    if rest[:1] in _QUANTIFIERS or inner.startswith("?"):
        return [pattern]  # a repeated group, or a lookaround: kept whole
    pieces = [alternative + rest for alternative in _split_top(inner)] + ([rest] if optional else [])
    expanded: list[str] = []
    for piece in pieces:
        expanded.extend(_expand_group(piece, limit))
        if len(expanded) > limit:
            return [pattern]
    return expanded


def _trie_pattern(alternatives: list[str]) -> str:
    """One pattern matching what any of ``alternatives`` matches, factored on literal prefixes."""
    trie: dict = {}
    for alternative in alternatives:
        literal, rest = _literal_prefix(alternative)
        node = trie
        for char in literal:
            node = node.setdefault(char, {})
        node.setdefault("", []).append(rest)

    def emit(node: dict) -> str:
        parts = []
        for char, child in sorted((k, v) for k, v in node.items() if k):
            prefix = re.escape(char)
            while len(child) == 1 and "" not in child:  # a chain of single letters
                ((char, child),) = child.items()
                prefix += re.escape(char)
            parts.append(prefix + emit(child))
        parts += [f"(?:{rest})" if rest else "" for rest in node.get("", [])]
        return parts[0] if len(parts) == 1 and not parts[0] else "(?:" + "|".join(parts) + ")"

    return emit(trie)


def any_of(pattern: str, flags: int = 0, *, whole: bool = False) -> re.Pattern[str]:
    """A pattern that tells *whether* ``pattern`` matches (not where nor which alternative).

    Its top-level alternatives are merged into a trie on their literal prefixes, which the
    regex engine rejects in a test or two where it would otherwise try every alternative at
    every position. With ``whole`` the match must span the whole text (``fullmatch`` use).
    """
    expanded = [alt for part in _alternatives(pattern) for alt in _expand_group(part)]
    trie = _trie_pattern(expanded)
    return re.compile(f"^(?:{trie})$" if whole else trie, flags | re.UNICODE)


def _spell_out(pattern: str, limit: int = 64) -> list[tuple[bool, str]]:
    """``pattern`` as (is_literal, text) pieces: plain strings where its groups allow, else regex."""
    literal, rest = _literal_prefix(pattern)
    if not rest:
        return [(True, literal)]
    if rest.startswith("(?:"):
        pieces = _expand_group(rest, limit)
        if pieces != [rest]:
            out: list[tuple[bool, str]] = []
            for piece in pieces:
                for is_literal, text in _spell_out(piece, limit):
                    out.append((True, literal + text) if is_literal else (False, re.escape(literal) + text))
                if len(out) > limit:
                    return [(False, pattern)]
            return out
    return [(False, pattern)]


class Finder:
    """Whether any of a pattern's alternatives occurs in a text; for URLs and other text
    without word boundaries to skip by.

    Alternatives that spell out to plain strings are found with ``in`` (a fast substring
    search in C); the others with one trie pattern (see any_of).
    """

    __slots__ = ("literals", "pattern")

    def __init__(self, pattern: str):
        literals: list[str] = []
        others: list[str] = []
        for part in _alternatives(pattern):
            for is_literal, text in _spell_out(part):
                (literals if is_literal else others).append(text)
        self.literals = tuple(dict.fromkeys(literals))
        self.pattern = re.compile(_trie_pattern(others), re.UNICODE) if others else None

    def search(self, text: str) -> bool:
        for literal in self.literals:
            if literal in text:
                return True
        return self.pattern is not None and self.pattern.search(text) is not None


def _scan_pattern() -> re.Pattern[str]:
    bounded: list[str] = []
    other: list[str] = []
    for pattern in _CATEGORIES.values():
        for part in _alternatives(pattern):
            if part.startswith(r"\b"):
                bounded.extend(_expand_group(part[2:]))
            else:
                other.append(part)
    return re.compile(r"\b" + _trie_pattern(bounded) + "".join("|" + o for o in other), re.UNICODE)


# Matched against lower-cased text (no IGNORECASE: it is several times slower).
SIGNALS: dict[str, re.Pattern[str]] = {name: _compile(pattern) for name, pattern in _CATEGORIES.items()}
_SIGNAL_ORDER = tuple(SIGNALS.items())
_SCAN = _scan_pattern()
# Matched against the original text: capitals tell a place name from prose.
ADDRESS_PATTERNS = tuple(re.compile(p, _I) for p in _split_top(ADDRESS[3:-1]))

# Signals strong enough to drop a short block on their own.
STRONG = frozenset({"view_online", "unsubscribe", "receiving", "forwarded", "app", "upsell", "feedback", "sponsor"})


# --- buttons: the whole text of a short link or block ------------------------------------

_BUTTON_WORDS = _alt(
    # share / reactions
    r"share(?: (?:this|it|on|via|with|to)\b.*|\b.{0,40})?",
    r"like|comment|comments|restack|reply|tweet|retweet|repost|leave a comment|\d+ (?:likes?|comments?|restacks?)",
    r"partager(?: sur)?.{0,20}|teilen.{0,20}|auf \w+ teilen|compartir.{0,20}|condividi.{0,20}",
    r"follow(?: us)?(?: on)?.{0,20}|folge(?:n sie)? uns.{0,20}|suivez-nous.{0,20}|síguenos.{0,20}|seguici.{0,20}",
    r"facebook|twitter|x|instagram|linkedin|youtube|tiktok|pinterest|threads|mastodon|bluesky|whatsapp|telegram|xing|rss",
    # subscribe / upgrade
    r"subscribe(?: (?:now|here|today|for free|for \w+))?|sign up(?: now| here| today| for free)?|join(?: now| us| for free)?",
    r"upgrade(?: to (?:paid|premium|pro)| now)?|get (?:full|unlimited|premium) access|start (?:your )?free trial|try (?:it )?(?:for )?free",
    r"become a (?:paid |paying )?(?:subscriber|member|supporter)|give a gift(?: subscription)?|pledge your support",
    r"jetzt abonnieren|abonnieren|newsletter abonnieren|s'abonner|abonnez-vous|suscr[ií]bete|iscriviti",
    # app badges
    r"(?:open|read|get|view) (?:it )?in (?:the )?app|get the app|download (?:on|from) the app store|get it on google play|app store|google play",
    # preferences / forwarding
    r"forward(?: to a friend| this e-?mail)?|refer (?:a|your) friends?|invite (?:a |your )?friends?|weiterleiten|weiterempfehlen",
    r"manage (?:your )?(?:subscription|preferences|profile)|update (?:your )?(?:profile|preferences)|preferences|profile|email settings",
    r"view (?:in|on) (?:browser|web|app)|view (?:online|email|web version)|read online|view online|web version|online version",
    # footer links
    r"impressum|imprint|datenschutz|privacy|privacy policy|terms(?: of (?:use|service))?|kontakt|contact(?: us)?|help|support|faq|legal|agb|mentions légales|aviso legal|about(?: us)?",
    r"advertise(?: with us)?|sponsor us|work with us|careers|jobs|submit a (?:tip|story|link)|send us a tip|give feedback",
    r"read (?:it |this |more )?(?:on|at) [\w.\-]{1,20}(?: [\w.\-]{1,20})?",
    r"add to (?:address book|contacts)|zu kontakten hinzufügen",
    r"(?:back|return) to (?:the )?top|nach oben|zurück nach oben|retour en haut|volver arriba|torna su|terug naar boven|voltar ao topo",
)
BUTTON = re.compile(r"^(?:" + _BUTTON_WORDS + r")$", _I)
# The same test on lower-cased text, without IGNORECASE and with the alternatives in a trie.
_BUTTON_LOWER = any_of(_BUTTON_WORDS, whole=True)

# A share/follow label standing alone ("Share on", "Partager sur", "Folgen Sie uns").
LABEL = re.compile(
    r"^(?:share(?: this| it)?(?: on| via)?|partager(?: sur)?|teilen(?: auf)?|auf \w+ teilen|compartir(?: en)?|"
    r"condividi(?: su)?|follow(?: us)?(?: on)?|folge(?:n sie)? uns(?: auf)?|suivez-nous(?: sur)?|síguenos(?: en)?|"
    r"seguici(?: su)?|find us on|join us on|connect with us)\s*:?$",
    _I,
)

# Separators left in a row of links once the links are gone.
SEPARATORS = re.compile(r"^[\s|·•\-–—/:,.()\[\]*]*$")

# "---------- Forwarded message ---------" and its header lines, in several languages.
FORWARDED_MARKER = re.compile(
    r"-{3,}\s*(?:forwarded message|original message|weitergeleitete nachricht|ursprüngliche nachricht|"
    r"message transféré|message d'origine|mensaje reenviado|mensaje original|messaggio inoltrato|"
    r"messaggio originale)\s*-{3,}",
    _I,
)
FORWARDED_HEADER_LINE = re.compile(
    r"^\s*(?:from|de|von|da|date|datum|fecha|data|subject|objet|betreff|asunto|oggetto|to|à|an|para|a|cc|sent|envoyé|gesendet|enviado|inviato)\s*:",
    _I,
)

# Stray conditional-comment debris that some generators leave in the text.
MSO_DEBRIS = re.compile(r"<?!?\[(?:end)?if[^\]]*\]\s*-*>?|<!\[endif\]|\[endif\]-*>?|-->|<!--|/?>\s*/>", _I)


_DIGIT = re.compile(r"\d")


def scan(lower: str) -> list[str]:
    """The signal category of each boilerplate phrase in lower-cased ``lower``, in order.

    The same as ``finditer`` over all categories joined in order: at the first position where
    any phrase matches, the first category that matches there wins and the scan goes on
    after its match.
    """
    found: list[str] = []
    search = _SCAN.search
    position = 0
    while (m := search(lower, position)) is not None:
        start = m.start()
        position = start + 1
        for name, pattern in _SIGNAL_ORDER:
            hit = pattern.match(lower, start)
            if hit is not None:
                found.append(name)
                position = max(hit.end(), position)
                break
    return found


_FIVE_DIGITS = re.compile(r"\d{5}")
# (pattern, needs five digits in a row, runs on lower-cased text): a text without five digits
# skips the patterns that need them; the one case-insensitive pattern runs without IGNORECASE
# on the lower-cased text, which is several times faster.
_ADDRESS_CHECKS = tuple(
    (pattern, r"\d{5}" in pattern.pattern, False) if pattern.pattern.startswith("(?-i:")
    else (re.compile(pattern.pattern, re.UNICODE), r"\d{5}" in pattern.pattern, True)
    for pattern in ADDRESS_PATTERNS
)


def has_address(text: str) -> bool:
    """True when ``text`` (original case) holds a postal address."""
    if _DIGIT.search(text) is None:
        return False
    five_digits = _FIVE_DIGITS.search(text) is not None
    lower = None
    for pattern, needs_five_digits, on_lower in _ADDRESS_CHECKS:
        if needs_five_digits and not five_digits:
            continue
        if on_lower:
            lower = text.lower() if lower is None else lower
            if pattern.search(lower):
                return True
        elif pattern.search(text):
            return True
    return False


def signals(text: str, *, address: bool = True) -> set[str]:
    """The names of the boilerplate signals present in ``text``."""
    found = set(scan(text.lower()))
    if address and has_address(text):
        found.add("address")
    return found


def has_strong(text: str) -> bool:
    """True when ``text`` holds a strong signal (unsubscribe, view online, ...)."""
    return any(name in STRONG for name in scan(text.lower()))


def count_strong(text: str) -> int:
    return sum(1 for name in scan(text.lower()) if name in STRONG)


def is_button(text: str) -> bool:
    """True when the whole short text is a call to action or a social/footer link."""
    text = text.strip(" \t\n\r\xa0|·•-–—:»«›‹→←>!?.")
    return len(text) <= 60 and _BUTTON_LOWER.match(text.lower()) is not None


# Alt text of social icons ("Facebook", "Folge uns auf Instagram", "twitter icon").
SOCIAL_ALT = re.compile(
    r"^(?:(?:follow|folge|folgen sie|suivez|síguenos|seguici)\w*(?: us| uns| nous)?(?: on| auf| sur| en| su)? )?"
    r"(?:facebook|twitter|x|instagram|linkedin|youtube|tiktok|pinterest|threads|mastodon|bluesky|whatsapp|telegram|xing|rss|"
    r"snapchat|discord|reddit|spotify|apple podcasts|podcast)(?:[ _-]?(?:icon|logo|button))?$",
    _I,
)

# Link texts that only lead to another copy of the email ("Read online", "Read on <site>").
VIEW_BUTTON = re.compile(
    r"^(?:read|view|open|see|lire|voir|ansehen|leggi|ver)(?: it| this| the)?(?: (?:e-?mail|issue|post|newsletter|edition))?"
    r" (?:online|on (?:the )?web|in (?:your |a |the )?browser|on [\w.\-]{1,20}(?: [\w.\-]{1,20})?|as (?:a )?web ?page|en ligne|im browser)[.!]?$",
    _I,
)
