"""Recognising open-tracking pixels and spacers before anything is fetched.

Fetching a tracking pixel tells the sender the newsletter was opened (by us,
not by the reader), and the pixel shows nothing. Rules are general shapes
used by many mailing platforms, not addresses from one email.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

TRACKER_MAX_SIDE = 3

_HOST_PATTERNS = [
    re.compile(p)
    for p in (
        r"^email\.mg\d*\.",  # Mailgun tracking domains (email.mg.example.com)
        r"(^|\.)list-manage\d*\.com$",  # Mailchimp (only /track/ paths below; host alone also serves images)
        r"^t\.sidekickopen\d*\.com$",  # HubSpot Sales
        r"(^|\.)sidekickopen\d*\.com$",
        r"^open\.convertkit-mail\d*\.com$",  # Kit / ConvertKit
        r"^eotrx\.substackcdn\.com$",  # Substack opens
        r"(^|\.)google-analytics\.com$",
        r"^pixel\.",
        r"^(open|opens|track|tracking|trk|beacon)\.[^.]+\.[^.]+",  # open.<esp>.com style hosts
    )
]
# Mailchimp serves real images from list-manage hosts too, so the host rule above
# is narrowed for it: the host must also match a tracking path.
_HOST_NEEDS_PATH = re.compile(r"(^|\.)list-manage\d*\.com$")

_URL_PATTERNS = [
    re.compile(p, re.I)
    for p in (
        r"/track/open",  # Mailchimp and many others
        r"/trk/open",
        r"/wf/open",  # SendGrid
        r"/ss/o/",  # beehiiv
        r"/e/o/",  # Customer.io
        r"/e[12]t/o/",  # HubSpot
        r"/open\?token=",  # Substack
        r"/open(\.(php|aspx?|gif|png|jpg))?(\?|$)",  # ".../open", ".../open.php?u=..."
        r"/opens?/(?![^/?]*\.(jpe?g|png|webp|avif|svg)(\?|$))[^/?]+/?(\?|$)",  # ".../open/<token>"
        r"/(email-)?open-?track",
        r"/o\.gif",  # Campaign Monitor and friends
        r"/pixel(\.(gif|png))?(\?|$)",
        r"/(tracking-?)?pixel[^/]*\.(gif|png)",
        r"/(spacer|blank|clear|transparent|1x1|dot|beacon)\.(gif|png)(\?|$)",
        r"/beacon(/|\?|$)",
        r"/__utm\.gif",
        r"/collect\?(.*&)?t=event",  # Google Analytics measurement protocol
        r"[?&]event=email\.opened",  # Medium
        r"/_/stat\?",
        r"/imp\?",  # impression beacons (e.g. LiveIntent ad slots)
    )
]


def is_tracker_url(url: str) -> bool:
    """True for URLs whose shape says open-tracking pixel, whatever the platform."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    rest = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    if any(p.search(rest) for p in _URL_PATTERNS):
        return True
    if _HOST_NEEDS_PATH.search(host):
        return "/track/" in rest.lower()
    return any(p.search(host) for p in _HOST_PATTERNS)


_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(px)?\s*$", re.I)
_STYLE_SIZE = re.compile(r"(?:^|;)\s*(width|height|max-width|max-height)\s*:\s*([^;]+)", re.I)
_HIDDEN = re.compile(r"(?:^|;)\s*(display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:;|$)", re.I)


def _pixels(value: str | None) -> float | None:
    match = _LENGTH.match(value or "")
    return float(match.group(1)) if match else None


def is_tracker_element(attributes: dict[str, str]) -> bool:
    """True for an <img> declared tiny (<= 3 px on a side) or hidden: a pixel or a spacer."""
    sizes = [_pixels(attributes.get("width")), _pixels(attributes.get("height"))]
    style = attributes.get("style") or ""
    for _name, value in _STYLE_SIZE.findall(style):
        sizes.append(_pixels(value))
    if any(size is not None and size <= TRACKER_MAX_SIDE for size in sizes):
        return True
    return bool(_HIDDEN.search(style))
