"""What a mail client would not show: hidden preheaders, tracking pixels, Outlook-only parts."""

from __future__ import annotations

import re

from .dom import Element
from .phrases import Finder


_HIDING = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0(?:\.0+)?\s*(?:!important)?\s*(?:;|$)"
    r"|max-height\s*:\s*0(?:px|em|%)?\s*(?:!important)?\s*(?:;|$)|mso-hide\s*:\s*all)",
)  # these three run on the lower-cased style: IGNORECASE costs several times more
_ZERO_FONT = re.compile(r"(?:^|;)\s*font-size\s*:\s*[01](?:px|pt)?\s*(?:!important)?\s*(?:;|$)", re.I)
_ZERO_BOX = re.compile(r"(?:^|;)\s*(?:height|width)\s*:\s*0(?:px)?\s*(?:!important)?\s*(?:;|$)")
_OVERFLOW_HIDDEN = re.compile(r"overflow\s*:\s*hidden")
_SIZE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+(?:\.\d+)?)\s*px", re.I)

# Open-tracking beacons and ad impressions: hosts and paths used by the common senders.
TRACKER_SRC = re.compile(
    r"""(?:
        /(?:open|opened|track/open|wf/open|trk|trck|beacon|pixel|t\.gif|o\.gif|p\.gif|open\.gif|open\.php|open\.aspx)(?:[/?.]|$)
      | /imp\?
      | (?:spacer|blank|clear|transparent|pixel|1x1|dot)\.(?:gif|png)
      | list-manage\.com/track | mandrillapp\.com/track | sendgrid\.net/wf/ | ct\.sendgrid | substack\.com/o/ | eotrx\.substackcdn
      | google-analytics\.com | doubleclick\.net | liadm\.com | launchbit | (?:^|//)s?li\.[^/]+/imp | beacon\.krxd | pixel\.wp\.com
      | /email/open | mailtrack | open\.convertkit | convertkit-mail\d*\.com/o/ | hubspotemail\.net/e\d*/o | /hs/o/
      | sailthru\.com/trk | /emimp/ | /eo\?| /ea\? | /mo\? | (?:^|//)t\.[^/]+/o/
    )""",
    re.VERBOSE,  # matched against the lower-cased src: IGNORECASE defeats the regex engine's prefix scan
)


def style_hides(style: str) -> bool:
    """True when an inline style keeps the element from being seen."""
    lower = style.lower()
    if not ("none" in lower or "hidden" in lower or "opacity" in lower or "max-height" in lower or "mso-hide" in lower):
        return False  # the common case, decided without a regex
    if _HIDING.search(lower):
        return True
    if _ZERO_BOX.search(lower) and _OVERFLOW_HIDDEN.search(lower):
        return True
    return False


def zero_font(style: str) -> bool:
    compact = style.replace(" ", "")
    if "font-size:0" not in compact and "font-size:1p" not in compact:
        return False
    return bool(_ZERO_FONT.search(style))


def sets_font_size(el: Element) -> bool:
    """True when some descendant sets its own font size (a font-size:0 wrapper is then layout)."""
    for child in el.iterdescendants():
        if isinstance(child.tag, str) and "font-size" in (child.get("style") or "") or (
            child.tag == "font" and child.get("size")
        ):
            return True
    return False


_NUMBER_PX = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$")


def _dimension(el: Element, name: str) -> float | None:
    value = el.get(name)
    if value:
        m = _NUMBER_PX.match(value)
        if m:
            return float(m.group(1))
    style = el.get("style")
    if style:
        for key, number in _SIZE.findall(style):
            if key.lower() == name:
                return float(number)
    return None


def image_size(img: Element) -> tuple[float | None, float | None]:
    """The width and height an image declares (attribute, else inline style), in pixels."""
    return _dimension(img, "width"), _dimension(img, "height")


# Whether TRACKER_SRC matches, mostly with plain substring tests (see phrases.Finder).
_TRACKER_SRC_ANY = Finder(re.sub(r"\s+", "", TRACKER_SRC.pattern))


def is_tracker_image(img: Element, size: tuple[float | None, float | None] | None = None) -> bool:
    """Tracking pixels, spacers and ad beacons; real pictures are kept."""
    src = (img.get("src") or "").strip()
    if not src:
        return True
    width, height = size or image_size(img)
    if (width is not None and width <= 3) or (height is not None and height <= 3):
        return True
    return _TRACKER_SRC_ANY.search(src.lower())


# A rule can only start right after a brace (or at the start): anchoring there keeps a
# failed match from rescanning a long brace-free run from every one of its characters.
_RULE = re.compile(r"(?:^|(?<=[{}]))([^{}]+)\{([^{}]*)\}")
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_BRACE = re.compile(r"[{}]")
_CLASS_SELECTOR = re.compile(r"^\s*(?:[a-z0-9]+)?\.([\w-]+)\s*$", re.IGNORECASE)


def stylesheet_hidden_classes(css: str) -> frozenset[str]:
    """Classes a stylesheet hides for every client (rules inside @media are ignored)."""
    if "/*" in css:
        css = _CSS_COMMENT.sub("", css)
    top = _strip_at_blocks(css)
    hidden: set[str] = set()
    for selectors, body in _RULE.findall(top):
        if not style_hides(body.replace("\n", " ")) or "mso-hide" in body.lower() and "display" not in body.lower():
            continue
        for selector in selectors.split(","):
            m = _CLASS_SELECTOR.match(selector)
            if m:
                hidden.add(m.group(1).lower())
    return frozenset(hidden)


def _strip_at_blocks(css: str) -> str:
    """The stylesheet without nested at-rule blocks (@media, @supports, @font-face ...)."""
    out: list[str] = []
    i, n = 0, len(css)
    while i < n:
        at = css.find("@", i)
        if at < 0:
            out.append(css[i:])
            break
        out.append(css[i:at])
        brace = css.find("{", at)
        semi = css.find(";", at)
        if brace < 0 or (0 <= semi < brace):
            i = (semi + 1) if semi >= 0 else n
            continue
        depth, j = 0, n
        for m in _BRACE.finditer(css, brace):
            if m.group() == "{":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    j = m.start()
                    break
        i = j + 1
    return "".join(out)


def is_icon(img: Element, size: tuple[float | None, float | None] | None = None) -> bool:
    """Tiny images (emoji, bullets, badges) that mean nothing on an e-reader page."""
    width, height = size or image_size(img)
    return width is not None and height is not None and width <= 24 and height <= 24
