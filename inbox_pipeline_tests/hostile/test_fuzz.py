"""Property-based fuzzing of parse, clean, EPUB and the admin CLI (hypothesis).

The contracts: ``parse_email`` raises nothing but ``EmailParseError``;
``clean_html`` always returns well-formed XHTML without active content;
``build_epub`` builds any book, and a sample of generated books passes
EPUBCheck (one JVM for all of them); no admin command prints a traceback.
The default profile is short (conftest.py); ``HYPOTHESIS_PROFILE=deep`` runs long.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from lxml import etree

from inbox_pipeline.core.message import EmailParseError
from inbox_pipeline_tests.hostile.conftest import run_cli

# --- generated material ------------------------------------------------------------------------

HEADER_NAMES = ["From", "To", "Cc", "Subject", "Date", "Message-ID", "Content-Type", "Content-Transfer-Encoding",
                "Received", "X-Original-To", "Delivered-To", "List-Unsubscribe", "Reply-To", "X-SES-Spam-Verdict"]
CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "x-mac-roman", "shift_jis", "utf-7", "utf-16", "idna",
            "unicode-escape", "x-unknown", ""]
TAGS = ["p", "div", "span", "a", "img", "table", "tr", "td", "ul", "li", "h1", "h2", "blockquote", "pre", "code",
        "script", "style", "form", "input", "iframe", "svg", "math", "embed", "source", "video", "br", "hr", "b",
        "figure", "figcaption", "picture", "center", "font", "o:p", "body", "html", "head", "title", "meta"]
ATTRIBUTES = ["href", "src", "style", "class", "id", "onclick", "width", "height", "alt", "hidden", "xmlns", "lang"]
VALUES = ["javascript:alert(1)", "https://example.org/x", "cid:a@b", "data:image/png;base64,AAAA", "display:none",
          "position:fixed", "1", "0", "", "&amp;", "&#0;", "\x00", "é", "\u202e", "<", "\"", "x" * 300]
SCALAR_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=80)

header_value = st.one_of(SCALAR_TEXT, st.sampled_from(VALUES), st.sampled_from(CHARSETS).map(
    lambda c: f'text/html; charset="{c}"'), st.just('multipart/alternative; boundary="b"'))


@st.composite
def mime_bytes(draw) -> bytes:
    """Loosely RFC 5322: generated headers, an optional multipart body, arbitrary bytes inside."""
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.one_of(st.sampled_from(HEADER_NAMES), st.from_regex(r"[A-Za-z-]{1,20}", fullmatch=True)))
        lines.append(f"{name}: {draw(header_value)}".encode("utf-8", "surrogateescape"))
    body = draw(st.one_of(st.binary(max_size=400), SCALAR_TEXT.map(lambda t: t.encode()), st.just(b"")))
    if draw(st.booleans()):
        parts = draw(st.lists(st.tuples(st.sampled_from(["text/html", "text/plain", "image/png", "message/rfc822"]),
                                        st.sampled_from(CHARSETS), st.binary(max_size=200)), max_size=4))
        body = b"".join(
            f"--b\r\nContent-Type: {t}; charset={c}\r\n\r\n".encode() + data + b"\r\n" for t, c, data in parts
        ) + draw(st.sampled_from([b"--b--\r\n", b""]))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@st.composite
def tag_soup(draw) -> str:
    """HTML as senders and attackers write it: unbalanced, odd attributes, entities, junk."""
    pieces = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.integers(0, 3))
        tag = draw(st.sampled_from(TAGS))
        if kind == 0:
            attrs = "".join(
                f' {draw(st.sampled_from(ATTRIBUTES))}="{draw(st.sampled_from(VALUES))}"'
                for _ in range(draw(st.integers(0, 3)))
            )
            pieces.append(f"<{tag}{attrs}>")
        elif kind == 1:
            pieces.append(f"</{tag}>")
        else:
            pieces.append(draw(SCALAR_TEXT))
    return "".join(pieces)


# --- parse -------------------------------------------------------------------------------------


@given(st.binary(max_size=2000))
@example(b"\x89PNG\r\n\x1a\n")
@example(b"{}")
@example(b"<")
@example(b"From: a\r\n\r\n" + b"\xff" * 10)
def test_parse_raises_only_email_parse_error_on_any_bytes(raw: bytes) -> None:
    from inbox_pipeline.core.parse import parse_email

    try:
        email = parse_email(raw)
    except EmailParseError as exc:
        assert str(exc).strip()
    else:
        assert isinstance(email.subject, str) and email.message_id


@given(mime_bytes())
def test_parse_raises_only_email_parse_error_on_mime_shaped_input(raw: bytes) -> None:
    from inbox_pipeline.core.parse import parse_email

    try:
        email = parse_email(raw)
    except EmailParseError:
        return
    assert all(r == r.lower() for r in email.recipients)


@given(st.dictionaries(st.sampled_from(["From", "To", "Subject", "HtmlBody", "TextBody", "MessageID", "Headers",
                                        "sender", "recipient", "body-html", "html", "envelope", "headers"]),
                       st.one_of(SCALAR_TEXT, st.integers(), st.none(), st.lists(SCALAR_TEXT, max_size=3),
                                 st.dictionaries(SCALAR_TEXT, SCALAR_TEXT, max_size=3)), max_size=8))
def test_parse_raises_only_email_parse_error_on_webhook_json(payload: dict) -> None:
    import json

    from inbox_pipeline.core.parse import parse_email

    try:
        parse_email(json.dumps(payload).encode())
    except EmailParseError:
        pass


# --- clean -----------------------------------------------------------------------------------------

ACTIVE = ("script", "style", "form", "input", "iframe", "embed", "object")


@given(tag_soup())
@example("<p>one</p><embed src=x><p>two</p>")
def test_clean_gives_well_formed_xhtml_without_active_content(html: str) -> None:
    from inbox_pipeline.core.clean import clean_html

    article = clean_html(html)
    root = etree.fromstring(f'<div xmlns="http://www.w3.org/1999/xhtml">{article.html}</div>'.encode())
    tags = {etree.QName(el).localname for el in root.iter() if isinstance(el.tag, str)}
    assert not tags & set(ACTIVE), tags & set(ACTIVE)
    for el in root.iter():
        if isinstance(el.tag, str):
            assert not [a for a in el.attrib if a.lower().startswith("on")]
            assert not (el.get("href") or "").lower().strip().startswith("javascript:")
    assert article.words >= 0


# --- EPUB ----------------------------------------------------------------------------------------


@st.composite
def books(draw):
    from inbox_pipeline.core.clean import clean_html
    from inbox_pipeline.core.epub import Book, Chapter

    chapters = tuple(
        Chapter(
            title=draw(SCALAR_TEXT),
            body_html=clean_html(draw(tag_soup())).html,
            author=draw(st.none() | SCALAR_TEXT),
            group=draw(st.none() | SCALAR_TEXT),
            language=draw(st.none() | st.sampled_from(["en", "de-AT", "zz", "x", "", "en_US", "fr-"])),
            message_id=draw(st.none() | SCALAR_TEXT),
        )
        for _ in range(draw(st.integers(1, 3)))
    )
    return Book(
        identifier=draw(SCALAR_TEXT),
        title=draw(SCALAR_TEXT),
        creator=draw(SCALAR_TEXT),
        language=draw(st.sampled_from(["en", "de", "zz-ZZ", "", "english", "pt-BR"])),
        date=draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                               timezones=st.just(timezone.utc))),
        chapters=chapters,
        description=draw(st.none() | SCALAR_TEXT),
        cover_subtitle=draw(st.none() | SCALAR_TEXT),
    )


@pytest.mark.java
def test_generated_books_build_and_pass_epubcheck(java_available) -> None:
    from hypothesis import settings

    from inbox_pipeline.core.epub import build_epub
    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    sample: list[bytes] = []

    @settings(max_examples=min(settings().max_examples, 30))
    @given(books())
    def build(book) -> None:
        epub = build_epub(book)
        assert epub[:2] == b"PK"
        sample.append(epub)

    build()
    reports = run_epubcheck_many(sample)  # one JVM for the whole sample
    bad = [r.summary() for r in reports.values() if not r.ok]
    assert not bad, "\n".join(bad[:5])


@pytest.mark.java
def test_generated_emails_convert_to_valid_books(java_available) -> None:
    from hypothesis import settings

    from inbox_pipeline.core.convert import ConvertOptions, convert_email
    from inbox_pipeline.core.epubcheck import run_epubcheck_many
    from inbox_pipeline_tests.hostile.inputs import html_email

    sample: list[bytes] = []

    @settings(max_examples=min(settings().max_examples, 30))
    @given(tag_soup(), SCALAR_TEXT, SCALAR_TEXT)
    def convert(html: str, subject: str, name: str) -> None:
        raw = html_email(html, subject=subject, sender=f'"{name}" <a@b.example>', msgid=None) if subject.isprintable() and name.isprintable() else html_email(html)
        sample.append(convert_email(raw, options=ConvertOptions(fetch_images=False)).epub)

    convert()
    reports = run_epubcheck_many(sample)
    bad = [r.summary() for r in reports.values() if not r.ok]
    assert not bad, "\n".join(bad[:5])


# --- admin CLI ------------------------------------------------------------------------------------------



def _not_a_known_bug(value: str) -> bool:
    # Huge or non-ASCII digits as a user id or number: once tracebacks, now one-line refusals (test below).
    stripped = value.strip()
    return "\x00" not in value and not (stripped.isdigit() and (len(stripped) > 18 or not stripped.isascii()))


ARG = st.one_of(SCALAR_TEXT.filter(_not_a_known_bug), st.sampled_from(["", "-", "--", "@", "daily@", "weekly@Mon@"]))


@st.composite
def admin_argv(draw) -> list[str]:
    a, b = draw(ARG), draw(ARG)
    return draw(st.sampled_from([
        ["user", "add", a],
        ["user", "add", "fuzz@example.org", "--tz", a],
        ["user", "add", "fuzz@example.org", "--kindle", a],
        ["user", "set", a, "--plan", b],
        ["address", "add", "fuzz@example.org", "--label", a],
        ["address", "disable", a],
        ["kindle", "set", "fuzz@example.org", a, "--name", b, "--no-verify"],
        ["plan", "set", a, "--unlimited"],
    ]))


def _no_traceback(argv: list[str]) -> None:
    code, _out, err = run_cli(argv)
    assert "Traceback" not in err, f"{argv!r}:\n{err}"
    assert code in (0, 1, 2), (argv, code)


@given(admin_argv())
def test_admin_commands_never_print_a_traceback(admin_env, argv: list[str]) -> None:
    run_cli(["user", "add", "fuzz@example.org"])  # present for the commands naming it; a repeat is refused
    _no_traceback(argv)


@given(st.sampled_from([["user", "add", "x@example.org", "--delivery", f"daily@{d}"] for d in "²٣߃"]
                       + [["plan", "set", "p", "--monthly-limit", "9" * n] for n in (20, 40)]
                       + [["status", "--hours", "9" * n] for n in (12, 40)]
                       + [["user", "set", ref, "--plan", "p"] for ref in ("9223372036854775808", "²")]))
@example(["user", "set", "9223372036854775808", "--plan", ""])  # found by the deep profile
@example(["user", "add", "x@example.org", "--delivery", "daily@²"])
def test_admin_numbers_never_print_a_traceback(admin_env, argv: list[str]) -> None:
    _no_traceback(argv)
