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
from dataclasses import dataclass, field


from . import phrases
from .dom import BLOCK_TAGS, Element, classes, collapse, drop_tag, drop_tree, letters, prune, text_of
from .hidden import is_icon, is_tracker_image, sets_font_size, style_hides, zero_font
from .platforms.base import PlatformRules

# Never content; removed with everything inside.
KILL_TAGS = frozenset(
    "script style head title meta link base iframe frame frameset object embed applet noscript "
    "svg math canvas video audio source track template input button select textarea option "
    "optgroup map area param dialog".split()
)

_SHARE_HREF = re.compile(
    r"twitter\.com/(?:intent|share)|x\.com/intent|facebook\.com/(?:sharer|share\.php|dialog/share)|"
    r"linkedin\.com/(?:shareArticle|sharing|cws/share)|reddit\.com/submit|pinterest\.com/pin/create|"
    r"api\.whatsapp\.com/send|wa\.me/\?|t\.me/share|telegram\.me/share|news\.ycombinator\.com/submitlink|"
    r"xing\.com/(?:spi/)?share|bsky\.app/intent|threads\.net/intent|^mailto:\?",
    re.IGNORECASE,
)
_APP_HREF = re.compile(
    r"apps\.apple\.com|itunes\.apple\.com|play\.google\.com/store|app\.adjust\.com|\.app\.link/|"
    r"onelink\.me|smart\.link|/app-link/|action=open-app|open_in_app|app-store|get-app",
    re.IGNORECASE,
)
_UNSUB_HREF = re.compile(
    r"unsub|opt-?out|/preferences|/manage(?:-|_)?(?:subscription|preferences|profile)|list-manage\.com/(?:profile|unsubscribe)|"
    r"disable_email|abmelden|abbestell|desabonn|désabonn|desinscri|/profile\?|email[-_]?settings|\*\|unsub\|\*|\*\|update_profile\|\*|"
    r"forward-to-friend|/forward\?|/refer(?:ral)?(?:[/?]|$)|\*\|forward\|\*|\*\|archive\|\*|vcard|\.vcf(?:$|\?)",
    re.IGNORECASE,
)
_SOCIAL_HOST = re.compile(
    r"^(?:https?://)?(?:www\.|m\.|[a-z]{2}-[a-z]{2}\.)?(?:facebook\.com|fb\.com|twitter\.com|x\.com|instagram\.com|"
    r"linkedin\.com/(?:company|in|school)|youtube\.com|youtu\.be|tiktok\.com|pinterest\.[a-z.]+|threads\.net|"
    r"t\.me|xing\.com|mastodon\.social|bsky\.app|flipboard\.com|whatsapp\.com|discord\.gg|discord\.com/invite)",
    re.IGNORECASE,
)
_HREF_PREFIX = 250
_LINK_ONLY_SIGNALS = frozenset({"view_online", "app"})
_TWEET = re.compile(r"(?:twitter|x)\.com/[^/]+/status/", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=[^\s])")


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
    m = re.search(r"(?:^|;)(?:width|height):(\d+)px", style)
    return bool(m and int(m.group(1)) <= 64)


@dataclass
class _Unit:
    """A text block: a block element's own text, without nested blocks."""

    el: Element
    parent: "_Unit | None"
    parts: list[str] = field(default_factory=list)
    nodes: list[tuple[Element, str]] = field(default_factory=list)  # its own text slots
    button_chars: int = 0  # letters inside links that are buttons (share, subscribe, ...)
    clutter_link: bool = False  # holds an unsubscribe/preferences/view-online link
    protected: bool = False  # inside an element the platform marks as the article
    text: str = ""
    size: int = 0  # letters and digits
    drop: bool = False
    strong: bool = False
    kept_size: int = 0  # letters kept under this block, itself included
    dropped_strong: int = 0


