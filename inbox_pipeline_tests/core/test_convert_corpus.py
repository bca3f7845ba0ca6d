"""Every email of the shared corpus converts to an EPUB a reader would want.

- every EPUB passes EPUBCheck with zero errors and zero fatals;
- >= 95% of the `keep` phrases of LABELS.tsv are in the EPUB's text and
  >= 90% of the `drop` phrases are not (case-insensitive, ignoring
  punctuation and whitespace); a per-platform table is printed;
- emails labelled `confirmation` are classified as confirmations.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from inbox_pipeline.core.convert import ConvertOptions, Conversion, convert_email
from inbox_pipeline_tests.helpers import epub_text, normalise

KEEP_TARGET = 0.95
DROP_TARGET = 0.90


@dataclass
class Labelled:
    file: str
    kind: str
    platform: str
    keep: list[str]
    drop: list[str]


def read_labels(corpus: Path) -> list[Labelled]:
    platforms = {}
    with open(corpus / "MANIFEST.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            platforms[row["file"]] = row["platform"]
    labels = []
    with open(corpus / "LABELS.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            split = lambda cell: [p.strip() for p in (cell or "").split("||") if p.strip()]  # noqa: E731
            labels.append(
                Labelled(row["file"], row["kind"], platforms.get(row["file"], "?"), split(row["keep"]), split(row["drop"]))
            )
    return labels


@pytest.fixture(scope="module")
def converted(corpus_dir: Path) -> dict[str, Conversion]:
    """Every corpus email converted once (image fetching off: no network here)."""
    options = ConvertOptions(fetch_images=False)
    results = {}
    for path in sorted(corpus_dir.iterdir()):
        if path.suffix in {".eml", ".html"}:
            results[path.name] = convert_email(path.read_bytes(), options=options)
    return results


def test_every_corpus_email_converts(corpus_dir: Path, converted: dict[str, Conversion]) -> None:
    emails = [p.name for p in corpus_dir.iterdir() if p.suffix in {".eml", ".html"}]
    assert sorted(converted) == sorted(emails)
    for name, conv in converted.items():
        assert conv.epub[:2] == b"PK", name
        assert conv.book.title, name


def test_every_corpus_epub_passes_epubcheck(
    java_available: bool, converted: dict[str, Conversion], tmp_path: Path, record_property
) -> None:
    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    paths = []
    for name, conv in converted.items():
        target = tmp_path / (Path(name).stem + ".epub")
        target.write_bytes(conv.epub)
        paths.append(target)
    reports = run_epubcheck_many(paths)
    failures = {
        path.name: (report.fatals + report.errors)[:5]
        for path, report in reports.items()
        if report.errors or report.fatals
    }
    record_property(
        "report", f"EPUBCheck: {len(reports) - len(failures)} of {len(reports)} EPUBs with zero errors and zero fatals"
    )
    assert len(reports) == len(paths)
    assert not failures, failures


def test_keep_and_drop_phrases(corpus_dir: Path, converted: dict[str, Conversion], record_property) -> None:
    per_platform: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # keep ok, keep n, drop ok, drop n
    misses: list[str] = []
    for label in read_labels(corpus_dir):
        text = normalise(epub_text(converted[label.file].epub))
        row = per_platform[label.platform]
        for phrase in label.keep:
            row[1] += 1
            if normalise(phrase) in text:
                row[0] += 1
            else:
                misses.append(f"keep missing  {label.file}: {phrase}")
        for phrase in label.drop:
            row[3] += 1
            if normalise(phrase) not in text:
                row[2] += 1
            else:
                misses.append(f"drop present  {label.file}: {phrase}")

    keep_ok = sum(r[0] for r in per_platform.values())
    keep_n = sum(r[1] for r in per_platform.values())
    drop_ok = sum(r[2] for r in per_platform.values())
    drop_n = sum(r[3] for r in per_platform.values())
    lines = [f"\n{'platform':<16}{'keep':>12}{'drop':>12}"]
    for platform in sorted(per_platform):
        k_ok, k_n, d_ok, d_n = per_platform[platform]
        lines.append(f"{platform:<16}{f'{k_ok}/{k_n}':>12}{f'{d_ok}/{d_n}':>12}")
    lines.append(f"{'ALL':<16}{f'{keep_ok}/{keep_n}':>12}{f'{drop_ok}/{drop_n}':>12}")
    lines.append(f"keep {keep_ok / keep_n:.1%} (target {KEEP_TARGET:.0%}), drop {drop_ok / drop_n:.1%} (target {DROP_TARGET:.0%})")
    record_property("report", "\n".join(lines + misses))
    assert keep_ok / keep_n >= KEEP_TARGET
    assert drop_ok / drop_n >= DROP_TARGET


def test_labelled_kinds_are_classified(corpus_dir: Path, converted: dict[str, Conversion]) -> None:
    expected = {"confirmation": "confirmation", "welcome": "transactional"}
    wrong = []
    for label in read_labels(corpus_dir):
        kind = converted[label.file].classification.kind
        want = expected.get(label.kind, "newsletter" if label.kind in {"newsletter", "promo", "template"} else None)
        if want and kind != want:
            wrong.append(f"{label.file}: labelled {label.kind}, classified {kind}")
    assert not wrong, wrong
