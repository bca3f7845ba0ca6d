"""The result of cleaning one newsletter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CleanedArticle:
    html: str  # an XHTML body fragment: well-formed XML once wrapped in one element
    platform: str  # "substack", "beehiiv", ..., or "generic"
    title: str | None
    words: int
    language: str  # a BCP 47 tag for dc:language
    removed: int  # how many blocks of clutter were removed, for the summary
