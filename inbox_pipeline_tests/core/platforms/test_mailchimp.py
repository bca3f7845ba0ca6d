from ._support import assert_dropped, assert_kept, assert_recognised, clean_fixture

HEADERS = (("x-mailer", "Mailchimp Mailer - **CID0123456789abcdef**"),)


def test_mailchimp_is_recognised_by_header_and_by_markup():
    assert_recognised("mailchimp", HEADERS)


def test_mailchimp_german_article_is_kept_and_outlook_only_text_is_not():
    article = clean_fixture("mailchimp.html", headers=HEADERS)
    assert_kept(
        article,
        "Der Wochenmarkt ist zurück",
        "ab Samstag stehen die Marktstände wieder auf dem Kirchplatz",
        "Wir freuen uns auf euch und auf den ersten Rhabarber des Jahres.",
    )
    assert_dropped(article, "Nur für Outlook sichtbar")
    assert article.language == "de"
    assert article.title == "Der Wochenmarkt ist zurück"  # the <title> is an unfilled merge tag


def test_mailchimp_preview_follow_block_and_footer_are_gone():
    article = clean_fixture("mailchimp.html", headers=HEADERS)
    assert_dropped(
        article,
        "Die Marktstände öffnen wieder",
        "im Browser ansehen",
        "Alle Rechte vorbehalten",
        "Du erhältst diese E-Mail",
        "Kirchplatz 3",
        "Zu Kontakten hinzufügen",
        "vom Newsletter abmelden",
    )
    assert "instagram" not in article.html and "list-manage.com/track" not in article.html
