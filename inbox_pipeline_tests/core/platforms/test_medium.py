from ._support import assert_dropped, assert_kept, assert_recognised, clean_fixture

HEADERS = (("from", "Medium Daily Digest <noreply@medium.com>"),)


def test_medium_is_recognised():
    assert_recognised("medium", HEADERS)


def test_medium_story_is_kept_with_its_link():
    article = clean_fixture("medium.html", headers=HEADERS)
    assert_kept(article, "The night bus map nobody drew", "eleven night buses that cross each other")
    assert 'href="https://medium.com/@rowan/the-night-bus-map-123?source=email-abc"' in article.html


def test_medium_footer_is_gone():
    article = clean_fixture("medium.html", headers=HEADERS)
    assert_dropped(article, "Sent by", "3500 Harbor Avenue", "Unsubscribe from this type of email", "Sign in", "Become a member")
