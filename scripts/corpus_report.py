"""Score clean_html on the shared corpus: keep/drop phrases per platform, and timing.

    .venv/bin/python scripts/corpus_report.py [--corpus ../shared/corpus] [--verbose] [FILE ...]

For each labelled file, a `keep` phrase counts when it appears in the cleaned text and a
`drop` phrase counts when it does not (both compared lower-cased, letters and digits only).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html as html_lib
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inbox_pipeline.core.clean import clean_html  # noqa: E402

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    return _NOT_WORD.sub("", text.lower())


def read_email(path: Path) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
    """HTML, headers and subject of a corpus file (.html is a bare body, .eml is MIME)."""
    raw = path.read_bytes()
    if path.suffix == ".html":
        return raw.decode("utf-8", "replace"), (), None
    try:
        from inbox_pipeline.core.parse import parse_email  # the real parser, once it exists
    except ImportError:
        parse_email = None
    if parse_email is not None:
        try:
            parsed = parse_email(raw)
            return parsed.html or "", parsed.headers, parsed.subject
        except Exception as exc:  # a parser bug must not hide the cleaning scores
            print(f"  parse_email failed on {path.name}: {exc}; using the stdlib", file=sys.stderr)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = []
    for key, value in msg.items():
        try:
            headers.append((key.lower(), str(value)))
        except Exception:
            continue
    body = msg.get_body(("html", "plain"))
    if body is None:
        return "", tuple(headers), None
    try:
        content = body.get_content()
    except Exception:
        content = (body.get_payload(decode=True) or b"").decode("latin-1", "replace")
    if body.get_content_type() == "text/plain":
        content = "".join(f"<p>{html_lib.escape(p)}</p>" for p in content.split("\n\n"))
    return content, tuple(headers), str(msg.get("subject") or "") or None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--verbose", "-v", action="store_true", help="list every missed phrase")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per file")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    manifest = {}
    for line in (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        cols = line.split("\t")
        manifest[cols[0]] = cols[2]

    per_platform: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # files, keep ok/all, drop ok/all
    timings: list[float] = []
    misses: list[str] = []
    for line in (corpus / "LABELS.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        cols = (line.split("\t") + [""] * 5)[:5]
        name, _kind, keep, drop, _notes = cols
        if args.files and name not in args.files:
            continue
        path = corpus / name
        html, headers, subject = read_email(path)
        best = float("inf")
        for _ in range(max(1, args.repeat)):
            start = time.process_time()  # CPU time: fair on a machine shared with other jobs
            article = clean_html(html, headers=headers, subject=subject)
            best = min(best, time.process_time() - start)
        timings.append(best * 1000)
        etree.fromstring(f"<div>{article.html}</div>")  # must be well-formed XML
        text = normalise(etree.fromstring(f"<div>{article.html}</div>").xpath("string()"))
        key = f"{manifest.get(name, '?')}->{article.platform}"
        row = per_platform[key]
        row[0] += 1
        for phrase in filter(None, (p.strip() for p in keep.split(" || "))):
            row[2] += 1
            if normalise(phrase) in text:
                row[1] += 1
            else:
                misses.append(f"KEEP missing  {name}: {phrase}")
        for phrase in filter(None, (p.strip() for p in drop.split(" || "))):
            row[4] += 1
            if normalise(phrase) not in text:
                row[3] += 1
            else:
                misses.append(f"DROP present  {name}: {phrase}")
        if args.verbose:
            print(f"{name}: platform={article.platform} lang={article.language} words={article.words} "
                  f"removed={article.removed} {best * 1000:.1f} ms")

    print(f"\n{'manifest->detected platform':<34} {'files':>5} {'keep':>10} {'drop':>10}")
    totals = [0, 0, 0, 0, 0]
    for key in sorted(per_platform):
        row = per_platform[key]
        totals = [a + b for a, b in zip(totals, row)]
        print(f"{key:<34} {row[0]:>5} {row[1]:>4}/{row[2]:<5} {row[3]:>4}/{row[4]:<5}")
    keep_pct = 100 * totals[1] / max(1, totals[2])
    drop_pct = 100 * totals[3] / max(1, totals[4])
    print(f"{'TOTAL':<34} {totals[0]:>5} {totals[1]:>4}/{totals[2]:<5} {totals[3]:>4}/{totals[4]:<5}")
    print(f"\nkeep {keep_pct:.1f}%  drop {drop_pct:.1f}%")
    if timings:
        ordered = sorted(timings)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        print(f"clean_html CPU time per email: median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
              f"max {ordered[-1]:.1f} ms ({len(timings)} emails)")
    if misses:
        print("\n" + "\n".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
