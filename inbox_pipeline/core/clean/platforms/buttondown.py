"""Buttondown: plain Markdown emails; the footer carries the Buttondown links."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="buttondown",
    drop_classes=frozenset({"footer", "email-footer", "buttondown-footer", "subscribe-form"}),
    drop_text=phrases(r"\bbuttondown\b"),
    drop_href=phrases(r"buttondown\.(?:email|com)/(?:[\w.-]+/)?(?:unsubscribe|management|subscribe|refer|archive)"),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("buttondown",), "list-id", "list-unsubscribe", "x-mailer", "x-clean-sender",
                           "from", "return-path"):
        return True
    source = markup.source
    return "buttondown" in source and ("buttondown.email" in source or "buttondown.com" in source)
