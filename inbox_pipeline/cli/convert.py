"""``inbox-pipeline convert``: preview any email as the EPUB a Kindle would get."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inbox_pipeline.cli.errors import CliError
from inbox_pipeline.core.message import EmailParseError
from inbox_pipeline.seams._common import MAX_EMAIL_BYTES, ObjectTooLarge, read_file_within

INPUT_SUFFIXES = {".eml", ".html", ".htm", ".json", ".txt", ".msg"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert emails (.eml, .html, webhook .json) to EPUB",
        description="Convert one or more emails to EPUB. With several inputs or a folder, -o names a folder.",
    )
    p.add_argument("inputs", nargs="+", metavar="FILE", help="an .eml, .html or webhook .json file, or a folder of them")
    p.add_argument("-o", "--output", metavar="OUT", help="OUT.epub for one input, a folder for several")
    p.add_argument("--no-images", action="store_true", help="do not fetch remote images (cid: images still embed)")
    p.set_defaults(func=run)


def collect_inputs(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
            if not found:
                raise CliError(f"{path}: no .eml, .html or .json files in this folder")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"{path}: no such file or folder")
    return files


def output_paths(files: list[Path], output: str | None, batch: bool) -> list[Path]:
    """One target per input: never an input itself, and in a batch never the same twice."""
    inputs = {_identity(f) for f in files}
    if not batch:
        target = Path(output) if output else files[0].with_suffix(".epub")
        if target.is_dir():
            target = target / files[0].with_suffix(".epub").name
        if _identity(target) in inputs:
            raise CliError(f"{target}: this is the input; name another output with -o")
        return [target]
    folder = Path(output) if output else Path.cwd()
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder}: with several inputs, -o must name a folder")
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    targets = []
    for f in files:
        number = 1
        while True:  # a.eml and a.html both want a.epub, and a-2.eml may hold a-2.epub already
            name = f.stem if number == 1 else f"{f.stem}-{number}"
            target = folder / f"{name}.epub"
            if name.casefold() not in taken and _identity(target) not in inputs:
                break
            number += 1
        taken.add(name.casefold())  # casefold: a.eml and A.eml collide on macOS and Windows
        targets.append(target)
    return targets


def _identity(path: Path) -> str:
    return os.path.normcase(str(path.resolve()))


def summary_line(source: Path, target: Path, conv) -> str:
    email = conv.email
    sender = email.sender.name or email.sender.email or "unknown sender"
    return (
        f"{source.name}: {conv.title!r} from {sender} | {conv.classification.kind}"
        f" | {conv.article.platform} | {conv.words} words"
        f" | images {conv.images_kept} kept, {conv.images_dropped} dropped"
        f" | {len(conv.epub):,} bytes -> {target}"
    )


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.enabled = total > 1 and sys.stderr.isatty()

    def update(self, done: int, label: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / self.total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {label[:40]:<40}")
        sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    # Lazy: the converter (lxml, the lexicon's compiled patterns, ebooklib, Pillow) is about 0.5 s
    # of imports, which every other command and `--help` would pay at the top of this module.
    from inbox_pipeline.core.convert import ConvertOptions, convert_email

    files = collect_inputs(args.inputs)
    batch = len(files) > 1 or any(Path(p).is_dir() for p in args.inputs)
    targets = output_paths(files, args.output, batch)
    options = ConvertOptions(fetch_images=not args.no_images)
    progress = Progress(len(files))
    failures = 0
    for index, (source, target) in enumerate(zip(files, targets), start=1):
        progress.update(index - 1, source.name)
        try:
            raw = read_file_within(source, MAX_EMAIL_BYTES, "email")  # "too large" from its size, unread
            conv = convert_email(raw, options=options)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(conv.epub)
        except (EmailParseError, ObjectTooLarge) as exc:
            failures += 1
            progress.clear()
            print(f"{source.name}: error: {exc}", file=sys.stderr)
            continue
        except OSError as exc:
            failures += 1
            progress.clear()
            print(f"{source.name}: error: {exc.strerror or exc}", file=sys.stderr)
            continue
        except Exception as exc:  # one bad email never stops a batch
            failures += 1
            progress.clear()
            print(f"{source.name}: error: could not convert ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        progress.clear()
        print(summary_line(source, target, conv), flush=True)
    progress.update(len(files), "done")
    progress.clear()
    if batch and len(files) > 1:
        print(f"{len(files) - failures} of {len(files)} converted", file=sys.stderr)
    return 1 if failures else 0
