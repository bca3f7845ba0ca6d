"""clean_html: the generic rules, the XHTML contract, and the scores on the shared corpus."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from lxml import etree

from inbox_pipeline.core.clean import CleanedArticle, clean_html
from inbox_pipeline_tests.helpers import normalise

XHTML_TAGS = set(
    "p div br hr h1 h2 h3 h4 h5 h6 ul ol li dl dt dd blockquote pre code em strong b i u s sub sup "
    "small a img figure figcaption table thead tbody tfoot tr th td caption cite q abbr mark del ins "
    "kbd samp var".split()
)
ARTICLE = (
    "<p>The river ferry has run every half hour since 1921, and this spring the town finally "
    "replaced its diesel engine with a battery that charges at each landing.</p>"
    "<p>Passengers noticed the silence first; the captain noticed that the gulls no longer "
    "followed the boat, because there was no warm exhaust to ride on.</p>"
)


def tree(article: CleanedArticle) -> etree._Element:
    return etree.fromstring(f"<div>{article.html}</div>")


def text(article: CleanedArticle) -> str:
    return normalise("".join(tree(article).itertext()))


def email_page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"


def test_hidden_preheader_tracking_pixel_and_outlook_parts_are_removed():
    html = email_page(
        '<div style="display:none;max-height:0;overflow:hidden">Battery ferries explained &zwnj;&nbsp;&zwnj;</div>'
        '<span class="preheader">Also hidden by class</span>'
        '<div style="font-size:0;line-height:0;color:#fff">zero size teaser</div>'
        '<!--[if mso]><p>Outlook only paragraph</p><![endif]-->'
        f"{ARTICLE}"
        '<img src="https://track.example.com/open.gif?u=9" width="1" height="1" alt="">'
        '<img src="https://example.com/ferry.jpg" alt="The ferry at dawn" width="600">',
        head="<style>.preheader{display:none}</style>",
    )
    article = clean_html(html)
    assert normalise("The river ferry has run every half hour since 1921") in text(article)
    for gone in ("Battery ferries explained", "Also hidden by class", "zero size teaser", "Outlook only paragraph"):
        assert normalise(gone) not in text(article)
    assert "track.example.com" not in article.html
    assert '<img src="https://example.com/ferry.jpg" alt="The ferry at dawn" width="600"/>' in article.html


def test_stray_conditional_comment_debris_is_scrubbed():
    html = email_page(f"<div><![endif]-->{ARTICLE}<p>[endif]--> Closing words of the piece.</p></div>")
    article = clean_html(html)
    assert "endif" not in article.html
    assert "-->" not in article.html
    assert normalise("Closing words of the piece.") in text(article)


@pytest.mark.parametrize(
    ("top", "footer", "language"),
    [
        (
            '<a href="https://x.example/web">View this email in your browser</a>',
            'You are receiving this email because you signed up on our website. '
            '<a href="https://x.example/u">Unsubscribe</a> | <a href="https://x.example/p">Update your preferences</a>'
            "<br>Ferry Friends Ltd, 14 Quay Street, Rivertown, NY 12345<br>© 2024 Ferry Friends. All rights reserved.",
            "en",
        ),
        (
            'Wird diese E-Mail nicht richtig dargestellt? <a href="https://x.example/web">Im Browser ansehen</a>',
            "Sie erhalten diesen Newsletter, weil Sie sich angemeldet haben. "
            '<a href="https://x.example/u">Newsletter abbestellen</a><br>Fährverein e.V., Hafenstraße 4, 20457 Hamburg'
            "<br>Impressum | Datenschutz",
            "de",
        ),
        (
            'Problème d\'affichage ? <a href="https://x.example/web">Voir la version en ligne</a>',
            'Vous recevez cet e-mail car vous êtes inscrit. <a href="https://x.example/u">Se désabonner</a>'
            "<br>Les Amis du Bac, 3 rue du Port, 44000 Nantes",
            "fr",
        ),
        (
            '<a href="https://x.example/web">Ver en navegador</a>',
            'Recibes este correo porque te suscribiste. <a href="https://x.example/u">Darse de baja</a>'
            "<br>Amigos del Ferry, Calle del Puerto 7, 28001 Madrid",
            "es",
        ),
        (
            '<a href="https://x.example/web">Visualizza nel browser</a>',
            'Hai ricevuto questa email perché sei iscritto. <a href="https://x.example/u">Annulla iscrizione</a>'
            "<br>Amici del Traghetto, Via del Porto 9, 16100 Genova",
            "it",
        ),
    ],
)
def test_view_online_and_footer_are_removed_in_five_languages(top, footer, language):
    html = email_page(
        f'<table width="100%"><tr><td style="font-size:11px">{top}</td></tr>'
        f"<tr><td>{ARTICLE}</td></tr>"
        f'<tr><td style="font-size:11px;color:#999">{footer}</td></tr></table>'
    )
    article = clean_html(html)
    assert normalise("the captain noticed that the gulls no longer followed the boat") in text(article)
    for gone in re.split(r"<[^>]+>|\?|\|", top + footer):
        gone = gone.strip(" .")
        if len(gone) > 6:
            assert normalise(gone) not in text(article), gone
    assert article.removed >= 2


@pytest.mark.parametrize(
    "prompt",
    [
        "Enjoying reading this newsletter? Tell a colleague about the ferry.",
        "Enjoyed today's issue? Hit reply and tell us.",
        "You're currently on the free plan of Harbour Notes.",
        "You are reading the paid edition, thanks to readers like you.",
        "What do you think about this edition? Vote below.",
        "We use your email address only for sending Harbour Notes.",
    ],
)
def test_reader_prompts_and_plan_notices_are_removed_but_prose_with_the_same_words_stays(prompt):
    prose = (
        "<p>Passengers said they were enjoying this new quiet crossing, and the free plan to extend "
        "the service to the islands was approved by the council on Monday evening.</p>"
    )
    article = clean_html(email_page(f"{ARTICLE}{prose}<p style='font-size:12px'>{prompt}</p>"))
    assert normalise(prompt) not in text(article)
    assert normalise("the free plan to extend the service to the islands was approved") in text(article)
    assert normalise("The river ferry has run every half hour since 1921") in text(article)


def test_an_article_that_talks_about_unsubscribing_keeps_its_text():
    paragraph = (
        "Regulators want every app to make it as easy to unsubscribe as it was to sign up. "
        + "The draft rule covers gyms, streaming services and newspapers, and it gives companies a year to comply. " * 4
    )
    article = clean_html(email_page(f"<h1>Click to cancel</h1><p>{paragraph}</p>{ARTICLE}"))
    assert normalise("The draft rule covers gyms, streaming services and newspapers") in text(article)
    assert article.title == "Click to cancel"  # the chapter's heading: not repeated in the body


def test_layout_tables_become_a_flow_and_data_tables_stay():
    html = email_page(
        '<table role="presentation" width="600"><tr><td><table width="100%"><tr>'
        f"<td>{ARTICLE}</td></tr></table></td></tr><tr><td>"
        "<table><thead><tr><th>Year</th><th>Crossings</th></tr></thead>"
        "<tbody><tr><td>2022</td><td>14,200</td></tr><tr><td>2023</td><td>15,950</td></tr></tbody></table>"
        "</td></tr></table>"
    )
    article = clean_html(html)
    root = tree(article)
    tables = root.findall(".//table")
    assert len(tables) == 1
    assert [th.text for th in tables[0].iter("th")] == ["Year", "Crossings"]
    assert root.find(".//p") is not None and root.find(".//p").getparent().tag != "td"


def test_output_is_plain_well_formed_xhtml():
    html = email_page(
        '<script>alert(1)</script><form action="/x"><input name="q"><button>Go</button></form>'
        '<iframe src="https://video.example/embed"></iframe>'
        '<div class="hero" id="top" style="color:red" onclick="steal()"><font face="Arial">'
        f'{ARTICLE}<o:p></o:p><p>Bold <b style="x">claim</b> &amp; a <a href="javascript:evil()">bad link</a>'
        ' and a <a href="https://example.org/more?a=1&b=2" onmouseover="x()">good link</a>.</p>'
        "<ul><li>one</li>stray text<li>two</li></ul><p>Para <div>with a block inside</div></p>"
        "<h2><p>heading with paragraph</p></h2></font></div>"
    )
    article = clean_html(html)
    root = tree(article)  # raises if not well-formed XML
    for el in root.iter():
        assert el.tag == "div" or el.tag in XHTML_TAGS, el.tag
        assert not set(el.attrib) - {"href", "src", "alt", "width", "height", "title", "colspan", "rowspan", "start", "dir", "id"}
        if el.tag in ("ul", "ol"):
            assert all(child.tag == "li" for child in el)
        if el.tag == "p":
            assert not any(d.tag in ("div", "p", "ul", "table") for d in el.iterdescendants())
    assert "alert" not in article.html and "steal" not in article.html and "evil" not in article.html
    assert 'href="https://example.org/more?a=1&amp;b=2"' in article.html
    assert normalise("bad link") in text(article)


def test_text_only_newsletter_is_kept_intact():
    paragraphs = [
        "Hello all,",
        "The allotment committee met on Tuesday and agreed to buy a second water butt.",
        "Please bring your own gloves to the work day on Saturday; the shed ones have holes.",
        "See you there,\nJune",
    ]
    html = "".join(f"<p>{p}</p>" for p in paragraphs)
    article = clean_html(html)
    assert article.html.count("<p>") == 4
    assert text(article) == normalise("".join(paragraphs))
    assert article.removed == 0
    assert article.words == sum(len(p.split()) for p in paragraphs)


def test_gmail_forwarded_header_block_is_removed():
    html = email_page(
        '<div dir="ltr"><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        "---------- Forwarded message ---------<br>From: <strong>Ferry News</strong> "
        "&lt;news@ferry.example&gt;<br>Date: Mon, 6 May 2024 at 07:00<br>Subject: Battery day<br>"
        f"To: &lt;me@example.com&gt;<br></div><br><br>{ARTICLE}</div></div>"
    )
    article = clean_html(html)
    assert normalise("Forwarded message") not in text(article)
    assert "news@ferry.example" not in article.html and "Battery day" not in text(article)
    assert normalise("Passengers noticed the silence first") in text(article)


def test_share_buttons_app_badges_and_social_icons_are_removed():
    icons = "".join(
        f'<a href="https://www.{site}.com/ferryfriends"><img src="https://cdn.example/{site}.png" width="24" height="24" alt="{site}"></a>'
        for site in ("facebook", "instagram", "linkedin")
    )
    html = email_page(
        f"{ARTICLE}"
        '<p><a href="https://twitter.com/intent/tweet?text=ferry">Tweet</a> · '
        '<a href="https://www.facebook.com/sharer/sharer.php?u=x">Share</a></p>'
        '<p><a href="https://apps.apple.com/app/id1"><img src="https://cdn.example/appstore.png" alt="Download on the App Store" width="120" height="40"></a>'
        '<a href="https://play.google.com/store/apps/details?id=x"><img src="https://cdn.example/play.png" alt="Get it on Google Play" width="120" height="40"></a></p>'
        f"<div>Follow us</div><div>{icons}</div>"
    )
    article = clean_html(html)
    for gone in ("twitter.com/intent", "sharer", "apps.apple.com", "play.google.com", "instagram", "appstore.png"):
        assert gone not in article.html
    assert normalise("Follow us") not in text(article)
    assert normalise("Passengers noticed the silence first") in text(article)


def test_cid_images_keep_their_source():
    article = clean_html(email_page(f'{ARTICLE}<p><img src="cid:ferry-photo@example" alt="Ferry"></p>'))
    assert '<img src="cid:ferry-photo@example" alt="Ferry"/>' in article.html


def test_title_comes_from_subject_then_html():
    html = email_page(f"<h1>The battery ferry</h1>{ARTICLE}", head="<title>Ferry News #12</title>")
    assert clean_html(html, subject="Fwd: Ferry News #12: batteries").title == "Ferry News #12: batteries"
    assert clean_html(html).title == "Ferry News #12"
    assert clean_html(email_page(f"<h1>The battery ferry</h1>{ARTICLE}")).title == "The battery ferry"


def test_language_follows_the_text_and_the_declared_tag():
    article = clean_html(f'<html lang="en-GB"><body>{ARTICLE}</body></html>')
    assert article.language == "en-GB"
    german = "<p>Die Fähre fährt seit 1921 jede halbe Stunde, und in diesem Frühjahr hat die Stadt den Motor durch eine Batterie ersetzt, die an jeder Anlegestelle geladen wird.</p>"
    assert clean_html(f'<html lang="en"><body>{german}</body></html>').language == "de"


@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "\x00\x01", "<?xml version='1.0' encoding='utf-8'?><p>Hi</p>"])
def test_empty_or_odd_input_gives_a_valid_article(html):
    article = clean_html(html, subject="Nothing here")
    etree.fromstring(f"<div>{article.html}</div>")
    assert article.title == "Nothing here"
    assert article.language == "en"


# --- the shared corpus ---------------------------------------------------------------


def _corpus_email(path: Path) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
    raw = path.read_bytes()
    if path.suffix == ".html":
        return raw.decode("utf-8", "replace"), (), None
    try:
        from inbox_pipeline.core.parse import parse_email
    except ImportError:  # the parser is built in parallel; the stdlib reads the corpus meanwhile
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(("html", "plain"))
        html = body.get_content() if body is not None else ""
        if body is not None and body.get_content_type() == "text/plain":
            html = "".join(f"<p>{p}</p>" for p in html.split("\n\n"))
        return html, tuple((k.lower(), str(v)) for k, v in msg.items()), str(msg.get("subject") or "")
    parsed = parse_email(raw)
    return parsed.html or "", parsed.headers, parsed.subject


@pytest.fixture(scope="module")
def corpus_results(corpus_dir: Path):
    results = []
    for line in (corpus_dir / "LABELS.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        name = line.split("\t")[0]
        html, headers, subject = _corpus_email(corpus_dir / name)
        results.append((name, clean_html(html, headers=headers, subject=subject)))
    return results


@pytest.mark.corpus
def test_corpus_output_is_plain_xhtml(corpus_results):
    for name, article in corpus_results:
        root = tree(article)
        tags = {el.tag for el in root.iter()} - {"div"}
        assert tags <= XHTML_TAGS, (name, tags - XHTML_TAGS)
        assert "style=" not in article.html and "class=" not in article.html and "<script" not in article.html
        assert re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", article.language), (name, article.language)
