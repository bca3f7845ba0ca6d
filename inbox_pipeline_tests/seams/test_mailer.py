"""The mailer seam against real servers: aiosmtpd (plain, STARTTLS, SMTPS), SES on moto, a folder."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import re
import socket
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from inbox_pipeline import seams
from inbox_pipeline_tests.conftest import free_port
from inbox_pipeline_tests.helpers import self_signed_certificate

SENDER = "Kindle Delivery <kindle@send.example.com>"
KINDLE = "reader_42@kindle.com"
EPUB = b"PK\x03\x04" + b"mimetypeapplication/epub+zip" + bytes(range(256)) * 64


def epub_email(subject: str = "The Weekly Dispatch \u2014 No. 12", to: str = KINDLE) -> EmailMessage:
    return seams.build_epub_email(
        sender=SENDER,
        to=to,
        subject=subject,
        epub_bytes=EPUB,
        file_name="The Weekly Dispatch: No. 12 (caf\u00e9 edition).epub",
        body_text="Your newsletter, The Weekly Dispatch, is attached.",
    )


def parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(data)


def epub_attachment(msg: EmailMessage) -> EmailMessage:
    parts = [p for p in msg.iter_attachments() if p.get_content_type() == "application/epub+zip"]
    assert len(parts) == 1
    return parts[0]


# --- SMTP servers -----------------------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that keeps messages, or answers RCPT/DATA with a fixed refusal."""

    def __init__(self, rcpt_reply: str | None = None, data_reply: str | None = None) -> None:
        self.messages: list[dict] = []
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.data_reply:
            return self.data_reply
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": bytes(envelope.content),
                "tls": session.ssl is not None,
                "login": getattr(session, "auth_data", None),
            }
        )
        return "250 2.0.0 Ok: queued as TEST123"


