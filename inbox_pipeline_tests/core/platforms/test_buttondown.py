from ._support import assert_dropped, assert_kept, clean_fixture


def test_buttondown_is_recognised():
    assert clean_fixture("buttondown.html").platform == "buttondown"


def test_buttondown_keeps_prose_and_the_data_table():
    article = clean_fixture("buttondown.html")
    assert_kept(article, "I rebuilt the old bicycle trailer", "Pram wheels", "Until next month", "Tom")
    assert "<table>" in article.html and "<th>Cost</th>" in article.html


def test_buttondown_footer_is_gone():
    article = clean_fixture("buttondown.html")
    assert_dropped(article, "You're receiving this email", "Unsubscribe", "View in browser", "Powered by")
