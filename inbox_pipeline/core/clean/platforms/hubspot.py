"""HubSpot: the hse pre-header and footer, social follow and sharing modules."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="hubspot",
    drop_classes=frozenset({
        "hse-pre-header", "hse-footer", "hs_cos_wrapper_type_social_sharing", "hs_cos_wrapper_type_follow_me",
        "hse-social", "hs-social", "hubspot-social",
    }),
    drop_ids=frozenset({"hs_cos_wrapper_preview_text"}),
    drop_text=phrases(r"\bhubspot\b"),
    drop_href=phrases(r"hubspotlinks?\.com/[^\s]*(?:unsubscribe|preferences)", r"/hs/(?:manage-preferences|preferences-center)", r"hubspot\.com/?(?:\?|$)"),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("hubspot", "hubspotemail", "hs-email"), "x-mailer", "feedback-id",
                           "list-unsubscribe", "return-path", "x-hs-cid", "x-report-abuse-to"):
        return True
    source = markup.source
    return "hs_cos_wrapper" in source or 'class="hse-' in source or (
        "hubspot" in source and ("hubspotlinks" in source or "hubspotemail.net" in source)
    )
