"""Unknown senders: the generic rules in the engine do all the work."""

from __future__ import annotations

from .base import Headers, Markup, PlatformRules

RULES = PlatformRules(name="generic")


def detect(headers: Headers, markup: Markup) -> bool:
    return True
