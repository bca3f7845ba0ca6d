"""The cleaning engine: drop what a reader would skip, keep the article, linearise the layout.

Steps, each one pass over the tree:

1. remove what is never content (scripts, forms, embeds), what no client shows (hidden
   preheaders, Outlook-only parts) and tracking pixels, plus the platform's own clutter;
2. remove button-like links (share, subscribe, app badges, social icons);
3. score every text block (a block element's own text) for boilerplate signals and remove
   the blocks that are furniture: unsubscribe and "you receive this" sentences, "view in
   browser", legal and postal footers; then remove containers left holding only crumbs;
4. unwrap layout tables, whitelist to XHTML and serialise.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import islice
from urllib.parse import urlsplit

from lxml import etree

from . import phrases
from .dom import BLOCK_TAGS, Element, class_tokens, classes, collapse, drop_tag, drop_tree, letters, text_of
from .hidden import image_size, is_icon, is_tracker_image, sets_font_size, style_hides, zero_font
from .platforms.base import PlatformRules

# Never content; removed with everything inside.
KILL_TAGS = frozenset(
    "script style head title meta link base iframe frame frameset object embed applet noscript "
    "svg math canvas video audio source track template input button select textarea option "
    "optgroup map area param dialog".split()
)

# The href patterns run on the lower-cased href: IGNORECASE would defeat the regex engine's
# first-character scan and cost several times more on long tracking URLs.
_SHARE_HREF = re.compile(
    r"twitter\.com/(?:intent|share)|x\.com/intent|facebook\.com/(?:sharer|share\.php|dialog/share)|"
    r"linkedin\.com/(?:sharearticle|sharing|cws/share)|reddit\.com/submit|pinterest\.com/pin/create|"
    r"api\.whatsapp\.com/send|wa\.me/\?|t\.me/share|telegram\.me/share|news\.ycombinator\.com/submitlink|"
    r"xing\.com/(?:spi/)?share|bsky\.app/intent|threads\.net/intent|^mailto:\?",
)
_APP_HREF = re.compile(
    r"apps\.apple\.com|itunes\.apple\.com|play\.google\.com/store|app\.adjust\.com|\.app\.link/|"
    r"onelink\.me|smart\.link|/app-link/|action=open-app|open_in_app|app-store|get-app",
)
_UNSUB_HREF = re.compile(
    r"unsub|opt-?out|/preferences|/manage(?:-|_)?(?:subscription|preferences|profile)|list-manage\.com/(?:profile|unsubscribe)|"
    r"disable_email|abmelden|abbestell|desabonn|désabonn|desinscri|/profile\?|email[-_]?settings|\*\|unsub\|\*|\*\|update_profile\|\*|"
    r"forward-to-friend|/forward\?|/refer(?:ral)?(?:[/?]|$)|\*\|forward\|\*|\*\|archive\|\*|vcard|\.vcf(?:$|\?)",
)
_SOCIAL_HOST = re.compile(
    r"^(?:https?://)?(?:www\.|m\.|[a-z]{2}-[a-z]{2}\.)?(?:facebook\.com|fb\.com|twitter\.com|x\.com|instagram\.com|"
    r"linkedin\.com/(?:company|in|school)|youtube\.com|youtu\.be|tiktok\.com|pinterest\.[a-z.]+|threads\.net|"
    r"t\.me|xing\.com|mastodon\.social|bsky\.app|flipboard\.com|whatsapp\.com|discord\.gg|discord\.com/invite)",
)
_HREF_PREFIX = 250
_LINK_ONLY_SIGNALS = frozenset({"view_online", "app"})
_TWEET = re.compile(r"(?:twitter|x)\.com/[^/]+/status/")
# Share intents and app links are dropped alike: one test for both. Only whether these match
# matters, so their alternatives are spelled out into plain strings found with ``in`` where
# they allow (phrases.Finder): a long tracking URL is then no regex scan per alternative.
_SHARE_OR_APP_HREF = phrases.Finder(_SHARE_HREF.pattern + "|" + _APP_HREF.pattern)
# The ESP hosts and paths of lexicon.toml's [link_targets] join the patterns as plain strings.
_UNSUB_HREF_ANY = phrases.Finder("|".join([_UNSUB_HREF.pattern, *map(re.escape, phrases.PREFERENCE_LINKS)]))
_TWEET_ANY = phrases.Finder(_TWEET.pattern)
_HELP_HREF_ANY = phrases.Finder("|".join(map(re.escape, phrases.HELP_LINKS)))
_AD_HREF_ANY = phrases.Finder("|".join(map(re.escape, phrases.AD_LINKS)))
_SMALL_STYLE = re.compile(r"(?:^|;)(?:width|height):(\d+)px")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=[^\s])")
HEADLINE_WORDS = 4  # "Follow the last ferry": fewer words are a button's
_SIGN_UP_HREF = re.compile(r"subscri|sign-?up|/join|/upgrade|/account|/login|/signin|/register|/donate|/pledge")
HEAD = 0.1  # share of the text read before a block: below it, the block sits at the head
SMALL_FOOTER = 80  # letters: a repeated block at the foot this short is furniture
LONE_LINK_MAX = 40  # letters: a lone link at the foot this short is a footer's link
CTA_MAX = 60  # letters: the most a call-to-action button says
FOOT = 0.8  # share of the text read before a block: past it, the block sits at the foot
LABEL_MAX_ELEMENTS = 12
LABEL_LETTERS = 40  # letters: the most a label ("Back to top", "Can we help?") says
SIGN_UP_BOX_MAX = 400  # letters: a form this small with a text field asks for an address
SPONSOR_SECTION_MAX = 1500  # letters: a sponsor's blurb, never a whole issue
AD_UNIT_MAX = 300  # letters: the pitch beside an ad server's banner
LABEL_IMAGE_HEIGHT = 40  # px: an image this low, named or alt-texted as an ad, is a label drawn as a picture
HELP_LINE_MAX = 150  # letters: a help line at the very foot, known by its words alone
HELP_LINK_LINE_MAX = 100  # letters: a line at the very foot around a help/support/contact link, whatever it says
_RULE_LINE = re.compile(r"^\s*(?:[-=_*~#+]\s*){3,}$")  # a plain-text rule: ----, ====, ____
_E_MAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}\.[a-z]{2,}", re.IGNORECASE)  # a signature's or a list manager's address
_SIGNATURE_LINE = re.compile(r"^\s*--\s*$")  # "-- ": the signature follows (RFC 3676)
SIGNATURE_MAX = 300  # letters: a signature, not a postscript
_RULE_IN_TEXT = re.compile(r"[-=_*~#+]{3}|(?:^|\s)--(?:\s|$)")
TRAILER_MAX = 600  # letters under a rule line at the end of a block: a footer, not a section
_CONTINUED = re.compile(r"^\s*(?:[a-zà-ÿ]|\S+@\S+|https?://|www\.)")
_SCHEME = re.compile(r"^(?:https?://|mailto:)(?:www\.)?")


def link_target(url: str) -> str:
    """A URL compared as a link target: no scheme, www., fragment or trailing slash.

    The query stays: many senders route every link, content and unsubscribe alike, through
    one tracking script, and only the query tells them apart.
    """
    url = _SCHEME.sub("", url.strip().lower())
    return url.split("#", 1)[0].rstrip("/")


def _text_after(a: Element, root: Element, reach: int = 40) -> str | None:
    """The first text after link ``a`` in reading order, unless it is another link's; looks
    at ``reach`` elements at most (the walk must stay cheap on huge emails)."""
    if a.tail and a.tail.strip():
        return collapse(a.tail)
    node = _after_subtree(a, root)
    while node is not None and reach > 0:
        for el in node.iter():
            reach -= 1
            if el.tag.__class__ is str and el.text and el.text.strip():
                return None if el.tag == "a" or _inside_link(el, node) else collapse(el.text)
            if el is not node and el.tail and el.tail.strip():
                return collapse(el.tail)
            if reach <= 0:
                return None
        if node.tail and node.tail.strip():
            return collapse(node.tail)
        node = _after_subtree(node, root)
    return None


def _continues(line: str) -> bool:
    """A short line that only carries on the sentence before it (an address, a lower-case start)."""
    text = line.strip()
    return 0 < letters(text) <= 80 and bool(_CONTINUED.match(text)) and not text.endswith((".", "!", "?", ":"))


def _inside_link(el: Element, top: Element) -> bool:
    """True when ``el`` sits inside a link below ``top`` (or is under ``top``, a link itself)."""
    node: Element | None = el
    while node is not None:
        if node.tag == "a":
            return True
        if node is top:
            return False
        node = node.getparent()
    return False


_BUTTON_CLASS = re.compile(r"button|btn|cta", re.IGNORECASE)
_BUTTON_STYLE = re.compile(r"inline-block|border-radius|white-space:\s*nowrap", re.IGNORECASE)


def _styled_as_button(a: Element) -> bool:
    """A link drawn as a button (by its class or style, or its wrapper's): a call to action."""
    for el in (a, a.getparent()):
        if el is None:
            continue
        if _BUTTON_CLASS.search(el.get("class") or "") or _BUTTON_STYLE.search(el.get("style") or ""):
            return True
    return False


_CENTRED_STYLE = re.compile(r"text-align:\s*center", re.IGNORECASE)


def _centred(el: Element) -> bool:
    """A block centred by itself or by its own cell (not by the layout's outer tables)."""
    for node in (el, el.getparent()):
        if node is None:
            continue
        if (node.get("align") or "").lower() == "center" or _CENTRED_STYLE.search(node.get("style") or ""):
            return True
    return False


def _dropped(el: Element, root: Element) -> bool:
    """True when ``el`` is no longer under ``root`` (an ancestor was removed)."""
    node = el
    while node is not None and node is not root:
        node = node.getparent()
    return node is None


def _replace_with_alt(img: Element) -> None:
    alt = collapse(img.get("alt") or "")
    if alt and len(alt) <= 4:  # an emoji or a symbol: keep it as text
        img.tail = alt + (img.tail or "")
    img.tag = "span"  # emptied and unwrapped by the serialiser
    img.attrib.clear()


def _small_icon(img: Element) -> bool:
    """An image small enough to be an icon (social badges are 16-48 px)."""
    for name in ("width", "height"):
        value = (img.get(name) or "").strip().removesuffix("px")
        if value.isdigit() and int(value) <= 64:
            return True
    style = (img.get("style") or "").replace(" ", "").lower()
    m = _SMALL_STYLE.search(style)
    return bool(m and int(m.group(1)) <= 64)


_STEP1_TAGS = KILL_TAGS | {"img", "form"}
# HTML5 void elements that libxml2's HTML 4 parser leaves open: everything after an
# unclosed <embed> or <source> ends up inside it and would be dropped with it.
_LEFT_OPEN = ("embed", "source", "track")
_COLLAPSED = " \t\r\n\f\xa0\u2028\u2029\u3000"  # what dom.collapse turns into one space
_DROP, _BIG_HIDDEN = 1, 2


def _after_subtree(el: Element, root: Element) -> Element | None:
    """The node that follows ``el``'s subtree in document order (None: the end of ``root``)."""
    node: Element | None = el
    while node is not None and node is not root:
        following = node.getnext()
        if following is not None:
            return following
        node = node.getparent()
    return None


def _no_capitals(pattern: re.Pattern[str]) -> bool:
    """True for an IGNORECASE pattern written in lower case (escapes such as \\S aside)."""
    return bool(pattern.flags & re.IGNORECASE) and not re.search(r"[A-Z]", re.sub(r"\\.", "", pattern.pattern))


@lru_cache(maxsize=64)
def _lowercase_text_twin(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """A pattern that finds whether ``pattern`` matches lower-cased text, fast.

    Platform patterns are written in lower case and compiled with IGNORECASE, which makes the
    regex engine test every alternative at every position; on lower-cased input the same
    alternatives merged into a trie (phrases.any_of) do without it. A pattern with capital
    letters is kept as it is.
    """
    if not _no_capitals(pattern):
        return pattern
    return phrases.any_of(pattern.pattern, pattern.flags & ~re.IGNORECASE)


@lru_cache(maxsize=64)
def _lowercase_href_twin(pattern: re.Pattern[str]) -> "re.Pattern[str] | phrases.Finder":
    """The same for lower-cased hrefs, with phrases.Finder (URLs have no words to skip by)."""
    if not _no_capitals(pattern):
        return pattern
    return phrases.Finder(pattern.pattern)


class _Unit:
    """A text block: a block element's own text, without nested blocks."""

    __slots__ = (
        "el", "parent", "parts", "nodes", "button_chars", "clutter_link", "protected",
        "text", "lower", "size", "drop", "strong", "kept_size", "dropped_strong", "list_link",
        "link_count", "link_chars", "headline", "cta", "help_link",
    )

    def __init__(self, el: Element, parent: "_Unit | None", protected: bool):
        self.el = el
        self.parent = parent
        self.parts: list[str] = []
        self.nodes: list[tuple[Element, str]] = []  # its own text slots
        self.button_chars = 0  # letters inside links that are buttons (share, subscribe, ...)
        self.clutter_link = False  # holds an unsubscribe/preferences/view-online link
        self.list_link = False  # holds a link the List-* headers name (unsubscribe, archive, post)
        self.link_count = 0  # links in its own text, and their letters
        self.link_chars = 0
        self.headline = False  # holds a roundup's headline link
        self.cta = False  # holds a link drawn as a button
        self.help_link = False  # holds a link to a help centre, a support page or mailbox
        self.protected = protected  # inside an element the platform marks as the article
        self.text = ""
        self.lower = ""
        self.size = 0  # letters and digits
        self.drop = False
        self.strong = False
        self.kept_size = 0  # letters kept under this block, itself included
        self.dropped_strong = 0


class Cleaner:
    """One cleaning run over a parsed document body."""

    def __init__(
        self,
        body: Element,
        rules: PlatformRules,
        hidden_classes: frozenset[str],
        list_targets: frozenset[str] = frozenset(),
    ):
        self.body = body
        self.list_targets = list_targets  # link_target() of each List-* header URL
        self.rules = rules
        self.hidden_classes = hidden_classes | frozenset({"preheader", "preview-text", "preheader-text"})
        self.removed = 0
        self.touched: set[Element] = set()  # blocks that lost a clutter link
        self.link_texts: dict[Element, str] = {}
        self.headlines: set[Element] = set()  # links that are a roundup's headlines, not buttons
        self._full_text: str | None = None
        self._scans: dict[str, list[str]] = {}  # lower-cased text -> its signal categories
        self._drop_href = _lowercase_href_twin(rules.drop_href) if rules.drop_href is not None else None
        self._drop_text = _lowercase_text_twin(rules.drop_text) if rules.drop_text is not None else None

    def _scan(self, lower: str) -> list[str]:
        """phrases.scan, once per distinct text in this run."""
        found = self._scans.get(lower)
        if found is None:
            found = self._scans[lower] = phrases.scan(lower)
        return found

    # --- step 1 -------------------------------------------------------------------

    def drop_invisible(self) -> None:
        body = self.body
        for el in list(body.iter(*_LEFT_OPEN)):
            if len(el) or (el.text or "").strip():
                drop_tag(el)
        rules = self.rules
        drop_classes = rules.drop_classes
        drop_ids = rules.drop_ids
        hidden_classes = self.hidden_classes
        special = _STEP1_TAGS
        # Templates repeat the same few class and style strings on hundreds of elements:
        # each distinct string is judged once.
        class_verdicts: dict[str, tuple[bool, bool]] = {}  # class -> (platform clutter, hidden)
        style_verdicts: dict[str, tuple[bool, bool]] = {}  # style -> (hides, zero font size)
        # Verdicts first, in document order over the untouched tree, then the removals. Every
        # verdict depends on the element and its own subtree only, so a removal elsewhere never
        # changes one; the subtree of an element that goes is skipped, as a top-down walk would.
        marked: list[tuple[Element, int]] = []
        icons: list[Element] = []  # replaced once every verdict is in
        resume_at: Element | None = None  # the first element after a subtree marked for removal
        for el in body.iterdescendants():
            if resume_at is not None:
                if el is not resume_at:
                    continue
                resume_at = None
            tag = el.tag
            if tag.__class__ is not str:
                continue
            decision = 0
            if tag in special:
                if tag in KILL_TAGS:
                    decision = _DROP
                elif tag == "img":
                    size = image_size(el)
                    if is_tracker_image(el, size):
                        decision = _DROP
                    elif is_icon(el, size):
                        icons.append(el)
                elif _sign_up_box(el, body):
                    decision = _DROP
                else:
                    el.tag = "div"  # a form: some senders wrap everything in one, keep the text
            if not decision and tag != "img":
                # Class (platform clutter, hidden preheader), platform id, hidden, inline style.
                hidden = False
                value = el.get("class")
                if value is not None:
                    found = class_verdicts.get(value)
                    if found is None:
                        tokens = class_tokens(value)
                        found = class_verdicts[value] = (
                            bool(tokens) and not drop_classes.isdisjoint(tokens),
                            bool(tokens) and not hidden_classes.isdisjoint(tokens),
                        )
                    if found[0]:
                        decision = _DROP
                    hidden = found[1]
                if not decision and drop_ids and (el.get("id") or "").lower() in drop_ids:
                    decision = _DROP
                if not decision:
                    if not hidden and el.get("hidden") is not None:
                        hidden = True
                    if not hidden:
                        style = el.get("style")
                        if style:
                            found = style_verdicts.get(style)
                            if found is None:
                                found = style_verdicts[style] = (style_hides(style), zero_font(style))
                            hidden = found[0] or (found[1] and not sets_font_size(el))
                    if hidden:
                        # A large hidden block is decided below: a duplicate, or the only copy?
                        decision = _BIG_HIDDEN if letters(text_of(el)) > 600 else _DROP
            if decision == _DROP:
                marked.append((el, _DROP))
                resume_at = _after_subtree(el, body)
                if resume_at is None:
                    break  # the rest of the document is inside it
            elif decision == _BIG_HIDDEN:
                marked.append((el, _BIG_HIDDEN))
        for el in icons:
            _replace_with_alt(el)  # emoji and icons: their alt text reads better
        big_hidden: list[Element] = []
        for el, decision in marked:
            if decision == _DROP:
                drop_tree(el)
                self.removed += 1
            else:
                big_hidden.append(el)
        for el in big_hidden:
            if el.getparent() is not None and self._shown_elsewhere(el):
                drop_tree(el)
                self.removed += 1

    def _shown_elsewhere(self, el: Element) -> bool:
        """A large hidden block is dropped only when its text is also shown elsewhere."""
        sample = max((collapse(t) for t in el.itertext()), key=len, default="")[:120]
        if len(sample) < 20:
            return True
        if self._full_text is None:
            self._full_text = collapse(text_of(self.body))
        return self._full_text.count(sample) >= 2

    def drop_forwarded_header(self) -> None:
        """Remove a Gmail-style "Forwarded message" header block (From:/Date:/Subject:/To:)."""
        for el in self.body.iter():
            if not isinstance(el.tag, str):
                continue
            for attr in ("text", "tail"):
                value = getattr(el, attr)
                if value and phrases.FORWARDED_MARKER.search(value):
                    holder = el if attr == "text" else el.getparent()
                    block = holder
                    while block is not None and block.tag not in BLOCK_TAGS:
                        block = block.getparent()
                    if block is not None and block is not self.body and len(text_of(block)) < 1000:
                        drop_tree(block)
                    else:
                        self._strip_forward_lines(holder)
                    self.removed += 1
                    return

    def _strip_forward_lines(self, holder: Element) -> None:
        """The marker shares its block with the article: cut the marker and header lines only."""
        pieces = [(holder, "text")] + [(c, "tail") for c in holder]
        started = False
        for node, attr in pieces:
            value = getattr(node, attr) or ""
            if not started:
                m = phrases.FORWARDED_MARKER.search(value)
                if not m:
                    continue
                started = True
                setattr(node, attr, value[: m.start()])
                continue
            if not value.strip() or phrases.FORWARDED_HEADER_LINE.match(value):
                setattr(node, attr, "")
                if node is not holder and node.tag in ("a", "span", "b", "strong"):
                    continue
            else:
                break

    # --- step 2 -------------------------------------------------------------------

    def drop_button_links(self) -> None:
        """Remove share intents, app badges and social icons; mark other button links."""
        drop_href = self._drop_href
        doomed = []
        icon_rows: dict[Element, int] = {}
        link_texts = self.link_texts
        for a in self.body.iter("a"):
            # Tracking URLs carry kilobytes of opaque token; what tells a share or app link
            # (host, path, the first query keys) sits at the start.
            href = (a.get("href") or "").strip()[:_HREF_PREFIX].lower()
            text = collapse(text_of(a))
            link_texts[a] = text
            if _TWEET_ANY.search(href):
                continue
            if not text:
                imgs = [img for img in a.iter("img")]
                if imgs and all(phrases.SOCIAL_ALT.match(collapse(i.get("alt") or "")) for i in imgs):
                    doomed.append((a, text))
                    continue
                if imgs and all(_small_icon(i) for i in imgs):
                    block = a.getparent()
                    while block is not None and block.tag not in ("tr", "p", "div", "table", "ul"):
                        block = block.getparent()
                    if block is not None:
                        icon_rows[block] = icon_rows.get(block, 0) + 1
            if text and len(text) <= 60 and (
                phrases.VIEW_BUTTON.match(text)
                or not _LINK_ONLY_SIGNALS.isdisjoint(self._scan(text.lower()))
            ):
                doomed.append((a, text))
                continue
            if phrases.is_button(text) and self._is_headline(a, text, href):
                self.headlines.add(a)
                continue
            if (
                _SHARE_OR_APP_HREF.search(href)
                or (drop_href is not None and drop_href.search(href))
                or (_SOCIAL_HOST.match(href) and (not text or phrases.is_button(text)))
            ):
                doomed.append((a, text))
        for block, count in icon_rows.items():
            # A row of small linked icons with no words: the social bar.
            if count >= 3 and block.getparent() is not None and not letters(text_of(block)):
                drop_tree(block)
                self.removed += 1
        for a, text in doomed:
            if a.getparent() is None:
                continue
            if letters(text) > 12 and not phrases.is_button(text) and not self._has_strong(text):
                drop_tag(a)  # real words behind an app/share URL (a title): keep them, unlinked
                continue
            block = a.getparent()
            while block is not None and block.tag not in BLOCK_TAGS:
                block = block.getparent()
            if block is not None:
                self.touched.add(block)  # its leftover lead-in ("Trouble reading?") goes too
            drop_tree(a)
            self.removed += 1

    def drop_sponsor_sections(self) -> None:
        """A block that only says whose ad follows ("Sponsored by X", "Anzeige", "Together with
        X") goes with the section it heads, or with the block right after it. In plain text the
        label is the first line of the ad's own paragraph: the paragraph goes."""
        drawn = self._read_label_images()
        total = letters(text_of(self.body)) or 1
        judged: dict[Element, bool] = {}
        labels: list[tuple[Element, str]] = []
        headed: list[Element] = []  # plain-text paragraphs whose first line is a sponsor label
        for el in self.body.iter():
            if el.tag.__class__ is not str:
                continue
            if (
                el.tag in ("p", "pre", "div") and len(el) and el[0].tag == "br" and el.text
                and len(el.text) <= 80 and phrases.label_kind(el.text) == "sponsor"
            ):
                headed.append(el)
            for piece, block in ((el.text, el), (el.tail, el.getparent())):
                if not piece or len(piece) > 80 or not piece.strip():
                    continue
                while block is not None and block.tag not in BLOCK_TAGS:
                    block = block.getparent()
                if block is None or block is self.body or block in judged:
                    continue
                if next(islice(block.iterdescendants(), LABEL_MAX_ELEMENTS, None), None) is not None:
                    judged[block] = False  # a label is a word or two in a tag or two
                    continue
                text = collapse(text_of(block))
                judged[block] = phrases.label_kind(text) == "sponsor"
                if judged[block]:
                    labels.append((block, text))
        for paragraph in headed:
            if not _dropped(paragraph, self.body) and self._section_size_ok(collapse(text_of(paragraph)), total):
                drop_tree(paragraph)
                self.removed += 1
        for label, text in labels:
            top = label
            while (parent := top.getparent()) is not None and parent is not self.body and (
                collapse(text_of(parent)) == text
            ):
                top = parent
            parent = top.getparent()
            if parent is None or _dropped(top, self.body):
                continue
            if parent is not self.body:
                section = collapse(text_of(parent))
                if section.startswith(text) and self._section_size_ok(section, total):
                    drop_tree(parent)
                    self.removed += 1
                    continue
            following = top.getnext()
            # Spacer rows and cells (no words, no picture) sit between a label and its ad.
            while following is not None and (
                following.tag.__class__ is not str or (not letters(text_of(following)) and next(following.iter("img"), None) is None)
            ):
                following = following.getnext()
            drop_tree(top)
            self.removed += 1
            if following is not None and self._section_size_ok(collapse(text_of(following)), total):
                drop_tree(following)
                self.removed += 1
        for span in drawn:  # a drawn label that headed nothing: images are off, so it says nothing
            if not _dropped(span, self.body):
                drop_tree(span)

    def _read_label_images(self) -> list[Element]:
        """Small images that are a sponsor's label drawn as a picture ("advertisement.gif", or
        alt text that is a label) become that label's words, so the ad they head goes with them."""
        drawn = []
        for img in list(self.body.iter("img")):
            width, height = image_size(img)
            if height is None or height > LABEL_IMAGE_HEIGHT or (width is not None and width > 300):
                continue
            alt = collapse(img.get("alt") or "")
            stem = (img.get("src") or "").split("?", 1)[0].rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
            words = set(re.split(r"[-_+ .]+", stem))
            if (alt and phrases.label_kind(alt) == "sponsor") or not phrases.SPONSOR_IMAGE_NAMES.isdisjoint(words):
                tail = img.tail
                img.clear()
                img.tag, img.text, img.tail = "span", "Advertisement", tail
                drawn.append(img)
        return drawn

    def drop_ad_units(self) -> None:
        """An e-zine's ad unit without a label: a banner (an image linked to an ad server, or
        served by one) and the short pitch beside it. The smallest block around the banner that
        holds any words goes, when it is short; in a longer block the banner goes alone. A
        link with words to an ad server is left alone (an article may name ads.example.com)."""
        body = self.body
        total = letters(text_of(body)) or 1
        for a in list(body.iter("a")):
            if _dropped(a, body):
                continue
            images = [img.get("src") or "" for img in a.iter("img")]
            if not images or letters(text_of(a)):
                continue
            targets = [a.get("href") or "", *images]
            if not any(_AD_HREF_ANY.search(t.strip()[:_HREF_PREFIX].lower()) for t in targets):
                continue
            block = a.getparent()
            while block is not None and block is not body and (block.tag not in BLOCK_TAGS or not letters(text_of(block))):
                block = block.getparent()
            if block is not None and block is not body:
                size = letters(text_of(block))
                if size <= AD_UNIT_MAX and size <= total * 0.4:
                    drop_tree(block)
                    self.removed += 1
                    continue
            drop_tree(a)
            self.removed += 1

    @staticmethod
    def _section_size_ok(text: str, total: int) -> bool:
        """A sponsor's section is short beside the issue; a larger one is the issue itself."""
        size = letters(text)
        return size <= SPONSOR_SECTION_MAX and size <= total * 0.4

    def drop_signatures(self) -> None:
        """Plain-text conventions: PGP signature armour, the "-- " signature at the foot."""
        total = letters(text_of(self.body)) or 1
        seen = 0
        armoured = False
        for el in list(self.body.iter("p", "pre")):
            if _dropped(el, self.body):
                continue
            text = text_of(el)
            size = letters(text)
            seen += size
            if armoured or "-----BEGIN PGP SIGNATURE-----" in text:
                armoured = "-----END PGP SIGNATURE-----" not in text
            elif not (
                ("-----BEGIN PGP SIGNED MESSAGE-----" in text and size <= 60)
                or ((el.text or "").strip() == "--" and len(el) and el[0].tag == "br" and size <= 300
                    and seen / total >= 0.8)
            ):
                continue
            drop_tree(el)
            self.removed += 1

    def _is_headline(self, a: Element, text: str, href: str) -> bool:
        """A roundup's item: a sentence linked to a web page, with a summary right after it.

        "Share prices slide as the port closes" starts like a share button; what tells it
        apart is the shape of a link roundup: several words, an ordinary link, and a line of
        prose (no boilerplate) following it.
        """
        if len(text.split()) < HEADLINE_WORDS or not href.startswith(("http://", "https://")):
            return False
        if _styled_as_button(a):
            return False
        if (
            _SHARE_OR_APP_HREF.search(href)
            or _UNSUB_HREF_ANY.search(href)
            or _SOCIAL_HOST.match(href)
            or _SIGN_UP_HREF.search(href)
            or self._has_strong(text)
        ):
            return False
        summary = _text_after(a, self.body)
        return summary is not None and letters(summary) >= 30 and not self._scan(summary.lower())

    def _has_strong(self, text: str) -> bool:
        return not phrases.STRONG.isdisjoint(self._scan(text.lower()))

    # --- step 3 -------------------------------------------------------------------

    def score_blocks(self) -> None:
        units = self._units()
        total = sum(u.size for u in units) or 1
        seen = 0
        drop_text = self._drop_text
        touched = self.touched
        STRONG = phrases.STRONG
        earlier: set[str] = set()  # the texts of the blocks read so far
        for u in units:
            position = seen / total
            seen += u.size
            size = u.size
            if size == 0:
                continue
            text = u.text
            lower = u.lower
            repeated = lower in earlier
            earlier.add(lower)
            if self._furniture_by_shape(u, position, repeated):
                u.drop = u.strong = True
                continue
            if size <= LABEL_LETTERS and (kind := phrases.label_kind(text)) is not None and (
                kind == "navigation" or (kind == "help" and position >= 0.5)
            ):
                u.drop = u.strong = True  # "Back to top"; "Can we help?" over a service's contact links
                continue
            if len(u.nodes) >= 2:
                self._drop_navigation_lines(u)
            if len(u.nodes) >= 3 and _RULE_IN_TEXT.search(text) and seen / total >= 0.5 and (
                (trailer := self._trailer_start(u, seen - size, total)) < len(u.nodes)
            ):
                self._drop_lines(u, seen - size, total, trailer)  # the footer under a rule line at its end
                continue
            if drop_text is not None and size <= 400 and drop_text.search(lower):
                u.drop = u.strong = True
                continue
            if size <= 40 and u.el in touched:
                u.drop = u.strong = True
                continue
            if u.list_link and size <= 250:
                u.drop = u.strong = True
                continue
            if u.help_link and position >= FOOT and size <= HELP_LINK_LINE_MAX and not u.headline:
                u.drop = u.strong = True  # a line at the very foot pointing at help, support or contact
                continue
            if position >= FOOT and size <= 300 and u.link_count >= 3 and u.link_chars >= 0.7 * size or (
                position >= FOOT and size <= 150 and u.link_count == 2 and u.link_chars >= 0.8 * size and not u.headline
            ):
                u.drop = u.strong = True  # a row of links at the foot: the footer's menu
                continue
            if u.button_chars and u.button_chars >= size * 0.7 and size <= 120:
                u.drop = u.strong = True
                continue
            if size <= 60 and (
                (phrases.is_button(text) and (u.button_chars or u.clutter_link)) or phrases.LABEL.match(text)
            ):
                u.drop = u.strong = True
                continue
            if size > 220 and seen / total < 0.5 and not u.clutter_link:
                continue  # long prose ending in the first half: article text, not furniture
            scanned = self._scan(lower)
            strong_count = sum(1 for name in scanned if name in STRONG)
            weak = {name for name in scanned if name not in STRONG}
            if "support" in weak and not (u.help_link or (position >= FOOT and size <= HELP_LINE_MAX)):
                weak.discard("support")  # "here to help" in prose: a footer's only beside a help link, or at the very foot
            if strong_count:
                # The address test is the costly one: it runs only where it can change the outcome.
                if size > 220 and self._prose_lines_lead(u):
                    self._drop_lines(u, seen - size, total)  # a plain-text paragraph ending in its footer
                elif size <= 220:
                    u.drop = True
                elif size <= 700 and (
                    u.clutter_link or weak or strong_count >= 2 or (size <= 600 and phrases.has_address(text))
                ):
                    u.drop = True
                elif not u.protected and strong_count * 250 >= size:
                    u.drop = True  # a long footer paragraph, dense with boilerplate
                elif not u.protected:
                    self._drop_lines(u, seen - size, total)
                u.strong = u.drop
            elif not u.protected or (position >= FOOT and size <= 250):
                # A platform's article container often holds the footer too: at the very foot,
                # a short address or legal line goes even inside it.
                if not weak and size <= 250 and position < 0.5 and not u.clutter_link:
                    continue  # an address alone could not drop it
                if size <= 600 and phrases.has_address(text):
                    weak.add("address")
                if not weak and u.clutter_link and size <= 120 and position >= FOOT:
                    weak.add("clutter_link")  # a short line at the foot around a preferences link
                if not weak:
                    continue
                if size <= 250 and (position >= 0.5 or len(weak) >= 2 or u.clutter_link):
                    u.drop = True
                elif size <= 600 and len(weak) >= 2 and position >= 0.6:
                    u.drop = True
                elif size > 250:
                    self._drop_lines(u, seen - size, total)
        self._collapse_containers(units)

    def _drop_navigation_lines(self, u: _Unit) -> None:
        """A line of a longer block that only says "Back to top" (plain text's section ends)."""
        for node, attr in u.nodes:
            value = getattr(node, attr)
            if value and letters(value) <= LABEL_LETTERS and phrases.label_kind(value) == "navigation":
                setattr(node, attr, " ")
                self.removed += 1

    @staticmethod
    def _furniture_by_shape(u: _Unit, position: float, repeated: bool) -> bool:
        """Footers and calls to action known by their shape, in whatever language.

        At the foot: a short block saying again what an earlier one said (the masthead's
        tagline, a "back to top" between every section), a lone short link, a centred one;
        at the head: a lone short link drawn as a button.
        """
        size = u.size
        if position >= FOOT and size <= SMALL_FOOTER and repeated:
            return True
        lone_link = u.link_count == 1 and u.link_chars >= 0.9 * size and not u.headline
        if not lone_link or size > CTA_MAX:
            return False
        if position >= FOOT:
            # short and plain: furniture when it points at a home page (a link into one page is content)
            return (size <= LONE_LINK_MAX and _to_home_page(u.el)) or u.cta or _centred(u.el)
        return position < HEAD and u.cta

    def _units(self) -> list[_Unit]:
        body = self.body
        keep = self.rules.keep_classes
        unit_of: dict[Element, _Unit] = {}
        block_tags = BLOCK_TAGS
        mark_link = self._mark_link
        blank = _COLLAPSED
        root_unit = _Unit(body, None, bool(keep and not keep.isdisjoint(classes(body))))
        units = [root_unit]
        unit_of[body] = root_unit
        # Layout tables fill the tree with whitespace-only text. Such a piece is kept as one
        # space (collapse() turns any whitespace run into one) and is no text slot of its own:
        # _drop_lines skips slots without letters anyway.
        add = self._add_piece
        add(body, "text", body.text, root_unit, blank)
        # start/end events: an element's tail belongs after the text of its children.
        for event, el in etree.iterwalk(body, events=("start", "end")):
            if el is body:
                continue
            tag = el.tag
            if tag.__class__ is not str:
                if event == "end":  # comments and PIs: only their tail is text
                    add(el, "tail", el.tail, unit_of[el.getparent()], blank)
                continue
            parent_unit = unit_of[el.getparent()]
            if event == "end":
                add(el, "tail", el.tail, parent_unit, blank)
                continue
            if tag in block_tags:
                protected = parent_unit.protected
                if keep and not protected and not keep.isdisjoint(classes(el)):
                    protected = True
                unit = _Unit(el, parent_unit, protected)
                units.append(unit)
            else:
                unit = parent_unit
            unit_of[el] = unit
            if tag == "br":
                unit.parts.append(" ")
            add(el, "text", el.text, unit, blank)
            if tag == "a":
                mark_link(el, unit)
        debris = phrases.MSO_DEBRIS
        for u in units:
            if not u.nodes:
                continue  # only whitespace: no text, size 0
            text = collapse("".join(u.parts))
            if "]" in text or ">" in text:
                text = debris.sub(" ", text)
            u.text = text
            u.size = letters(text)
            u.lower = text.lower()
        return units

    @staticmethod
    def _add_piece(el: Element, attr: str, text: str | None, unit: _Unit, blank: str) -> None:
        """Add an element's text or tail to a unit; whitespace-only pieces count as one space."""
        if text:
            if text.strip(blank):
                unit.parts.append(text)
                unit.nodes.append((el, attr))
            else:
                unit.parts.append(" ")

    def _mark_link(self, a: Element, unit: _Unit) -> None:
        text = self.link_texts.get(a)
        if text is None:
            text = collapse(text_of(a))
        if not text:
            return
        href = (a.get("href") or "")[:_HREF_PREFIX].lower()
        unit.link_count += 1
        unit.link_chars += letters(text)
        if a in self.headlines:
            unit.headline = True
        elif _styled_as_button(a):
            unit.cta = True
        short = len(text) <= 80
        if short and a not in self.headlines and phrases.is_button(text):
            unit.button_chars += letters(text)
        if _HELP_HREF_ANY.search(href):
            unit.help_link = True
        if self.list_targets and link_target(href) in self.list_targets:
            unit.list_link = True
        if _UNSUB_HREF_ANY.search(href) or (short and self._has_strong(text)):
            unit.clutter_link = True
            if short:
                unit.button_chars += letters(text)

    def _drop_lines(self, unit: _Unit, start: int, total: int, trailer: int | None = None) -> None:
        """A long block with boilerplate inside: cut only the boilerplate sentences and lines.

        Lines (text between <br>s) are the units of signatures and legal footers typed
        into one block; sentences are the units of prose. Old plain-text lists put their
        footer under a rule line (``----``, ``====``) at the end of the last paragraph: from
        such a rule on, a short tail with any sign of furniture goes whole. A short line right
        after a dropped one that only carries on its sentence (an address, a lower-case
        start) goes with it.
        """
        offset = start
        STRONG = phrases.STRONG
        if trailer is None:  # score_blocks passes the one it has already found
            trailer = self._trailer_start(unit, start, total)
        carried = False  # the previous line was dropped
        for index, (node, attr) in enumerate(unit.nodes):
            value = getattr(node, attr)
            if not value:
                continue
            size = letters(value)
            offset += size
            if index >= trailer:
                setattr(node, attr, " ")
                self.removed += 1
                continue
            late = offset / total >= 0.5
            if carried and late and _continues(value):
                setattr(node, attr, " ")
                self.removed += 1
                continue
            carried = False
            if size < 8:
                continue
            sentences = _SENTENCE.split(value)
            kept = []
            for sentence in sentences:
                found = self._scan(sentence.lower())
                if "support" in found and offset / total < FOOT:
                    found = [name for name in found if name != "support"]  # help words in prose, not yet at the foot
                if not STRONG.isdisjoint(found):
                    continue
                if late and letters(sentence) <= 250 and (found or phrases.has_address(sentence)):
                    continue
                kept.append(sentence)
            if len(kept) < len(sentences):
                lead = " " if value[:1].isspace() else ""
                setattr(node, attr, (lead + " ".join(kept) + " ") if kept else " ")
                self.removed += 1
                carried = not kept or kept[-1] is not sentences[-1]

    def _prose_lines_lead(self, u: _Unit) -> bool:
        """A block of lines (plain text's paragraphs) whose furniture-free lines hold most of
        its letters: the article, with the footer typed into it; only the footer's lines go."""
        if len(u.nodes) < 3 or sum(1 for _ in islice(u.el.iter("br"), 2)) < 2:
            return False
        clean = 0
        for node, attr in u.nodes:
            value = getattr(node, attr) or ""
            if not self._scan(collapse(value).lower()):
                clean += letters(value)
        return clean * 2 >= u.size

    def _trailer_start(self, unit: _Unit, start: int, total: int) -> int:
        """The index of the rule line that opens a block's footer tail, or past the end.

        Under a rule, the tail must show a sign of furniture; under the "-- " signature
        delimiter at the foot, being short is enough. Only the earliest rule whose tail is
        short enough is judged (a later one's tail is part of it), so a block of thousands
        of rule lines costs one pass.
        """
        nodes = unit.nodes
        values = [getattr(node, attr) or "" for node, attr in nodes]
        sizes = [letters(value) for value in values]
        own = sum(sizes)
        at_foot = (start + own) / total >= FOOT
        before = start
        after = own  # letters after the current node
        for index, value in enumerate(values):
            before += sizes[index]
            after -= sizes[index]
            if sizes[index] or before / total < 0.5 or after > TRAILER_MAX:
                continue
            signature = at_foot and after <= SIGNATURE_MAX and _SIGNATURE_LINE.match(value) is not None
            if not signature and not _RULE_LINE.match(value):
                continue
            if signature:
                return index
            rest = collapse(" ".join(values[index + 1 :]))
            if self._scan(rest.lower()) or _E_MAIL.search(rest) or phrases.has_address(rest):
                return index
            return len(nodes)
        return len(nodes)

    def _collapse_containers(self, units: list[_Unit]) -> None:
        """Bottom-up sums, then top-down removal of blocks left holding only crumbs."""
        for u in units:
            u.kept_size = 0 if u.drop else u.size
            u.dropped_strong = 1 if (u.drop and u.strong) else 0
        for u in reversed(units):
            if u.parent is not None:
                u.parent.kept_size += u.kept_size
                u.parent.dropped_strong += u.dropped_strong
        dead: set[int] = set()
        for u in units:
            if u.parent is not None and id(u.parent) in dead:
                dead.add(id(u))
                continue
            if u.parent is None:
                continue  # the body itself stays
            if (u.drop and u.kept_size <= 40) or (
                u.dropped_strong and u.kept_size <= 40 and not u.protected
            ):
                dead.add(id(u))
                drop_tree(u.el)
                self.removed += 1
            elif u.drop:
                self._drop_own_text(u.el)
                self.removed += 1

    @staticmethod
    def _drop_own_text(el: Element) -> None:
        """Remove a block's own text and inline children, keeping its nested blocks."""
        el.text = None
        for child in list(el):
            child.tail = None
            if not isinstance(child.tag, str) or child.tag not in BLOCK_TAGS:
                el.remove(child)


def _sign_up_box(form: Element, body: Element) -> bool:
    """A small form with a field to type into: the subscribe (or search) box of a newsletter,
    whatever its words; a form wrapping the email (most of its text) stays."""
    has_field = any(
        (field.get("type") or "text").lower() in ("text", "email", "search")
        for field in form.iter("input", "textarea")
    )
    if not has_field:
        return False
    size = letters(text_of(form))
    return size <= SIGN_UP_BOX_MAX and size * 2 <= letters(text_of(body))


def _to_home_page(el: Element) -> bool:
    """Does the (first) link in ``el`` point at a site's home page rather than into one of its pages?"""
    for anchor in el.iter("a"):
        href = (anchor.get("href") or "").strip()
        try:
            return urlsplit(href).path.strip("/") == ""
        except ValueError:
            return False
    return False
