"""Proving a Kindle address is ready: a tiny test book, and a look at how guessable the address is."""

from __future__ import annotations

import re
from datetime import datetime

from inbox_pipeline.core.epub import Book, Chapter, build_epub, identifier_for
from inbox_pipeline.core.epub.chapter import escape

# Amazon asks the owner to confirm every document sent to an address that is easy to guess
# (https://www.amazon.com/sendtokindle/email: add a few random characters to your address).
_NAME_LIKE = re.compile(r"^[a-z]+(?:[._-]?[a-z]+)?$")


def guessable(kindle_address: str, user_email: str) -> str | None:
    """Why ``kindle_address`` looks guessable (a reason to show the user), or None."""
    local = kindle_address.rpartition("@")[0].lower()
    own = user_email.rpartition("@")[0].lower()
    if local and local == own:
        return "it is the same as the first part of your own email address"
    if len(local) < 8:
        return "it is short"
    if _NAME_LIKE.match(local) and not re.search(r"\d", local):
        return "it looks like a name, with no random characters"
    return None


def test_book(*, sender: str, kindle_address: str, when: datetime) -> bytes:
    """A one-page EPUB that says which address sent it and to which Kindle."""
    title = "Your Kindle is ready for your newsletters"
    body = (
        f"<p>This test book was sent by <b>{escape(sender)}</b> to <b>{escape(kindle_address)}</b>.</p>"
        "<p>If you can read it on your Kindle, your newsletters will arrive here too.</p>"
    )
    return build_epub(
        Book(
            identifier=identifier_for(f"kindle-check {kindle_address} {when.isoformat()}"),
            title=title,
            creator="inbox-pipeline",
            language="en",
            date=when,
            chapters=(Chapter(title=title, body_html=body, date=when),),
            safe_mode=True,  # nothing in it that Amazon's converter could trip on
        )
    )
