"""Generated covers: readable on e-ink, whatever the title."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from inbox_pipeline.core import cover
from inbox_pipeline.core.cover import render_cover

SIZE = (1264, 1680)


def open_cover(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def ink_rows(image: Image.Image, top: float, bottom: float) -> list[int]:
    """Rows between the two fractions of the height that hold dark pixels."""
    gray = image.convert("L")
    width, height = gray.size
    rows = []
    for y in range(int(height * top), int(height * bottom)):
        band = gray.crop((0, y, width, y + 1))
        if band.getextrema()[0] < 100:
            rows.append(y)
    return rows


def ink_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box of everything darker than mid-grey."""
    mask = image.convert("L").point(lambda v: 255 if v < 128 else 0)
    return mask.getbbox()


def test_cover_is_a_portrait_grayscale_jpeg_of_the_requested_size() -> None:
    data = render_cover("The Weekly Ledger", "Margaret Whitfield", "24 Nov 2026", size=SIZE)
    image = open_cover(data)
    assert image.format == "JPEG"
    assert image.size == SIZE
    assert image.mode == "L"  # e-ink shows grey; colour only costs bytes
    assert len(data) < 400_000


def test_title_is_large_and_sits_between_sender_and_date() -> None:
    image = open_cover(render_cover("Rates on hold", "The Weekly Ledger", "24 Nov 2026", size=SIZE))
    title_rows = ink_rows(image, 0.22, 0.8)
    # One line of title text at ~1/8.5 of the width is > 100 px tall on this canvas.
    assert title_rows and title_rows[-1] - title_rows[0] > 100
    assert ink_rows(image, 0.13, 0.22), "sender line missing"
    assert ink_rows(image, 0.85, 0.92), "date line missing"
    # Margins stay white: nothing is drawn off the edge.
    left, top, right, bottom = ink_box(image)
    assert left >= SIZE[0] * 0.07 and right <= SIZE[0] * 0.93


def test_long_titles_wrap_inside_the_margins() -> None:
    title = (
        "An extraordinarily long newsletter subject line that keeps going well past what fits on one line, "
        "with Supercalifragilisticexpialidociousandthensomeunbreakablewordsthatneverend inside it, "
        "and still more words after that to force several lines of wrapped text on the page"
    )
    image = open_cover(render_cover(title, "Sender", "1 Jan 2026", size=SIZE))
    left, top, right, bottom = ink_box(image)
    assert left >= SIZE[0] * 0.07 and right <= SIZE[0] * 0.93
    assert bottom <= SIZE[1] * 0.95
    short = open_cover(render_cover("Short", "Sender", "1 Jan 2026", size=SIZE))
    assert len(ink_rows(image, 0.22, 0.8)) > 2 * len(ink_rows(short, 0.22, 0.8))  # several lines, not one


def test_covers_differ_by_title_and_repeat_exactly() -> None:
    a = render_cover("Issue 1", "Sender", "1 Jan 2026", size=(600, 800))
    b = render_cover("Issue 2", "Sender", "1 Jan 2026", size=(600, 800))
    assert a != b
    render_cover.cache_clear()
    assert render_cover("Issue 1", "Sender", "1 Jan 2026", size=(600, 800)) == a


def test_missing_subtitle_and_date_and_odd_text() -> None:
    image = open_cover(render_cover("Ünïcödé \x00 title — 中文", None, None, size=(600, 800)))
    assert ink_rows(image, 0.22, 0.8)
    assert not ink_rows(image, 0.85, 0.92)  # no date line drawn
    assert open_cover(render_cover("", None, None, size=(300, 400))).size == (300, 400)


def test_without_a_truetype_font_pillow_builtin_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cover, "_font_path", lambda role, font_file=None: None)
    cover._font.cache_clear()
    render_cover.cache_clear()
    try:
        image = open_cover(render_cover("Fallback font title", "Sender", "2 Feb 2026", size=SIZE))
        rows = ink_rows(image, 0.22, 0.8)
        assert rows and rows[-1] - rows[0] > 60  # still big letters, not an 11 px bitmap font
    finally:
        cover._font.cache_clear()
        render_cover.cache_clear()


def test_font_search_reports_what_it_found(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(cover, "_FONT_DIRS", (str(tmp_path),))
    cover._font_path.cache_clear()
    try:
        assert cover.font_source() == "Pillow's built-in font"
        cover._font_path.cache_clear()
        (tmp_path / "DejaVuSerif-Bold.ttf").write_bytes(b"not really a font")
        assert cover.font_source() == str(tmp_path / "DejaVuSerif-Bold.ttf")
        # A broken font file degrades to the built-in font instead of failing the book.
        cover._font.cache_clear()
        render_cover.cache_clear()
        assert open_cover(render_cover("Broken font", None, None, size=(300, 400))).size == (300, 400)
    finally:
        cover._font_path.cache_clear()
        cover._font.cache_clear()
        render_cover.cache_clear()


def test_a_font_file_given_by_the_caller_replaces_the_search(tmp_path) -> None:
    sans = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    if not Path(sans).is_file():
        pytest.skip("DejaVu fonts are not installed")
    assert cover.font_source(sans) == sans
    assert cover.font_source(str(tmp_path / "missing.ttf")) != str(tmp_path / "missing.ttf")
    searched = render_cover("Same title", None, None, size=(600, 800))
    assert render_cover("Same title", None, None, size=(600, 800), font_file=sans) != searched


class CountingFont:
    """A real font that counts how many characters it was asked to measure."""

    def __init__(self, font) -> None:
        self.font = font
        self.measured = 0

    def getlength(self, text: str) -> float:
        self.measured += len(text)
        return self.font.getlength(text)


@pytest.mark.parametrize("length", [2_000, 10_000, 50_000])
def test_wrapping_an_unbroken_word_measures_each_character_a_few_times_only(length: int) -> None:
    font = CountingFont(cover._font("title", 60))
    word = "".join(chr(ord("a") + i % 26) for i in range(length))
    lines = cover._wrap(f"Before {word} after", font, 500)
    assert "".join(lines).replace(" ", "") == f"Before{word}after"
    assert all(font.font.getlength(line) <= 500 for line in lines)
    # Linear: the old cut-and-retry measured every prefix of the word again for each line.
    assert font.measured <= 4 * length


def test_a_subject_of_any_length_gets_a_cover_with_its_start_and_an_ellipsis() -> None:
    image = open_cover(render_cover("W" * 1_000_000, "S" * 100_000, "D" * 100_000, size=(600, 800)))
    assert image.size == (600, 800)
    assert ink_rows(image, 0.22, 0.8) and ink_rows(image, 0.85, 0.92)
    assert cover._clean("x" * 5_000) == "x" * (cover.MAX_TEXT - 1) + "…"
