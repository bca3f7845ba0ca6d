"""Image budgets: SVG measured and rendered in a worker that is stopped, raster sizes checked before decoding.

Every bound is shown by its outcome (the image dropped with its reason, the
worker gone, the rest of the newsletter kept); the time and memory they cost
are printed by ``benchmarks/budgets.py``.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from inbox_pipeline.core.convert import ConvertOptions, convert_email
from inbox_pipeline.core.images import ImagePolicy, ImageRejected, convert_image, process_images
from inbox_pipeline.core.images.convert import _flatten, _flatten_reduced
from inbox_pipeline.core.images.svg import rendered_elements
from inbox_pipeline.core.message import InlinePart
from inbox_pipeline_tests.conftest import unavailable
from inbox_pipeline_tests.helpers import SVG_NS, png_bomb, svg_use_bomb, svg_with_image


def data_url(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def red_square() -> bytes:
    return f'<svg {SVG_NS} width="40" height="40"><rect width="40" height="40" fill="#ff0000"/></svg>'.encode()


def green_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), "green").save(buf, "PNG")
    return buf.getvalue()


def svg_workers() -> list[int]:
    """Our SVG worker processes still alive (Linux /proc)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"svg_worker.py" in cmdline:
            alive.append(int(entry.name))
    return alive


@pytest.fixture(autouse=True)
def _cairosvg() -> None:
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError):
        unavailable("CairoSVG with libcairo2 is not installed")


# --- SVG ---------------------------------------------------------------------------


def test_a_use_bomb_is_refused_before_rendering_and_the_rest_of_the_newsletter_stays() -> None:
    html = f'<p>Before</p><img src="{data_url(svg_use_bomb())}"/><img src="{data_url(red_square())}"/><p>After</p>'

    result = process_images(html, {}, ImagePolicy(fetch_remote=False))

    assert result.kept == 1 and result.dropped == 1
    assert len(result.reasons) == 1
    assert result.reasons[0].endswith(": SVG too complex (over 20,000 elements once <use> copies are counted)")
    assert "Before" in result.html and "After" in result.html
    assert svg_workers() == []


def test_an_svg_that_renders_too_long_is_stopped_by_the_clock_and_its_worker_is_gone() -> None:
    # Past the element count (raised here), only the clock is left to stop it.
    policy = ImagePolicy(fetch_remote=False, svg_max_elements=10**12, svg_seconds=0.5)
    parts = {"bomb": InlinePart(content_id="bomb", content_type="image/svg+xml", data=svg_use_bomb()),
             "logo": InlinePart(content_id="logo", content_type="image/png", data=green_png())}

    result = process_images('<img src="cid:bomb"/><img src="cid:logo"/>', parts, policy)

    assert result.reasons == ["cid:bomb: SVG took more than 0.5 s to rasterise: stopped"]
    assert result.kept == 1
    assert svg_workers() == []  # killed and reaped, not left running behind the step


def test_an_svg_that_computes_too_long_is_stopped_by_its_cpu_limit() -> None:
    policy = ImagePolicy(svg_max_elements=10**12, svg_cpu_seconds=1, svg_seconds=600)
    with pytest.raises(ImageRejected) as refused:
        convert_image(svg_use_bomb(), "image/svg+xml", policy)
    assert str(refused.value) == "SVG took more than 1 s of CPU to rasterise: stopped"


def test_a_png_bomb_inside_an_svg_is_stopped_by_the_memory_limit() -> None:
    bomb = png_bomb(20_000)  # 400 million pixels: 1.6 GB once cairo decodes it
    assert len(bomb) < 100_000
    svg = svg_with_image(bomb)

    result = process_images(f'<img src="{data_url(svg)}"/>', {}, ImagePolicy(fetch_remote=False))

    assert result.kept == 0 and len(result.reasons) == 1
    reason = result.reasons[0].split(": ", 1)[1]
    # cairo either reports the failed allocation or aborts on it; both are the limit at work.
    assert reason in ("SVG needs more than 256 MB to rasterise: stopped",
                      "SVG rasteriser stopped (SIGABRT), within 256 MB of memory",
                      "SVG rasteriser stopped (SIGSEGV), within 256 MB of memory"), reason


def test_a_svg_within_its_budgets_is_still_drawn() -> None:
    image = convert_image(red_square(), "image/svg+xml", ImagePolicy())
    assert (image.media_type, image.width, image.height) == ("image/png", 40, 40)
    assert Image.open(io.BytesIO(image.data)).convert("RGB").getpixel((20, 20)) == (255, 0, 0)


