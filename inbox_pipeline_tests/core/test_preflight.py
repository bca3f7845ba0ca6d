"""The built-in Kindle preflight: good books pass, each kind of broken book is named."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import pytest

from inbox_pipeline.core.epub import Book, build_epub
from inbox_pipeline.core.preflight import kindle_preflight
from inbox_pipeline_tests.core.test_epub import WHEN, digest_chapters, newsletter_book, picture


@pytest.fixture(scope="module")
def good() -> bytes:
    return build_epub(newsletter_book())


def rewrite(
    epub: bytes,
    edit: Callable[[dict[str, bytes]], None],
    *,
    mimetype_first: bool = True,
    mimetype_compressed: bool = False,
) -> bytes:
    """Copy a book, letting ``edit`` change its files (name -> bytes)."""
    source = zipfile.ZipFile(io.BytesIO(epub))
    files = {name: source.read(name) for name in source.namelist()}
    edit(files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        names = list(files)
        if "mimetype" in names:
            names.remove("mimetype")
            names.insert(0 if mimetype_first else len(names), "mimetype")
        for name in names:
            compress = zipfile.ZIP_DEFLATED if name != "mimetype" or mimetype_compressed else zipfile.ZIP_STORED
            archive.writestr(name, files[name], compress_type=compress)
    return out.getvalue()


def replace_in(name: str, old: bytes, new: bytes) -> Callable[[dict[str, bytes]], None]:
    def edit(files: dict[str, bytes]) -> None:
        assert old in files[name], (name, old)
        files[name] = files[name].replace(old, new)

    return edit


def only(problems: list[str], *words: str) -> str:
    """The single problem reported, checked to mention every word."""
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], (word, problems[0])
    return problems[0]


def test_built_books_pass(good: bytes) -> None:
    assert kindle_preflight(good) == []
    assert kindle_preflight(build_epub(Book.for_digest("alice", "Weekly", WHEN, digest_chapters()))) == []


def test_rewritten_copy_of_a_good_book_still_passes(good: bytes) -> None:
    # The helper below must not break books by itself, or the next tests prove nothing.
    assert kindle_preflight(rewrite(good, lambda files: None)) == []


def test_missing_mimetype(good: bytes) -> None:
    broken = rewrite(good, lambda files: files.pop("mimetype"))
    only(kindle_preflight(broken), "mimetype", "first")


def test_mimetype_not_first_or_compressed(good: bytes) -> None:
    only(kindle_preflight(rewrite(good, lambda f: None, mimetype_first=False)), "mimetype", "first")
    only(kindle_preflight(rewrite(good, lambda f: None, mimetype_compressed=True)), "mimetype", "uncompressed")


def test_script_in_a_chapter(good: bytes) -> None:
    broken = rewrite(good, replace_in("EPUB/c001.xhtml", b"</body>", b"<script>alert(1)</script></body>"))
    only(kindle_preflight(broken), "EPUB/c001.xhtml", "<script>")


def test_webp_image(good: bytes) -> None:
    def to_webp(files: dict[str, bytes]) -> None:
        from PIL import Image

        jpeg = files.pop("EPUB/images/c001-001.jpg")
        out = io.BytesIO()
        Image.open(io.BytesIO(jpeg)).save(out, format="WEBP")
        files["EPUB/images/c001-001.webp"] = out.getvalue()
        replace_in("EPUB/content.opf", b'href="images/c001-001.jpg" id="img-c001-001" media-type="image/jpeg"',
                   b'href="images/c001-001.webp" id="img-c001-001" media-type="image/webp"')(files)
        replace_in("EPUB/c001.xhtml", b"images/c001-001.jpg", b"images/c001-001.webp")(files)

    only(kindle_preflight(rewrite(good, to_webp)), "image/webp", "JPEG, PNG or GIF")


def test_image_whose_bytes_do_not_match_its_type(good: bytes) -> None:
    def swap(files: dict[str, bytes]) -> None:
        files["EPUB/images/c001-001.jpg"] = picture("png inside", fmt="PNG")

    only(kindle_preflight(rewrite(good, swap)), "EPUB/images/c001-001.jpg", "not a image/jpeg")


def test_missing_or_invalid_language(good: bytes) -> None:
    missing = rewrite(good, replace_in("EPUB/content.opf", b"<dc:language>en</dc:language>", b""))
    only(kindle_preflight(missing), "dc:language")
    invalid = rewrite(good, replace_in("EPUB/content.opf", b"<dc:language>en</dc:language>",
                                       b"<dc:language>English (UK)</dc:language>"))
    only(kindle_preflight(invalid), "English (UK)", "BCP 47")


def test_missing_title_and_identifier(good: bytes) -> None:
    no_title = rewrite(good, replace_in("EPUB/content.opf", b"<dc:title>The Weekly Ledger: rates on hold</dc:title>", b""))
    only(kindle_preflight(no_title), "dc:title")
    no_id = rewrite(good, replace_in("EPUB/content.opf", b'<dc:identifier id="id">', b'<dc:identifier id="other">'))
    only(kindle_preflight(no_id), "unique-identifier")


def test_manifest_item_missing_from_the_archive(good: bytes) -> None:
    broken = rewrite(good, lambda files: files.pop("EPUB/images/c001-002.png"))
    only(kindle_preflight(broken), "EPUB/images/c001-002.png", "missing")


def test_chapter_not_well_formed_or_without_declaration(good: bytes) -> None:
    torn = rewrite(good, replace_in("EPUB/c001.xhtml", b"</body>", b"<p>unclosed</body>"))
    only(kindle_preflight(torn), "EPUB/c001.xhtml", "well-formed")
    bare = rewrite(good, replace_in("EPUB/c001.xhtml", b'<?xml version="1.0" encoding="utf-8"?>\n', b""))
    only(kindle_preflight(bare), "EPUB/c001.xhtml", "<?xml")


def test_no_navigation_document(good: bytes) -> None:
    broken = rewrite(good, replace_in("EPUB/content.opf", b' properties="nav"', b""))
    only(kindle_preflight(broken), "navigation document")


def test_unsafe_and_long_file_names(good: bytes) -> None:
    def rename(new: str) -> Callable[[dict[str, bytes]], None]:
        def edit(files: dict[str, bytes]) -> None:
            files[f"EPUB/{new}"] = files.pop("EPUB/epub.css")
            replace_in("EPUB/content.opf", b'href="epub.css"', f'href="{new}"'.encode())(files)

        return edit

    only(kindle_preflight(rewrite(good, rename("my style.css"))), "my style.css", "characters")
    long_name = "a-stylesheet-with-a-really-long-file-name.css"
    only(kindle_preflight(rewrite(good, rename(long_name))), long_name, "longer than 32")


def test_encrypted_book(good: bytes) -> None:
    def encrypt(files: dict[str, bytes]) -> None:
        files["META-INF/encryption.xml"] = b'<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"/>'

    only(kindle_preflight(rewrite(good, encrypt)), "encryption.xml", "DRM")


def test_not_a_zip_and_over_budget(good: bytes) -> None:
    only(kindle_preflight(b"this is not an epub"), "not a ZIP")
    only(kindle_preflight(good, max_bytes=1000), "over the 1,000 byte budget")
