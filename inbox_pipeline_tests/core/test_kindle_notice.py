"""Amazon's notices: cause, token and trust read from the email as the receiver stored it."""

from __future__ import annotations

import pytest

from inbox_pipeline.core.kindle_notice import (
    new_delivery_token,
    read_notice,
    tokened_file_name,
    tokened_message_id_left,
    tokens_in,
    web_version_link,
)
from inbox_pipeline.core.mime import parse_html_document
from inbox_pipeline.core.parse import parse_email
from inbox_pipeline_tests.fixtures.kindle_notices import E999_TEXT, NOT_APPROVED_TEXT, UNKNOWN_TEXT, kindle_notice

SES = ("amazonses.com",)
SENDER = "kindle@send.example.org"


def _read(raw: bytes, trusted=SES):
    return read_notice(parse_email(raw), trusted_authserv_ids=trusted)


def test_an_e999_notice_names_its_delivery_by_the_token_in_the_file_name() -> None:
    token = new_delivery_token()
    document = tokened_file_name("The-river-town-printers", token) + ".epub"
    notice = _read(kindle_notice(to=SENDER, text=E999_TEXT.format(document=document)))
    assert notice.cause == "conversion"
    assert notice.code == "E999"
    assert notice.documents == (document,)
    assert notice.tokens == (token,)
    assert notice.authentic, notice.why
    assert "DMARC pass for amazon.com" in notice.why
    assert "E999 - Send to Kindle Internal Error" in notice.summary


def test_a_not_approved_notice_is_its_own_cause() -> None:
    token = new_delivery_token()
    document = tokened_file_name("Weekly", token) + ".epub"
    notice = _read(kindle_notice(to=SENDER, text=NOT_APPROVED_TEXT.format(sender=SENDER, document=document)))
    assert notice.cause == "not_approved"
    assert notice.tokens == (token,)
    assert notice.authentic


def test_other_amazon_mail_is_unknown_and_names_no_delivery() -> None:
    notice = _read(kindle_notice(to=SENDER, text=UNKNOWN_TEXT, subject="Your Kindle storage"))
    assert notice.cause == "unknown"
    assert notice.tokens == ()
    assert notice.authentic


def test_the_token_in_a_quoted_message_id_counts_too() -> None:
    token = new_delivery_token()
    message_id = f"<{tokened_message_id_left(token)}@send.example.org>"
    notice = _read(kindle_notice(to=SENDER, text=E999_TEXT.format(document="newsletter.epub"), in_reply_to=message_id))
    assert notice.tokens == (token,)


@pytest.mark.parametrize(
    "kwargs, why",
    [
        ({"auth": "fail"}, "authentication did not pass"),
        ({"auth": None}, "recorded no authentication result"),
        ({"from_addr": "kindle-support@amazon-notices.example.net"}, "is not an Amazon address"),
        ({"auth": "fail", "forged_auth_below": True}, "authentication did not pass"),
        ({"authserv_id": "mx.attacker.example"}, "recorded no authentication result"),
    ],
    ids=["fails-auth", "no-verdict", "lookalike-domain", "forged-header-below-the-receivers", "other-receiver"],
)
def test_a_notice_is_trusted_only_on_the_receivers_verdict(kwargs, why) -> None:
    token = new_delivery_token()
    text = E999_TEXT.format(document=tokened_file_name("Weekly", token) + ".epub")
    notice = _read(kindle_notice(to=SENDER, text=text, **kwargs))
    assert not notice.authentic
    assert why in notice.why
    assert notice.tokens == (token,)  # read, recorded, but not acted on


def test_a_folder_inbox_trusts_no_authentication_header() -> None:
    text = E999_TEXT.format(document="x.epub")
    assert not _read(kindle_notice(to=SENDER, text=text), trusted=()).authentic


def test_tokens_are_unguessable_and_never_read_out_of_a_plain_title() -> None:
    tokens = {new_delivery_token() for _ in range(1000)}
    assert len(tokens) == 1000 and all(len(t) == 16 for t in tokens)
    assert tokens_in("The-quick-brown-fox-jumps-over-the-lazy-dogs-again.epub") == ()
    assert tokens_in("abcdefghijklmnop") == ()


def test_the_web_version_link_is_the_http_anchor_that_says_view_online() -> None:
    html = (
        '<p><a href="mailto:editor@example.org">View online</a> '
        '<a href="https://example.org/unsubscribe">Unsubscribe</a> '
        '<a href="https://example.org/issue/7">View this email in your browser</a></p>'
    )
    assert web_version_link(parse_html_document(html.encode())) == "https://example.org/issue/7"
    assert web_version_link(parse_html_document(b"<p>No links here</p>")) is None
