"""beehiiv: referral blocks, "read online", the beehiiv badge and footer."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="beehiiv",
    drop_classes=frozenset({"copyright", "referral", "referral-program", "footer", "web-header"}),
    drop_text=phrases(r"\bbeehiiv\b", r"\breferrals?\b", r"\brefer (?:\d+|more|your)\b"),
    drop_href=phrases(r"beehiiv\.com/?(?:\?|$)", r"/referrals?(?:[/?]|$)", r"/subscribe\?ref", r"/upgrade(?:[/?]|$)"),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("beehiiv",), "list-id", "list-unsubscribe", "feedback-id", "x-mailer",
                           "x-clean-sender", "from", "x-beehiiv-type"):
        return True
    source = markup.source
    return "beehiiv" in source and ("beehiiv.com" in source or "beehiiv.net" in source)
