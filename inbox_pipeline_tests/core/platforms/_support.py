"""What every platform test checks: the reader's text, and what must be gone."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from inbox_pipeline.core.clean import CleanedArticle, clean_html
from inbox_pipeline_tests.helpers import normalise

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "clean"


def clean_fixture(name: str, headers: tuple[tuple[str, str], ...] = (), subject: str | None = None) -> CleanedArticle:
    return clean_html((FIXTURES / name).read_text(encoding="utf-8"), headers=headers, subject=subject)


def assert_recognised(platform: str, headers: tuple[tuple[str, str], ...]) -> None:
    """``<platform>.html`` is recognised as ``platform`` by its markup alone, and with its sender's headers."""
    assert clean_fixture(f"{platform}.html").platform == platform
    assert clean_fixture(f"{platform}.html", headers=headers).platform == platform


def body_text(article: CleanedArticle) -> str:
    """The article's body text (normalised), parsed as XML to prove it is well-formed."""
    root = etree.fromstring(f"<div>{article.html}</div>")
    return normalise("".join(root.itertext()))


def reader_text(article: CleanedArticle) -> str:
    """What a reader sees of the chapter: its heading (the title), then the body."""
    return normalise(article.title or "") + body_text(article)


def assert_title_once(article: CleanedArticle, title: str) -> None:
    """The title is the chapter's heading and is not repeated in the body."""
    assert normalise(article.title or "") == normalise(title)
    assert normalise(title) not in body_text(article), "the title is repeated in the body"


def assert_kept(article: CleanedArticle, *phrases: str) -> None:
    text = reader_text(article)
    missing = [p for p in phrases if normalise(p) not in text]
    assert not missing, f"article text lost: {missing}"


def assert_dropped(article: CleanedArticle, *phrases: str) -> None:
    text = reader_text(article)
    present = [p for p in phrases if normalise(p) in text]
    assert not present, f"clutter left in: {present}"
