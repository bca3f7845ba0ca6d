"""classify: newsletter, confirmation (with the confirm link) or transactional notice."""

from __future__ import annotations

import csv
from email.message import EmailMessage
from pathlib import Path

import pytest

from inbox_pipeline.core.classify import classify, find_confirm_link
from inbox_pipeline.core.parse import parse_email

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parse"


def message(subject: str, body: str, *, html: bool = True, sender: str = "news@letters.example") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "alice-7f3k@in.example.com"
    msg["Subject"] = subject
    msg.set_content(body, subtype="html" if html else "plain")
    return msg.as_bytes()


@pytest.mark.parametrize(
    ("name", "link"),
    [
        ("substack-confirm.eml", "https://email.mg1.substack.com/c/eJx9kMtuwzAMBL8mOlXwIKUc"),
        (
            "mailchimp-doi-de.eml",
            "https://gartenbrief.us21.list-manage.com/subscribe/confirm?u=4a1b2c3d4e5f60718293a4b5c&id=9f8e7d6c5b&e=0c1d2e3f4a",
        ),
        ("beehiiv-verify.eml", "https://link.mail.beehiiv.com/ss/c/u001.Zk9RV2WqA/4ab/h12/verify"),
        ("fr-confirm-text.eml", "https://lettre.example.fr/inscription/valider?jeton=7Hq2"),
    ],
)
def test_confirmation_fixtures_with_their_link(name: str, link: str) -> None:
    result = classify(parse_email((FIXTURES / name).read_bytes()))
    assert result.kind == "confirmation", result.reason
    assert result.confirm_link == link
    assert result.reason


@pytest.mark.parametrize(
    ("subject", "body", "link"),
    [
        (
            "Confirma tu suscripción",
            '<p>Hola, confirma tu suscripción al boletín.</p><p><a href="https://boletin.example.es/alta?t=1">'
            'Sí, confirmar</a> · <a href="https://boletin.example.es/baja?t=1">Darse de baja</a></p>',
            "https://boletin.example.es/alta?t=1",
        ),
        (
            "Conferma la tua iscrizione",
            '<p>Grazie! <a href="https://notizie.example.it/iscrizione/ok?k=9">Conferma iscrizione</a></p>',
            "https://notizie.example.it/iscrizione/ok?k=9",
        ),
        (
            "Ein letzter Schritt",
            '<p>Bitte bestätige deine E-Mail-Adresse, damit wir dir den Newsletter schicken dürfen.</p>'
            '<p><a href="https://news.example.de/optin/abc">Hier klicken</a></p>',
            "https://news.example.de/optin/abc",
        ),
        (
            "One more step",
            '<p>Please confirm your subscription.</p><p><a href="https://letters.example/s/9"><img alt="Yes, subscribe me"'
            ' src="https://letters.example/button.png"></a></p>',
            "https://letters.example/s/9",
        ),
    ],
    ids=["es", "it", "de-body-only", "en-image-button"],
)
def test_double_opt_in_languages(subject: str, body: str, link: str) -> None:
    result = classify(parse_email(message(subject, body)))
    assert result.kind == "confirmation", result.reason
    assert result.confirm_link == link


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Welcome to The Quiet Ledger!", None),
        ("Your receipt from Harbour Weekly #4211", "<p>Annual plan: 48.00 EUR. Thanks for your support.</p>"),
        ("Reset your password", "<p>Someone asked to reset your password. The link expires in an hour.</p>"),
        ("Your sign-in link", "<p>Here is your magic link to sign in. It works once.</p>"),
        ("Hello from us", "<p>Foolky has added you to their email list on Letters. You can leave at any time.</p>"),
    ],
    ids=["welcome", "receipt", "password", "magic-link", "added-to-list"],
)
def test_transactional_notices(subject: str, body: str | None) -> None:
    raw = (FIXTURES / "welcome.eml").read_bytes() if body is None else message(subject, body)
    result = classify(parse_email(raw))
    assert result.kind == "transactional", result.reason
    assert result.confirm_link is None


def test_long_newsletter_mentioning_confirm_and_welcome_is_a_newsletter() -> None:
    article = "".join(f"<p>Paragraph {i} about tides, harbours and the people who keep lights. </p>" for i in range(120))
    footer = "<p>Thanks for subscribing! New here? Please confirm your email in our app settings.</p>"
    result = classify(parse_email(message("Tides, part nine", article + footer)))
    assert result.kind == "newsletter", result.reason


