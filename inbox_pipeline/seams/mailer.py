"""The mailer seam: sending raw MIME through SES, an SMTP relay, or into an outbox folder.

Every failure is a ``TransientMailError`` (try again later: SMTP 4xx, network
trouble, SES throttling or 5xx) or a ``PermanentMailError`` (retrying cannot help:
SMTP 5xx, SES ``MessageRejected``, a bad address, a message too large, a
misconfigured relay), so a Dagster ``RetryPolicy`` only repeats the first kind.

The ``build_*_email`` functions make the messages the pipeline sends.
"""

from __future__ import annotations

import copy
import html
import math
import os
import re
import smtplib
import ssl
import threading
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from inbox_pipeline.core.kindle_notice import tokened_file_name, tokened_message_id_left
from inbox_pipeline.core.names import shorten_name
from inbox_pipeline.seams._aws import aws_client, error_code, http_status
from inbox_pipeline.seams._common import write_atomically

__all__ = [
    "SES_MAX_MESSAGE_BYTES",
    "MailError",
    "Mailer",
    "OutboxMailer",
    "PermanentMailError",
    "SendResult",
    "SesMailer",
    "SmtpMailer",
    "TransientMailError",
    "build_epub_email",
    "build_forward_email",
    "build_link_email",
    "build_notification_email",
    "mailer_from_uri",
    "message_size_after_base64",
    "safe_file_name",
]

# SES refuses a raw message over 40 MB, counted after base64 encoding.
SES_MAX_MESSAGE_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str  # SES MessageId, the Message-ID header (SMTP) or the .eml file name
    response: str = ""  # the provider's own words, for the record
    paced_seconds: float = 0.0  # how long the send-rate limiter held it back (services/pacing.py)


class MailError(Exception):
    """Sending failed; ``maybe_sent`` is True when the message may have gone out anyway."""

    def __init__(self, message: str, *, maybe_sent: bool = False):
        super().__init__(message)
        self.maybe_sent = maybe_sent


class TransientMailError(MailError):
    """Worth retrying later."""


class PermanentMailError(MailError):
    """Retrying the same message cannot succeed."""


class Mailer(ABC):
    sender: str  # the one From address users approve in Amazon

    @abstractmethod
    def send(self, message: EmailMessage) -> SendResult:
        """Send ``message`` to its To/Cc/Bcc recipients, from ``sender``."""

    def check(self) -> None:
        """Raise a ``MailError`` when the mailer cannot be reached now (the watchdog's probe); sends nothing."""


def _envelope(message: EmailMessage, sender: str) -> tuple[bytes, list[str]]:
    """The wire bytes (CRLF, Bcc removed) and the recipient addresses.

    Fills in From, Date and Message-ID when the caller left them out.
    """
    if message["From"] is None:
        message["From"] = sender
    if message["Date"] is None:
        message["Date"] = formatdate(usegmt=True)
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain=_domain(sender))
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    recipients = list(dict.fromkeys(addr for _, addr in getaddresses(fields) if "@" in addr))
    if not recipients:
        raise PermanentMailError("the message has no recipient address (To/Cc/Bcc)")
    wire = message
    if message["Bcc"] is not None:
        wire = copy.deepcopy(message)
        del wire["Bcc"]
    return wire.as_bytes(policy=policy.SMTP), recipients


def _domain(address: str) -> str:
    addr = parseaddr(address)[1]
    return addr.rpartition("@")[2] or "localhost"


def _message_id(message: EmailMessage) -> str:
    return str(message["Message-ID"] or "").strip().strip("<>")


# --- SES ------------------------------------------------------------------------

_SES_TRANSIENT_CODES = {
    "TooManyRequestsException",
    "LimitExceededException",
    "Throttling",
    "ThrottlingException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "SendingPausedException",  # the operator resumes sending; the email should wait
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
}


