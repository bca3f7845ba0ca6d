from ._support import assert_dropped, assert_kept, clean_fixture


def test_ghost_is_recognised_by_its_card_classes():
    assert clean_fixture("ghost.html").platform == "ghost"


def test_ghost_keeps_cards_lists_and_code():
    article = clean_fixture("ghost.html")
    assert_kept(
        article,
        "Compost notes for a wet spring",
        "Compost heaps stall in a wet spring",
        "The heap on day five, back above fifty degrees.",
        "Dry leaves saved from autumn",
        "turn every 4 days",
    )
    assert "<pre><code>turn every 4 days\ncheck temperature daily</code></pre>" in article.html
    assert "<ol>" in article.html


def test_ghost_preheader_feedback_and_footer_are_gone():
    article = clean_fixture("ghost.html")
    assert_dropped(
        article,
        "A short excerpt that only the inbox list shows.",  # hidden by a <style> rule
        "View in browser",
        "More like this",
        "Unsubscribe",
        "Powered by Ghost",
    )