class Cleaner:
    """One cleaning run over a parsed document body."""

    def __init__(self, body: Element, rules: PlatformRules, hidden_classes: frozenset[str]):
        self.body = body
        self.rules = rules
        self.hidden_classes = hidden_classes | frozenset({"preheader", "preview-text", "preheader-text"})
        self.removed = 0
        self.touched: set[Element] = set()  # blocks that lost a clutter link
        self.link_texts: dict[Element, str] = {}
        self._full_text: str | None = None

    # --- step 1 -------------------------------------------------------------------

    def drop_invisible(self) -> None:
        rules = self.rules
        drop_classes = rules.drop_classes
        drop_ids = rules.drop_ids
        hidden_classes = self.hidden_classes
        big_hidden: list[Element] = []

        def drop(el: Element) -> bool:
            tag = el.tag
            if tag in KILL_TAGS:
                return True
            if tag == "img":
                if is_tracker_image(el):
                    return True
                if is_icon(el):
                    _replace_with_alt(el)  # emoji and icons: their alt text reads better
                    return False
                return False
            if tag == "form":
                el.tag = "div"  # some senders wrap everything in a form: keep the text
            tokens = classes(el)
            if tokens and (drop_classes.intersection(tokens)):
                return True
            if drop_ids and (el.get("id") or "").lower() in drop_ids:
                return True
            hidden = el.get("hidden") is not None or bool(tokens and hidden_classes.intersection(tokens))
            style = el.get("style")
            if not hidden and style:
                hidden = style_hides(style) or (zero_font(style) and not sets_font_size(el))
            if hidden:
                if letters(text_of(el)) > 600:
                    big_hidden.append(el)  # decided below: a duplicate, or the only copy?
                    return False
                return True
            return False

        self.removed += prune(self.body, drop)
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
        drop_href = self.rules.drop_href
        doomed = []
        icon_rows: dict[Element, int] = {}
        for a in self.body.iter("a"):
            # Tracking URLs carry kilobytes of opaque token; what tells a share or app link
            # (host, path, the first query keys) sits at the start.
            href = (a.get("href") or "").strip()[:_HREF_PREFIX]
            text = collapse(text_of(a))
            self.link_texts[a] = text
            if _TWEET.search(href):
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
                phrases.VIEW_BUTTON.match(text) or phrases.signals(text, address=False) & _LINK_ONLY_SIGNALS
            ):
                doomed.append((a, text))
                continue
            if (
                _SHARE_HREF.search(href)
                or _APP_HREF.search(href)
                or (drop_href is not None and drop_href.search(href))
                or (_SOCIAL_HOST.search(href) and (not text or phrases.is_button(text)))
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
            if letters(text) > 12 and not phrases.is_button(text) and not phrases.has_strong(text):
                drop_tag(a)  # real words behind an app/share URL (a title): keep them, unlinked
                continue
            block = a.getparent()
            while block is not None and block.tag not in BLOCK_TAGS:
                block = block.getparent()
            if block is not None:
                self.touched.add(block)  # its leftover lead-in ("Trouble reading?") goes too
            drop_tree(a)
            self.removed += 1

    # --- step 3 -------------------------------------------------------------------

    def score_blocks(self) -> None:
        units = self._units()
        total = sum(u.size for u in units) or 1
        seen = 0
        drop_text = self.rules.drop_text
        for u in units:
            position = seen / total
            seen += u.size
            if u.size == 0:
                continue
            text = u.text
            if drop_text is not None and u.size <= 400 and drop_text.search(text):
                u.drop = u.strong = True
                continue
            if u.size <= 40 and u.el in self.touched:
                u.drop = u.strong = True
                continue
            if u.button_chars and u.button_chars >= u.size * 0.7 and u.size <= 120:
                u.drop = u.strong = True
                continue
            if u.size <= 60 and (
                (phrases.is_button(text) and (u.button_chars or u.clutter_link)) or phrases.LABEL.match(text)
            ):
                u.drop = u.strong = True
                continue
            if u.size > 220 and seen / total < 0.5 and not u.clutter_link:
                continue  # long prose ending in the first half: article text, not furniture
            found = phrases.signals(text, address=u.size <= 600)
            if not found:
                continue
            strong = found & phrases.STRONG
            weak = found - phrases.STRONG
            if strong:
                if u.size <= 220:
                    u.drop = True
                elif u.size <= 700 and (u.clutter_link or weak or phrases.count_strong(text) >= 2):
                    u.drop = True
                elif not u.protected and phrases.count_strong(text) * 250 >= u.size:
                    u.drop = True  # a long footer paragraph, dense with boilerplate
                elif not u.protected:
                    self._drop_lines(u, seen - u.size, total)
                u.strong = u.drop
            elif not u.protected:
                if u.size <= 250 and (position >= 0.5 or len(weak) >= 2 or u.clutter_link):
                    u.drop = True
                elif u.size <= 600 and len(weak) >= 2 and position >= 0.6:
                    u.drop = True
                elif u.size > 250:
                    self._drop_lines(u, seen - u.size, total)
        self._collapse_containers(units)

    def _units(self) -> list[_Unit]:
        body = self.body
        keep = self.rules.keep_classes
        unit_of: dict[Element, _Unit] = {}
        units: list[_Unit] = []
        for el in body.iter():
            if not isinstance(el.tag, str):
                continue
            parent = el.getparent()
            parent_unit = unit_of.get(parent) if el is not body else None
            if el is body or el.tag in BLOCK_TAGS:
                unit = _Unit(el, parent_unit)
                unit.protected = parent_unit.protected if parent_unit else False
                if keep and not unit.protected and keep.intersection(classes(el)):
                    unit.protected = True
                units.append(unit)
            else:
                unit = parent_unit
            unit_of[el] = unit
            if el.tag == "br":
                unit.parts.append(" ")
            if el.text:
                unit.parts.append(el.text)
                unit.nodes.append((el, "text"))
            if el.tail and parent_unit is not None:
                parent_unit.parts.append(el.tail)
                parent_unit.nodes.append((el, "tail"))
            if el.tag == "a":
                self._mark_link(el, unit)
        for u in units:
            u.text = collapse("".join(u.parts))
            u.text = phrases.MSO_DEBRIS.sub(" ", u.text) if "]" in u.text or ">" in u.text else u.text
            u.size = letters(u.text)
        return units

    def _mark_link(self, a: Element, unit: _Unit) -> None:
        text = self.link_texts.get(a)
        if text is None:
            text = collapse(text_of(a))
        if not text:
            return
        href = (a.get("href") or "")[:_HREF_PREFIX]
        short = len(text) <= 80
        if short and phrases.is_button(text):
            unit.button_chars += letters(text)
        if _UNSUB_HREF.search(href) or (short and phrases.has_strong(text)):
            unit.clutter_link = True
            if short:
                unit.button_chars += letters(text)

    def _drop_lines(self, unit: _Unit, start: int, total: int) -> None:
        """A long block with boilerplate inside: cut only the boilerplate sentences and lines.

        Lines (text between <br>s) are the units of signatures and legal footers typed
        into one block; sentences are the units of prose.
        """
        offset = start
        for node, attr in unit.nodes:
            value = getattr(node, attr)
            if not value:
                continue
            size = letters(value)
            offset += size
            if size < 8:
                continue
            late = offset / total >= 0.5
            sentences = _SENTENCE.split(value)
            kept = []
            for sentence in sentences:
                found = phrases.signals(sentence, address=late)
                if found & phrases.STRONG or (late and found and letters(sentence) <= 250):
                    continue
                kept.append(sentence)
            if len(kept) < len(sentences):
                lead = " " if value[:1].isspace() else ""
                setattr(node, attr, (lead + " ".join(kept) + " ") if kept else " ")
                self.removed += 1

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
