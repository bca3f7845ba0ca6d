"""Keep/drop scores of the shared corpus, split into the part the rules were written on and
the part held out from them.

The split is fixed by a hash of the file name, so nobody chooses which emails land where:
an email is *held out* when ``sha256(name) % 5 < 2`` (29 of the 75 emails). Rules are written
by reading the misses of the written-on part only; the held-out part is scored, never read.

Two more views of generalisation, printed beside it:

- *unseen platforms* (leave-one-platform-out, as far as rules that are code allow): the
  emails of every platform none of whose emails is in the written-on part. No rule was
  written on a newsletter of these senders' software; each platform row says whether its
  platform was written on.
- *rotated split*: the same hash with another seed (``sha256("b" + name) % 5 < 2``). The
  rules were written on the first split, so part of this split's held-out side was read;
  its score shows how much the held-out figure depends on which emails the first seed chose.
A `keep` phrase counts when it is in the book's text, a `drop` phrase when it is not (both
lower-cased, letters and digits only).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inbox_pipeline_tests.helpers import normalise

HELD_OUT_MODULUS = 5
HELD_OUT_BELOW = 2
_LANGUAGE = re.compile(r"^([A-Z][a-z]+)")


ROTATED_SEED = "b"


def is_held_out(file_name: str, seed: str = "") -> bool:
    """True for the emails no rule may be written on (about 40% of the corpus); ``seed``
    gives another split of the same size (the rotated split)."""
    digest = int(hashlib.sha256((seed + file_name).encode("utf-8")).hexdigest(), 16)
    return digest % HELD_OUT_MODULUS < HELD_OUT_BELOW


@dataclass
class Labelled:
    file: str
    kind: str
    platform: str
    language: str  # the labeller's note ("English", "German", ...), "?" when it names none
    keep: list[str]
    drop: list[str]

    @property
    def held_out(self) -> bool:
        return is_held_out(self.file)

    @property
    def rotated_held_out(self) -> bool:
        return is_held_out(self.file, ROTATED_SEED)


def _phrases(cell: str | None) -> list[str]:
    return [p.strip() for p in (cell or "").split("||") if p.strip()]


def read_labels(corpus: Path) -> list[Labelled]:
    platforms = {}
    with open(corpus / "MANIFEST.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            platforms[row["file"]] = row["platform"]
    labels = []
    with open(corpus / "LABELS.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            language = _LANGUAGE.match(row["notes"] or "")
            labels.append(
                Labelled(
                    row["file"],
                    row["kind"],
                    platforms.get(row["file"], "?"),
                    language.group(1) if language else "?",
                    _phrases(row["keep"]),
                    _phrases(row["drop"]),
                )
            )
    return labels


@dataclass
class Tally:
    """Of ``n`` phrases of one sort (keep or drop), ``ok`` came out as labelled."""

    ok: int = 0
    n: int = 0

    def count(self, ok: bool) -> None:
        self.n += 1
        self.ok += ok

    def add(self, other: "Tally") -> None:
        self.ok += other.ok
        self.n += other.n

    @property
    def rate(self) -> float:
        return self.ok / self.n if self.n else 1.0

    def __str__(self) -> str:
        return f"{self.ok}/{self.n}"


@dataclass
class Score:
    files: int = 0
    keeps: Tally = field(default_factory=Tally)  # keep phrases in the text
    drops: Tally = field(default_factory=Tally)  # drop phrases not in it

    def add(self, other: "Score") -> None:
        self.files += other.files
        self.keeps.add(other.keeps)
        self.drops.add(other.drops)

    @property
    def keep(self) -> float:
        return self.keeps.rate

    @property
    def drop(self) -> float:
        return self.drops.rate


@dataclass
class CorpusScores:
    per_file: dict[str, Score] = field(default_factory=dict)
    misses: list[tuple[Labelled, str]] = field(default_factory=list)  # (label, "keep missing: ...")
    labels: list[Labelled] = field(default_factory=list)

    def _sum(self, chosen: Callable[[Labelled], bool]) -> Score:
        """The score of the emails whose label is ``chosen``."""
        total = Score()
        for label in self.labels:
            if chosen(label):
                total.add(self.per_file[label.file])
        return total

    def total(self, held_out: bool | None = None) -> Score:
        return self._sum(lambda label: held_out is None or label.held_out == held_out)

    def written_on_platforms(self) -> set[str]:
        """The platforms with at least one email in the written-on part."""
        return {label.platform for label in self.labels if not label.held_out}

    def unseen_platforms(self) -> tuple[int, Score]:
        """(how many platforms, their score): the platforms no rule was written on."""
        seen = self.written_on_platforms()
        platforms = {label.platform for label in self.labels} - seen
        return len(platforms), self._sum(lambda label: label.platform in platforms)

    def rotated(self, held_out: bool) -> Score:
        """A part of the rotated split (another seed of the same hash)."""
        return self._sum(lambda label: label.rotated_held_out == held_out)

    def grouped(self, key: str) -> dict[str, Score]:
        groups: dict[str, Score] = defaultdict(Score)
        for label in self.labels:
            groups[getattr(label, key)].add(self.per_file[label.file])
        return dict(groups)

    def table(self) -> str:
        """Per platform, per language and per part of the split, as printed by the test and the script."""
        lines: list[str] = []
        seen = self.written_on_platforms()
        for key, title in (("platform", "platform"), ("language", "language")):
            lines.append(f"\n{title:<16}{'files':>6}{'keep':>12}{'drop':>12}")
            for name, score in sorted(self.grouped(key).items()):
                mark = ("   rules written on it" if name in seen else "   UNSEEN: no rule written on it") if key == "platform" else ""
                lines.append(_row(name, score) + mark)
        count, unseen = self.unseen_platforms()
        lines.append(f"\n{'part':<16}{'files':>6}{'keep':>12}{'drop':>12}")
        lines.append(_row("written-on", self.total(held_out=False)))
        lines.append(_row("held-out", self.total(held_out=True)))
        lines.append(_row("unseen platf.", unseen) + f"   ({count} platforms no rule was written on)")
        lines.append(_row("rotated: rest", self.rotated(held_out=False)))
        lines.append(_row("rotated: held", self.rotated(held_out=True)) + '   (seed "b": partly read, see above)')
        lines.append(_row("ALL", self.total()))
        return "\n".join(lines)

    def written_on_misses(self) -> list[str]:
        """The misses the rules may be written on (the held-out ones are counted, not shown)."""
        return [f"{text}  {label.file}" for label, text in self.misses if not label.held_out]


def _row(name: str, score: Score) -> str:
    return f"{name:<16}{score.files:>6}{score.keeps!s:>12}{score.drops!s:>12}   keep {score.keep:6.1%}  drop {score.drop:6.1%}"


def score(labels: list[Labelled], texts: dict[str, str]) -> CorpusScores:
    """Score each labelled file's book text (``texts``: file name -> the text a reader sees)."""
    result = CorpusScores(labels=labels)
    for label in labels:
        text = normalise(texts[label.file])
        row = result.per_file[label.file] = Score(files=1)
        for phrase in label.keep:
            kept = normalise(phrase) in text
            row.keeps.count(kept)
            if not kept:
                result.misses.append((label, f"keep missing: {phrase}"))
        for phrase in label.drop:
            dropped = normalise(phrase) not in text
            row.drops.count(dropped)
            if not dropped:
                result.misses.append((label, f"drop present: {phrase}"))
    return result
