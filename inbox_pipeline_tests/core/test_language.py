import pytest

from inbox_pipeline.core.language import guess_language, normalise_tag

SAMPLES = {
    "en": "The committee met on Tuesday and agreed that the new bridge would be finished before the winter, if the weather holds.",
    "de": "Der Ausschuss hat sich am Dienstag getroffen und beschlossen, dass die neue Brücke noch vor dem Winter fertig wird, wenn das Wetter hält.",
    "fr": "Le comité s'est réuni mardi et a décidé que le nouveau pont sera terminé avant l'hiver, si le temps le permet et que les travaux avancent.",
    "es": "El comité se reunió el martes y acordó que el nuevo puente estará terminado antes del invierno, si el tiempo lo permite y las obras siguen.",
    "it": "Il comitato si è riunito martedì e ha deciso che il nuovo ponte sarà finito prima dell'inverno, se il tempo lo permette e i lavori vanno avanti.",
    "pt": "O comitê se reuniu na terça e decidiu que a nova ponte vai ficar pronta antes do inverno, se o tempo ajudar e as obras não pararem.",
    "nl": "De commissie kwam dinsdag bijeen en besloot dat de nieuwe brug voor de winter klaar is, als het weer het toelaat en het werk doorgaat.",
}


@pytest.mark.parametrize(("expected", "text"), SAMPLES.items())
def test_stopwords_tell_the_language(expected, text):
    assert guess_language(text) == expected


def test_clear_text_beats_a_wrong_template_declaration():
    assert guess_language(SAMPLES["de"], declared="en") == "de"


def test_declared_region_is_kept_when_it_agrees():
    assert guess_language(SAMPLES["fr"], declared="fr_CA") == "fr-CA"


def test_declared_language_is_used_when_text_is_too_short():
    assert guess_language("OK", declared="sv") == "sv"
    assert guess_language("", declared="de-AT") == "de-AT"


def test_default_is_english():
    assert guess_language("") == "en"
    assert guess_language("12345 !!!", declared="not a language tag") == "en"


def test_scripts_without_stopwords():
    assert guess_language("今日は東京で会議があります。明日は大阪に行きます。") == "ja"
    assert guess_language("今天我们在北京开会，明天去上海。") == "zh"
    assert guess_language("Сегодня комитет собрался и решил построить новый мост.") == "ru"


@pytest.mark.parametrize(
    ("raw", "tag"),
    [("EN-us", "en-US"), ("zh_hant_tw", "zh-Hant-TW"), ("de", "de"), ("und", None), ("", None), ("e n", None)],
)
def test_declared_tags_are_normalised(raw, tag):
    assert normalise_tag(raw) == tag