@pytest.fixture
def smtp_server() -> Iterator:
    """Starts aiosmtpd controllers on free ports; stops them afterwards."""
    from aiosmtpd.controller import Controller

    started: list[Controller] = []

    def start(handler: Recorder, **kwargs) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return port

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, trusted by the client through SSL_CERT_FILE."""
    cert_file, key_file = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    return cert_file, key_file


def server_tls_context(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    return context


def accept_only(login: bytes, password: bytes):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (login, password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    return authenticator


# --- SMTP ---------------------------------------------------------------------------------


def test_smtp_delivers_the_epub(smtp_sink) -> None:
    mailer = seams.mailer_from_uri(smtp_sink.url, SENDER)

    result = mailer.send(epub_email())

    [received] = smtp_sink.messages
    assert received["from"] == "kindle@send.example.com"
    assert received["to"] == [KINDLE]
    [msg] = smtp_sink.parsed()
    assert msg["Subject"] == "The Weekly Dispatch \u2014 No. 12"
    assert msg.get_body(("plain",)).get_content().strip() == "Your newsletter, The Weekly Dispatch, is attached."
    attachment = epub_attachment(msg)
    assert attachment.get_filename() == "The-Weekly-Dispatch-No.-12-cafe-edition.epub"
    assert attachment.get_content() == EPUB
    assert result.provider_message_id == msg["Message-ID"].strip("<>")


def test_smtp_451_is_transient_and_a_retry_delivers(smtp_sink) -> None:
    mailer = seams.mailer_from_uri(smtp_sink.url, SENDER)
    smtp_sink.refuse_next = 1

    with pytest.raises(seams.TransientMailError, match="451") as err:
        mailer.send(epub_email())
    assert not err.value.maybe_sent
    assert smtp_sink.messages == []

    mailer.send(epub_email())
    assert len(smtp_sink.messages) == 1


def test_smtp_550_recipient_is_permanent(smtp_server) -> None:
    port = smtp_server(Recorder(rcpt_reply="550 5.1.1 <reader_42@kindle.com>: no such user"))

    with pytest.raises(seams.PermanentMailError, match="550 5.1.1"):
        seams.SmtpMailer(f"smtp://127.0.0.1:{port}", SENDER).send(epub_email())


def test_smtp_452_recipient_is_transient(smtp_server) -> None:
    port = smtp_server(Recorder(rcpt_reply="452 4.2.2 mailbox full"))

    with pytest.raises(seams.TransientMailError, match="452"):
        seams.SmtpMailer(f"smtp://127.0.0.1:{port}", SENDER).send(epub_email())


def test_smtp_552_too_large_is_permanent(smtp_server) -> None:
    port = smtp_server(Recorder(data_reply="552 5.3.4 Message size exceeds fixed limit"))

    with pytest.raises(seams.PermanentMailError, match="552"):
        seams.SmtpMailer(f"smtp://127.0.0.1:{port}", SENDER).send(epub_email())


def test_refused_connection_is_transient() -> None:
    port = free_port()  # nothing listens there

    with pytest.raises(seams.TransientMailError, match="unreachable") as err:
        seams.SmtpMailer(f"smtp://127.0.0.1:{port}", SENDER, timeout=3).send(epub_email())
    assert not err.value.maybe_sent


def test_silent_server_times_out_as_transient() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP connection, never greets
        port = listener.getsockname()[1]
        mailer = seams.mailer_from_uri(f"smtp://127.0.0.1:{port}?timeout=0.5", SENDER)

        with pytest.raises(seams.TransientMailError):
            mailer.send(epub_email())


def test_starttls_with_login(smtp_server, tls_files) -> None:
    recorder = Recorder()
    port = smtp_server(
        recorder,
        tls_context=server_tls_context(tls_files),
        require_starttls=True,
        authenticator=accept_only(b"alice", b"p@ss:w/rd"),
        auth_required=True,
    )
    mailer = seams.mailer_from_uri(f"smtp://alice:p%40ss%3Aw%2Frd@127.0.0.1:{port}?starttls=true", SENDER)

    mailer.send(epub_email())

    [received] = recorder.messages
    assert received["tls"] and received["login"] == b"alice"
    assert epub_attachment(parse(received["data"])).get_content() == EPUB
    assert "p@ss" not in repr(mailer)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtps_implicit_tls_with_login(smtp_server, tls_files) -> None:
    recorder = Recorder()
    port = smtp_server(
        recorder,
        ssl_context=server_tls_context(tls_files),
        authenticator=accept_only(b"alice", b"secret"),
        auth_required=True,
        auth_require_tls=False,  # aiosmtpd only counts STARTTLS as TLS; this socket is TLS already
    )

    seams.mailer_from_uri(f"smtps://alice:secret@127.0.0.1:{port}", SENDER).send(epub_email())

    [received] = recorder.messages
    assert received["login"] == b"alice" and received["to"] == [KINDLE]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_wrong_password_is_permanent(smtp_server, tls_files) -> None:
    port = smtp_server(
        Recorder(),
        ssl_context=server_tls_context(tls_files),
        authenticator=accept_only(b"alice", b"secret"),
        auth_required=True,
        auth_require_tls=False,  # aiosmtpd only counts STARTTLS as TLS; this socket is TLS already
    )

    with pytest.raises(seams.PermanentMailError, match="535"):
        seams.mailer_from_uri(f"smtps://alice:wrong@127.0.0.1:{port}", SENDER).send(epub_email())


def test_untrusted_certificate_is_permanent(smtp_server, tls_files, monkeypatch) -> None:
    port = smtp_server(Recorder(), ssl_context=server_tls_context(tls_files))
    monkeypatch.delenv("SSL_CERT_FILE")  # the system CAs do not know our self-signed cert

    with pytest.raises(seams.PermanentMailError, match="certificate"):
        seams.mailer_from_uri(f"smtps://127.0.0.1:{port}", SENDER).send(epub_email())


# --- SES (moto server) ------------------------------------------------------------------------


def ses_sent(endpoint: str, message_id: str) -> dict:
    """What SES 'sent', from the moto server's own model listing."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as response:
        data = json.load(response)
    matches = [m for m in data["ses"]["RawMessage"] if m["id"] == message_id]
    assert len(matches) == 1
    return matches[0]


def verify_identity(identity: str) -> None:
    import boto3

    boto3.client("sesv2").create_email_identity(EmailIdentity=identity)


def test_ses_sends_raw_mime(aws_env: str) -> None:
    verify_identity("send.example.com")
    mailer = seams.mailer_from_uri("ses", SENDER)

    result = mailer.send(epub_email())

    sent = ses_sent(aws_env, result.provider_message_id)
    assert sent["source"] == "kindle@send.example.com"
    assert KINDLE in sent["destinations"]
    msg = parse(sent["raw_data"].encode())
    assert msg["From"] == SENDER and msg["To"] == KINDLE
    assert epub_attachment(msg).get_content() == EPUB


