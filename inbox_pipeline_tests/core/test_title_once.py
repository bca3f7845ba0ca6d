"""The book shows an article's title once, as the chapter heading, with the byline under it.

Run on the project's own demo samples, through the conversion the pipeline uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox_pipeline.core.convert import ConvertOptions, convert_email
from inbox_pipeline_tests.helpers import epub_text, normalise

SAMPLES = Path(__file__).resolve().parents[2] / "inbox_pipeline" / "demo" / "samples"


def book_text(name: str) -> str:
    conversion = convert_email((SAMPLES / name).read_bytes(), options=ConvertOptions(fetch_images=False))
    return normalise(epub_text(conversion.epub))


@pytest.mark.parametrize(
    ("sample", "title", "byline", "body"),
    [
        ("03-ghost-last-sleeper.eml", "The last sleeper to the mountains", "Night Trains Quarterly", "The sleeper leaves at 22:48"),
        ("02-beehiiv-soil-sensors.eml", "Soil sensors on a shoestring", "Compost & Code", "Capacitive, not resistive"),
        ("01-substack-harbour-bells.eml", "Why the harbour bells still ring at dawn", "The Tidewater Ledger", "quarter to six"),
    ],
)
def test_the_title_is_shown_once_with_the_byline(sample: str, title: str, byline: str, body: str) -> None:
    text = book_text(sample)
    assert text.count(normalise(title)) == 1
    assert text.count(normalise(byline)) == 1  # in the byline; no masthead link repeating it
    assert normalise(body) in text


def test_the_ghost_sample_loses_its_subscribe_line_and_keeps_its_article() -> None:
    text = book_text("03-ghost-last-sleeper.eml")
    assert normalise("Subscribe to Night Trains Quarterly") not in text
    assert normalise("Sit on the left side in the morning for the lake.") in text


def test_the_substack_sample_keeps_its_author_line() -> None:
    assert normalise("Mara Quennell") in book_text("01-substack-harbour-bells.eml")


def test_a_masthead_link_to_the_senders_home_page_goes_and_a_link_into_the_site_stays() -> None:
    from inbox_pipeline.core.clean import clean_html
    from inbox_pipeline_tests.core.platforms._support import body_text

    html = (
        "<html><body><div><p><a href='https://www.nighttrains.example/'>NT·Q</a></p>"
        "<h1>The last sleeper</h1><p>The sleeper leaves at 22:48 and arrives, if the snow allows, at 07:10. "
        "For eleven years it has been announced as the last season, and it has kept running.</p>"
        "<p><a href='https://nighttrains.example/2025/timetable'>Last winter's timetable</a></p></div></body></html>"
    )
    headers = (("from", "Night Trains Quarterly <hello@nighttrains.example>"),)
    article = clean_html(html, headers=headers, subject="The last sleeper")
    text = body_text(article)
    assert text.startswith(normalise("The sleeper leaves"))  # no masthead, no repeated title
    assert normalise("Last winter's timetable") in text
    assert normalise("The sleeper leaves at 22:48") in text
