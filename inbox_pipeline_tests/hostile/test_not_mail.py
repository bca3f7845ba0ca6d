"""Garbage in (issue 9, point 5): input that is not mail is refused, never made into a book.

``convert``: a non-zero exit, one line on stderr, no file. Batch outputs never
overwrite each other or an input. Being built on branch ``intake``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox_pipeline_tests.hostile import inputs
from inbox_pipeline_tests.hostile.bounded import measure
from inbox_pipeline_tests.hostile.conftest import converted, run_cli

SECONDS, MEGABYTES = 60, 400



def convert(argv: list[str]) -> tuple[int, str, str]:
    return measure(run_cli, ["convert", "--no-images", *argv], seconds=SECONDS, megabytes=MEGABYTES).value


@pytest.mark.parametrize("name", sorted(inputs.not_mail()))
def test_convert_refuses_what_is_not_mail(tmp_path: Path, name: str) -> None:
    source = tmp_path / "letter.eml"
    source.write_bytes(inputs.not_mail()[name])
    code, _out, err = convert([str(source), "-o", str(tmp_path / "letter.epub")])
    assert code != 0 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and "letter.eml" in err
    assert not (tmp_path / "letter.epub").exists()


def test_convert_refuses_an_empty_file(tmp_path: Path) -> None:
    source = tmp_path / "empty.eml"
    source.write_bytes(b"")
    code, _out, err = convert([str(source), "-o", str(tmp_path / "empty.epub")])
    assert code == 1 and "empty" in err and "Traceback" not in err
    assert not (tmp_path / "empty.epub").exists()


def test_batch_outputs_get_unique_names(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, subject in (("a-2.eml", "Second"), ("a.eml", "First"), ("a.html", "Third")):
        raw = inputs.html_email(inputs.ARTICLE, subject=subject, msgid=f"<{name}@x>")
        (folder / name).write_bytes(raw if name.endswith(".eml") else f"<html><body><h1>{subject}</h1>{inputs.ARTICLE}</body></html>".encode())
    code, _out, _err = convert([str(folder), "-o", str(tmp_path / "out")])
    assert code == 0
    books = sorted((tmp_path / "out").glob("*.epub"))
    assert len(books) == 3, [b.name for b in books]


def test_convert_never_overwrites_its_input(tmp_path: Path) -> None:
    book = tmp_path / "x.epub"
    original = converted(inputs.html_email(inputs.ARTICLE))["epub"]
    book.write_bytes(original)
    code, _out, err = convert([str(book), "-o", str(book)])
    assert code != 0 and "Traceback" not in err
    assert book.read_bytes() == original


def test_deep_nesting_keeps_the_text() -> None:
    got = measure(converted, inputs.deep_divs(100_000), seconds=SECONDS, megabytes=MEGABYTES).value
    assert inputs.MARKER in got["text"]


def test_moderate_nesting_keeps_the_text() -> None:
    got = measure(converted, inputs.deep_divs(200), seconds=SECONDS, megabytes=MEGABYTES).value
    assert inputs.MARKER in got["text"]
