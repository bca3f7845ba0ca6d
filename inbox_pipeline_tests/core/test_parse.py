"""parse_email: MIME, bare HTML and every odd thing real mail does."""

from __future__ import annotations

import csv
import html
import re
import sysconfig
from email.message import EmailMessage
from pathlib import Path

import pytest

from inbox_pipeline.core.message import EmailParseError, ParsedEmail
from inbox_pipeline.core.mime import MAX_HEADER_CHARS, MAX_PARSE_HEADER_CHARS, text_to_html
from inbox_pipeline.core.parse import MAX_BYTES, parse_email
from inbox_pipeline_tests.conftest import unavailable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parse"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def visible_text(markup: str) -> str:
    text = re.sub(r"<(script|style|head)\b.*?</\1\s*>", " ", markup, flags=re.S | re.I)
    # Inline elements join their neighbours as a browser shows them ("20쪽짜리 <a>AI 액션플랜</a>의"); blocks break.
    text = re.sub(r"</?(?:a|span|b|strong|em|i|u|font|small|sup|sub)\b[^>]*>", "", text, flags=re.I)
    text = html.unescape(re.sub(r"<[^>]*>", " ", text)).replace("\xad", "")
    return " ".join(text.split())


def parse_or_error(raw: bytes) -> ParsedEmail | EmailParseError:
    """parse_email's answer: the parsed email or its clear error; anything else fails the test.

    How long it takes is benchmarks/bounds.py's business; here the guard that bounded the work is asserted.
    """
    try:
        return parse_email(raw)
    except EmailParseError as exc:
        return exc


# --- an SES-received newsletter with cid: images --------------------------------------------


def test_ses_inbound_envelope_verdicts_and_inline_images() -> None:
    email = parse_email(fixture("ses-inbound-related.eml"))

    assert email.source == "mime"
    assert email.message_id == "20240305140158.77AB@mail.quietledger.example"
    # SES puts the envelope recipient only in its Received "for" clause: it comes first.
    assert email.recipients == ("alice-7f3k@in.example.com", "readers@quietledger.example", "bob@example.org")
    assert email.sender.email == "letters@quietledger.example"
    assert email.sender.name == "Théo at The Quiet Ledger"
    assert email.subject == "Café economics, part two"
    assert email.date is not None and email.date.utcoffset().total_seconds() == 3600
    assert email.verdicts.spam == "PASS" and email.verdicts.virus == "FAIL"
    assert email.verdicts.quarantine_reason == "SES virus verdict FAIL"
    assert email.list_unsubscribe == (
        "https://quietledger.example/unsubscribe?u=91&t=abc",
        "mailto:unsubscribe@quietledger.example?subject=stop",
    )
    # the HTML alternative wins over text, and the related image is keyed by its bare Content-ID
    assert 'src="cid:chart-1@quietledger"' in email.html
    assert "who keeps the difference" in email.html
    assert email.text.startswith("Café economics, part two")
    part = email.inline_parts["chart-1@quietledger"]
    assert part.content_type == "image/png" and part.data.startswith(b"\x89PNG") and part.filename == "chart.png"
    assert email.attachments == ()
    assert email.header("list-id") == "The Quiet Ledger <ledger.quietledger.example>"
    assert email.header("x-ses-receipt").startswith("AEFBQUFB")
    assert email.header("feedback-id") == "1.eu-west-1.qlabc:AmazonSES"
    assert all(name == name.lower() for name, _ in email.headers)
    assert email.defects == ()


def test_message_id_synthesised_from_content_hash_is_stable() -> None:
    raw = fixture("text-only-cp1252.eml")
    first, again = parse_email(raw), parse_email(raw)
    other = parse_email(raw.replace(b"canal", b"river"))

    assert re.fullmatch(r"sha256-[0-9a-f]{64}@inbox-pipeline", first.message_id)
    assert first.message_id == again.message_id
    assert other.message_id != first.message_id
    assert any("Message-ID" in d for d in first.defects)


