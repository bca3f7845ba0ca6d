"""Time and peak memory of one email's conversion, per class of input, hostile ones included.

Each email is converted (``convert_email``, image fetching off) in a fresh
process, so its peak RSS is its own (VmHWM: ru_maxrss would count the
benchmark's own memory at the fork). SVG workers are separate processes held
to 256 MB of address space each by RLIMIT_AS, two at a time: that bound is
added, not measured. Times vary with the machine's load; the verdict only
compares memory.

    .venv/bin/python benchmarks/budgets.py [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The ceiling we claim for one email: the converting process (parsing a 50 MB email dominates),
# plus two SVG workers at their RLIMIT_AS.
CEILING_MB = 512 + 2 * 256

_MEASURE = r"""
import json, resource, sys, time
from inbox_pipeline.core.convert import ConvertOptions, convert_email
from inbox_pipeline.core.message import EmailParseError
raw = open(sys.argv[1], "rb").read()
started = time.perf_counter()
try:
    conv = convert_email(raw, options=ConvertOptions(fetch_images=False))
    outcome = f"EPUB {len(conv.epub) // 1024} KB, images {conv.images.kept} kept, {conv.images.dropped} dropped"
    reasons = conv.images.reasons[:1]
except EmailParseError as exc:
    outcome, reasons = f"refused: {exc}", []
seconds = time.perf_counter() - started
print(json.dumps({
    "seconds": seconds,
    "peak_mb": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024,
    "outcome": outcome,
    "reason": (reasons[0][-90:] if reasons else ""),
}))
"""


def email(subject: str, html: str, images: dict[str, tuple[str, bytes]] | None = None,
          attachment: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Budget Letters <letters@example.org>"
    msg["To"] = "reader@in.example.com"
    msg["Subject"] = subject
    msg["Date"] = "Thu, 03 Dec 2026 09:00:00 +0000"
    msg["Message-ID"] = f"<{abs(hash(subject))}@example.org>"
    msg.set_content("Plain text part.")
    paragraphs = "".join(f"<p>Paragraph {n}: a newsletter needs enough words to be kept as an article, so "
                         "here are some more of them about orchards and rain.</p>" for n in range(20))
    msg.add_alternative(f"<html><body><h1>{subject[:80]}</h1>{paragraphs}{html}</body></html>", subtype="html")
    if images:
        html_part = msg.get_payload()[1]
        for cid, (subtype, data) in images.items():
            html_part.add_related(data, maintype="image", subtype=subtype, cid=f"<{cid}>")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="big.bin")
    return msg.as_bytes()


def classes(corpus: Path | None) -> dict[str, bytes]:
    from PIL import Image

    from inbox_pipeline_tests.helpers import png_bomb, svg_use_bomb, svg_with_image

    def encoded(im, fmt: str, **options) -> bytes:
        buf = io.BytesIO()
        im.save(buf, fmt, **options)
        return buf.getvalue()

    size = (1600, 1200)
    photo = Image.merge("RGB", [Image.linear_gradient("L").resize(size), Image.effect_noise(size, 20),
                                Image.linear_gradient("L").rotate(90).resize(size)])
    photo_jpeg = encoded(photo, "JPEG", quality=50)
    gradient = Image.linear_gradient("L").resize((5000, 5000))
    rgba_25mp = encoded(Image.merge("RGBA", [gradient, gradient.rotate(90), gradient, gradient.transpose(0)]), "PNG")
    svg_png_bomb = svg_with_image(png_bomb(20_000))
    found: dict[str, bytes] = {}
    if corpus and corpus.is_dir():
        largest = sorted(corpus.glob("*.eml"), key=lambda p: p.stat().st_size)[-2:]
        for path in largest:
            found[f"corpus: {path.name[:40]} ({path.stat().st_size // 1024} KB)"] = path.read_bytes()
    found.update({
        "plain newsletter": email("A plain issue", "<p>The end.</p>"),
        "60 inline photos (1600x1200 JPEG)": email(
            "Sixty photos", "".join(f'<img src="cid:p{n}"/>' for n in range(60)),
            {f"p{n}": ("jpeg", photo_jpeg) for n in range(60)}),
        "25 MP RGBA PNG (at the pixel cap)": email("At the cap", '<img src="cid:big"/>', {"big": ("png", rgba_25mp)}),
        "PNG bomb 20000x20000 (400 MP)": email("PNG bomb", '<img src="cid:bomb"/>', {"bomb": ("png", png_bomb(20_000))}),
        "SVG <use> bomb (10^10 elements)": email("Use bomb", '<img src="cid:svg"/>', {"svg": ("svg+xml", svg_use_bomb())}),
        "SVG with a PNG bomb inside": email("SVG PNG bomb", '<img src="cid:svg"/>', {"svg": ("svg+xml", svg_png_bomb)}),
        "10,000-character unbroken subject": email("x" * 10_000, "<p>Long subject.</p>"),
        "35 MB attachment (47 MB in base64, near the 50 MB limit)": email(
            "Big attachment", "<p>See attached.</p>", attachment=bytes(range(256)) * (35 * 4096)),
    })
    return found


def cover_timings() -> None:
    """The cover alone: a usual title, and unbroken words that were cubic before (2,000 chars: ~100 s)."""
    import time

    from inbox_pipeline.core.cover import render_cover

    render_cover("warm up", "Sender", "1 Jan 2026")
    for name, title in [("usual title", "Field Notes #12: The quiet orchard"),
                        ("2,000-character word", "x" * 2_000), ("10,000-character word", "y" * 10_000)]:
        started = time.perf_counter()
        render_cover(title, "Sender", "1 Jan 2026")
        print(f"cover, {name}: {(time.perf_counter() - started) * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in classes(args.corpus).items():
            path = Path(tmp) / "email.eml"
            path.write_bytes(raw)
            done = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True,
                                  env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
            if done.returncode != 0:
                print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((name, len(raw), result))
    print("| input | size | time | peak RSS | outcome |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name, size, r in rows:
        worst = max(worst, r["peak_mb"])
        outcome = r["outcome"] + (f" ({r['reason']})" if r["reason"] else "")
        print(f"| {name} | {size / 1024 / 1024:.1f} MB | {r['seconds']:.1f} s | {r['peak_mb']:.0f} MB | {outcome} |")
    print()
    cover_timings()
    total = worst + 2 * 256
    verdict = "met" if total <= CEILING_MB else "MISSED"
    print(f"\nper-email peak: {worst:.0f} MB measured + 2 x 256 MB of SVG workers (RLIMIT_AS) = {total:.0f} MB; "
          f"ceiling {CEILING_MB} MB: {verdict}")
    return 0 if worst + 2 * 256 <= CEILING_MB else 1


if __name__ == "__main__":
    sys.exit(main())
