"""Substack: like/comment/restack bars, subscribe widgets, app links, the Substack footer."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="substack",
    drop_classes=frozenset({
        "post-ufi", "post-ufi-button", "email-ufi", "email-ufi-2-top", "email-ufi-2-bottom",
        "email-ufi-2-row", "subscribe-widget", "subscription-widget", "subscription-widget-wrap",
        "subscribe-btn", "footer", "footer-wrap", "powered-by-substack", "post-meta-button",
        "meta-button-label", "email-icon-button", "preview",
    }),
    keep_classes=frozenset({"markup", "available-content"}),
    drop_text=phrases(
        r"\bthis post is public\b",
        r"\bsubscribe for free to (?:receive|get|support)\b",
        r"\bstart writing\b",
        r"\bpaid subscri(?:ber|ption)s? (?:get|unlock)\b",
        r"\bget the app\b",
    ),
    drop_href=phrases(
        r"[?&]action=(?:share|restack|open-app|like|comment|subscribe|upgrade|pledge)",
        r"utm_content=(?:share|subscribe|comment_button|like_button|restack)",
        r"/app-link/", r"substack\.com/(?:app|refer|subscribe|sign-in)", r"/subscribe\?",
    ),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("substack",), "list-id", "list-unsubscribe", "feedback-id",
                           "x-mailgun-tag", "x-clean-sender", "from"):
        return True
    source = markup.source
    # Each test scans the whole source: the common word first, the variants only when it is there.
    return "substack" in source and (
        "substackcdn.com" in source or "substack.com/redirect" in source or source.count("substack.com") >= 5
    )