def test_text_only_email_becomes_simple_html() -> None:
    email = parse_email(fixture("text-only-cp1252.eml"))

    assert email.date is None and any("Date" in d for d in email.defects)
    assert "– the one with the “leaning” lock gates" in email.text  # windows-1252 punctuation
    assert email.html.count("<p>") == 4
    assert '<a href="https://fieldnotes.example/12/photos">https://fieldnotes.example/12/photos</a>.' in email.html
    assert "&lt;angle brackets&gt; &amp; ampersands" in email.html
    assert '<a href="https://en.wikipedia.org/wiki/Lock_(water_navigation)">' in email.html
    assert '<a href="http://www.fieldnotes.example/archive">' in email.html


def test_text_to_html_paragraphs_links_and_escaping() -> None:
    out = text_to_html("One <b>\nline two & more\n\n\n  \nSee https://x.example/a?b=1&c=2, then stop.\r\n\r\nlast")
    assert "<p>One &lt;b&gt;<br/>\nline two &amp; more</p>" in out
    assert '<a href="https://x.example/a?b=1&amp;c=2">https://x.example/a?b=1&amp;c=2</a>, then stop.' in out
    assert "<p>last</p>" in out
    assert out.count("<p>") == 3
    assert "<script" not in text_to_html("<script>alert(1)</script>")


def test_attachments_only_gives_no_html_and_a_defect() -> None:
    email = parse_email(fixture("attachments-only.eml"))
    assert email.html is None and email.text is None
    assert "no HTML or text body" in email.defects
    assert [(a.filename, a.content_type) for a in email.attachments] == [("scan.pdf", "application/pdf")]
    assert email.attachments[0].data.startswith(b"%PDF-1.4")


def test_bare_html_document() -> None:
    raw = "\ufeff<!DOCTYPE html><html><head><meta charset='windows-1252'><title>Issue 7 &amp; more</title></head>" \
          "<body><p>Caf\xe9</p></body></html>"
    email = parse_email(raw.encode("cp1252", errors="ignore").replace(b"\xef\xbb\xbf", b""))
    assert email.source == "html"
    assert email.subject == "Issue 7 & more"
    assert "<p>Café</p>" in email.html
    assert email.message_id.startswith("sha256-") and email.recipients == ()


# --- charsets and broken headers -------------------------------------------------------------

CHARSET_CASES = [
    ("iso-8859-1", "Grüße aus Köln", "iso-8859-1"),
    ("latin1", "Ça coûte cher", "latin-1"),
    ("windows-1252", "“Quotes” – and € signs", "cp1252"),
    ("windows-1250", "Zażółć gęślą jaźń", "cp1250"),
    ("windows-1251", "Привет, читатель", "cp1251"),
    ("koi8-r", "Новости недели", "koi8-r"),
    ("x-mac-cyrillic", "Научная конференция", "mac-cyrillic"),
    ("x-mac-roman", "Café crème", "mac-roman"),
    ("macintosh", "Piñata", "mac-roman"),
    ("iso-8859-8-i", "שלום", "iso-8859-8"),
    ("shift_jis", "日本語のニュース", "shift_jis"),
    ("gb2312", "中文新闻", "gb2312"),
    ("ks_c_5601-1987", "한국어 소식", "cp949"),
    ("utf-7", "naïve", "utf-7"),
]


@pytest.mark.parametrize(("label", "text", "codec"), CHARSET_CASES, ids=[c[0] for c in CHARSET_CASES])
def test_every_charset_python_knows(label: str, text: str, codec: str) -> None:
    body = text.encode(codec)
    raw = (
        b"From: a@example.com\nSubject: charset test\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=\"" + label.encode() + b"\"\nContent-Transfer-Encoding: 8bit\n\n" + body
    )
    email = parse_email(raw)
    assert email.text.strip() == text
    assert html.escape(text, quote=False) in email.html


@pytest.mark.parametrize("label", ["x-klingon", "base64", "rot13", "idna", "punycode", "zlib", "", "utf-8\x00"])
def test_unknown_or_unsafe_charsets_degrade(label: str) -> None:
    raw = b"Subject: odd\nContent-Type: text/plain; charset=" + label.encode() + b"\n\nplain words and caf\xc3\xa9 \xff"
    email = parse_email(raw)
    assert email.text.startswith("plain words and caf")


