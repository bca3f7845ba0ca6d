"""Sailthru (Bloomberg, Morning Brew ...): ad slots and referral blocks around long editorial issues."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="sailthru",
    drop_classes=frozenset({"core_hidden", "sponsor-label", "referral", "refer"}),
    drop_text=phrases(r"\bsailthru\b"),
    drop_href=phrases(r"sailthru\.com/(?:manage|unsubscribe|oc/|optout)", r"/refer(?:ral)?(?:[/?]|$)"),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("sailthru", "sailthru.com"), "x-mailer", "feedback-id", "list-unsubscribe",
                           "x-sailthru-id", "x-tm-id", "return-path"):
        return True
    source = markup.source
    return "sailthru" in source