def test_a_hostile_svg_costs_its_image_not_the_book() -> None:
    message = EmailMessage()
    message["From"] = "Letters <letters@example.org>"
    message["To"] = "reader@example.net"
    message["Subject"] = "Issue with a bomb in it"
    message["Date"] = "Thu, 03 Dec 2026 09:00:00 +0000"
    paragraphs = "".join(f"<p>Paragraph {n} of a newsletter that is long enough to be kept as an article.</p>"
                         for n in range(12))
    message.set_content("plain")
    message.add_alternative(f'<html><body><h1>Issue</h1>{paragraphs}<img src="{data_url(svg_use_bomb())}"/>'
                            "<p>The closing words.</p></body></html>", subtype="html")

    conversion = convert_email(message.as_bytes(), options=ConvertOptions(fetch_images=False))

    assert conversion.images.dropped == 1
    assert "SVG too complex" in conversion.images.reasons[0]
    assert b"PK" == conversion.epub[:2]
    assert "The closing words." in conversion.article.html


@pytest.mark.parametrize(
    ("svg", "expected"),
    [
        (f'<svg {SVG_NS}><rect/><g><circle/><circle/></g></svg>', 5),
        (f'<svg {SVG_NS}><defs><g id="a"><rect/><rect/></g></defs><use href="#a"/><use xlink:href="#a"/></svg>', 13),
        (f'<svg {SVG_NS}><g id="a"><use href="#a"/></g></svg>', 101),  # a loop never finishes drawing
        (f'<svg {SVG_NS}><use href="#missing"/><!-- a comment --></svg>', 2),
    ],
)
def test_elements_are_counted_as_they_will_be_drawn(svg: str, expected: int) -> None:
    from lxml import etree

    assert rendered_elements(etree.fromstring(svg.encode()), 100) == expected


def test_a_deep_chain_of_uses_is_counted_without_recursion() -> None:
    from lxml import etree

    chain = "".join(f'<g id="g{i}"><use href="#g{i - 1}"/></g>' for i in range(1, 5_000))
    root = etree.fromstring(f'<svg {SVG_NS}><defs><rect id="g0"/>{chain}</defs><use href="#g4999"/></svg>'.encode())
    assert rendered_elements(root, 10**9) > 5_000


# --- raster ---------------------------------------------------------------------


def encoded(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def test_pixels_are_counted_from_the_header_as_they_will_be_decoded() -> None:
    photo = Image.effect_noise((2000, 1500), 50).convert("RGB")  # 3 MP
    policy = ImagePolicy(max_source_pixels=1_000_000, max_dimension=(400, 300))

    # libjpeg decodes this one at a quarter of its size: 0.19 MP, within the cap.
    jpeg = convert_image(encoded(photo, "JPEG"), "image/jpeg", policy)
    assert (jpeg.width, jpeg.height) == (400, 300)
    # A PNG is decoded whole: refused before a pixel is.
    with pytest.raises(ImageRejected) as refused:
        convert_image(encoded(photo, "PNG"), "image/png", policy)
    assert str(refused.value) == "too large to convert (2000x1500 pixels, over 1 megapixels)"


def test_an_rgba_png_over_the_cap_is_refused_without_decoding_it() -> None:
    bomb = png_bomb(6_000, rgba=True)  # 36 MP: 144 MB once decoded, under Pillow's own bomb limit
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc/self/status on this system")

    def kilobytes(field: str) -> int:
        return int(status.read_text().split(f"{field}:")[1].split()[0])

    Path("/proc/self/clear_refs").write_text("5")  # the peak-RSS mark starts again from here
    before = kilobytes("VmRSS")
    with pytest.raises(ImageRejected) as refused:
        convert_image(bomb, "image/png", ImagePolicy())

    assert str(refused.value) == "too large to convert (6000x6000 pixels, over 25 megapixels)"
    assert kilobytes("VmHWM") - before < 50 * 1024  # nothing near the 144 MB a decode takes


def test_a_large_transparent_image_is_flattened_band_by_band_as_if_whole() -> None:
    gradient = Image.linear_gradient("L").resize((700, 900))
    rgba = Image.merge("RGBA", (gradient, gradient.rotate(90), Image.new("L", (700, 900), 90), gradient.transpose(
        Image.Transpose.FLIP_TOP_BOTTOM)))
    for mode in ("RGBA", "LA", "P"):
        im = rgba.convert(mode)
        assert _flatten_reduced(im, 3).tobytes() == _flatten(im).reduce(3).tobytes(), mode


def test_a_large_transparent_png_comes_out_fitted_and_on_white() -> None:
    im = Image.new("RGBA", (5000, 2500), (0, 0, 255, 0))
    im.paste((0, 0, 255, 255), (0, 0, 2500, 2500))
    out = convert_image(encoded(im, "PNG"), "image/png", replace(ImagePolicy(), max_dimension=(500, 500)))
    result = Image.open(io.BytesIO(out.data)).convert("RGB")
    assert result.size == (500, 250)
    assert result.getpixel((100, 100)) == (0, 0, 255) and result.getpixel((400, 100)) == (255, 255, 255)


def test_data_url_quoting_reaches_the_same_svg_budget() -> None:
    html = f'<img src="data:image/svg+xml;utf8,{quote(svg_use_bomb().decode())}"/>'
    result = process_images(html, {}, ImagePolicy(fetch_remote=False))
    assert result.kept == 0 and "SVG too complex" in result.reasons[0]
