from ._support import assert_dropped, assert_kept, assert_recognised, clean_fixture

HEADERS = (("x-mailer", "HubSpot"), ("feedback-id", "abc:def:ghi:HubSpot"))


def test_hubspot_is_recognised():
    assert_recognised("hubspot", HEADERS)


def test_hubspot_rich_text_is_kept():
    article = clean_fixture("hubspot.html", headers=HEADERS)
    assert_kept(
        article,
        "Weeding robots learn the difference",
        "can now tell a young carrot from a thistle",
        "Farmers in the trial said the machine is slow but never skips a row.",
    )


def test_hubspot_preheader_sharing_and_footer_are_gone():
    article = clean_fixture("hubspot.html", headers=HEADERS)
    assert_dropped(
        article,
        "Weeding robots learn to tell carrots from thistles",
        "View in browser",
        "Submit a tip",
        "Share on LinkedIn",
        "400 Orchard St",
        "Manage preferences",
    )
    assert "shareArticle" not in article.html and "Cto/open" not in article.html
