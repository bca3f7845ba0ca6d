"""Per-platform rules: one small module per newsletter platform, tried in order.

Each module has ``detect(headers, markup) -> bool`` and ``RULES`` (a :class:`PlatformRules`).
The first platform that recognises an email wins; ``generic`` takes everything else.
"""

from __future__ import annotations

from . import (
    beehiiv,
    buttondown,
    convertkit,
    generic,
    ghost,
    hubspot,
    mailchimp,
    medium,
    sailthru,
    substack,
)
from .base import Headers, Markup, PlatformRules

# Most specific first: a Substack post may link to Medium, a Ghost site may use Mailgun...
PLATFORMS = (substack, beehiiv, ghost, buttondown, convertkit, medium, hubspot, sailthru, mailchimp)

__all__ = ["Headers", "Markup", "PlatformRules", "PLATFORMS", "detect_platform"]


def detect_platform(headers: Headers, markup: Markup) -> PlatformRules:
    """The rules of the platform that sent this email, or the generic rules."""
    for module in PLATFORMS:
        if module.detect(headers, markup):
            return module.RULES
    return generic.RULES
