"""Gmail/Apple/Outlook "Forwarded message" wrappers are removed; the original sender is kept."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

from inbox_pipeline.core.forwarded import parse_forwarded_date, unwrap_forwarded
from inbox_pipeline.core.parse import parse_email

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parse"


def test_gmail_forward_eml_is_unwrapped() -> None:
    email = parse_email((FIXTURES / "gmail-forwarded.eml").read_bytes())

    assert email.forwarded is True
    assert email.sender.email == "letters@quietledger.example" and email.sender.name == "The Quiet Ledger"
    assert email.subject == "Bread prices, explained"
    # Gmail writes the forwarded time in the forwarder's zone: the outer Date's -05:00
    assert email.date == datetime(2024, 3, 2, 9, 15, tzinfo=timezone(timedelta(hours=-5)))
    assert "Forwarded message" not in email.html and "gmail_attr" not in email.html
    assert "mara@gmail.example" not in email.html
    assert '<img src="https://quietledger.example/hero.jpg"' in email.html  # content right after the wrapper
    assert "rent and wages are most of the rest" in email.html
    assert email.text.startswith("Bread prices, explained")
    assert "Forwarded message" not in email.text
    # the routing facts stay those of the outer message
    assert email.recipients == ("alice-7f3k@in.example.com",)
    assert email.header("from") == "Mara Lind <mara@gmail.example>"


def test_corpus_substack_forwarded_html(corpus_dir: Path) -> None:
    name = "omnivore__substack-forwarded-newsletter.html"
    email = parse_email((corpus_dir / name).read_bytes())

    assert email.forwarded is True
    assert email.sender.email == "slowchinese@substack.com"
    assert email.subject == "Companies that eat people"
    assert email.date is not None and (email.date.year, email.date.month, email.date.day) == (2022, 2, 18)
    assert "Forwarded message" not in email.html
    with (corpus_dir / "LABELS.tsv").open(encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh, delimiter="\t") if r["file"] == name)
    first_keep = row["keep"].split("||")[0].strip()
    assert first_keep in email.html


def test_marker_deep_in_a_newsletter_is_left_alone() -> None:
    article = "<p>" + "A long paragraph about letters. " * 80 + "</p>"
    quoted = (
        "<blockquote>---------- Forwarded message ---------<br>From: Someone &lt;s@example.com&gt;<br>"
        "Subject: Old news<br></blockquote>"
    )
    html = f"<html><body>{article}{quoted}<p>End.</p></body></html>"
    assert unwrap_forwarded(html, None) is None


def test_marker_without_header_lines_is_not_a_wrapper() -> None:
    assert unwrap_forwarded("<p>---------- Forwarded message ---------</p><p>hello</p>", None) is None


def test_apple_mail_text_forward() -> None:
    text = (
        "Worth reading.\n\nBegin forwarded message:\n\n"
        "From: Night Shift Notes <nightshift@mail.beehiiv.example>\n"
        "Subject: Lamps and the people who tend them\n"
        "Date: 18 February 2024 at 23:57:29 GMT+1\n"
        "To: mara@icloud.example\n\n"
        "Lamps need tending every evening.\n"
    )
    found = unwrap_forwarded(None, text)
    assert found is not None
    assert found.text == "Lamps need tending every evening.\n".strip("\n")
    assert found.sender.email == "nightshift@mail.beehiiv.example"
    assert found.subject == "Lamps and the people who tend them"
    assert found.date == datetime(2024, 2, 18, 23, 57, 29, tzinfo=timezone(timedelta(hours=1)))


def test_localised_gmail_marker_and_nested_forward() -> None:
    inner = (
        "---------- Forwarded message ---------\nFrom: Origin <origin@letters.example>\n"
        "Subject: The original\n\nThe real body.\n"
    )
    outer = (
        "---------- Weitergeleitete Nachricht ---------\nVon: Zwischen <mid@example.de>\n"
        "Datum: Mo., 4. März 2024 um 10:00\nBetreff: WG: The original\nAn: <x@example.de>\n\n" + inner
    )
    found = unwrap_forwarded(None, outer)
    assert found.text == "The real body."
    assert found.sender.email == "origin@letters.example"  # the innermost sender wins
    assert found.subject == "The original"


def test_forwarded_date_formats() -> None:
    assert parse_forwarded_date("Fri, Feb 18, 2022 at 11:57\u202fPM") == datetime(2022, 2, 18, 23, 57)
    assert parse_forwarded_date("Fri, 18 Feb 2022 23:57:00 +0100").utcoffset() == timedelta(hours=1)
    assert parse_forwarded_date("Friday, February 18, 2022 11:57 PM") == datetime(2022, 2, 18, 23, 57)
    assert parse_forwarded_date("not a date") is None
    assert parse_forwarded_date(None) is None