def test_8bit_junk_in_headers_is_decoded_not_fatal() -> None:
    raw = (
        "From: Jürgen Müller <jm@example.de>\nSubject: Grüße – straight UTF-8\n".encode()
        + b"To: caf\xe9 <Reader@Example.org>\nX-Odd: \x00\x01ctrl\n\nhello\n"
    )
    email = parse_email(raw)
    assert email.sender.name == "Jürgen Müller" and email.sender.email == "jm@example.de"
    assert email.subject == "Grüße – straight UTF-8"
    assert email.recipients == ("reader@example.org",)
    assert email.header("x-odd") == "ctrl"


def test_encoded_word_commas_do_not_split_addresses() -> None:
    raw = b"From: =?utf-8?q?Doe=2C_Jane?= <jane@example.com>\nTo: =?utf-8?q?A=2C_B?= <ab@example.com>, c@example.com\n\nx"
    email = parse_email(raw)
    assert email.sender.name == "Doe, Jane" and email.sender.email == "jane@example.com"
    assert email.recipients == ("ab@example.com", "c@example.com")


SES_RECEIVED = (
    b"Received: from mail.sender.example (mail.sender.example [203.0.113.9])\n"
    b" by inbound-smtp.eu-west-1.amazonaws.com with SMTP id 7q0ub2kq1rl0e9t5\n"
    b" for %s;\n Tue, 05 Mar 2024 14:02:11 +0000 (UTC)\n"
)
SENDER_WRITTEN = (
    b"To: Someone <List@Example.org>, bob-2b2b@in.example.com\nCc: carol-3c3c@in.example.com\n"
    b"Delivered-To: bob-2b2b@in.example.com\nX-Original-To: bob-2b2b@in.example.com\n"
    b"Envelope-To: bob-2b2b@in.example.com\nX-Rcpt-To: bob-2b2b@in.example.com\n"
    b"X-Forwarded-To: bob-2b2b@in.example.com\nOriginal-Recipient: rfc822;bob-2b2b@in.example.com\n"
    # A Received header the sender wrote, below SES's, naming SES too.
    b"Received: from x by inbound-smtp.us-east-1.amazonaws.com with SMTP id 1 for bob-2b2b@in.example.com; "
    b"Tue, 05 Mar 2024 14:00:00 +0000\n"
    b"Subject: s\n\nbody"
)


def test_the_envelope_is_the_for_clause_of_the_ses_received_header_only() -> None:
    email = parse_email(SES_RECEIVED % b"Alice-7F3K@In.Example.com" + SENDER_WRITTEN)
    assert email.envelope.recipients == ("alice-7f3k@in.example.com",)
    assert email.envelope.recorded_by == "ses"
    assert email.envelope.host == "inbound-smtp.eu-west-1.amazonaws.com"
    # For the record: the envelope first, then To/Cc; never Delivered-To & co.
    assert email.recipients == (
        "alice-7f3k@in.example.com", "list@example.org", "bob-2b2b@in.example.com", "carol-3c3c@in.example.com"
    )


def test_a_ses_envelope_may_name_several_recipients() -> None:
    email = parse_email(SES_RECEIVED % b"<a-1@in.example.com>, <b-2@in.example.com>" + b"Subject: s\n\nbody")
    assert email.envelope.recipients == ("a-1@in.example.com", "b-2@in.example.com")


def test_the_local_defaults_sender_at_localhost_is_an_envelope_recipient() -> None:
    # Amazon's notices come back to the sender address; locally that is kindle@localhost.
    email = parse_email(SES_RECEIVED % b"<Kindle@localhost>, <root@localdomain>" + b"Subject: s\n\nbody")
    assert email.envelope.recipients == ("kindle@localhost",)


