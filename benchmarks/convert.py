"""Time per email: inbox-pipeline's conversion beside pandoc and calibre.

Over every email of ../shared/corpus, with image fetching off, pinned to one
core. pandoc (HTML -> EPUB 3) and calibre's ``ebook-convert`` get the same
HTML bodies our parser extracted, in the same run. They are not dependencies:
install them from Debian's packages (``apt-get install pandoc calibre``); a
missing tool is reported, not faked.

    .venv/bin/python benchmarks/convert.py [--repeat 5] [--calibre-sample 12]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MEDIAN_MS = 25.0
TARGET_VS_PANDOC = 20.0
TARGET_VS_CALIBRE = 40.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def time_ours(files: list[Path], repeat: int) -> tuple[list[float], dict[str, float]]:
    from inbox_pipeline.core.convert import ConvertOptions, convert_email

    options = ConvertOptions(fetch_images=False)
    for path in files:  # warm-up: imports, caches, fonts
        convert_email(path.read_bytes(), options=options)
    per_email = []
    stages: dict[str, list[float]] = {}
    for path in files:
        raw = path.read_bytes()
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            conv = convert_email(raw, options=options)
            samples.append((time.perf_counter() - start) * 1e3)
            for stage, ms in conv.timings_ms.items():
                stages.setdefault(stage, []).append(ms)
        per_email.append(statistics.median(samples))
    return per_email, {stage: statistics.median(v) for stage, v in stages.items()}


def extract_bodies(files: list[Path], folder: Path) -> list[Path]:
    from inbox_pipeline.core.parse import parse_email

    bodies = []
    for path in files:
        email = parse_email(path.read_bytes())
        target = folder / (path.stem + ".html")
        html = email.html or "<p></p>"
        if "<html" not in html[:2000].lower():
            html = f"<html><head><title>{path.stem}</title></head><body>{html}</body></html>"
        target.write_text(html, encoding="utf-8")
        bodies.append(target)
    return bodies


def time_command(make_cmd, bodies: list[Path], out: Path) -> tuple[list[float], int]:
    times, failures = [], 0
    for body in bodies:
        target = out / (body.stem + ".epub")
        start = time.perf_counter()
        proc = subprocess.run(make_cmd(body, target), capture_output=True)
        elapsed = (time.perf_counter() - start) * 1e3
        if proc.returncode != 0 or not target.exists():
            failures += 1
            continue
        times.append(elapsed)
    return times, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--repeat", type=int, default=5, help="runs of ours per email (median taken)")
    parser.add_argument("--calibre-sample", type=int, default=0, help="only this many emails for calibre (0: all)")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, for us and the children
    files = sorted(p for p in args.corpus.iterdir() if p.suffix in {".eml", ".html"})
    if not files:
        print(f"no emails in {args.corpus}", file=sys.stderr)
        return 2

    ours, stages = time_ours(files, args.repeat)
    rows = [("inbox-pipeline", ours, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bodies = extract_bodies(files, tmp)
        if shutil.which("pandoc"):
            times, failed = time_command(
                lambda src, dst: ["pandoc", "-f", "html", "-t", "epub3", "-o", str(dst), str(src)], bodies, tmp
            )
            rows.append(("pandoc", times, failed))
        else:
            print("pandoc: not installed (apt-get install pandoc)")
        if shutil.which("ebook-convert"):
            sample = bodies[: args.calibre_sample] if args.calibre_sample else bodies
            times, failed = time_command(lambda src, dst: ["ebook-convert", str(src), str(dst)], sample, tmp)
            rows.append(("calibre ebook-convert", times, failed))
        else:
            print("calibre: not installed (apt-get install calibre)")

    print(f"\n{len(files)} emails from {args.corpus}, image fetching off, one core\n")
    print(f"{'tool':<24}{'emails':>8}{'median ms':>12}{'p95 ms':>10}{'failed':>8}{'ours x faster':>15}")
    our_median = statistics.median(ours)
    for name, times, failed in rows:
        if not times:
            print(f"{name:<24}{0:>8}{'-':>12}{'-':>10}{failed:>8}")
            continue
        median = statistics.median(times)
        speed = "" if name == "inbox-pipeline" else f"{median / our_median:.0f}x"
        print(f"{name:<24}{len(times):>8}{median:>12.1f}{percentile(times, 0.95):>10.1f}{failed:>8}{speed:>15}")
    print("\nour stages (median ms): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    verdicts = [f"median {our_median:.1f} ms (target <= {TARGET_MEDIAN_MS:.0f} ms): {'ok' if our_median <= TARGET_MEDIAN_MS else 'MISSED'}"]
    for name, times, _ in rows[1:]:
        if times:
            target = TARGET_VS_PANDOC if name == "pandoc" else TARGET_VS_CALIBRE
            ratio = statistics.median(times) / our_median
            verdicts.append(f"{ratio:.0f}x faster than {name} (target >= {target:.0f}x): {'ok' if ratio >= target else 'MISSED'}")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
