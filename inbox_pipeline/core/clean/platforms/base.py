"""What a platform module provides: how to recognise its emails and what to drop or keep."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree


Element = etree._Element
Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Markup:
    """The parsed email as platform detectors see it: the tree and the lower-cased source."""

    root: Element
    source: str  # the HTML with ASCII letters lower-cased (signatures are ASCII), for cheap checks


@dataclass(frozen=True)
class PlatformRules:
    name: str
    # Elements carrying any of these class tokens (or ids) are clutter on this platform.
    drop_classes: frozenset[str] = frozenset()
    drop_ids: frozenset[str] = frozenset()
    # Elements carrying these class tokens hold the article: never dropped by phrase rules.
    keep_classes: frozenset[str] = frozenset()
    # Extra phrases that mark a short block as clutter (searched, case-insensitive).
    drop_text: re.Pattern[str] | None = None
    # Links whose href matches are clutter (buttons, referral, app links).
    drop_href: re.Pattern[str] | None = None
    notes: tuple[str, ...] = field(default=())


def header_values(headers: Headers, *names: str) -> str:
    """The values of the named headers, joined and lower-cased."""
    wanted = {n.lower() for n in names}
    return " ".join(value for key, value in headers if key.lower() in wanted).lower()


def any_header_contains(headers: Headers, needles: tuple[str, ...], *names: str) -> bool:
    values = header_values(headers, *names) if names else " ".join(
        f"{k}: {v}" for k, v in headers
    ).lower()
    return any(needle in values for needle in needles)


def phrases(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.UNICODE)
