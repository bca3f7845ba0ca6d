"""The one sanitiser (core/xhtml.py) and what makes every book valid: URLs, metadata, file names."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone

import pytest
from lxml import etree

from inbox_pipeline.core.clean import clean_html
from inbox_pipeline.core.convert import safe_file_name
from inbox_pipeline.core.digest import digest_file_name
from inbox_pipeline.core.epub import Book, Chapter, build_epub
from inbox_pipeline.core.xhtml import clean_url, sanitize_fragment
from inbox_pipeline.seams.mailer import safe_file_name as attachment_name

WHEN = datetime(2026, 3, 3, 7, 15, tzinfo=timezone.utc)
NS = {"dc": "http://purl.org/dc/elements/1.1/", "x": "http://www.w3.org/1999/xhtml"}
BRACKETS = "https://shop.example/search?tags[]=apple&tags[]=old#top[1]"
BIDI_TITLE = "Weekly \u202egnp.exe\u202c notes\u2066 on\u2069 apples\x07\u200f"


def links(fragment: str) -> dict[str, str | None]:
    root = etree.fromstring(f"<div>{fragment}</div>")
    return {"".join(a.itertext()): a.get("href") for a in root.iter("a")}


def test_hrefs_are_valid_urls_or_the_link_goes_and_its_text_stays() -> None:
    html = (
        f'<p><a href="{BRACKETS}">tagged</a> <a href="javascript:alert(1)">script</a> '
        '<a href="/relative/page">relative</a> <a href="https://bad host.example/">spaced host</a> '
        '<a href="https://caf\u00e9.example/men\u00fc?q=a b">unicode</a> <a href="mailto:ed%itor@x.example">mail</a></p>'
    )
    out = sanitize_fragment(html)
    assert links(out) == {
        "tagged": "https://shop.example/search?tags%5B%5D=apple&tags%5B%5D=old#top%5B1%5D",
        "unicode": "https://xn--caf-dma.example/men%C3%BC?q=a%20b",
        "mail": "mailto:ed%25itor@x.example",
    }
    assert "script" in out and "relative" in out and "spaced host" in out  # the text stays, unlinked
    assert "[" not in "".join(href for href in links(out).values() if href)


@pytest.mark.parametrize("href", ["https://[::1]/", "http://", "https://user:pw@host.example/", "ftp://x.example/f"])
def test_urls_that_cannot_be_made_valid_are_refused(href: str) -> None:
    assert clean_url(href) is None


def test_images_kept_as_written_or_mapped_to_the_book() -> None:
    html = '<p><img src="cid:a@x" alt="A"><img src="https://cdn.example/b.jpg" alt="B"><img src="" alt="C"></p>'
    kept = etree.fromstring(f"<div>{sanitize_fragment(html)}</div>")
    assert [img.get("src") for img in kept.iter("img")] == ["cid:a@x", "https://cdn.example/b.jpg"]
    mapped = sanitize_fragment(html, images={"cid:a@x": "images/c001-001.png"})
    assert '<img src="images/c001-001.png" alt="A"/>' in mapped
    assert "[B]" in mapped and "cdn.example" not in mapped  # a remote image leaves its alt text


def test_the_cleaner_uses_the_same_sanitiser() -> None:
    article = clean_html(
        "<html><body><div class='post'><p style='color:red' class='x' onclick='evil()'>A long enough paragraph "
        f"about apples and the <a href=\"{BRACKETS}\" target=_blank>tagged archive</a> of the orchard.</p>"
        "<form><p>Kept words</p></form></div></body></html>"
    )
    assert 'href="https://shop.example/search?tags%5B%5D=apple&amp;tags%5B%5D=old#top%5B1%5D"' in article.html
    assert "class=" not in article.html and "style=" not in article.html and "onclick" not in article.html
    assert article.html == sanitize_fragment(article.html)  # already what the book's writer makes of it


def bidi_book() -> Book:
    chapter = Chapter(
        title=BIDI_TITLE,
        body_html=f'<p>Apples in <a href="{BRACKETS}">the archive</a>.</p>',
        author="Ev\u202eil\u202c Sender",
        date=WHEN,
    )
    return Book.for_newsletter(
        message_id="<bidi@x.example>", title=BIDI_TITLE, sender="Ev\u202eil\u202c Sender\x1b", date=WHEN,
        language="en", chapter=chapter,
    )


def test_metadata_loses_control_and_bidi_characters() -> None:
    epub = zipfile.ZipFile(io.BytesIO(build_epub(bidi_book())))
    opf = etree.fromstring(epub.read("EPUB/content.opf"))
    assert opf.findtext(".//dc:title", namespaces=NS) == "Weekly gnp.exe notes on apples"
    assert opf.findtext(".//dc:creator", namespaces=NS) == "Evil Sender"
    for name in ("EPUB/c001.xhtml", "EPUB/nav.xhtml", "EPUB/toc.ncx"):
        text = epub.read(name).decode("utf-8")
        assert not any(ch in text for ch in "\u202e\u202c\u2066\u2069\u200f\x07\x1b"), name
    chapter = etree.fromstring(epub.read("EPUB/c001.xhtml"))
    assert chapter.findtext(".//x:h1", namespaces=NS) == "Weekly gnp.exe notes on apples"


def test_books_with_brackets_and_bidi_pass_epubcheck(java_available: bool) -> None:
    from inbox_pipeline.core.epubcheck import run_epubcheck

    report = run_epubcheck(build_epub(bidi_book()))
    assert report.ok and report.errors == [] and report.fatals == [], report.summary()


@pytest.mark.parametrize(
    "title, expected",
    [
        ("How to walk on a shoestring budget through the old town", "2026-03-03-how-to-walk-on-a-shoestring.epub"),
        ("Short", "2026-03-03-short.epub"),
        ("Supercalifragilisticexpialidociousnessandmore of it", "2026-03-03-supercalifragilisticexpialidocio.epub"),
    ],
)
def test_file_names_are_cut_between_words(title: str, expected: str) -> None:
    assert safe_file_name(title, WHEN) == expected
    assert attachment_name(expected) == expected  # the mailer keeps it whole


def test_attachment_and_digest_names_are_cut_between_words() -> None:
    assert attachment_name("how-to-walk-on-a-shoestring-budget-through-the-old-town.epub") == (
        "how-to-walk-on-a-shoestring-budget-through.epub"
    )
    name = digest_file_name("Every other Thursday afternoon reading", WHEN, 2, 3)
    assert name == "2026-03-03-every-other-thursday-vol-2-of-3.epub"
    assert attachment_name(name) == name
