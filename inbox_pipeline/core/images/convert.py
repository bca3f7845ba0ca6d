"""Turning any image bytes into a Kindle-safe JPEG or PNG.

Kindle readers want baseline JPEG or PNG, no alpha, no animation, and gain
nothing from pixels beyond the screen. WebP, AVIF, TIFF, BMP, ICO and GIF
come out as JPEG or PNG; SVG is rasterised with CairoSVG when it is installed.
"""

from __future__ import annotations

import functools
import io
import math
import re
import threading
from dataclasses import dataclass

from lxml import etree
from PIL import Image, ImageOps

from inbox_pipeline.core.images.policy import ImagePolicy

# Refused before decoding: 100 MP of RGBA is 400 MB of memory.
MAX_SOURCE_PIXELS = 100_000_000
# Images this small (both sides) are tracking pixels or spacers, not content.
TRACKER_MAX_SIDE = 3

# Decoders we let near untrusted bytes; Pillow knows many more, rarely used and less exercised.
_INPUT_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "AVIF")
_LOSSLESS_SOURCES = {"PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "SVG"}
_WHITE = (255, 255, 255)
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


def looks_like_svg(data: bytes, declared_type: str | None = None) -> bool:
    if declared_type and "svg" in declared_type.lower():
        return True
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg"):
        return True
    return head.startswith((b"<?xml", b"<!doctype", b"<!--")) and b"<svg" in head


def convert_image(data: bytes, declared_type: str | None, policy: ImagePolicy) -> ConvertedImage:
    """Decode, flatten, orient, downscale and re-encode one image; raise ImageRejected if it cannot be."""
    if not data:
        raise ImageRejected("empty image")
    if looks_like_svg(data, declared_type):
        return _convert_raster(rasterise_svg(data, policy.max_dimension), policy, source_format="SVG")
    return _convert_raster(data, policy)


# --- SVG ----------------------------------------------------------------------

_LENGTH = re.compile(r"^\s*([+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-z%]*)\s*$", re.I)
_UNIT_PX = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0, "em": 16.0, "ex": 8.0}


def _svg_length(value: str | None) -> float | None:
    match = _LENGTH.match(value or "")
    if not match or match.group(2).lower() not in _UNIT_PX:
        return None  # "%" and unknown units depend on a viewport we do not have
    length = float(match.group(1)) * _UNIT_PX[match.group(2).lower()]
    return length if length > 0 else None


def svg_intrinsic_size(data: bytes) -> tuple[float, float]:
    """The SVG's own size in CSS pixels, from width/height or viewBox (300x150 if neither)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ImageRejected(f"not a readable SVG ({exc})") from None
    if etree.QName(root).localname != "svg":
        raise ImageRejected("not an SVG document")
    width, height = _svg_length(root.get("width")), _svg_length(root.get("height"))
    box_w = box_h = None
    parts = re.split(r"[\s,]+", (root.get("viewBox") or "").strip())
    if len(parts) == 4:
        try:
            box_w, box_h = float(parts[2]), float(parts[3])
        except ValueError:
            pass
    has_box = bool(box_w and box_h and box_w > 0 and box_h > 0)
    if width and height:
        return width, height
    if width and has_box:
        return width, width * box_h / box_w  # type: ignore[operator]
    if height and has_box:
        return height * box_w / box_h, height  # type: ignore[operator]
    if has_box:
        return box_w, box_h  # type: ignore[return-value]
    return 300.0, 150.0


def rasterise_svg(data: bytes, max_dimension: tuple[int, int]) -> bytes:
    """SVG -> PNG at its own size, fitted within max_dimension; external references are not fetched."""
    width, height = svg_intrinsic_size(data)
    scale = min(1.0, max_dimension[0] / width, max_dimension[1] / height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    try:
        import cairosvg  # needs the system's libcairo2
    except (ImportError, OSError):
        raise ImageRejected("SVG cannot be rasterised (CairoSVG or libcairo2 is not installed)") from None
    try:
        # unsafe=False: no XML entities and only data: URLs inside the SVG, so no SSRF through it.
        return cairosvg.svg2png(bytestring=data, output_width=out_w, output_height=out_h, unsafe=False)
    except Exception as exc:  # CairoSVG raises many kinds for bad input
        raise ImageRejected(f"SVG cannot be rasterised ({type(exc).__name__}: {exc})") from None


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
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if im.mode in ("RGB", "L"):
        return im
    if im.mode == "1":
        return im.convert("L")
    return im.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX


def _convert_raster(data: bytes, policy: ImagePolicy, *, source_format: str | None = None) -> ConvertedImage:
    try:
        im = Image.open(io.BytesIO(data), formats=_available_formats())
    except Image.DecompressionBombError:
        raise ImageRejected(f"too large to convert (over {MAX_SOURCE_PIXELS // 1_000_000} megapixels)") from None
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageRejected("not a supported image format") from None
    with im:
        fmt = source_format or im.format or "?"
        width, height = im.size
        if width * height > MAX_SOURCE_PIXELS:
            raise ImageRejected(
                f"too large to convert ({width}x{height} pixels, over {MAX_SOURCE_PIXELS // 1_000_000} megapixels)"
            )
        if width <= TRACKER_MAX_SIDE and height <= TRACKER_MAX_SIDE:
            raise TrackingPixel(f"tracking pixel ({width}x{height})")
        with _decode_slots:
            try:
                return _encode(im, fmt, policy)
            except ImageRejected:
                raise
            except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
                raise ImageRejected(f"damaged {fmt} image ({exc})") from None


def _encode(im: Image.Image, fmt: str, policy: ImagePolicy) -> ConvertedImage:
    box = policy.max_dimension
    orientation = im.getexif().get(0x0112)
    if im.format in ("JPEG", "MPO"):
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far less memory and time for big photos.
        rotated = orientation in (5, 6, 7, 8)
        im.draft(None, _fit(im.size, (box[1], box[0]) if rotated else box))
    im.seek(0)  # the first frame of an animation
    im.load()
    few_colours = im.mode in ("P", "1") or (fmt in _LOSSLESS_SOURCES and im.getcolors(256) is not None)
    if orientation not in (None, 1):
        im = ImageOps.exif_transpose(im)
    out = _flatten(im)
    if out.width > box[0] or out.height > box[1]:
        out.thumbnail(box, Image.Resampling.LANCZOS)
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
