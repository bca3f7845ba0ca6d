"""The `inbox-pipeline convert` command, driven as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from inbox_pipeline.cli import main
from inbox_pipeline_tests.helpers import bytes_read, epub_text, sparse_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "convert"


def test_convert_one_email_writes_epub_and_summary(tmp_path: Path, capsys) -> None:
    out = tmp_path / "notes.epub"
    assert main(["convert", str(FIXTURES / "field-notes.eml"), "-o", str(out), "--no-images"]) == 0
    line = capsys.readouterr().out.strip()
    assert "Field Notes #12: The quiet orchard" in line
    assert "Field Notes" in line and "newsletter" in line and "words" in line and "bytes" in line
    text = epub_text(out.read_bytes())
    assert "Apples ripen slowly in the cold valley" in text
    assert "View in browser" not in text
    assert "Unsubscribe" not in text


def test_batch_converts_the_good_files_and_reports_the_bad(tmp_path: Path, capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.eml").write_bytes((FIXTURES / "field-notes.eml").read_bytes())
    (inputs / "b.html").write_text("<html><head><title>Plain page</title></head><body><p>Short story about a lighthouse keeper and his cat.</p></body></html>")
    (inputs / "broken.json").write_text("{not json")
    out = tmp_path / "out"
    code = main(["convert", str(inputs), "-o", str(out), "--no-images"])
    captured = capsys.readouterr()
    assert code == 1  # one input failed
    assert sorted(p.name for p in out.iterdir()) == ["a.epub", "b.epub"]
    assert captured.out.count("\n") == 2
    assert "broken.json: error:" in captured.err
    assert "Traceback" not in captured.err
    assert "lighthouse keeper" in epub_text((out / "b.epub").read_bytes())


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inbox_pipeline.cli", "convert", str(tmp_path / "nope.eml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"inbox-pipeline: error: {tmp_path / 'nope.eml'}: no such file or folder"


def test_empty_file_is_rejected_clearly(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    assert main(["convert", str(empty), "-o", str(tmp_path / "x.epub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("empty.eml: error:")
    assert not (tmp_path / "x.epub").exists()


def test_a_3_gb_input_is_too_large_from_its_size_without_being_read(tmp_path: Path, capsys) -> None:
    huge = sparse_file(tmp_path / "huge.eml", 3 * 1024**3)
    rchar = bytes_read()
    assert main(["convert", str(huge), "-o", str(tmp_path / "huge.epub")]) == 1
    assert bytes_read() - rchar < 10 * 1024 * 1024  # fonts and modules loaded on the way, not the input
    assert capsys.readouterr().err.strip() == (
        "huge.eml: error: email too large: 3,221,225,472 bytes (limit 52,428,800)"
    )
    assert not (tmp_path / "huge.epub").exists()


def test_batch_outputs_never_overwrite_each_other_or_an_input(tmp_path: Path, capsys) -> None:
    eml = (FIXTURES / "field-notes.eml").read_bytes()
    (tmp_path / "a-2.eml").write_bytes(eml.replace(b"The quiet orchard", b"Issue a-2"))
    (tmp_path / "a.eml").write_bytes(eml.replace(b"The quiet orchard", b"Issue a"))
    (tmp_path / "a.html").write_text("<html><head><title>Issue html</title></head><body><p>A page of a.</p></body></html>")
    precious = tmp_path / "a-3.epub"  # an input whose name the third output would take
    precious.write_bytes(b"not an email, and not to be overwritten")
    files = [tmp_path / n for n in ("a-2.eml", "a.eml", "a.html", "a-3.epub")]

    main(["convert", *map(str, files), "-o", str(tmp_path), "--no-images"])  # a-3.epub is no email: 0 or 1

    assert precious.read_bytes() == b"not an email, and not to be overwritten"
    made = [p for p in tmp_path.glob("a*.epub") if p.name not in ("a-3.epub", "a-3-2.epub")]  # a-3-2: the bad input's
    titles = {p.name: epub_text(p.read_bytes()) for p in made}
    assert sorted(titles) == ["a-2.epub", "a-4.epub", "a.epub"]
    assert "Issue a-2" in titles["a-2.epub"] and "Issue a" in titles["a.epub"]
    assert "A page of a." in titles["a-4.epub"]
    assert "Traceback" not in capsys.readouterr().err


def test_convert_refuses_to_overwrite_its_input(tmp_path: Path, capsys) -> None:
    book = tmp_path / "x.epub"
    book.write_bytes(b"PK\x03\x04 an EPUB someone wants to keep")
    assert main(["convert", str(book), "-o", str(book)]) == 2
    assert capsys.readouterr().err.strip() == f"inbox-pipeline: error: {book}: this is the input; name another output with -o"
    assert book.read_bytes() == b"PK\x03\x04 an EPUB someone wants to keep"
    eml = tmp_path / "y.eml"
    eml.write_bytes((FIXTURES / "field-notes.eml").read_bytes())
    assert main(["convert", str(eml), "-o", str(tmp_path / "." / "y.eml")]) == 2
    assert eml.read_bytes() == (FIXTURES / "field-notes.eml").read_bytes()


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_input_that_is_not_mail_is_refused_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    import random

    cases = {
        "photo.eml": _png(),  # an image renamed .eml
        "noise.eml": random.Random(9).randbytes(4096),
        "note.txt": b"Dear reader,\n\nthis is a note with no headers at all.\n\nBye\n",
    }
    for name, data in cases.items():
        source = tmp_path / name
        source.write_bytes(data)
        target = tmp_path / f"{name}.epub"
        proc = subprocess.run(
            [sys.executable, "-m", "inbox_pipeline.cli", "convert", str(source), "-o", str(target), "--no-images"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1, name
        assert proc.stderr.count("\n") == 1 and proc.stdout == "", (name, proc.stderr)
        assert proc.stderr.startswith(f"{name}: error: not an email: it does not start with mail headers")
        assert not target.exists()


def test_deeply_nested_html_keeps_its_text(tmp_path: Path, capsys) -> None:
    depth = 100_000
    body = "<p>Before the deep part.</p>" + "<div>" * depth + "<p>The well has a bottom.</p>" + "</div>" * depth
    source = tmp_path / "deep.eml"
    source.write_bytes(
        b"From: Deep Letters <deep@letters.example>\r\nTo: reader@in.example\r\nSubject: Deep\r\n"
        b"Message-ID: <deep-1@letters.example>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + f"<html><body>{body}<p>After the deep part.</p></body></html>".encode()
    )
    out = tmp_path / "deep.epub"
    assert main(["convert", str(source), "-o", str(out), "--no-images"]) == 0
    text = epub_text(out.read_bytes())
    assert "Before the deep part." in text and "The well has a bottom." in text and "After the deep part." in text
