"""Every email of the shared corpus converts to an EPUB a reader would want.

- every EPUB passes EPUBCheck with zero errors and zero fatals;
- >= 98% of the `keep` phrases of LABELS.tsv are in the EPUB's text and
  >= 95% of the `drop` phrases are not (case-insensitive, ignoring
  punctuation and whitespace), on the emails held out from rule writing and
  on the whole corpus; tables per platform (each marked written on or unseen),
  per language and per part of the split are printed (the misses only for the
  written-on part), with the second measure of generalisation beside them: the
  platforms no rule was written on, and a rotated split;
- every labelled kind is classified as such (newsletters as newsletters).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox_pipeline.core.convert import ConvertOptions, Conversion, convert_email
from inbox_pipeline_tests.corpus_scores import read_labels, score
from inbox_pipeline_tests.helpers import epub_text

# The targets on the emails held out from rule writing (corpus_scores.is_held_out),
# printed with a verdict; the floors are what the code reaches today, so a rule that loses
# ground fails the test.
HELD_OUT_KEEP_TARGET = 0.98
HELD_OUT_DROP_TARGET = 0.95
HELD_OUT_KEEP_FLOOR = 1.0
HELD_OUT_DROP_FLOOR = 0.98  # 100/102 (98.0%) on 2026-12-04
KEEP_FLOOR = 1.0
DROP_FLOOR = 0.99  # 259/261 (99.2%)
# The second measure: the emails of the platforms no rule was written on, and the held-out
# side of the rotated split (corpus_scores.py).
UNSEEN_PLATFORMS_KEEP_FLOOR = 1.0
UNSEEN_PLATFORMS_DROP_FLOOR = 0.97  # 41/42 (97.6%)
ROTATED_HELD_OUT_DROP_FLOOR = 0.97  # 93/95 (97.9%)


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
    labels = read_labels(corpus_dir)
    scores = score(labels, {label.file: epub_text(converted[label.file].epub) for label in labels})
    held_out, everything = scores.total(held_out=True), scores.total()
    platforms, unseen = scores.unseen_platforms()
    rotated = scores.rotated(held_out=True)
    verdict = lambda value, target: "met" if value >= target else "MISSED"  # noqa: E731
    summary = (
        f"held-out: keep {held_out.keep:.1%} (target {HELD_OUT_KEEP_TARGET:.0%}: "
        f"{verdict(held_out.keep, HELD_OUT_KEEP_TARGET)}), drop {held_out.drop:.1%} "
        f"(target {HELD_OUT_DROP_TARGET:.0%}: {verdict(held_out.drop, HELD_OUT_DROP_TARGET)}); "
        f"{platforms} unseen platforms: keep {unseen.keep:.1%} ({verdict(unseen.keep, HELD_OUT_KEEP_TARGET)}), "
        f"drop {unseen.drop:.1%} ({verdict(unseen.drop, HELD_OUT_DROP_TARGET)}); "
        f"rotated held-out: keep {rotated.keep:.1%}, drop {rotated.drop:.1%}; "
        f"all: keep {everything.keep:.1%}, drop {everything.drop:.1%}"
    )
    record_property("report", "\n".join([scores.table(), summary, *scores.written_on_misses()]))
    assert held_out.keeps.n and held_out.drops.n, "no held-out phrases: the floors below would pass on nothing"
    assert held_out.keep >= HELD_OUT_KEEP_FLOOR, summary
    assert held_out.drop >= HELD_OUT_DROP_FLOOR, summary
    assert everything.keep >= KEEP_FLOOR, summary
    assert everything.drop >= DROP_FLOOR, summary
    assert unseen.keeps.n and unseen.drops.n, "no unseen platform: the second measure would pass on nothing"
    assert unseen.keep >= UNSEEN_PLATFORMS_KEEP_FLOOR, summary
    assert unseen.drop >= UNSEEN_PLATFORMS_DROP_FLOOR, summary
    assert rotated.keep >= KEEP_FLOOR, summary
    assert rotated.drop >= ROTATED_HELD_OUT_DROP_FLOOR, summary


def test_labelled_kinds_are_classified(corpus_dir: Path, converted: dict[str, Conversion]) -> None:
    expected = {"confirmation": "confirmation", "welcome": "transactional"}
    wrong = []
    for label in read_labels(corpus_dir):
        kind = converted[label.file].classification.kind
        want = expected.get(label.kind, "newsletter" if label.kind in {"newsletter", "promo", "template"} else None)
        if want and kind != want:
            wrong.append(f"{label.file}: labelled {label.kind}, classified {kind}")
    assert not wrong, wrong
