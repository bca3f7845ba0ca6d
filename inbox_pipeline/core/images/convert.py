"""Turning any image bytes into a Kindle-safe JPEG or PNG.

Kindle readers want baseline JPEG or PNG, no alpha, no animation, and gain
nothing from pixels beyond the screen. WebP, AVIF, TIFF, BMP, ICO and GIF
come out as JPEG or PNG; SVG is rasterised with CairoSVG when it is installed
(see ``svg.py`` for its budgets).
"""

from __future__ import annotations

import functools
import io
import math
import threading
from dataclasses import dataclass

from PIL import Image

from inbox_pipeline.core.images.policy import ImagePolicy
from inbox_pipeline.core.images.svg import SvgRefused, looks_like_svg, rasterise_svg

# Images this small (both sides) are tracking pixels or spacers, not content.
TRACKER_MAX_SIDE = 3

# Decoders we let near untrusted bytes; Pillow knows many more, rarely used and less exercised.
_INPUT_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "AVIF")
_LOSSLESS_SOURCES = {"PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "SVG"}
_WHITE = (255, 255, 255)
# EXIF orientation -> the turn that makes the image upright (as ImageOps.exif_transpose does).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Decoding is memory-hungry; the fetch pool is wide for network waits, not for this.
_decode_slots = threading.BoundedSemaphore(2)


class ImageRejected(Exception):
    """This image cannot or should not be embedded; the message says why, for a person."""


class TrackingPixel(ImageRejected):
    """A tiny image whose only job is to report that the email was opened."""


@dataclass(frozen=True)
class ConvertedImage:
    media_type: str  # "image/jpeg" or "image/png"
    extension: str  # "jpg" or "png"
    data: bytes
    width: int
    height: int


@functools.cache
def _available_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in _INPUT_FORMATS if f in Image.OPEN)


def convert_image(data: bytes, declared_type: str | None, policy: ImagePolicy) -> ConvertedImage:
    """Decode, flatten, orient, downscale and re-encode one image; raise ImageRejected if it cannot be."""
    if not data:
        raise ImageRejected("empty image")
    if looks_like_svg(data, declared_type):
        try:
            png = rasterise_svg(data, policy)
        except SvgRefused as exc:
            raise ImageRejected(str(exc)) from None
        return _convert_raster(png, policy, source_format="SVG")
    return _convert_raster(data, policy)


# --- raster -------------------------------------------------------------------


def _fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, box[0] / width, box[1] / height)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _flatten(im: Image.Image) -> Image.Image:
    """One frame, no alpha (composited onto white), mode RGB or L."""
    transparent = "transparency" in im.info
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode == "F":
        im = im.convert("L")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (transparent and im.mode in ("P", "L", "RGB")):
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")  # no full-size copy when it already is
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba)  # an RGBA mask means its alpha band, without splitting it out
        return flat
    if im.mode in ("RGB", "L"):
        return im
    if im.mode == "1":
        return im.convert("L")
    return im.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX


def _flatten_reduced(im: Image.Image, factor: int) -> Image.Image:
    """``_flatten(im).reduce(factor)``, a band of rows at a time: no second full-size image is ever made."""
    rows = factor * 64
    out: Image.Image | None = None
    for top in range(0, im.height, rows):
        band = _flatten(im.crop((0, top, im.width, min(im.height, top + rows)))).reduce(factor)
        if out is None:
            out = Image.new(band.mode, (math.ceil(im.width / factor), math.ceil(im.height / factor)))
        out.paste(band, (0, top // factor))
    assert out is not None  # an image has at least one row
    return out


def _convert_raster(data: bytes, policy: ImagePolicy, *, source_format: str | None = None) -> ConvertedImage:
    cap = f"over {policy.max_source_pixels / 1_000_000:g} megapixels"
    try:
        im = Image.open(io.BytesIO(data), formats=_available_formats())
    except Image.DecompressionBombError:
        raise ImageRejected(f"too large to convert ({cap})") from None
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageRejected("not a supported image format") from None
    with im:
        fmt = source_format or im.format or "?"
        width, height = im.size
        if width <= TRACKER_MAX_SIDE and height <= TRACKER_MAX_SIDE:
            raise TrackingPixel(f"tracking pixel ({width}x{height})")
        # Only the header has been read: the size that will be decoded is known before any pixel is.
        too_large = ImageRejected(f"too large to convert ({width}x{height} pixels, {cap})")
        jpeg = im.format in ("JPEG", "MPO")
        if not jpeg and width * height > policy.max_source_pixels:
            raise too_large  # before getexif(): for a PNG it decodes everything to find a trailing eXIf
        try:
            orientation = im.getexif().get(0x0112)
        except (OSError, ValueError, SyntaxError, EOFError):
            orientation = None
        box = policy.max_dimension
        if orientation in (5, 6, 7, 8):
            box = (box[1], box[0])  # fitted before it is turned upright
        if jpeg:
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale: far less memory and time for big photos.
            im.draft(None, _fit(im.size, box))
            if im.width * im.height > policy.max_source_pixels:
                raise too_large
        with _decode_slots:
            try:
                return _encode(im, fmt, policy, box, orientation)
            except ImageRejected:
                raise
            except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
                raise ImageRejected(f"damaged {fmt} image ({exc})") from None


def _encode(
    im: Image.Image, fmt: str, policy: ImagePolicy, box: tuple[int, int], orientation: int | None
) -> ConvertedImage:
    im.seek(0)  # the first frame of an animation
    im.load()
    few_colours = im.mode in ("P", "1") or (fmt in _LOSSLESS_SOURCES and im.getcolors(256) is not None)
    over = max(im.width / box[0], im.height / box[1])
    if over > 1 and im.mode not in ("RGB", "L"):
        # Keep 1.5x the fitted size for the final resampling; the pixel cap makes this >= 2 at the cap.
        out = _flatten_reduced(im, max(1, int(over / 1.5)))
    else:
        out = _flatten(im)
    # Downscaled before it is turned upright, so no full-size copy is made for the turn.
    if out.width > box[0] or out.height > box[1]:
        out.thumbnail(box, Image.Resampling.LANCZOS)
    if orientation in _ORIENTATIONS:
        out = out.transpose(_ORIENTATIONS[orientation])
    if policy.grayscale and out.mode != "L":
        out = out.convert("L")
    buf = io.BytesIO()
    if fmt == "SVG" or (fmt in _LOSSLESS_SOURCES and few_colours):
        out.save(buf, "PNG", compress_level=6)  # optimize=True costs ~80 ms per image for a few % of bytes
        media_type, extension = "image/png", "png"
    else:
        # Baseline, not progressive: older Kindles show nothing for progressive JPEGs.
        out.save(buf, "JPEG", quality=policy.jpeg_quality, optimize=True, progressive=False)
        media_type, extension = "image/jpeg", "jpg"
    return ConvertedImage(media_type, extension, buf.getvalue(), out.width, out.height)