def test_a_helo_name_cannot_smuggle_a_by_or_for_clause() -> None:
    # The SMTP client chooses the "from" name; the server's own "by" and "for" come last.
    raw = (
        b"Received: from evil.example (by inbound-smtp.eu-west-1.amazonaws.com with SMTP id 1 "
        b"for bob-2b2b@in.example.com;) (evil.example [203.0.113.9])\n"
        b" by mx.self-hosted.example with ESMTP id 42 for <alice-7f3k@in.example.com>;\n"
        b" Tue, 05 Mar 2024 14:02:11 +0000\nSubject: s\n\nbody"
    )
    envelope = parse_email(raw).envelope
    assert envelope.recorded_by == "mta" and envelope.host == "mx.self-hosted.example"
    assert envelope.recipients == ("alice-7f3k@in.example.com",)


def test_no_received_header_means_no_receiver_recorded_anything() -> None:
    email = parse_email(SENDER_WRITTEN.split(b"Received:")[0] + b"Subject: s\n\nbody")
    assert email.envelope.recorded_by == "unreceived" and email.envelope.recipients == ()
    without_for = parse_email(b"Received: by inbound-smtp.eu-west-1.amazonaws.com; Tue, 5 Mar 2024\nSubject: s\n\nx")
    assert without_for.envelope.recorded_by == "ses" and without_for.envelope.recipients == ()


def test_input_that_is_not_mail_is_refused_with_a_reason() -> None:
    import io
    import random

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    headerless = "not an email: it does not start with mail headers"
    for raw in (random.Random(3).randbytes(5000), png.getvalue(), b"Hello,\n\nsome plain text.\n"):
        with pytest.raises(EmailParseError, match=headerless):
            parse_email(raw)
    with pytest.raises(EmailParseError, match="none of From, To, Subject, Date, Message-ID or Content-Type"):
        parse_email(b"X-Spool: 7\nReceived-SPF: none\n\nA body under two made-up headers.\n")
    with pytest.raises(EmailParseError, match="its text body is binary data, not text"):
        parse_email(b"From: a@b.example\nSubject: junk\nContent-Type: text/plain\n\n" + random.Random(4).randbytes(4000))
    # A MIME entity without envelope headers is still mail, and so is a UTF-16 body.
    assert "entity" in parse_email(b"Content-Type: text/plain\n\nA bare MIME entity.\n").html
    utf16 = "Grüße aus Köln, a whole paragraph.".encode("utf-16")
    assert "Köln" in parse_email(b"Subject: x\nContent-Type: text/plain; charset=utf-16\n\n" + utf16).html


def test_deep_nesting_is_flattened_and_the_text_kept() -> None:
    deep = "<div>" * 50_000 + "<p>At the bottom.</p>" + "</div>" * 50_000
    email = parse_email(f"Subject: deep\nContent-Type: text/html\n\n<p>Top.</p>{deep}<p>After.</p>".encode())
    assert any("nested 50,000 elements deep" in d for d in email.defects)
    assert "At the bottom." in email.html and "After." in email.html
    assert email.html.count("<div>") <= 256
    shallow = "<div>" * 100 + "<p>Kept as written.</p>" + "</div>" * 100
    assert parse_email(f"Subject: s\nContent-Type: text/html\n\n{shallow}".encode()).html == shallow


def test_a_body_without_any_header_is_not_an_email() -> None:
    with pytest.raises(EmailParseError, match="not an email: it does not start with mail headers"):
        parse_email(b"\n\njust a body line\n")


def test_declared_boundary_never_matching_is_salvaged() -> None:
    raw = (
        b"Subject: broken\nContent-Type: multipart/alternative; boundary=\"declared\"\n\n"
        b"--actual\nContent-Type: text/html; charset=utf-8\n\n<p>Salvaged words</p>\n--actual--\n"
    )
    email = parse_email(raw)
    assert "<p>Salvaged words</p>" in email.html
    assert any("boundary" in d for d in email.defects)


def test_forwarded_as_attachment_uses_the_attached_message() -> None:
    inner = EmailMessage()
    inner["From"] = "Letters <letters@quietledger.example>"
    inner["Subject"] = "Inner issue"
    inner.set_content("<h1>Inner issue</h1><p>The attached newsletter.</p>", subtype="html")
    outer = EmailMessage()
    outer["From"] = "mara@gmail.example"
    outer["Subject"] = "Fwd: Inner issue"
    outer.set_content("see attached")
    outer.add_attachment(inner)
    email = parse_email(outer.as_bytes())
    assert email.html == "<h1>Inner issue</h1><p>The attached newsletter.</p>\n"
    assert email.text is None  # the forwarder's note is not the newsletter's text
    assert "body taken from an attached message" in email.defects


