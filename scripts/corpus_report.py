"""Score the delivered book on the shared corpus: keep/drop phrases per platform, per language
and per part of the held-out split (inbox_pipeline_tests/corpus_scores.py), and timing.

    .venv/bin/python scripts/corpus_report.py [--corpus ../shared/corpus] [--verbose] [FILE ...]

Each email goes through core.convert.convert_email (image fetching off), the one conversion
path the pipeline uses; the text of the EPUB is scored. Misses are listed for the written-on
part only: the held-out part is there to be scored, not read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inbox_pipeline.core.convert import ConvertOptions, convert_email  # noqa: E402
from inbox_pipeline_tests.corpus_scores import read_labels, score  # noqa: E402
from inbox_pipeline_tests.helpers import epub_text  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--verbose", "-v", action="store_true", help="one line per written-on email")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    labels = [label for label in read_labels(corpus) if not args.files or label.file in args.files]
    options = ConvertOptions(fetch_images=False)
    texts: dict[str, str] = {}
    timings: list[float] = []
    for label in labels:
        start = time.process_time()  # CPU time: fair on a machine shared with other jobs
        conversion = convert_email((corpus / label.file).read_bytes(), options=options)
        timings.append((time.process_time() - start) * 1000)
        texts[label.file] = epub_text(conversion.epub)
        if args.verbose and not label.held_out:
            article = conversion.article
            print(f"{label.file}: kind={conversion.classification.kind} platform={article.platform} "
                  f"lang={article.language} words={article.words} removed={article.removed}")
    scores = score(labels, texts)
    print(scores.table())
    if timings:
        ordered = sorted(timings)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        print(f"\nconvert_email CPU time per email: median {statistics.median(timings):.1f} ms, "
              f"p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms ({len(timings)} emails)")
    misses = scores.written_on_misses()
    if misses:
        print("\nwritten-on misses:\n" + "\n".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
