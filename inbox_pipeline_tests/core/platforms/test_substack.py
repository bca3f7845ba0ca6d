from inbox_pipeline.core.clean import clean_html

from ._support import FIXTURES, assert_dropped, assert_kept, clean_fixture

HEADERS = (("list-id", "<ledger.substack.com>"), ("list-unsubscribe", "<https://ledger.substack.com/action/disable_email>"))


def test_substack_markup_is_recognised_without_headers():
    assert clean_fixture("substack.html").platform == "substack"


def test_substack_headers_alone_are_enough():
    html = "<p>" + " ".join(["A plain paragraph about tides and harbours."] * 5) + "</p>"
    assert clean_html(html, headers=HEADERS).platform == "substack"


def test_substack_post_keeps_title_body_figure_and_quote():
    article = clean_fixture("substack.html", headers=HEADERS)
    assert_kept(
        article,
        "Notes from the Lighthouse Ledger",
        "What a century of keepers' logbooks says about weather",
        "Every lighthouse keeper on the northern coast wrote three lines a day",
        "A keeper's ledger from the winter of 1911.",
        "Lamp lit at dusk, glass falling, the boat did not come.",
        "Next week I will compare the ledgers with ship insurance claims",
    )
    assert "<figure>" in article.html and "<figcaption>" in article.html
    assert 'src="https://substackcdn.com/image/fetch/w_1100/ledger.jpeg"' in article.html


def test_substack_clutter_is_gone():
    article = clean_fixture("substack.html", headers=HEADERS)
    assert_dropped(
        article,
        "Why keepers kept logs",  # hidden preheader
        "READ IN APP",
        "Restack",
        "Subscribe now",
        "Thanks for reading the Lighthouse Ledger",
        "You're currently a free subscriber",
        "548 Market Street",
        "Unsubscribe",
        "Start writing",
    )
    assert "email.mg1.substack.com/o/" not in article.html  # the open-tracking pixel
    assert article.removed >= 5
