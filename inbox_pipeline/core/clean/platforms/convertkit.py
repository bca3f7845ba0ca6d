"""Kit (ConvertKit): referral and "forwarded? subscribe" boxes, the Kit badge and footer."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="convertkit",
    drop_classes=frozenset({"preheader", "footer", "ck-footer", "email-footer", "referral", "ck-referral"}),
    drop_text=phrases(r"\bconvertkit\b", r"\bbuilt with kit\b", r"\bkit\.com\b"),
    drop_href=phrases(r"convertkit\.com/?(?:\?|$)", r"kit\.com/?(?:\?|$)", r"/referrals?(?:[/?]|$)", r"ck\.page/.{0,40}(?:subscribe|referral)"),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("convertkit", "kit-mail", ":ck"), "list-unsubscribe", "feedback-id", "x-mailer",
                           "x-clean-sender", "return-path"):
        return True
    source = markup.source
    return "convertkit" in source or "ck.page" in source or "kit-mail" in source or "kit.com/" in source