SHORT_DAILY = (
    "<p>Markets slipped on Tuesday as oil fell for a third day. Shipping stocks led the decline "
    "after two carriers cut their forecasts, and bond yields edged lower.</p>"
    "<p>In Brussels, ministers agreed on the fisheries quota after an all-night session.</p>"
    "<p>And a court in Lyon ruled that the old tram depot may become a library.</p>"
)


@pytest.mark.parametrize(
    "footer",
    [
        # Sailthru's daily footer, then the same in the shapes of Lyris and Mailchimp
        "<p>You are subscribed to The Morning Ledger as alice-7f3k@in.example.com. "
        '<a href="https://link.ledger.example/manage">Manage your subscriptions</a> or '
        '<a href="https://link.ledger.example/oc/unsub">unsubscribe</a>.</p>',
        "<p>--- You are currently subscribed to morning-ledger as: alice-7f3k@in.example.com. "
        "To unsubscribe send a blank email to leave-morning-ledger@lists.ledger.example</p>",
        "<p>Thanks for subscribing to The Morning Ledger! You are receiving this because you opted in. "
        '<a href="https://ledger.us21.list-manage.com/unsubscribe?u=1">Unsubscribe</a></p>',
    ],
    ids=["sailthru", "lyris", "mailchimp"],
)
def test_a_short_daily_whose_footer_says_you_are_subscribed_is_a_newsletter(footer: str) -> None:
    result = classify(parse_email(message("Tuesday: oil, quotas and a library", SHORT_DAILY + footer)))
    assert result.kind == "newsletter", result.reason


def test_a_welcome_that_says_so_up_front_is_still_a_notice() -> None:
    body = "<p>You are now subscribed to The Morning Ledger. Your first issue arrives tomorrow at six.</p>"
    result = classify(parse_email(message("The Morning Ledger", body + SHORT_DAILY[:120] + "</p>")))
    assert result.kind == "transactional", result.reason


def test_confirmation_subject_without_a_link_is_still_a_confirmation() -> None:
    result = classify(parse_email(message("Please confirm your subscription", "Reply YES to this email.", html=False)))
    assert result.kind == "confirmation"
    assert result.confirm_link is None and "no confirm link" in result.reason


def test_find_confirm_link_skips_unsubscribe_and_view_in_browser() -> None:
    html = (
        '<a href="https://l.example/view">View in browser</a>'
        '<a href="https://l.example/unsubscribe?confirm=1">Unsubscribe</a>'
        '<a href="https://l.example/confirm?t=2">Confirm my subscription</a>'
    )
    assert find_confirm_link(html) == "https://l.example/confirm?t=2"
    assert find_confirm_link("<p>no links</p>", "Go to https://l.example/verify/abc now") == "https://l.example/verify/abc"
    assert find_confirm_link(None, None) is None


KIND_FOR_LABEL = {
    "newsletter": "newsletter",
    "promo": "newsletter",
    "template": "newsletter",
    "welcome": "transactional",
    "confirmation": "confirmation",
}


def test_corpus_labels(corpus_dir: Path) -> None:
    with (corpus_dir / "LABELS.tsv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] in KIND_FOR_LABEL]
    assert len(rows) >= 40
    wrong = []
    for row in rows:
        result = classify(parse_email((corpus_dir / row["file"]).read_bytes()))
        if result.kind != KIND_FOR_LABEL[row["kind"]]:
            wrong.append(f"{row['file']}: labelled {row['kind']}, got {result.kind} ({result.reason})")
        if result.kind == "confirmation":
            assert result.confirm_link, row["file"]
    assert not wrong, "\n".join(wrong)


# Markup that once made classifying slow; benchmarks/bounds.py times them.
PATHOLOGICAL_HTML = {
    "unclosed-anchors": "<html><body>" + "<a href=https://x.example/confirm>" * 100_000 + "</body></html>",
    "angle-flood": "<html><body>" + "<" * 1_000_000 + "</body></html>",
    "unclosed-style": "<html><head><style>" * 50_000,
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL_HTML))
def test_pathological_html_classifies(name: str) -> None:
    # How fast is benchmarks/bounds.py's business.
    result = classify(parse_email(PATHOLOGICAL_HTML[name].encode()))
    assert result.kind in ("newsletter", "confirmation", "transactional")
    assert result.kind == "newsletter"  # no readable confirmation or notice: delivered as a newsletter
