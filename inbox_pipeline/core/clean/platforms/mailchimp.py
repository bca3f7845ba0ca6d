"""Mailchimp: preview text, follow/share blocks, the template footer with *|LIST:ADDRESS|*."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules, any_header_contains, phrases

RULES = PlatformRules(
    name="mailchimp",
    drop_classes=frozenset({
        "mcnpreviewtext", "mcnfollowblock", "mcnfollowcontent", "mcnshareblock", "mcnsharecontent",
        "footercontainer", "monkeyrewards", "hcard-download",
    }),
    drop_ids=frozenset({"templatefooter", "templatepreheader", "awesomewrap"}),
    keep_classes=frozenset({"mcntextcontent"}),
    drop_text=phrases(r"\bmailchimp\b", r"\*\|[a-z_:]+\|\*"),
    drop_href=phrases(
        r"list-manage\.com/(?:unsubscribe|profile|vcard|track)", r"us\d+\.campaign-archive", r"mailchi\.mp/.{0,80}\?e=",
        r"\*\|(?:unsub|update_profile|forward|archive|list:url)\|\*", r"mailchimp\.com/(?:monkey-rewards|\?)",
    ),
)


def detect(headers: Headers, markup: Markup) -> bool:
    if any_header_contains(headers, ("mailchimp", "list-manage.com", ":mc", "mcsv.net", "mcdlv.net"), "x-mailer",
                           "list-unsubscribe", "feedback-id", "x-mc-user", "return-path"):
        return True
    source = markup.source
    return "list-manage.com" in source or "mcusercontent.com" in source or "mcntextcontent" in source or "mailchi.mp" in source