class SesMailer(Mailer):
    """SES v2 ``SendEmail`` with raw content; client from boto3's environment."""

    def __init__(self, sender: str, *, configuration_set: str | None = None, region: str | None = None):
        self.sender = _check_sender(sender)
        self.configuration_set = configuration_set
        self.region = region
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SesMailer(sender={self.sender!r})"

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = aws_client("sesv2", region=self.region)
            return self._client

    def send_quota(self) -> tuple[float, int]:
        """The account's sending limits: (MaxSendRate per second, Max24HourSend; 0 when unlimited),
        from SES's ``GetSendQuota`` (needs ``ses:GetSendQuota``)."""
        quota = aws_client("ses", region=self.region).get_send_quota()
        daily = float(quota.get("Max24HourSend", 0) or 0)
        return float(quota["MaxSendRate"]), int(daily) if daily > 0 else 0

    def send(self, message: EmailMessage) -> SendResult:
        # Lazy: botocore stays off Dagster's load path.
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        data, recipients = _envelope(message, self.sender)
        if len(data) > SES_MAX_MESSAGE_BYTES:
            raise PermanentMailError(
                f"the message is {len(data) / 1048576:.1f} MB; SES accepts at most 40 MB"
            )
        kwargs: dict[str, Any] = {
            # The bare address: a display name with non-ASCII would need RFC 2047 here.
            "FromEmailAddress": parseaddr(self.sender)[1],
            "Destination": {"ToAddresses": recipients},
            "Content": {"Raw": {"Data": data}},
        }
        if self.configuration_set:
            kwargs["ConfigurationSetName"] = self.configuration_set
        try:
            response = self.client.send_email(**kwargs)
        except ClientError as exc:
            code, status = error_code(exc), http_status(exc)
            text = f"SES refused the message: {code or status}: {exc.response.get('Error', {}).get('Message', '')}"
            if code in _SES_TRANSIENT_CODES or status >= 500 or status == 429:
                raise TransientMailError(text) from exc
            raise PermanentMailError(text) from exc
        except ConnectionError as exc:  # refused, DNS, connect timeout: nothing was sent
            raise TransientMailError(f"could not reach SES: {exc}") from exc
        except HTTPClientError as exc:  # a read timeout may come after SES accepted it
            raise TransientMailError(f"no answer from SES: {exc}", maybe_sent=True) from exc
        except BotoCoreError as exc:
            raise TransientMailError(f"SES call failed: {exc}") from exc
        return SendResult(provider_message_id=response["MessageId"], response="SES accepted")


# --- SMTP -----------------------------------------------------------------------


