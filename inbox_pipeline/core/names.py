"""File names that Send-to-Kindle and every mail client accept.

Light on purpose: the mailer seam (on Dagster's load path) names attachments with these.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def safe_file_name(title: str, date: datetime | None = None, *, suffix: str = ".epub", limit: int = 48) -> str:
    """A short ASCII file name Send-to-Kindle and every mail client accept."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = _UNSAFE.sub("-", ascii_title).strip("-").lower() or "newsletter"
    prefix = f"{date:%Y-%m-%d}-" if date else ""
    stem = shorten_name(stem, max(8, limit - len(prefix) - len(suffix)))
    return f"{prefix}{stem}{suffix}"


_WORD_GAP = re.compile(r"[-._]+")


def shorten_name(stem: str, room: int) -> str:
    """``stem`` cut to ``room`` characters between words: a half word reads as another ("...-on-a-shoes")."""
    if len(stem) <= room:
        return stem
    gaps = [m.start() for m in _WORD_GAP.finditer(stem, 0, room + 1) if m.start() > 0]
    return stem[: gaps[-1]] if gaps else stem[:room]
