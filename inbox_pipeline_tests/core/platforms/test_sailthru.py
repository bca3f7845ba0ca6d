from ._support import assert_dropped, assert_kept, clean_fixture


def test_sailthru_is_recognised():
    assert clean_fixture("sailthru.html").platform == "sailthru"


def test_sailthru_essay_and_rates_table_are_kept():
    article = clean_fixture("sailthru.html")
    assert_kept(
        article,
        "the market can price bad news but not surprises",
        "ladders of short bonds ride out these weeks",
        "10-year",
        "4.21%",
    )
    assert article.html.count("<tr>") == 4  # a real data table stays a table


def test_sailthru_ads_referral_and_footer_are_gone():
    article = clean_fixture("sailthru.html")
    assert_dropped(
        article,
        "Why the bond market hates surprises",
        "View Online",
        "Enjoying this newsletter",
        "You received this message because",
        "731 Lexington Avenue",
    )
    assert "li.ledgerline.com/imp" not in article.html
