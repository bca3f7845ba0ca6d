"""Ghost: the view-online link, feedback buttons, "powered by Ghost" footer; kg- cards are content."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="ghost",
    drop_classes=frozenset({
        "view-online", "view-online-link", "preheader", "footer", "footer-powered", "gh-powered",
        "feedback-buttons", "feedback-button", "latest-posts-header", "latest-post", "subscription-box",
        "comment-button", "share-button",
    }),
    keep_classes=frozenset({"post-content", "post-content-sans-serif"}),
    drop_text=phrases(r"\bpowered by ghost\b", r"\bmore like this\b|\bless like this\b"),
    drop_href=phrases(r"ghost\.org/?(?:\?|$)", r"#/portal/(?:signup|account|support)", r"[?&]uuid=.*&key=.*(?:feedback|unsubscribe)"),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("ghost",), "x-mailer", "x-mailgun-tag", "x-clean-sender"):
        return True
    source = markup.source
    return 'class="kg-' in source or "gh-powered" in source or (
        "ghost" in source and ("ghost.org" in source or ".ghost.io" in source)
    )
