"""Newsletters for the Dagster tests, written for this project in Substack / Ghost / Beehiiv shapes."""

from __future__ import annotations

from inbox_pipeline_tests.helpers import email_message, via_ses

TOPICS = [
    ("Ferries", "the night ferry that still carries the post to the outer islands"),
    ("Orchards", "grafting old apple varieties onto young rootstock in a cold spring"),
    ("Typography", "why the printers of the river town kept a second set of italics"),
    ("Bridges", "a footbridge that was meant to last ten years and is now a hundred"),
    ("Beekeeping", "moving hives by moonlight so the foragers come home to the right box"),
    ("Clocks", "the tower clock that runs four minutes fast on purpose"),
    ("Maps", "a surveyor who drew the marsh paths from memory after the flood"),
    ("Bread", "sourdough starters passed between neighbours for three generations"),
    ("Weather", "a lighthouse keeper's rainfall diary and the winters it remembers"),
    ("Libraries", "the mobile library that parks by the quarry every second Thursday"),
]

PLATFORMS = ("substack", "ghost", "beehiiv")


def article_html(n: int, topic: str, line: str, platform: str) -> str:
    paragraphs = "".join(
        f"<p>Part {k} of issue {n}: {line}. The people who remember it best are not the ones who built it but "
        f"the ones who kept it going, season after season, long after the reason for it had changed. "
        f"Note {k}: every detail here was gathered on foot.</p>"
        for k in range(1, 7)
    )
    body = f"<h1>{topic}, issue {n}</h1><h2>On {line}</h2>{paragraphs}<blockquote><p>Keep going, said the keeper.</p></blockquote>"
    if platform == "substack":
        return (
            '<html><body><div style="display:none">preview text</div><table><tr><td>'
            f'<p><a href="https://example-{n}.substack.com/p/x?view=browser">View in browser</a></p>'
            f'<div class="body markup">{body}</div>'
            '<p><a href="https://example.substack.com/subscribe">Subscribe now</a></p>'
            '<p><a href="https://example.substack.com/action/disable_email">Unsubscribe</a></p>'
            '<img src="https://email.example.substack.com/o/open.gif" width="1" height="1" alt="">'
            "</td></tr></table></body></html>"
        )
    if platform == "ghost":
        return (
            '<html><body><table class="body"><tr><td class="container">'
            f'<div class="post-content">{body}</div>'
            '<div class="footer"><a href="https://example.ghost.io/unsubscribe/">Unsubscribe</a> '
            '<a href="https://ghost.org/">Powered by Ghost</a></div></td></tr></table></body></html>'
        )
    return (
        '<html><body><table role="presentation"><tr><td>'
        f"{body}"
        '<p style="font-size:11px"><a href="https://example.beehiiv.com/unsubscribe">unsubscribe</a></p>'
        '<p><a href="https://www.beehiiv.com/">Powered by beehiiv</a></p></td></tr></table></body></html>'
    )


def message_id(n: int, platform: str | None = None) -> str:
    topic, _ = TOPICS[n % len(TOPICS)]
    return f"issue-{n}-{topic.lower()}@{platform or PLATFORMS[n % len(PLATFORMS)]}.example"


def subject(n: int) -> str:
    topic, line = TOPICS[n % len(TOPICS)]
    return f"{topic} #{n}: {line}"


def newsletter(n: int, to: str, *, msgid: str | None = None, platform: str | None = None) -> bytes:
    topic, line = TOPICS[n % len(TOPICS)]
    platform = platform or PLATFORMS[n % len(PLATFORMS)]
    msg = email_message(
        sender=f'"{topic} Weekly" <letters@{topic.lower()}-{platform}.example>',
        to=to,
        subject=subject(n),
        date=f"Mon, 02 Mar 2026 {6 + n % 12:02d}:{n % 60:02d}:00 +0000",
        message_id=msgid or f"<{message_id(n, platform)}>",
        text=f"{topic} #{n}: {line}.",
        list_unsubscribe=f"<https://{topic.lower()}.example/unsubscribe?n={n}>",
    )
    msg.add_alternative(article_html(n, topic, line, platform), subtype="html")
    return via_ses(msg.as_bytes(), to)


def confirmation(to: str, *, n: int = 1) -> bytes:
    link = f"https://tidetables.example/confirm?token=tok-{n}"
    msg = email_message(
        sender='"Tide Tables Digest" <hello@tidetables.example>',
        to=to,
        subject="Please confirm your subscription to Tide Tables Digest",
        date="Tue, 03 Mar 2026 09:00:00 +0000",
        message_id=f"<confirm-{n}@tidetables.example>",
        text=f"Please confirm your subscription:\n{link}\n",
    )
    msg.add_alternative(
        f'<html><body><p>Please confirm your subscription to Tide Tables Digest.</p>'
        f'<p><a href="{link}">Confirm my subscription</a></p></body></html>',
        subtype="html",
    )
    return via_ses(msg.as_bytes(), to)


CONFIRM_LINK = "https://tidetables.example/confirm?token=tok-{n}"
