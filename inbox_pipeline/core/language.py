"""Guess the language of an article for ``dc:language``: stopword counts and scripts."""

from __future__ import annotations

import re
from collections import Counter

from inbox_pipeline.core.preflight import LANGUAGE_TAG

DEFAULT = "en"

# Short, frequent function words; words shared by two languages are left out of one of them.
_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to is in that it for with as was on are be this have you not but at by "
        "from or they his her which an were been has their would there what about when can will "
        "more if out so up them who its than just only also into our we your how",
        "de": "der die das und ist nicht ein eine einen dem den des mit sich auf für von zu im "
        "auch es wir ich sie er wird werden sind bei aus wie oder nach noch nur über einer "
        "haben hat kann dass durch wenn sehr schon ihre unsere uns dir dich mehr",
        "fr": "le la les et est des une du que qui dans pour pas sur au avec ce il elle sont mais "
        "ou nous vous leur aux par plus cette être ont été fait tout comme sa ses ces qu aussi "
        "très bien entre",
        "es": "el los las del y que en un una por con para es su al lo como más pero sus le ya "
        "o este esta son fue ha muy sin sobre también hasta desde nos cuando entre todo hay",
        "it": "il di che è la le per un una del della con non sono da al dei delle nel nella "
        "anche come più ma gli questo questa ha si alla sul tra lo degli essere fatto",
        "pt": "o os da do das dos que em um uma para com não por mais mas como ao se na no foi "
        "é são também seu sua isso pelo pela até ele ela você muito",
        "nl": "de het een van en in is dat op te zijn met voor niet aan er die ook als bij of "
        "door maar om nog dan wel naar uit kan meer wordt worden deze hebben",
        "sv": "och att det som en på är av för med till den har inte om ett jag var men så vi "
        "från kan hade eller sig när också efter",
        "da": "og at det som en på er af for med til den har ikke om et jeg var men så vi fra "
        "kan havde eller sig når også efter",
        "pl": "i w na z że się nie do to jest jak po o co ale od są przez dla tak jego być już "
        "tylko oraz może",
    }.items()
}
_LANGS_OF: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _word in _words:
        _LANGS_OF[_word] = _LANGS_OF.get(_word, ()) + (_lang,)
_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
)
_ANY_SCRIPT = re.compile("[" + "".join(pattern.pattern[1:-1] for _, pattern in _SCRIPTS) + "]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_SAMPLE = 8000  # characters: plenty for a vote, keeps long emails fast


def normalise_tag(tag: str | None) -> str | None:
    """A declared language ("en_US", "DE-de") as a BCP 47 tag, or None when unusable."""
    if not tag:
        return None
    tag = tag.strip().split(",")[0].split(";")[0].strip().replace("_", "-")
    if not _TAG.match(tag) or tag.lower() in ("und", "mul", "zxx", "xx"):
        return None
    head, *rest = tag.split("-")
    parts = [head.lower()]
    for part in rest:
        parts.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part.lower())
    return "-".join(parts)


def guess_language(text: str, declared: str | None = None) -> str:
    """The language of ``text`` as a BCP 47 tag ("en", "de", "fr", ...).

    Clear evidence in the text wins over the declared language (templates often say
    ``lang="en"`` whatever they carry); with weak evidence the declared tag is used;
    with neither, ``"en"``.
    """
    declared_tag = normalise_tag(declared)
    sample = text[:_SAMPLE]
    # Counting letters and script characters is the costly part: done only when some
    # character of a listed script is there at all (never for ASCII or Latin-only text).
    if not sample.isascii() and _ANY_SCRIPT.search(sample):
        letters = len(_LETTER.findall(sample)) or 1
        for lang, pattern in _SCRIPTS:
            if len(pattern.findall(sample)) > letters * 0.3:
                if lang == "zh" and _SCRIPTS[0][1].search(sample):
                    return "ja"
                return declared_tag if declared_tag and declared_tag.split("-")[0] == lang else lang
    counts = dict.fromkeys(_STOPWORDS, 0)
    tokens = _TOKEN.findall(sample.lower())
    frequencies = Counter(tokens)
    for token in frequencies.keys() & _LANGS_OF.keys():
        for lang in _LANGS_OF[token]:
            counts[lang] += frequencies[token]
    ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    confident = top >= 5 and top >= second * 1.3 and top >= len(tokens) * 0.05
    if declared_tag and declared_tag.split("-")[0] == best:
        return declared_tag
    if confident:
        return best
    return declared_tag or (best if top >= 3 and top > second else DEFAULT)


def language_tag(value: str | None, default: str = "en") -> str:
    """A well-formed BCP 47 tag (``en_US`` -> ``en-US``); ``default`` when unusable."""
    tag = (value or "").strip().replace("_", "-")
    if not tag or not LANGUAGE_TAG.match(tag):
        return default
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and out[-1] != "x":
            out.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha() and len(out) == 1:
            out.append(part.title())  # script
        else:
            out.append(part.lower())
    return "-".join(out)