def test_ses_unverified_sender_is_permanent(aws_env: str) -> None:
    mailer = seams.SesMailer("nobody@unverified.example.org")

    with pytest.raises(seams.PermanentMailError, match="MessageRejected"):
        mailer.send(epub_email())


def test_ses_quota_is_read_in_the_configured_region(aws_env: str, monkeypatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # only AWS_REGION, which botocore alone does not read
    mailer = seams.mailer_from_uri("ses", SENDER, region="us-east-1")

    assert mailer.send_quota() == (1.0, 200)  # moto's account: 1 a second, 200 a day


def test_ses_refuses_over_40_mb_before_calling(aws_env: str) -> None:
    big = seams.build_epub_email(
        sender=SENDER, to=KINDLE, subject="big", epub_bytes=b"\0" * (31 * 1024 * 1024), file_name="b", body_text="x"
    )

    with pytest.raises(seams.PermanentMailError, match="40 MB"):
        seams.SesMailer(SENDER).send(big)


class FakeSesHandler(http.server.BaseHTTPRequestHandler):
    """Answers every SES call with a fixed error, as AWS does under throttling."""

    status = 429
    error_type = "TooManyRequestsException"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"message": "Maximum sending rate exceeded."}).encode()
        self.send_response(self.status)
        self.send_header("x-amzn-ErrorType", self.error_type)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(
    "status, error_type, expected",
    [
        (429, "TooManyRequestsException", seams.TransientMailError),
        (500, "InternalFailure", seams.TransientMailError),
        (400, "BadRequestException", seams.PermanentMailError),
    ],
)
def test_ses_errors_are_classified(monkeypatch, status, error_type, expected) -> None:
    handler = type("Handler", (FakeSesHandler,), {"status": status, "error_type": error_type})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # boto3's own retries would only slow the test

        from inbox_pipeline.config import Settings

        region = Settings.from_env().aws_region  # AWS_REGION, which botocore alone does not read
        with pytest.raises(expected, match=error_type):
            seams.SesMailer(SENDER, region=region).send(epub_email())
    finally:
        server.shutdown()
        server.server_close()


def test_ses_unreachable_is_transient(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    with pytest.raises(seams.TransientMailError, match="could not reach SES") as err:
        seams.SesMailer(SENDER).send(epub_email())
    assert not err.value.maybe_sent


# --- outbox ---------------------------------------------------------------------------------


def test_outbox_writes_eml_files(tmp_path: Path) -> None:
    mailer = seams.mailer_from_uri(f"outbox:{tmp_path / 'outbox'}", SENDER)

    first = mailer.send(epub_email())
    second = mailer.send(epub_email())

    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == sorted([first.provider_message_id, second.provider_message_id])
    assert len(files) == 2  # no temp files left, no name shared
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-The-Weekly-Dispatch-No.-12(-2)?\.eml", files[0].name)
    msg = parse(files[0].read_bytes())
    assert msg["To"] == KINDLE
    assert epub_attachment(msg).get_content() == EPUB


# --- messages ---------------------------------------------------------------------------------


def test_epub_email_shape() -> None:
    msg = epub_email()

    assert msg["From"] == SENDER and msg["To"] == KINDLE
    assert msg["Date"] and re.fullmatch(r"<[^<>@]+@send\.example\.com>", msg["Message-ID"])
    assert msg.get_body(("plain",)).get_content().strip()
    attachment = epub_attachment(msg)
    name = attachment.get_filename()
    assert len(name) <= 50 and re.fullmatch(r"[A-Za-z0-9._-]+\.epub", name)
    assert attachment["Content-Transfer-Encoding"] == "base64"
    msg.as_bytes(policy=policy.SMTP).decode("ascii")  # 7-bit clean on the wire


def test_epub_email_never_has_an_empty_body_or_a_broken_subject() -> None:
    msg = seams.build_epub_email(
        sender=SENDER, to=KINDLE, subject="Line one\r\nBcc: x@evil.example", epub_bytes=EPUB, file_name="", body_text="  "
    )

    assert msg["Subject"] == "Line one Bcc: x@evil.example"
    assert msg["Bcc"] is None
    assert msg.get_body(("plain",)).get_content().strip()
    assert epub_attachment(msg).get_filename() == "newsletter.epub"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Ünïcödé: title / with spaces?.epub", "Unicode-title-with-spaces.epub"),
        ("....epub", "newsletter.epub"),
        ("\u65e5\u672c\u8a9e.epub", "newsletter.epub"),
        ("a" * 80, "a" * 45 + ".epub"),
        ("weekly.EPUB", "weekly.epub"),
    ],
)
def test_safe_file_name(name: str, expected: str) -> None:
    assert seams.safe_file_name(name) == expected


