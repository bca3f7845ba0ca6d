from ._support import assert_dropped, assert_kept, assert_recognised, clean_fixture

HEADERS = (("feedback-id", "1234567:890123:emailtemplate:CK"),)


def test_kit_is_recognised():
    assert_recognised("convertkit", HEADERS)


def test_kit_letter_keeps_body_quote_and_signature():
    article = clean_fixture("convertkit.html", headers=HEADERS)
    assert_kept(
        article,
        "I kept a notebook next to the kettle",
        "Write before you read, and the day begins with your own voice.",
        "Try it for a week and tell me what you find.",
        "Warmly",
        "Mira",
    )
    assert "<blockquote>" in article.html


def test_kit_forwarded_referral_and_footer_are_gone():
    article = clean_fixture("convertkit.html", headers=HEADERS)
    assert_dropped(
        article,
        "On waking before the alarm",
        "Was this forwarded to you",
        "personal referral link",
        "40 Elm Lane",
        "Unsubscribe",
        "Update your profile",
        "Built with Kit",
    )
