"""Digest books: chapters from stored EPUBs, volumes under a byte budget, grouped TOC, dated cover."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone

import pytest
from lxml import etree

from inbox_pipeline.core.digest import (
    DigestInputError,
    build_digest_volumes,
    chapter_from_epub,
    estimate_chapter_bytes,
    pack_volumes,
)
from inbox_pipeline.core.epub import Book, Chapter, build_epub
from inbox_pipeline.core.images import EpubImage
from inbox_pipeline_tests.helpers import epub_chapter_texts, noise_jpeg, normalise

DAY = datetime(2026, 10, 25, 12, tzinfo=timezone.utc)
SENDERS = ("The Harbour Log", "Field Notes", "Workshop Weekly")


def newsletter_epub(n: int, sender: str, image: bytes | None = None) -> bytes:
    """A single-newsletter book as the per-email job stores it."""
    figure = f'<figure><img src="images/photo{n}.jpg" alt="Photo {n}"/><figcaption>Caption {n}</figcaption></figure>'
    chapter = Chapter(
        title=f"Issue {n} of {sender}",
        body_html=f"<h1>Issue {n} of {sender}</h1><p>Text of issue {n}: mark{n:03d}.</p>"
        f"<ul><li>one</li><li>two &amp; three</li></ul>" + (figure if image else ""),
        images=(EpubImage(f"images/photo{n}.jpg", "image/jpeg", image),) if image else (),
        author=sender,
        date=DAY,
        group=sender,
    )
    return build_epub(Book.for_newsletter(f"issue-{n}@example.org", chapter.title, sender, DAY, "en", chapter))


def chapters(count: int, *, image_side: int = 0) -> list[Chapter]:
    out = []
    for n in range(1, count + 1):
        sender = SENDERS[(n - 1) % len(SENDERS)]
        image = noise_jpeg(image_side, n, quality=85) if image_side else None
        out.append(
            chapter_from_epub(
                newsletter_epub(n, sender, image), author=sender, date=DAY, message_id=f"issue-{n}@example.org"
            )
        )
    return out


def marks(epub: bytes) -> list[str]:
    found = []
    for text in epub_chapter_texts(epub):
        words = normalise(text).split("mark")[1:]
        found += [f"mark{w[:3]}" for w in words if w[:3].isdigit()]
    return found


def opf(epub: bytes) -> etree._Element:
    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        path = etree.fromstring(zf.read("META-INF/container.xml")).find(".//{*}rootfile").get("full-path")
        return etree.fromstring(zf.read(path))


def read(epub: bytes, suffix: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(suffix)))


# --- packing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "budget", "expected"),
    [
        ([3, 3, 3], 6, [[0, 1], [2]]),
        ([3, 3, 3], 9, [[0, 1, 2]]),
        ([10, 2, 2], 5, [[0], [1, 2]]),  # too large alone: a volume of its own
        ([2, 10, 2], 5, [[0], [1], [2]]),
        ([1], 1, [[0]]),
        ([], 5, []),
    ],
)
def test_pack_volumes_keeps_order_and_budget(sizes, budget, expected):
    assert pack_volumes(sizes, budget) == expected


# --- chapters from stored books -----------------------------------------------------------------


def test_chapter_from_epub_keeps_body_and_images_without_the_generated_header():
    photo = noise_jpeg(64, 1, quality=85)
    chapter = chapter_from_epub(newsletter_epub(1, "Field Notes", photo), author="Field Notes", date=DAY)
    assert chapter.title == "Issue 1 of Field Notes"  # read from the book's header
    assert "mark001" in chapter.body_html and "two &amp; three" in chapter.body_html
    assert "chapter-header" not in chapter.body_html and "xmlns" not in chapter.body_html
    assert [(i.media_type, i.data) for i in chapter.images] == [("image/jpeg", photo)]
    (volume,) = build_digest_volumes([chapter], user_label="a@b.example", period_label="Daily", date=DAY,
                                     budget_bytes=10_000_000)
    text = epub_chapter_texts(volume.epub)[0]
    assert normalise(text).count("issue1offieldnotes") == 1  # the title once: no header inside the header
    assert photo in [read(volume.epub, n) for n in _image_names(volume.epub)]


def test_chapter_from_epub_refuses_what_is_not_a_book():
    with pytest.raises(DigestInputError):
        chapter_from_epub(b"PK\x03\x04 not really a zip")
    with pytest.raises(DigestInputError):
        chapter_from_epub(b"<html><body>hello</body></html>")


# --- digest books ----------------------------------------------------------------------------------


def test_one_digest_groups_the_toc_by_newsletter_and_dates_the_cover():
    items = chapters(5)
    (volume,) = build_digest_volumes(items, user_label="a@b.example", period_label="Daily", date=DAY,
                                     budget_bytes=10_000_000)
    assert volume.title == "Daily digest — 25 Oct 2026" and volume.total == 1
    assert volume.file_name == "2026-10-25-daily-digest.epub"
    # Reading order: grouped by newsletter (first seen first), oldest first within a group.
    assert marks(volume.epub) == ["mark001", "mark004", "mark002", "mark005", "mark003"]
    nav = etree.fromstring(read(volume.epub, "nav.xhtml"))
    ns = {"x": "http://www.w3.org/1999/xhtml"}
    sections = nav.xpath("//x:nav//x:ol/x:li[x:ol]", namespaces=ns)
    assert ["".join(s.xpath("./*[1]//text()", namespaces=ns)).strip() for s in sections] == list(SENDERS)
    assert [len(s.xpath("./x:ol/x:li", namespaces=ns)) for s in sections] == [2, 2, 1]
    package = opf(volume.epub)
    dc = "{http://purl.org/dc/elements/1.1/}"
    assert package.find(f".//{dc}date").text.startswith("2026-10-25")
    # The cover is drawn for the date: another day, another cover.
    (other,) = build_digest_volumes(items, user_label="a@b.example", period_label="Daily",
                                    date=DAY.replace(day=26), budget_bytes=10_000_000)
    assert read(volume.epub, "cover.jpg") != read(other.epub, "cover.jpg")
    assert other.title == "Daily digest — 26 Oct 2026"


def test_large_images_split_the_digest_into_volumes_under_the_budget():
    items = chapters(5, image_side=400)  # incompressible photos, ~100 KB each
    per_chapter = max(estimate_chapter_bytes(c) for c in items)
    budget = int(per_chapter * 2.6)  # room for two chapters and the cover, not three
    volumes = build_digest_volumes(items, user_label="a@b.example", period_label="Weekly", date=DAY,
                                   budget_bytes=budget)
    assert len(volumes) == 3
    for n, volume in enumerate(volumes, start=1):
        assert volume.size <= budget
        assert (volume.number, volume.total) == (n, 3)
        assert volume.title == f"Weekly digest — 25 Oct 2026 (Vol. {n} of 3)"
        assert opf(volume.epub).find(".//{http://purl.org/dc/elements/1.1/}title").text == volume.title
        assert volume.file_name == f"2026-10-25-weekly-digest-vol-{n}-of-3.epub"
    # Each newsletter in exactly one volume, oldest first across volumes.
    assert [p for v in volumes for p in v.positions] == list(range(5))
    assert [m for v in volumes for m in sorted(marks(v.epub))] == [f"mark{n:03d}" for n in range(1, 6)]
    # Different volumes are different books.
    assert len({opf(v.epub).find(".//{http://purl.org/dc/elements/1.1/}identifier").text for v in volumes}) == 3


def test_a_chapter_larger_than_the_budget_gets_a_volume_of_its_own():
    small = chapters(2)
    big = chapters(1, image_side=500)[0]
    budget = estimate_chapter_bytes(big) // 2
    volumes = build_digest_volumes([small[0], big, small[1]], user_label="u", period_label="Daily", date=DAY,
                                   budget_bytes=max(budget, 60_000))
    assert [v.positions for v in volumes] == [(0,), (1,), (2,)]
    assert volumes[1].size > max(budget, 60_000) >= max(volumes[0].size, volumes[2].size)


def test_digest_books_pass_epubcheck(java_available):
    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    items = chapters(4, image_side=300)
    books = build_digest_volumes(items, user_label="a@b.example", period_label="Daily", date=DAY,
                                 budget_bytes=int(max(estimate_chapter_bytes(c) for c in items) * 2.6))
    books += build_digest_volumes(chapters(3), user_label="a@b.example", period_label="Weekly", date=DAY,
                                  budget_bytes=10_000_000)
    assert len(books) >= 3
    reports = run_epubcheck_many([b.epub for b in books], names=[b.file_name for b in books])
    assert all(r.ok for r in reports.values()), [r.summary() for r in reports.values() if not r.ok]


def _image_names(epub: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        return [n for n in zf.namelist() if "/images/" in n or n.startswith("images/")]