def test_message_size_after_base64_matches_the_message() -> None:
    for size in (0, 1, 57, 58, 1000, 123_457):
        data = bytes(size)
        expected = len(base64.encodebytes(data).replace(b"\n", b"\r\n"))
        assert seams.message_size_after_base64(data) == expected == seams.message_size_after_base64(size)
    epub = bytes(range(256)) * 4000
    msg = seams.build_epub_email(sender=SENDER, to=KINDLE, subject="s", epub_bytes=epub, file_name="x", body_text="b")
    wire = len(msg.as_bytes(policy=policy.SMTP))
    assert seams.message_size_after_base64(epub) < wire < seams.message_size_after_base64(epub) + 2048
    assert seams.message_size_after_base64(29 * 1024 * 1024) < seams.SES_MAX_MESSAGE_BYTES  # the default budget fits


def test_link_email_carries_the_link() -> None:
    link = "https://bucket.s3.amazonaws.com/epubs/big.epub?X-Amz-Signature=abc&X-Amz-Expires=604800"
    msg = seams.build_link_email(
        sender=SENDER,
        to="alice@example.com",
        subject="Too large for your Kindle: The Long Read",
        title="The Long Read",
        link=link,
        size_bytes=45 * 1024 * 1024,
        expires_at=dt.datetime(2030, 1, 8, 12, 0, tzinfo=dt.timezone.utc),
    )

    text = msg.get_body(("plain",)).get_content()
    assert link in text and "45.0 MB" in text and "2030-01-08 12:00 UTC" in text
    html = msg.get_body(("html",)).get_content()
    assert 'href="https://bucket.s3.amazonaws.com/epubs/big.epub?X-Amz-Signature=abc&amp;X-Amz-Expires=604800"' in html
    assert list(msg.iter_attachments()) == []


def forward(**given: str | None):
    """``build_forward_email`` to alice from our sender, with ``given`` fields."""
    fields = dict(sender=SENDER, to="alice@example.com", subject="Confirm", confirm_link=None,
                  original_sender="x@news.example", original_subject="Confirm", original_html=None, original_text=None)
    return seams.build_forward_email(**(fields | given))


def test_forward_email_puts_the_confirm_link_first() -> None:
    original_html = (
        "<html><head><style>p{color:red}</style></head><body>"
        "<p>Thanks for signing up to Field Notes!</p>"
        '<p><a href="https://fieldnotes.example/confirm?t=1">Yes, subscribe me</a></p>'
        "</body></html>"
    )
    msg = forward(
        confirm_link="https://fieldnotes.example/confirm?t=1",
        original_sender="hello@fieldnotes.example",
        original_html=original_html,
    )

    text = msg.get_body(("plain",)).get_content()
    assert text.index("https://fieldnotes.example/confirm?t=1") < text.index("Thanks for signing up")
    html = msg.get_body(("html",)).get_content()
    assert html.index("Confirm your subscription</a>") < html.index("Thanks for signing up")
    assert "<style>" not in html  # the original's head is not carried over


def test_forward_email_without_a_link_still_shows_the_original() -> None:
    msg = forward(confirm_link="javascript:alert(1)", original_text="Reply YES to confirm.")

    html = msg.get_body(("html",)).get_content()
    assert "javascript:" not in html.split("<hr>")[0].replace("<pre>", "")
    assert "Reply YES to confirm." in msg.get_body(("plain",)).get_content()


HOSTILE_CONFIRMATION = """<html><head><style>body{background:url(https://t.example/bg)}</style>
<script>document.location='https://phish.example'</script></head>
<body onload="steal()">
<div style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:99">Your Amazon session expired</div>
<p>Please confirm your subscription.</p>
<p><a href="https://news.example/confirm?t=9">Confirm</a> or <a href="mailto:help@news.example">write to us</a></p>
<form action="https://phish.example/login" method="post"><p>Sign in again</p>
<input type="email" name="u"><input type="password" name="p"><button>Sign in</button></form>
<iframe src="https://phish.example/frame"></iframe><object data="https://x.example/x.swf"></object>
<img src="https://t.example/pixel.gif" width="1" height="1"><svg><a href="javascript:alert(1)">x</a></svg>
<a href="file:///etc/passwd">local file</a> <a href=" java&#x09;script:alert(1)">js</a>
<a href="data:text/html;base64,PHNjcmlwdD4=">data</a>
</body></html>"""