def test_input_guards() -> None:
    with pytest.raises(EmailParseError, match="too large"):
        parse_email(b"Subject: x\n\n" + b"a" * (MAX_BYTES + 1))
    with pytest.raises(EmailParseError, match="empty"):
        parse_email(b"  \r\n\t ")
    with pytest.raises(EmailParseError, match="expected bytes"):
        parse_email("Subject: str\n\nbody")  # type: ignore[arg-type]


# --- pathological inputs: a clear error or a result, quickly -----------------------------------


def _nested(depth: int) -> bytes:
    head = [b"From: a@example.com\nSubject: deep\nMIME-Version: 1.0\n"]
    head += [b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)]
    tail = [b"--b%d--\n" % i for i in reversed(range(depth))]
    return b"".join([*head, b"Content-Type: text/plain\n\nbottom\n", *tail])


PATHOLOGICAL = {
    "10000 nested multiparts": _nested(10_000),
    "2000 nested multiparts": _nested(2_000),
    "5 MB subject": b"From: a@example.com\nSubject: " + b"x" * 5_000_000 + b"\n\nbody\n",
    "1 MB content-type": b"Content-Type: text/plain; " + b"a=b; " * 200_000 + b"\n\nbody\n",
    "200k headers": b"".join(b"X-H%d: v\n" % i for i in range(200_000)) + b"\nbody\n",
    "200k addresses": b"To: " + b"a@b.example, " * 200_000 + b"\n\nbody\n",
    "quote flood": b'From: ' + b'"\\"' * 100_000 + b"\n\nbody\n",
    "20k parts": b'Content-Type: multipart/mixed; boundary="x"\n\n'
    + b"--x\nContent-Type: text/plain\n\nhi\n" * 20_000 + b"--x--\n",
    "binary noise": bytes(range(256)) * 8000,
    "dash flood html": b"<html><body>" + b"-" * 1_000_000 + b"</body></html>",
    "unclosed tags html": b"<html><title>" + b"<a href=x><head><style>" * 50_000,
    "bad base64": b"Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n" + b"!!!*&^%" * 10_000,
}


def _header(email: ParsedEmail, name: str) -> str:
    return next(value for key, value in email.headers if key.lower() == name)


