from ._support import assert_dropped, assert_kept, clean_fixture


def test_unknown_french_sender_uses_generic_rules():
    article = clean_fixture("generic_fr.html")
    assert article.platform == "generic"
    assert article.language == "fr"
    assert_kept(
        article,
        "La lettre du potager partagé",
        "les bénévoles ont semé les haricots le long de la clôture nord",
        "Prochain atelier : taille des framboisiers, samedi à dix heures.",
    )
    assert_dropped(
        article,
        "ne s'affiche pas correctement",
        "voir la version en ligne",
        "Vous recevez cet e-mail",
        "Se désabonner",
        "12 rue des Lilas",
    )