def test_a_forward_is_built_from_inert_content_never_relayed() -> None:
    msg = forward(
        confirm_link="https://news.example/confirm?t=9",
        original_sender="kindle-support@news.example",
        original_html=HOSTILE_CONFIRMATION,
    )

    body = msg.get_body(("html",)).get_content()
    lead, _, quoted = body.partition("<blockquote>")
    assert lead.index("https://news.example/confirm?t=9") < len(lead)  # the confirm link comes first
    assert "Please confirm your subscription." in quoted and "Sign in again" in quoted
    lowered = body.lower()
    for active in ("<script", "<style", "onload", "onclick", "<form", "<input", "<button", "<iframe", "<object",
                   "<svg", "<img", "position", "z-index", "style=", "pixel.gif", "t.example"):
        assert active not in lowered, active
    hrefs = re.findall(r'href="([^"]*)"', body)
    assert hrefs == [
        "https://news.example/confirm?t=9", "https://news.example/confirm?t=9", "mailto:help@news.example"
    ]
    assert "<code>kindle-support@news.example</code>" in body


def test_a_forward_names_the_sender_by_address_and_refuses_a_foreign_confirm_link() -> None:
    msg = forward(confirm_link="file:///etc/passwd", original_text="Amazon Kindle Support: reply YES.")
    text = msg.get_body(("plain",)).get_content()
    assert "file:" not in msg.get_body(("html",)).get_content() and "file:" not in text
    assert "sent from x@news.example" in text and "> Amazon Kindle Support: reply YES." in text
    assert msg["From"] == SENDER


def test_notification_email() -> None:
    msg = seams.build_notification_email(
        sender=SENDER, to="alice@example.com", subject="No Kindle address yet", body_text="Add one with ..."
    )

    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "Add one with ..."


# --- configuration ------------------------------------------------------------------------------


def test_mailer_uri_forms(tmp_path: Path) -> None:
    assert isinstance(seams.mailer_from_uri("ses", SENDER), seams.SesMailer)
    assert seams.mailer_from_uri("ses?configuration_set=prod", SENDER).configuration_set == "prod"
    smtp = seams.mailer_from_uri("smtp://u:p@relay.example:2525?starttls=true", SENDER)
    assert (smtp.host, smtp.port, smtp.starttls, smtp.username) == ("relay.example", 2525, True, "u")
    assert seams.mailer_from_uri("smtps://relay.example", SENDER).port == 465
    assert seams.mailer_from_uri("smtp://relay.example?starttls=true", SENDER).port == 587
    assert seams.mailer_from_uri("smtp://relay.example", SENDER).port == 25
    assert isinstance(seams.mailer_from_uri(f"outbox:{tmp_path}", SENDER), seams.OutboxMailer)
    assert seams.mailer_from_uri(f"outbox://{tmp_path}", SENDER).folder == tmp_path


@pytest.mark.parametrize(
    "uri, message",
    [
        ("", "empty"),
        ("sendgrid", "not understood"),
        ("http://relay", "not understood"),
        ("smtp://", "no host"),
        ("smtp://h:notaport", "not a number"),
        ("smtp://h?tls=yes", "unknown option"),
        ("smtp://h?starttls=maybe", "true or false"),
        ("smtps://h?starttls=true", "already TLS"),
        ("ses?region=x", "unknown option"),
        ("outbox:", "needs a folder"),
    ],
)
def test_bad_mailer_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        seams.mailer_from_uri(uri, SENDER)


def test_bad_sender_is_refused() -> None:
    with pytest.raises(ValueError, match="not an email address"):
        seams.mailer_from_uri("ses", "kindle")


def test_check_reaches_the_smtp_server_without_sending_and_says_try_later_when_it_is_gone(smtp_sink, tmp_path) -> None:
    seams.SmtpMailer(smtp_sink.url, SENDER).check()
    assert not smtp_sink.messages
    with pytest.raises(seams.TransientMailError, match="unreachable while connecting"):
        seams.SmtpMailer(f"smtp://127.0.0.1:{free_port()}", SENDER).check()
    seams.OutboxMailer(tmp_path / "outbox", SENDER).check()  # created on first send
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(seams.TransientMailError, match="cannot write to the outbox"):
        seams.OutboxMailer(tmp_path / "file", SENDER).check()
