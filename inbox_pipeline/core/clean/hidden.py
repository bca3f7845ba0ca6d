"""What a mail client would not show: hidden preheaders, tracking pixels, Outlook-only parts."""

from __future__ import annotations

import re

from .dom import Element


_HIDING = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0(?:\.0+)?\s*(?:!important)?\s*(?:;|$)"
    r"|max-height\s*:\s*0(?:px|em|%)?\s*(?:!important)?\s*(?:;|$)|mso-hide\s*:\s*all)",
    re.IGNORECASE,
)
_ZERO_FONT = re.compile(r"(?:^|;)\s*font-size\s*:\s*[01](?:px|pt)?\s*(?:!important)?\s*(?:;|$)", re.I)
_ZERO_BOX = re.compile(r"(?:^|;)\s*(?:height|width)\s*:\s*0(?:px)?\s*(?:!important)?\s*(?:;|$)", re.I)
_OVERFLOW_HIDDEN = re.compile(r"overflow\s*:\s*hidden", re.I)
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
    re.IGNORECASE | re.VERBOSE,
)


def style_hides(style: str) -> bool:
    """True when an inline style keeps the element from being seen."""
    lower = style.lower()
    if not ("none" in lower or "hidden" in lower or "opacity" in lower or "max-height" in lower or "mso-hide" in lower):
        return False  # the common case, decided without a regex
    if _HIDING.search(style):
        return True
    if _ZERO_BOX.search(style) and _OVERFLOW_HIDDEN.search(style):
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


def _dimension(el: Element, name: str) -> float | None:
    value = el.get(name)
    if value:
        m = re.match(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", value)
        if m:
            return float(m.group(1))
    for key, number in _SIZE.findall(el.get("style") or ""):
        if key.lower() == name:
            return float(number)
    return None


def is_tracker_image(img: Element) -> bool:
    """Tracking pixels, spacers and ad beacons; real pictures are kept."""
    src = (img.get("src") or "").strip()
    if not src:
        return True
    width, height = _dimension(img, "width"), _dimension(img, "height")
    if (width is not None and width <= 3) or (height is not None and height <= 3):
        return True
    return bool(TRACKER_SRC.search(src))


_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_CLASS_SELECTOR = re.compile(r"^\s*(?:[a-z0-9]+)?\.([\w-]+)\s*$", re.IGNORECASE)


def stylesheet_hidden_classes(css: str) -> frozenset[str]:
    """Classes a stylesheet hides for every client (rules inside @media are ignored)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
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
        depth, j = 0, brace
        while j < n:
            if css[j] == "{":
                depth += 1
            elif css[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1
    return "".join(out)


def is_icon(img: Element) -> bool:
    """Tiny images (emoji, bullets, badges) that mean nothing on an e-reader page."""
    width, height = _dimension(img, "width"), _dimension(img, "height")
    return width is not None and height is not None and width <= 24 and height <= 24
