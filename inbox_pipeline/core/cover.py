"""Generated book covers: black text on white, large enough to read on e-ink."""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Searched in order; DejaVu comes with Debian/Ubuntu's fonts-dejavu-core.
_FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/liberation2",
    "/Library/Fonts",
    "C:/Windows/Fonts",
)
_FONT_FILES = {
    "title": ("DejaVuSerif-Bold.ttf", "LiberationSerif-Bold.ttf", "Georgia Bold.ttf", "georgiab.ttf"),
    "text": ("DejaVuSerif.ttf", "LiberationSerif-Regular.ttf", "Georgia.ttf", "georgia.ttf"),
    "label": ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf", "arialbd.ttf"),
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A cover shows at most a few hundred characters; layout never looks at more.
MAX_TEXT = 1_000


@functools.lru_cache(maxsize=None)
def _font_path(role: str, font_file: str | None = None) -> str | None:
    if font_file and Path(font_file).is_file():
        return font_file
    for folder in _FONT_DIRS:
        for name in _FONT_FILES[role]:
            path = Path(folder) / name
            if path.is_file():
                return str(path)
    return None


@functools.lru_cache(maxsize=64)
def _font(role: str, size: int, font_file: str | None = None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Loading a TrueType face costs ~1 ms; covers reuse a handful of sizes.
    path = _font_path(role, font_file)
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def font_source(font_file: str | None = None) -> str:
    """Which font covers are drawn with (for the operator and the tests)."""
    return _font_path("title", font_file) or "Pillow's built-in font"


def _clean(text: str | None) -> str:
    text = " ".join(_CONTROL.sub(" ", (text or "")[: MAX_TEXT * 4]).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _break_word(word: str, font, width: float) -> list[str]:
    """Cut a word wider than a line into line-wide pieces, in one pass over its characters."""
    pieces: list[str] = []
    start, used = 0, 0.0
    for i, char in enumerate(word):
        advance = _advance(font, char)
        if used + advance > width and i > start:
            pieces.append(word[start:i])
            start, used = i, 0.0
        used += advance
    pieces.append(word[start:])
    return pieces


@functools.lru_cache(maxsize=4096)
def _advance(font, char: str) -> float:
    return font.getlength(char)


def _wrap(text: str, font, width: float) -> list[str]:
    """Greedy word wrap; words wider than a line are cut by characters."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
            line = ""
        if font.getlength(word) > width:
            *full, word = _break_word(word, font, width)
            lines.extend(full)
        line = word
    if line:
        lines.append(line)
    return lines


def _fit(
    text: str, role: str, width: float, max_lines: int, sizes: tuple[int, ...], font_file: str | None
) -> tuple[object, list[str]]:
    """The largest size at which ``text`` fits in ``max_lines``; else ellipsised."""
    for size in sizes:
        font = _font(role, size, font_file)
        lines = _wrap(text, font, width)
        if len(lines) <= max_lines:
            return font, lines
    font = _font(role, sizes[-1], font_file)
    lines = _wrap(text, font, width)[:max_lines]
    last = lines[-1]
    while last and font.getlength(last + "…") > width:
        last = last[:-1].rstrip()
    lines[-1] = last + "…"
    return font, lines


def _line_height(font) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent


@functools.lru_cache(maxsize=32)
def render_cover(
    title: str,
    subtitle: str | None,
    date_label: str | None,
    *,
    size: tuple[int, int] = (1264, 1680),
    font_file: str | None = None,
) -> bytes:
    """A grayscale JPEG cover: the title large and wrapped, the sender above, the date below.

    ``font_file`` replaces the searched fonts (DejaVu, Liberation...) for every role.
    """
    width, height = size
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    margin = round(width * 0.08)
    text_width = width - 2 * margin
    rule = max(2, round(width / 160))

    title = _clean(title) or "Newsletter"
    subtitle = _clean(subtitle)
    date_label = _clean(date_label)

    # Sender / subtitle band at the top.
    y = round(height * 0.09)
    draw.rectangle((margin, y, width - margin, y + rule * 2), fill=0)
    y += rule * 2 + round(height * 0.03)
    if subtitle:
        label_font, label_lines = _fit(subtitle, "label", text_width, 2, _sizes(width, 20, 26), font_file)
        for line in label_lines:
            draw.text((margin, y), line, font=label_font, fill=0)
            y += round(_line_height(label_font) * 1.15)
    title_top = max(y + round(height * 0.05), round(height * 0.25))

    # The title: as large as fits in the middle of the page.
    date_top = round(height * 0.86)
    room = date_top - round(height * 0.06) - title_top
    base = max(12, round(width / 8.5))
    sizes = tuple(sorted({max(12, round(base * f)) for f in (1.0, 0.85, 0.72, 0.6, 0.5)}, reverse=True))
    for size_ in sizes:
        font = _font("title", size_, font_file)
        lines = _wrap(title, font, text_width)
        step = round(_line_height(font) * 1.12)
        if len(lines) * step <= room:
            break
    else:
        font = _font("title", sizes[-1], font_file)
        step = round(_line_height(font) * 1.12)
        font, lines = _fit(title, "title", text_width, max(1, room // step), (sizes[-1],), font_file)
    for line in lines:
        draw.text((margin, title_top), line, font=font, fill=0)
        title_top += step

    # Date at the foot, above a closing rule.
    if date_label:
        date_font, date_lines = _fit(date_label, "text", text_width, 1, _sizes(width, 16, 20), font_file)
        draw.text((margin, date_top), date_lines[0], font=date_font, fill=0)
    foot = round(height * 0.93)
    draw.rectangle((margin, foot, width - margin, foot + rule), fill=0)

    out = io.BytesIO()
    # Grayscale baseline JPEG: small, quick to encode, and every Kindle reads it.
    image.save(out, format="JPEG", quality=82, optimize=False)
    return out.getvalue()


def _sizes(width: int, smallest_divisor: int, largest_divisor: int) -> tuple[int, ...]:
    big = max(10, round(width / smallest_divisor))
    small = max(10, round(width / largest_divisor))
    return tuple(sorted({big, round((big + small) / 2), small}, reverse=True))
