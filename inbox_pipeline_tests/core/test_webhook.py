"""Inbound-parse webhook JSON (Postmark, Mailgun, SendGrid, SES via SNS) -> ParsedEmail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inbox_pipeline.core.message import EmailParseError
from inbox_pipeline.core.parse import parse_email
from inbox_pipeline.core.webhook import detect_provider, parse_webhook

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parse"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_postmark_fields_and_attachments() -> None:
    email = parse_email(load("postmark-inbound.json"))

    assert email.source == "postmark"
    assert email.message_id == "issue-204@harbourweekly.example"  # the original header, not Postmark's id
    assert email.sender.email == "issues@harbourweekly.example" and email.sender.name == "Harbour Weekly"
    assert email.recipients[0] == "alice-7f3k+tides@in.example.com"
    assert email.subject == "Tide tables, annotated"
    assert email.date.isoformat() == "2024-03-10T06:30:00+00:00"
    assert "Spring tides are not about spring." in email.html and email.text.startswith("Tide tables")
    assert email.inline_parts["tide-chart@harbour"].data.startswith(b"\x89PNG")
    assert [(a.filename, a.data) for a in email.attachments] == [("tides.csv", b"date,high\n2024-03-10,06:12\n")]
    assert email.list_unsubscribe == ("https://harbourweekly.example/u/77",)
    assert email.header("return-path") == "<bounce-77@harbourweekly.example>"


def test_postmark_without_message_id_header_uses_postmark_id() -> None:
    payload = json.loads(load("postmark-inbound.json"))
    payload["Headers"] = [h for h in payload["Headers"] if h["Name"] != "Message-ID"]
    email = parse_webhook(payload)
    assert email.message_id == "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_mailgun_fields_and_double_encoded_headers() -> None:
    email = parse_email(load("mailgun-inbound.json"))

    assert email.source == "mailgun"
    assert email.message_id == "knots-9@harbourweekly.example"
    assert email.recipients == ("alice-7f3k@in.example.com", "readers@harbourweekly.example")
    assert email.sender.email == "issues@harbourweekly.example"
    assert email.subject == "Knots, briefly"
    assert email.date.isoformat() == "2024-03-10T07:00:00+01:00"
    assert "<h1>Knots, briefly</h1>" in email.html  # body-html, not stripped-html
    assert email.list_unsubscribe == ("mailto:leave@harbourweekly.example", "https://harbourweekly.example/leave")


def test_mailgun_timestamp_when_no_date_header() -> None:
    payload = json.loads(load("mailgun-inbound.json"))
    pairs = [p for p in json.loads(payload["message-headers"]) if p[0] != "Date"]
    payload["message-headers"] = json.dumps(pairs)
    email = parse_webhook(json.dumps(payload).encode())
    assert email.date.isoformat() == "2024-03-10T06:00:00+00:00"


def test_mailgun_body_mime_is_parsed_as_mime() -> None:
    email = parse_email(load("mailgun-mime.json"))
    assert email.source == "mailgun"
    assert email.message_id == "lights-1@harbourweekly.example"
    assert email.subject == "Lighthouses of the North — part 1"
    assert email.recipients == ("alice-7f3k@in.example.com", "readers@harbourweekly.example")
    assert "Fresnel lenses changed everything." in email.html


def test_sendgrid_fields_envelope_and_raw_header_block() -> None:
    email = parse_email(load("sendgrid-inbound.json"))

    assert email.source == "sendgrid"
    assert email.message_id == "buoys-3@harbourweekly.example"
    assert email.recipients == ("alice-7f3k@in.example.com", "readers@harbourweekly.example")
    assert email.subject == "Buoys & beacons"
    assert email.date.isoformat() == "2024-03-12T08:00:00+00:00"
    assert "Red right returning." in email.html
    assert email.header("list-unsubscribe") == "<https://harbourweekly.example/u/3>"


def test_sendgrid_send_raw() -> None:
    email = parse_email(load("sendgrid-raw.json"))
    assert email.source == "sendgrid"
    assert email.message_id == "harbours-2@harbourweekly.example"
    assert email.recipients[0] == "alice-7f3k@in.example.com"
    assert "<h1>Harbours of the North</h1>" in email.html


def test_ses_sns_notification_with_content() -> None:
    email = parse_email(load("ses-sns-notification.json"))
    assert email.source == "mime"
    assert email.message_id == "sns-lights-1@harbourweekly.example"
    assert email.recipients[0] == "alice-7f3k@in.example.com"
    assert email.verdicts.spam == "PASS" and email.verdicts.virus == "PASS"


def test_provider_detection() -> None:
    assert detect_provider(json.loads(load("postmark-inbound.json"))) == "postmark"
    assert detect_provider(json.loads(load("mailgun-inbound.json"))) == "mailgun"
    assert detect_provider(json.loads(load("sendgrid-inbound.json"))) == "sendgrid"
    assert detect_provider({"from": "a@b.example", "to": "c@d.example", "html": "<p>x</p>"}) == "sendgrid"
    assert detect_provider({"hello": "world"}) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"hello": "world", "n": 1}', "unknown webhook JSON shape"),
        (b'["From", "To"]', "must be an object"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply|must be an object"),
        (b'{"Type": "Notification", "Message": "{}"}', "SNS notification without"),
    ],
    ids=["bad-json", "unknown-shape", "array", "deep-array", "sns-without-content"],
)
def test_bad_payloads_are_clear_errors(raw: bytes, message: str) -> None:
    with pytest.raises(EmailParseError, match=message):
        parse_email(raw)


def test_postmark_minimal_payload_without_message_id() -> None:
    raw = json.dumps({"From": "x@y.example", "TextBody": "Just text\n\nTwo paragraphs"}).encode()
    email = parse_email(raw)
    assert email.source == "postmark"
    assert email.message_id.startswith("sha256-")
    assert email.html.count("<p>") == 2
    assert email.message_id == parse_email(raw).message_id


def test_an_oversized_payload_is_refused_before_it_is_encoded_or_parsed() -> None:
    from inbox_pipeline.core.parse import MAX_BYTES

    text = '{"HtmlBody": "' + "é" * MAX_BYTES + '"}'  # two bytes per character once encoded
    with pytest.raises(EmailParseError) as refused:
        parse_webhook(text)
    # The character count, not the encoded size: the 100 MB copy was never made.
    assert str(refused.value) == f"webhook payload too large: at least {len(text):,} bytes (limit {MAX_BYTES:,})"
    with pytest.raises(EmailParseError, match="webhook payload too large"):
        parse_webhook(b"{" + b" " * MAX_BYTES + b"}")


@pytest.mark.parametrize(
    ("name", "recorded_by", "envelope"),
    [
        ("postmark-inbound.json", "postmark", ("alice-7f3k+tides@in.example.com",)),
        ("mailgun-inbound.json", "mailgun", ("alice-7f3k@in.example.com",)),
        ("mailgun-mime.json", "mailgun", ("alice-7f3k@in.example.com",)),
        ("sendgrid-inbound.json", "sendgrid", ("alice-7f3k@in.example.com",)),
        ("sendgrid-raw.json", "sendgrid", ("alice-7f3k@in.example.com",)),
        ("ses-sns-notification.json", "ses-receipt", ("alice-7f3k@in.example.com",)),
    ],
)
def test_the_envelope_is_the_providers_field_only(name: str, recorded_by: str, envelope: tuple[str, ...]) -> None:
    email = parse_email(load(name))
    assert (email.envelope.recorded_by, email.envelope.recipients) == (recorded_by, envelope)


def test_a_webhook_without_an_envelope_field_records_none_whatever_its_headers_say() -> None:
    payload = json.loads(load("postmark-inbound.json"))
    del payload["OriginalRecipient"]
    payload["Headers"] = [{"Name": "X-Original-To", "Value": "bob-2b2b@in.example.com"},
                          {"Name": "Delivered-To", "Value": "bob-2b2b@in.example.com"}]
    email = parse_webhook(json.dumps(payload))
    assert email.envelope.recorded_by == "none" and email.envelope.recipients == ()