# What bounds each one: the guard that refused it, or the cut that kept its parse small.
PATHOLOGICAL_OUTCOMES = {
    "10000 nested multiparts": "too many MIME parts: 10,001 Content-Type headers (limit 10,000)",
    "2000 nested multiparts": "email is nested too deeply to read",
    "5 MB subject": lambda e: len(e.subject) == MAX_PARSE_HEADER_CHARS and len(_header(e, "subject")) == MAX_HEADER_CHARS,
    "1 MB content-type": lambda e: len(_header(e, "content-type")) == MAX_HEADER_CHARS and "body" in e.html,
    "200k headers": "header block too large: more than 50,000 lines",
    # Addresses are read from the cut value, repeats once: the first, then the cut-off tail.
    "200k addresses": lambda e: len(_header(e, "to")) == MAX_HEADER_CHARS and e.recipients[0] == "a@b.example"
    and len(e.recipients) <= 2,
    "quote flood": lambda e: len(_header(e, "from")) == MAX_HEADER_CHARS and "body" in e.html,
    "20k parts": "too many MIME parts: 20,001 Content-Type headers (limit 10,000)",
    "binary noise": "not an email: it does not start with mail headers",
    "dash flood html": lambda e: e.html.count("-") == 1_000_000,
    "unclosed tags html": lambda e: "HTML nested 150,002 elements deep; flattened below 256 (text kept)" in e.defects,
    "bad base64": lambda e: "no HTML or text body" in e.defects and not e.html,
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_input_is_bounded(name: str) -> None:
    result = parse_or_error(PATHOLOGICAL[name])
    expected = PATHOLOGICAL_OUTCOMES[name]
    if isinstance(expected, str):
        assert isinstance(result, EmailParseError), f"parsed: {result!r:.300}"
        assert str(result).startswith(expected)
    else:
        assert isinstance(result, ParsedEmail), f"refused: {result}"
        assert result.message_id
        assert expected(result), f"{result!r:.600}"


def test_deep_nesting_is_a_clear_error() -> None:
    with pytest.raises(EmailParseError, match="MIME parts|nested"):
        parse_email(_nested(10_000))


# --- real mail: the shared corpus and CPython's own email test data -------------------------------


def _labels(corpus_dir: Path) -> dict[str, dict[str, str]]:
    with (corpus_dir / "LABELS.tsv").open(encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def test_every_corpus_specimen_parses(corpus_dir: Path) -> None:
    files = sorted(corpus_dir.glob("*.eml")) + sorted(corpus_dir.glob("*.html"))
    assert len(files) >= 40
    labels = _labels(corpus_dir)
    parsed = 0
    for path in files:
        result = parse_or_error(path.read_bytes())
        assert isinstance(result, ParsedEmail), f"{path.name}: {result}"
        parsed += 1
        assert result.source == ("html" if path.suffix == ".html" else "mime")
        row = labels.get(path.name)
        if row and row["keep"] and row["kind"] != "fixture":
            # the right body in the right charset: the labelled phrases are readable in the HTML
            text = visible_text(result.html)
            phrases = [p.strip() for p in row["keep"].split("||") if p.strip()]
            found = [p for p in phrases if " ".join(p.split()) in text]
            assert len(found) * 2 >= len(phrases), f"{path.name}: only {found} of {phrases}"
    assert parsed == len(files)


def test_corpus_headers_for_platform_detection(corpus_dir: Path) -> None:
    mailchimp = parse_email((corpus_dir / "unspy__mailchimp-schreibsuchti.eml").read_bytes())
    assert mailchimp.header("x-mc-user") and mailchimp.header("list-id")
    substack = parse_email((corpus_dir / "unhook__substack-oneusefulthing-ai-guide.eml").read_bytes())
    assert substack.header("x-mailgun-sid") and substack.sender.email == "oneusefulthing@substack.com"
    assert any(u.startswith("https://") for u in substack.list_unsubscribe)
    cyrillic = parse_email((corpus_dir / "phpmimeparser__conference-newsletter-x-mac-cyrillic.eml").read_bytes())
    assert "We are pleased to invite you" in visible_text(cyrillic.html)
    related = parse_email((corpus_dir / "spamscope__fr-marketing-related-cid.eml").read_bytes())
    assert related.inline_parts and all(f"cid:{cid}" in related.html for cid in related.inline_parts)
    # Google Groups rewrites From; the author is in X-Original-From
    via_group = parse_email((corpus_dir / "lkmlarch__medium-email-list-added-via-ggroups.eml").read_bytes())
    assert via_group.sender.email == "noreply@medium.com"
    malformed = parse_email((corpus_dir / "flanker__malformed-8bit-headers.eml").read_bytes())
    assert malformed.sender.email == "headers@gmail.com" and malformed.defects


def _cpython_email_data() -> Path:
    data = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
    if not any(data.glob("msg_*.txt")):
        unavailable(f"CPython's email test data is not at {data}")
    return data


def test_every_cpython_email_test_message(capsys: pytest.CaptureFixture[str]) -> None:
    messages = sorted(_cpython_email_data().glob("msg_*.txt"))
    parsed, errors = 0, []
    for path in messages:
        result = parse_or_error(path.read_bytes())
        if isinstance(result, EmailParseError):
            errors.append(f"{path.name}: {result}")
        else:
            parsed += 1
            assert result.message_id and isinstance(result.headers, tuple)
    with capsys.disabled():
        print(f"\nCPython email data: {parsed} parsed, {len(errors)} clear errors of {len(messages)}")
    assert parsed + len(errors) == len(messages) >= 40
    assert parsed >= len(messages) - 2, errors
    # msg_19 is a mailing-list digest's plain text without headers: not an email.
    assert [e.split(":")[0] for e in errors if "not an email" in e] == ["msg_19.txt"]
