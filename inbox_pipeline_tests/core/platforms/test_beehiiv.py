from ._support import assert_dropped, assert_kept, clean_fixture


def test_beehiiv_is_recognised():
    assert clean_fixture("beehiiv.html").platform == "beehiiv"


def test_beehiiv_keeps_the_story_and_its_list():
    article = clean_fixture("beehiiv.html")
    assert_kept(
        article,
        "Three small harbours, one big idea",
        "share one cold-storage building instead of running three half-empty ones",
        "Harbour two handles ice.",
        "The cooperative plans to open its books to other ports next spring.",
    )
    assert article.html.count("<li>") == 3


def test_beehiiv_referral_read_online_and_footer_are_gone():
    article = clean_fixture("beehiiv.html")
    assert_dropped(
        article,
        "Read Online",
        "You currently have 0 referrals",
        "Click to Share",
        "Update your email preferences",
        "12 Harbour Road",
        "Powered by beehiiv",
    )
    assert "/open" not in article.html
