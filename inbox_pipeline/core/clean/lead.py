"""The head of the article: its title shown once, no masthead.

The book gives every chapter a heading (the title) and a byline (sender and date), so the
same title repeated at the top of the body, and the newsletter's name standing alone above
it as a link to the site, are read twice. Only the first few text blocks are looked at.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .dom import BLOCK_TAGS, Element, collapse, drop_tree, letters, text_of

LEAD_LETTERS = 400  # how far into the body the title and masthead may sit
LEAD_BLOCKS = 8
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def _key(text: str) -> str:
    return _NOT_WORD.sub("", text.lower())


def _repeats_title(key: str, title: str) -> bool:
    """The block says nothing the title does not: the same words, or most of them ("Issue 18:
    X" and "X"). A block saying more ("Notes from <title>") is kept."""
    return bool(key) and key in title and len(key) >= 0.6 * len(title)


def _leaf_blocks(body: Element):
    """Blocks holding text but no other block, in document order."""
    for el in body.iterdescendants():
        if el.tag.__class__ is str and el.tag in BLOCK_TAGS and not any(
            child.tag.__class__ is str and child.tag in BLOCK_TAGS for child in el.iterdescendants()
        ):
            yield el


def _links_home(block: Element, text: str, site: str) -> bool:
    """The block is one link, its words all linked, to the home page of the sender's ``site``."""
    links = list(block.iter("a"))
    if not site or len(links) != 1 or collapse(text_of(links[0])) != text:
        return False
    try:
        parts = urlsplit((links[0].get("href") or "").strip())
    except ValueError:
        return False
    host = (parts.hostname or "").removeprefix("www.")
    return (host == site or host.endswith("." + site)) and parts.path in ("", "/")


def drop_repeated_title(body: Element, title: str | None, names: tuple[str, ...], site: str = "") -> int:
    """Remove a leading repeat of ``title`` and a masthead (one of ``names``, or a link to the
    home page of ``site``, the sender's domain); how many went."""
    title_key = _key(title or "")
    name_keys = {key for key in map(_key, names) if key}
    if not title_key and not name_keys and not site:
        return 0
    total = letters(text_of(body))
    doomed: list[Element] = []
    seen = blocks = 0
    title_done = not title_key
    # Lazily: only the first few blocks are read. Leaf blocks never nest, so dropping them
    # after the walk changes nothing the walk reads.
    for block in _leaf_blocks(body):
        text = collapse(text_of(block))
        size = letters(text)
        if not size:
            continue
        key = _key(text)
        alone = size * 2 < total  # never empty the article
        if not title_done and size <= 200 and alone and _repeats_title(key, title_key):
            title_done = True
            doomed.append(block)
        elif size <= 60 and alone and (key in name_keys or _links_home(block, text, site)):
            doomed.append(block)
        else:
            seen += size
            blocks += 1
        if seen > LEAD_LETTERS or blocks >= LEAD_BLOCKS:
            break
    for block in doomed:
        drop_tree(block)
    return len(doomed)