class SmtpMailer(Mailer):
    """An SMTP relay: ``smtp://user:pass@host:port`` (``?starttls=true``) or ``smtps://`` (implicit TLS).

    Certificates are checked against the system's CAs (``SSL_CERT_FILE`` works).
    """

    def __init__(self, url: str, sender: str, *, timeout: float = 30.0):
        self.sender = _check_sender(sender)
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError(f"SMTP URL {_redact(url)!r}: scheme must be smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError(f"SMTP URL {_redact(url)!r}: no host; use smtp://user:pass@host:port")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - {"starttls", "timeout"}
        if unknown:
            raise ValueError(f"SMTP URL {_redact(url)!r}: unknown option(s) {sorted(unknown)}")
        self.implicit_tls = parts.scheme == "smtps"
        starttls = query.get("starttls", ["false"])[-1].strip().lower()
        if starttls not in {"true", "false", "1", "0", "yes", "no", ""}:
            raise ValueError(f"SMTP URL {_redact(url)!r}: starttls must be true or false")
        self.starttls = starttls in {"true", "1", "yes"}
        if self.implicit_tls and self.starttls:
            raise ValueError(f"SMTP URL {_redact(url)!r}: smtps:// is already TLS; drop ?starttls")
        self.host = parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"SMTP URL {_redact(url)!r}: the port is not a number") from None
        self.port = port or (465 if self.implicit_tls else 587 if self.starttls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else ""
        self.timeout = float(query["timeout"][-1]) if query.get("timeout") else timeout

    def __repr__(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpMailer('{scheme}://{user}{self.host}:{self.port}', starttls={self.starttls})"

    @property
    def where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def _connect(self) -> smtplib.SMTP:
        # Only for TLS: building a default context loads the system CAs (~25 ms of CPU per send).
        context = ssl.create_default_context() if (self.implicit_tls or self.starttls) else None
        if self.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def check(self) -> None:
        try:
            smtp = self._connect()
        except Exception as exc:  # noqa: BLE001 - classified like a send's
            raise self._classify(exc, "connecting") from exc
        try:
            code, reply = smtp.noop()
        finally:
            _quietly_quit(smtp)
        if code != 250:
            raise self._reply_error(code, reply, "NOOP")

    def send(self, message: EmailMessage) -> SendResult:
        data, recipients = _envelope(message, self.sender)
        envelope_from = parseaddr(self.sender)[1]
        try:
            smtp = self._connect()
        except Exception as exc:
            raise self._classify(exc, "connecting") from exc
        try:
            options = [f"SIZE={len(data)}"] if smtp.has_extn("size") else []
            code, reply = smtp.mail(envelope_from, options)
            if code != 250:
                raise self._reply_error(code, reply, "MAIL FROM")
            refused: dict[str, tuple[int, bytes]] = {}
            for rcpt in recipients:
                code, reply = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, reply)
            if len(refused) == len(recipients):
                # Transient only if every refusal was a 4xx.
                worst = max(refused.values(), key=lambda r: r[0])
                raise self._reply_error(worst[0], worst[1], f"RCPT TO {', '.join(refused)}")
            try:
                code, reply = smtp.data(data)
            except smtplib.SMTPResponseException as exc:  # the DATA command itself was refused
                raise self._reply_error(exc.smtp_code, exc.smtp_error, "DATA") from exc
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                raise TransientMailError(
                    f"{self.where} dropped the connection during DATA: {exc}", maybe_sent=True
                ) from exc
            if code != 250:
                raise self._reply_error(code, reply, "the message")
        except MailError:
            _quietly_quit(smtp)
            raise
        except Exception as exc:
            _quietly_quit(smtp)
            raise self._classify(exc, "sending") from exc
        _quietly_quit(smtp)
        return SendResult(provider_message_id=_message_id(message), response=_text(reply))

    def _reply_error(self, code: int, reply: bytes | str, stage: str) -> MailError:
        text = f"{self.where} answered {code} {_text(reply)} to {stage}"
        if 400 <= code < 500:
            return TransientMailError(text)
        if 500 <= code < 600:
            return PermanentMailError(text)
        return TransientMailError(text)  # -1 and friends: a broken conversation

    def _classify(self, exc: Exception, stage: str) -> MailError:
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PermanentMailError(f"{self.where} lacks what the URL asks for (STARTTLS or AUTH): {exc}")
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._reply_error(exc.smtp_code, exc.smtp_error, stage)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentMailError(f"cannot verify the TLS certificate of {self.where}: {exc.verify_message}")
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return TransientMailError(f"{self.where} closed the TLS connection while {stage}: {exc}")
        if isinstance(exc, ssl.SSLError):
            # e.g. smtps:// against a plain-text port: configuration, not weather.
            return PermanentMailError(f"TLS with {self.where} failed while {stage}: {exc}")
        if isinstance(exc, (OSError, smtplib.SMTPException)):
            # refused, unreachable, DNS, timeouts, disconnects
            return TransientMailError(f"{self.where} unreachable while {stage}: {exc!r}")
        return PermanentMailError(f"{self.where}: unexpected error while {stage}: {exc!r}")


def _quietly_quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:
        smtp.close()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _redact(url: str) -> str:
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


# --- outbox folder ----------------------------------------------------------------


class OutboxMailer(Mailer):
    """Writes each message to ``<folder>/<timestamp>-<subject>.eml`` instead of sending it.

    For a self-hoster without a relay and for the demo: open the files in any mail client.
    """

    def __init__(self, folder: str | os.PathLike[str], sender: str):
        self.folder = Path(folder).expanduser().absolute()
        self.sender = _check_sender(sender)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OutboxMailer({str(self.folder)!r})"

    def check(self) -> None:
        if self.folder.exists() and (not self.folder.is_dir() or not os.access(self.folder, os.W_OK | os.X_OK)):
            raise TransientMailError(f"cannot write to the outbox {self.folder}")

    def send(self, message: EmailMessage) -> SendResult:
        data, _ = _envelope(message, self.sender)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        subject = safe_file_name(str(message["Subject"] or ""), default="message", ext="", max_len=60)
        try:
            with self._lock:  # two sends in the same microsecond must not share a name
                name = f"{stamp}-{subject}.eml"
                n = 1
                while (self.folder / name).exists():
                    n += 1
                    name = f"{stamp}-{subject}-{n}.eml"
                write_atomically(self.folder / name, data, fsync=True)
        except OSError as exc:
            raise TransientMailError(f"cannot write to the outbox {self.folder}: {exc}") from exc
        return SendResult(provider_message_id=name, response=str(self.folder / name))


# --- configuration ------------------------------------------------------------------


def _check_sender(sender: str) -> str:
    if "@" not in parseaddr(sender or "")[1]:
        raise ValueError(f"the sender {sender!r} is not an email address (INBOX_PIPELINE_SENDER)")
    return sender


def mailer_from_uri(uri: str, sender: str, *, region: str | None = None) -> Mailer:
    """``ses`` (``ses?configuration_set=NAME``), ``smtp://...``, ``smtps://...`` or ``outbox:<folder>``;
    ``region``: SES's AWS region when boto3's configuration names none."""
    text = (uri or "").strip()
    forms = "use ses, smtp://user:pass@host:port, smtps://..., or outbox:/folder"
    if not text:
        raise ValueError(f"INBOX_PIPELINE_MAILER is empty: {forms}")
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower() if colon else text.split("?", 1)[0].lower()
    if scheme == "ses":
        query = parse_qs(text.partition("?")[2], keep_blank_values=True)
        unknown = set(query) - {"configuration_set"}
        if unknown:
            raise ValueError(f"mailer {uri!r}: unknown option(s) {sorted(unknown)}; ses takes ?configuration_set=NAME")
        return SesMailer(sender, configuration_set=query.get("configuration_set", [""])[-1] or None, region=region)
    if scheme in {"smtp", "smtps"} and colon:
        return SmtpMailer(text, sender)
    if scheme == "outbox" and colon:
        folder = urlsplit(text).path if rest.startswith("//") else rest
        if not folder:
            raise ValueError(f"mailer {uri!r}: outbox: needs a folder, e.g. outbox:/var/lib/inbox-pipeline/outbox")
        return OutboxMailer(folder, sender)
    raise ValueError(f"mailer {_redact(uri)!r} is not understood: {forms}")


# --- messages ---------------------------------------------------------------------


def message_size_after_base64(epub: bytes | int) -> int:
    """Bytes the attachment takes inside the message: base64 in 76-character CRLF lines.

    Compare the sum with headers and body against ``SES_MAX_MESSAGE_BYTES``.
    """
    n = epub if isinstance(epub, int) else len(epub)
    encoded = 4 * math.ceil(n / 3)
    return encoded + 2 * math.ceil(encoded / 76)


def safe_file_name(name: str, *, default: str = "newsletter", ext: str = ".epub", max_len: int = 50) -> str:
    """A short ASCII name of letters, digits, ``.``, ``-`` and ``_`` (Kindle and mail clients agree)."""
    stem = name or ""
    if ext and stem.lower().endswith(ext.lower()):
        stem = stem[: -len(ext)]
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
    stem = re.sub(r"-{2,}", "-", stem).strip("-._")
    room = max(1, max_len - len(ext))
    stem = shorten_name(stem, room).rstrip("-._") or default[:room]
    return stem + ext


def _one_line(value: str) -> str:
    # Header values with CR/LF are refused (and would be header injection).
    return " ".join(str(value or "").split())


def _new_message(*, sender: str, to: str, subject: str, id_left: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = _one_line(subject) or "(no subject)"
    msg["Date"] = formatdate(usegmt=True)
    domain = _domain(sender)
    msg["Message-ID"] = f"<{id_left}@{domain}>" if id_left else make_msgid(domain=domain)
    return msg


def delivery_file_name(file_name: str, token: str | None) -> str:
    """The attachment's safe name, with the delivery token Amazon's notices quote back (when given)."""
    if not token:
        return safe_file_name(file_name)
    stem = file_name[: -len(".epub")] if file_name.lower().endswith(".epub") else file_name
    suffix = "." + tokened_file_name("", token) + ".epub"
    return safe_file_name(stem, ext=suffix, max_len=50 + len(suffix) - len(".epub"))


def build_epub_email(
    *,
    sender: str,
    to: str,
    subject: str,
    epub_bytes: bytes,
    file_name: str,
    body_text: str,
    token: str | None = None,
) -> EmailMessage:
    """An email carrying one EPUB as ``application/epub+zip`` (what Send to Kindle expects).

    ``token``: the delivery's, put in the attachment's name and the Message-ID, so Amazon's
    notice about this document names exactly this delivery.
    """
    msg = _new_message(
        sender=sender, to=to, subject=subject, id_left=tokened_message_id_left(token) if token else None
    )
    # Amazon drops messages without a body part; some relays do too.
    msg.set_content(body_text.strip() + "\n" if body_text and body_text.strip() else f"{_one_line(subject)}\n")
    msg.add_attachment(
        epub_bytes, maintype="application", subtype="epub+zip", filename=delivery_file_name(file_name, token)
    )
    return msg


def _safe_href(link: str) -> str | None:
    return link if re.match(r"(?i)^https?://", link or "") or (link or "").startswith("file://") else None


def build_link_email(
    *,
    sender: str,
    to: str,
    subject: str,
    title: str,
    link: str,
    size_bytes: int,
    expires_at: datetime | None = None,
) -> EmailMessage:
    """Tells the user where to download an EPUB too large to email to their Kindle."""
    msg = _new_message(sender=sender, to=to, subject=subject)
    size = f"{size_bytes / 1048576:.1f} MB"
    until = f" until {expires_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if expires_at else ""
    text = (
        f"\u201c{title}\u201d is {size}, too large to email to your Kindle.\n\n"
        f"Download it here (the link works{until}):\n{link}\n\n"
        "Then send it to your Kindle with Amazon's Send to Kindle page or app, or copy it over USB.\n"
    )
    msg.set_content(text)
    href = _safe_href(link)
    anchor = f'<a href="{html.escape(href, quote=True)}">Download the EPUB</a>' if href else html.escape(link)
    msg.add_alternative(
        f"<p>\u201c{html.escape(title)}\u201d is {size}, too large to email to your Kindle.</p>"
        f"<p>{anchor} (the link works{html.escape(until)}).</p>"
        "<p>Then send it to your Kindle with Amazon's Send to Kindle page or app, or copy it over USB.</p>",
        subtype="html",
    )
    return msg


def _body_inner(document: str) -> str:
    match = re.search(r"(?is)<body[^>]*>(.*)</body\s*>", document)
    return match.group(1) if match else document


def build_forward_email(
    *,
    sender: str,
    to: str,
    subject: str,
    confirm_link: str | None,
    original_sender: str,
    original_subject: str,
    original_html: str | None,
    original_text: str | None,
) -> EmailMessage:
    """A subscription confirmation rebuilt for the user's own email: the confirm link first, then
    the original made inert (see ``core.clean.inert``) and quoted under its sender's bare address
    (``original_sender``; a display name could pass for us or for Amazon)."""
    from inbox_pipeline.core.clean.inert import inert_fragment  # lazy: lxml stays off Dagster's load path

    msg = _new_message(sender=sender, to=to, subject=subject)
    who = _one_line(original_sender) or "an unknown sender"
    link = confirm_link if re.match(r"(?i)^https?://[^\s<>\"']+$", confirm_link or "") else None
    if link:
        lead = f"A newsletter sent from {who} asks you to confirm your subscription. Confirm here:\n{link}\n"
    else:
        lead = f"A newsletter sent from {who} asks you to confirm your subscription: look for the link below.\n"
    text_original = original_text or (re.sub(r"<[^>]+>", " ", _body_inner(original_html)) if original_html else "")
    quoted = "\n".join(f"> {line}" for line in text_original.strip().splitlines())
    msg.set_content(
        f"{lead}\n---------- Original message ----------\nFrom: {who}\n"
        f"Subject: {_one_line(original_subject)}\n\n{quoted}\n"
    )
    if link:
        lead_html = (
            f"<p>A newsletter sent from <code>{html.escape(who)}</code> asks you to confirm your subscription.</p>"
            f'<p><a href="{html.escape(link, quote=True)}">Confirm your subscription</a></p>'
            f"<p>{html.escape(link)}</p>"
        )
    else:
        lead_html = (
            f"<p>A newsletter sent from <code>{html.escape(who)}</code> asks you to confirm your subscription: "
            "look for the link below.</p>"
        )
    original = inert_fragment(original_html) if original_html else f"<pre>{html.escape(text_original)}</pre>"
    msg.add_alternative(
        f"<html><body>{lead_html}<hr><p>Original message from <code>{html.escape(who)}</code><br>"
        f"Subject: {html.escape(_one_line(original_subject))}</p><blockquote>{original}</blockquote></body></html>",
        subtype="html",
    )
    return msg


def build_notification_email(*, sender: str, to: str, subject: str, body_text: str) -> EmailMessage:
    """A plain-text message to the user (delivery failed, no Kindle, quota reached, ...)."""
    msg = _new_message(sender=sender, to=to, subject=subject)
    msg.set_content((body_text or _one_line(subject)).strip() + "\n")
    return msg
