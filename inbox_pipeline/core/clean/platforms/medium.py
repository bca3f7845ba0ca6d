"""Medium: story emails and notices; sign-in, membership and settings links are clutter."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="medium",
    drop_text=phrases(r"\bsent by medium\b", r"\bmedium member\b", r"\bbecome a member\b", r"\bclap\b"),
    drop_href=phrases(r"medium\.com/(?:me/|m/signin|plans|membership|m/global-identity)", r"medium\.com/[^\s]*\?source=email[^\s]*(?:footer|settings)"),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("medium.com",), "from", "reply-to", "sender", "x-clean-sender", "return-path",
                           "list-unsubscribe"):
        return True
    source = markup.source
    return "medium.com" in source and (
        "miro.medium.com" in source or "cdn-images-1.medium.com" in source or "medium.com/me/" in source
    )
