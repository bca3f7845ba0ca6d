"""EPUB building: what a reader sees in the book, and EPUBCheck's verdict on it."""

from __future__ import annotations

import email
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image, ImageDraw

from inbox_pipeline.core.epub import Book, Chapter, build_epub, identifier_for, language_tag
from inbox_pipeline.core.images import EpubImage

NS = {
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "x": "http://www.w3.org/1999/xhtml",
    "ncx": "http://www.daisy.org/z3986/2005/ncx/",
    "epub": "http://www.idpf.org/2007/ops",
}
WHEN = datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc)


# --- material -------------------------------------------------------------------------


def picture(label: str, size=(480, 320), fmt: str = "JPEG") -> bytes:
    """A real image with some drawing on it (not a blank square)."""
    image = Image.new("RGB", size, (235, 230, 220))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, size[0] - 20, size[1] - 20), outline=(30, 30, 30), width=6)
    draw.text((40, 40), label, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


LEDGER_BODY = """
<p>Good morning. This week the <strong>central bank</strong> held rates, and the market
shrugged; the more interesting story was in <a href="https://ledger.example.com/p/bonds">long bonds</a>.</p>
<figure><img src="images/img001.jpg" alt="Yield curve, November" width="480" height="320"/>
<figcaption>The curve flattened again.</figcaption></figure>
<h2 id="reading">Further reading</h2>
<ul><li>Why savers should care about duration</li><li>A short history of the gilt market</li></ul>
<p>Questions? <a href="mailto:editor@ledger.example.com">Write to the editor</a> or jump back to
<a href="#reading">further reading</a>.</p>
<img src="images/img002.png" alt="Signature"/>
"""


def ledger_chapter(**changes) -> Chapter:
    fields = dict(
        title="The Weekly Ledger: rates on hold",
        body_html=LEDGER_BODY,
        images=(
            EpubImage("images/img001.jpg", "image/jpeg", picture("curve")),
            EpubImage("images/img002.png", "image/png", picture("sig", (200, 80), "PNG")),
        ),
        author="Margaret Whitfield",
        date=WHEN,
        group="The Weekly Ledger",
        source_url="https://ledger.example.com/p/rates-on-hold",
    )
    fields.update(changes)
    return Chapter(**fields)


def newsletter_book(chapter: Chapter | None = None, *, message_id: str = "<ledger-42@mail.ledger.example.com>",
                    language: str = "en") -> Book:
    chapter = chapter or ledger_chapter()
    return Book.for_newsletter(
        message_id=message_id,
        title=chapter.title,
        sender=chapter.author or "Unknown sender",
        date=WHEN,
        language=language,
        chapter=chapter,
    )


def digest_chapters() -> list[Chapter]:
    """Five newsletters from three senders; every one names its image images/img001.jpg."""
    senders = ["Alice's Garden Notes", "Bob on Bikes", "Alice's Garden Notes", "Carol Cooks", "Bob on Bikes"]
    chapters = []
    for n, sender in enumerate(senders):
        chapters.append(
            Chapter(
                title=f"Issue {n + 1} from {sender}",
                body_html=f"<p>Body text number {n + 1}: tomatoes, gears and soup.</p>"
                '<p><img src="images/img001.jpg" alt="picture"/></p>',
                images=(EpubImage("images/img001.jpg", "image/jpeg", picture(f"chapter {n + 1}")),),
                author=sender,
                date=WHEN - timedelta(hours=10 - n),
                group=sender,
                message_id=f"<issue-{n + 1}@example.com>",
            )
        )
    return chapters


@dataclass
class Opened:
    """An EPUB as a reading system sees it."""

    zf: zipfile.ZipFile
    opf: etree._Element
    base: str

    @classmethod
    def of(cls, data: bytes) -> "Opened":
        zf = zipfile.ZipFile(io.BytesIO(data))
        container = etree.fromstring(zf.read("META-INF/container.xml"))
        path = container.find(".//{*}rootfile").get("full-path")
        return cls(zf, etree.fromstring(zf.read(path)), path.rsplit("/", 1)[0] + "/")

    def read(self, href: str) -> bytes:
        return self.zf.read(self.base + href)

    def xml(self, href: str) -> etree._Element:
        return etree.fromstring(self.read(href))

    def meta(self, name: str) -> list[str]:
        return [(e.text or "") for e in self.opf.findall(f"opf:metadata/dc:{name}", NS)]

    def items(self) -> dict[str, etree._Element]:
        return {i.get("id"): i for i in self.opf.findall("opf:manifest/opf:item", NS)}

    def spine_hrefs(self) -> list[str]:
        items = self.items()
        return [items[r.get("idref")].get("href") for r in self.opf.findall("opf:spine/opf:itemref", NS)]

    def chapters(self) -> list[etree._Element]:
        return [self.xml(h) for h in self.spine_hrefs() if h not in {"cover.xhtml", "nav.xhtml"}]

    def text(self, doc: etree._Element) -> str:
        return " ".join(" ".join(doc.find("x:body", NS).itertext()).split())


# --- one newsletter ----------------------------------------------------------------------


def test_newsletter_book_reads_like_the_email() -> None:
    book = Opened.of(build_epub(newsletter_book()))

    assert book.meta("title") == ["The Weekly Ledger: rates on hold"]
    assert book.meta("creator") == ["Margaret Whitfield"]
    assert book.meta("language") == ["en"]
    assert book.meta("date") == ["2026-11-24T07:30:00Z"]
    assert book.meta("identifier") == [identifier_for("ledger-42@mail.ledger.example.com")]
    modified = book.opf.find("opf:metadata/opf:meta[@property='dcterms:modified']", NS)
    assert modified.text == "2026-11-24T07:30:00Z"

    [chapter] = book.chapters()
    header = chapter.find(".//x:div[@class='chapter-header']", NS)
    assert header.find("x:h1", NS).text == "The Weekly Ledger: rates on hold"
    assert header.find("x:p", NS).text == "Margaret Whitfield · 24 Nov 2026"
    text = book.text(chapter)
    assert "the more interesting story was in long bonds" in text
    assert "The curve flattened again." in text
    assert "A short history of the gilt market" in text
    assert chapter.get("lang") == "en"
    # Links a Kindle can follow survive; the in-page one still points at its heading.
    hrefs = [a.get("href") for a in chapter.iter("{%s}a" % NS["x"])]
    assert "https://ledger.example.com/p/bonds" in hrefs
    assert "mailto:editor@ledger.example.com" in hrefs
    assert "#reading" in hrefs and chapter.find(".//x:h2[@id='reading']", NS) is not None
    assert "https://ledger.example.com/p/rates-on-hold" in hrefs  # the "Original" line
    # The e-ink stylesheet is linked and shipped.
    link = chapter.find("x:head/x:link", NS)
    assert link.get("href") == "epub.css"
    assert b"max-width: 100%" in book.read("epub.css")


def test_newsletter_images_are_embedded_and_referenced() -> None:
    book = Opened.of(build_epub(newsletter_book()))
    [chapter] = book.chapters()
    sources = [img.get("src") for img in chapter.iter("{%s}img" % NS["x"])]
    assert len(sources) == 2
    items = {i.get("href"): i.get("media-type") for i in book.items().values()}
    for src in sources:
        assert src in items
        data = book.read(src)
        assert Image.open(io.BytesIO(data)).size in {(480, 320), (200, 80)}
    assert sorted(items[s] for s in sources) == ["image/jpeg", "image/png"]
    first = chapter.find(".//x:img", NS)
    assert first.get("alt") == "Yield curve, November" and first.get("width") == "480"


def test_cover_is_generated_and_declared() -> None:
    book = Opened.of(build_epub(newsletter_book()))
    items = book.items()
    cover = [i for i in items.values() if "cover-image" in (i.get("properties") or "").split()]
    assert len(cover) == 1 and cover[0].get("media-type") == "image/jpeg"
    image = Image.open(io.BytesIO(book.read(cover[0].get("href"))))
    assert image.height > image.width >= 600
    # EPUB 2 readers and Kindle's own indexer look for <meta name="cover">.
    meta = book.opf.find("opf:metadata/opf:meta[@name='cover']", NS)
    assert meta.get("content") == cover[0].get("id")
    page = book.xml("cover.xhtml")
    assert page.find(".//x:img", NS).get("src") == cover[0].get("href")
    assert book.spine_hrefs()[0] == "cover.xhtml"


def test_a_safe_mode_book_has_ascii_metadata_no_cover_and_minimal_css() -> None:
    from dataclasses import replace

    from inbox_pipeline.core.convert import plain_metadata

    book = replace(newsletter_book(), title="Caf\u00e9 \u2014 Ledger", creator="Z\u00fcrich Desk", description="x")
    opened = Opened.of(build_epub(plain_metadata(book)))
    assert not any("cover-image" in (i.get("properties") or "").split() for i in opened.items().values())
    assert opened.opf.find("opf:metadata/opf:meta[@name='cover']", NS) is None
    assert "cover.xhtml" not in opened.spine_hrefs()
    assert opened.opf.findtext("opf:metadata/dc:title", namespaces=NS) == "Cafe Ledger"
    assert opened.opf.findtext("opf:metadata/dc:creator", namespaces=NS) == "Zurich Desk"
    assert opened.opf.find("opf:metadata/dc:description", NS) is None
    assert opened.read("epub.css") == b"body { margin: 0; }\n"


def test_container_layout_and_file_names_suit_kindle() -> None:
    data = build_epub(newsletter_book())
    zf = zipfile.ZipFile(io.BytesIO(data))
    first = zf.infolist()[0]
    assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
    assert zf.read("mimetype") == b"application/epub+zip"
    for name in zf.namelist():
        assert name.isascii() and all(len(part) <= 32 for part in name.split("/")), name
        if name.endswith((".xhtml", ".opf", ".ncx", ".xml")):
            assert zf.read(name).startswith(b'<?xml version="1.0" encoding="utf-8"?>'), name
            etree.fromstring(zf.read(name))  # well-formed
        if name.endswith(".xhtml"):
            assert b"<script" not in zf.read(name)
    book = Opened.of(data)
    nav = [i for i in book.items().values() if "nav" in (i.get("properties") or "").split()]
    assert len(nav) == 1
    assert any(i.get("media-type") == "application/x-dtbncx+xml" for i in book.items().values())
    toc = book.xml(nav[0].get("href"))
    assert [a.text for a in toc.findall(".//x:nav[@epub:type='toc']//x:a", NS)] == ["The Weekly Ledger: rates on hold"]


def test_same_book_same_bytes_and_stable_identifier() -> None:
    first = build_epub(newsletter_book())
    assert build_epub(newsletter_book()) == first
    retitled = newsletter_book(ledger_chapter(title="Corrected subject"))
    assert Opened.of(build_epub(retitled)).meta("identifier") == Opened.of(first).meta("identifier")
    other = newsletter_book(message_id="<another@mail.ledger.example.com>")
    assert Opened.of(build_epub(other)).meta("identifier") != Opened.of(first).meta("identifier")
    assert identifier_for("<a@b>") == identifier_for("a@b")


def test_language_tags_are_made_valid() -> None:
    assert language_tag("en_us") == "en-US"
    assert language_tag("zh-hant-tw") == "zh-Hant-TW"
    assert language_tag("English!") == "en"
    assert language_tag(None) == "en"
    assert Opened.of(build_epub(newsletter_book(language="de_DE"))).meta("language") == ["de-DE"]
    assert Opened.of(build_epub(newsletter_book(language="not a language"))).meta("language") == ["en"]
    book = Opened.of(build_epub(newsletter_book(ledger_chapter(language="fr"))))
    assert book.chapters()[0].get("lang") == "fr"


def test_leading_heading_that_repeats_the_title_is_not_shown_twice() -> None:
    chapter = ledger_chapter(body_html="<h1>The Weekly Ledger: rates  on hold</h1><p>Body.</p>", images=())
    [doc] = Opened.of(build_epub(newsletter_book(chapter))).chapters()
    assert [h.text for h in doc.iter("{%s}h1" % NS["x"])] == ["The Weekly Ledger: rates on hold"]


# --- digests --------------------------------------------------------------------------------


def test_digest_groups_chapters_by_sender_in_nav_and_ncx() -> None:
    book = Book.for_digest("alice@example.com", "daily", datetime(2026, 11, 24, 8, tzinfo=timezone.utc), digest_chapters())
    assert book.title == "Daily digest — 24 Nov 2026"
    opened = Opened.of(build_epub(book))
    assert opened.meta("title") == ["Daily digest — 24 Nov 2026"]

    nav = opened.xml("nav.xhtml")
    toc = nav.find(".//x:nav[@epub:type='toc']/x:ol", NS)
    groups = [(li.find("x:a", NS).text, [a.text for a in li.findall("x:ol/x:li/x:a", NS)]) for li in toc.findall("x:li", NS)]
    assert groups == [
        ("Alice's Garden Notes", ["Issue 1 from Alice's Garden Notes", "Issue 3 from Alice's Garden Notes"]),
        ("Bob on Bikes", ["Issue 2 from Bob on Bikes", "Issue 5 from Bob on Bikes"]),
        ("Carol Cooks", ["Issue 4 from Carol Cooks"]),
    ]
    ncx = opened.xml("toc.ncx")
    points = ncx.findall("ncx:navMap/ncx:navPoint", NS)
    assert [p.find("ncx:navLabel/ncx:text", NS).text for p in points] == ["Alice's Garden Notes", "Bob on Bikes", "Carol Cooks"]
    assert [c.find("ncx:navLabel/ncx:text", NS).text for c in points[1].findall("ncx:navPoint", NS)] == [
        "Issue 2 from Bob on Bikes",
        "Issue 5 from Bob on Bikes",
    ]
    # Reading order follows the contents page: a sender's issues sit together.
    texts = [opened.text(doc) for doc in opened.chapters()]
    assert [t.split(" · ")[0].split(" from ")[0] for t in texts] == ["Issue 1", "Issue 3", "Issue 2", "Issue 5", "Issue 4"]
    assert "nav.xhtml" in opened.spine_hrefs()  # a digest shows its contents page


def test_digest_images_do_not_collide() -> None:
    opened = Opened.of(build_epub(Book.for_digest("alice", "Daily", WHEN, digest_chapters())))
    seen = []
    for doc in opened.chapters():
        [img] = list(doc.iter("{%s}img" % NS["x"]))
        seen.append(img.get("src"))
    assert len(set(seen)) == 5
    # Each chapter shows its own picture, not the first chapter's.
    assert len({opened.read(src) for src in seen}) == 5


def test_digest_identifier_depends_on_its_newsletters_not_their_order() -> None:
    chapters = digest_chapters()
    a = Book.for_digest("alice", "Daily", WHEN, chapters)
    b = Book.for_digest("alice", "Daily", WHEN, list(reversed(chapters)))
    c = Book.for_digest("alice", "Daily", WHEN, chapters[:4])
    d = Book.for_digest("bob", "Daily", WHEN, chapters)
    assert a.identifier == b.identifier
    assert len({a.identifier, c.identifier, d.identifier}) == 3
    assert a.cover_subtitle.startswith("5 newsletters: Alice's Garden Notes, Bob on Bikes, Carol Cooks")


# --- adversarial bodies -----------------------------------------------------------------------

ADVERSARIAL = {
    "nested_paragraphs": "<p>outer <p>inner</p> tail</p><p><div>block in p</div></p>",
    "legacy_tables": (
        '<table width="100%" align="center" bgcolor="#ffffff" border="0" cellpadding="4" summary="x">'
        '<tr><td width="50%" valign="top" nowrap>Ticker</td><td colspan="two">Price</td></tr>junk'
        '<tr><th><h3>Heading in a header cell</h3></th><td rowspan="2">12.30</td></tr></table>'
        "<table></table><td>orphan cell</td><tr><td>orphan row</td></tr>"
    ),
    "links": (
        '<p><a href="javascript:alert(1)">js link</a> <a href="#nowhere">dangling</a> '
        '<a href="relative/page.html">relative</a> <a href="mailto:me@example.com">mail me</a> '
        '<a href="https://example.com/a path/ü?q=1 2#frag#2">spaces</a> <a href="https://bad host/">bad host</a> '
        '<a name="anchor1"></a><a href="#anchor1">to anchor</a> <a href="https://x.example"><a href="https://y.example">nested</a></a></p>'
    ),
    "unicode": "<p>Ünïcödé — “quotes” 中文 العربية 🎉 \x0b\x0c\x00 control characters, &nbsp; &amp; entities &copy;</p>"
    '<p title="&#1;x">references&#11;&#0;&#x1F;&#xFFFE; &#150; windows-1252</p>',
    "blocks_in_inline": (
        "<span>inline <div>block</div></span><h2>heading <ul><li>list in heading</li></ul></h2>"
        "<em><p>para in em</p></em><a href='https://example.com'><div>block link</div></a>"
    ),
    "lists": "<ul>stray text<li>one</li><p>para in ul</p><ul><li>nested</li></ul></ul><li>orphan</li>"
    "<dl><dd>dd first</dd></dl><dl><dt>term</dt><dd>def</dd></dl><ol start='3' type='x'><li value='7'>seven</li></ol>",
    "forbidden": (
        "<script>alert(1)</script><style>p{color:red}</style><form><input name=q><button>Go</button></form>"
        "<iframe src='https://example.com'></iframe><svg><circle r='4'/></svg><video src='v.mp4'></video>"
        '<p style="color:red" onclick="evil()" data-x="1" id="1 bad id">styled</p><p id="dup">a</p><p id="dup">b</p>'
        "<o:p>office markup</o:p><font color=red>font</font><center>centered</center><marquee>moving</marquee>"
    ),
    "images": (
        '<img src="https://tracker.example.com/open.gif" width="1" height="1">'
        '<img src="https://cdn.example.com/chart.png" alt="Chart of sales">'
        '<img src="images/img001.jpg" width="100%" height="auto">'
        '<figure><figcaption>first</figcaption><img src="images/img001.jpg"><figcaption>second</figcaption></figure>'
    ),
    "self_closing_xhtml": '<div/>after empty div<span/>after empty span<a id="top"/><p>para</p><td/>',
    "empty": "",
    "whitespace": "   \n  ",
    "deep_nesting": "<div>" * 400 + "<span>" * 200 + "deep text" + "</span>" * 200 + "</div>" * 400,
    "content_model": (
        "<table><caption>cap <table><tr><td>table in caption</td></tr></table></caption><tr><td>x</td></tr></table>"
        "<p><a href='https://a.example'>x <span><a href='https://b.example'>link in link</a></span></a></p>"
        "<table><tr><th><section><h2>section in th</h2></section></th></tr></table>"
        "<p>a<wbr>content in wbr</wbr> <bdo>bdo without dir</bdo> <dfn>a<dfn>dfn in dfn</dfn></dfn></p>"
        "<a href='https://x.example'><button>b</button><details><summary>s</summary>details in link</details></a>"
        "<pre>a<div>div in pre</div>c</pre><ul><hr><li>hr in ul</li></ul><dl><div><dt>a</dt><dd>b</dd></div></dl>"
    ),
    "full_document": "<html><head><title>t</title><style>x{}</style></head><body bgcolor=white><p>in body</p></body></html>",
}


def random_body(seed: int) -> str:
    """Random tag soup: every element, attributes valid and not, unclosed and self-closed tags."""
    import random

    rng = random.Random(seed)
    tags = (
        "a abbr b bdo br cite code del dfn em i img ins kbd mark q s small span strong sub sup u wbr div p h1 h2 h3 "
        "ul ol li dl dt dd table caption thead tbody tfoot tr td th blockquote pre figure figcaption hr section "
        "header footer nav address font center o:p time ruby rt label form button input iframe script style "
        "picture source video svg colgroup col details summary menu"
    ).split()
    attrs = [
        'href="https://example.com/a b"', 'href="#t1"', 'href="javascript:x()"', 'href="tel:123"', 'id="t1"',
        'id="1 x"', 'name="t2"', 'width="100%"', 'width="20"', 'colspan="0"', 'rowspan="3"', 'scope="bad"',
        'start="2"', 'value="x"', 'lang="not a tag"', 'lang="fr"', 'dir="sideways"', 'src="images/img001.jpg"',
        'src="https://example.com/x.png"', 'alt="alt"', 'style="color:red"', 'onclick="x()"', 'epub:type="x"',
    ]  # fmt: skip

    def node(depth: int) -> str:
        if depth > 7 or rng.random() < 0.25:
            return rng.choice(["text ", "more &amp; words ", "&nbsp;", "", "“quoted” ", "&#150;"])
        tag = rng.choice(tags)
        attributes = " ".join(rng.sample(attrs, rng.randint(0, 3)))
        inner = "".join(node(depth + 1) for _ in range(rng.randint(0, 4)))
        roll = rng.random()
        if roll < 0.1:
            return f"<{tag} {attributes}/>"
        if roll < 0.2:
            return f"<{tag} {attributes}>{inner}"
        return f"<{tag} {attributes}>{inner}</{tag}>"

    return "".join(node(0) for _ in range(12))


def random_book(seed: int) -> Book:
    chapter = Chapter(
        title=f"Random {seed}",
        body_html=random_body(seed),
        images=(EpubImage("images/img001.jpg", "image/jpeg", picture(str(seed))),),
    )
    return newsletter_book(chapter, message_id=f"<random-{seed}@test>")


def adversarial_book(name: str) -> Book:
    chapter = Chapter(
        title=f"Adversarial: {name}",
        body_html=ADVERSARIAL[name],
        images=(EpubImage("images/img001.jpg", "image/jpeg", picture(name)),),
        author="Tester",
        date=WHEN,
    )
    return newsletter_book(chapter, message_id=f"<{name}@test>")


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_body_builds_a_well_formed_book(name: str) -> None:
    opened = Opened.of(build_epub(adversarial_book(name)))
    [doc] = opened.chapters()
    text = opened.text(doc)
    assert text.startswith(f"Adversarial: {name} Tester · 24 Nov 2026")
    for element in doc.iter():
        assert not any(attr.startswith("on") or attr in {"style", "bgcolor", "align", "width"} and element.tag != "{%s}img" % NS["x"]
                       for attr in element.attrib), (element.tag, element.attrib)


def test_sanitising_keeps_text_and_drops_what_epubs_may_not_hold() -> None:
    def chapter_of(name: str) -> tuple[etree._Element, str]:
        opened = Opened.of(build_epub(adversarial_book(name)))
        [doc] = opened.chapters()
        return doc, opened.text(doc)

    doc, text = chapter_of("links")
    hrefs = {a.text: a.get("href") for a in doc.iter("{%s}a" % NS["x"])}
    assert "js link" in text and "js link" not in hrefs
    assert "dangling" in text and "dangling" not in hrefs
    assert "relative" in text and "relative" not in hrefs
    assert hrefs["mail me"] == "mailto:me@example.com"
    assert hrefs["spaces"] == "https://example.com/a%20path/%C3%BC?q=1%202#frag%232"
    assert "bad host" not in hrefs
    assert hrefs["to anchor"] == "#anchor1" and doc.find(".//x:a[@id='anchor1']", NS) is not None

    doc, text = chapter_of("forbidden")
    assert "alert" not in text and "color:red" not in text and "Go" not in text.split()
    assert doc.find(".//x:script", NS) is None and doc.find(".//x:iframe", NS) is None
    for word in ("styled", "office markup", "font", "centered", "moving"):
        assert word in text
    assert [p.get("id") for p in doc.iter("{%s}p" % NS["x"]) if p.get("id")] == ["x-1-bad-id", "dup"]

    doc, text = chapter_of("images")
    sources = [img.get("src") for img in doc.iter("{%s}img" % NS["x"])]
    assert sources == ["images/c001-001.jpg", "images/c001-001.jpg"]  # remote images cannot be in an EPUB
    assert "[Chart of sales]" in text
    assert doc.find(".//x:img", NS).get("width") is None  # "100%" is not a valid width
    assert len(doc.findall(".//x:figcaption", NS)) == 1

    doc, text = chapter_of("self_closing_xhtml")
    assert doc.find(".//x:div[@class='chapter-body']/x:p", NS).text == "para"
    assert "after empty div after empty span" in " ".join(text.split())

    _, text = chapter_of("unicode")
    assert "Ünïcödé — “quotes” 中文 العربية 🎉" in text
    assert "control characters, & entities ©" in text  # \x0b \x0c \x00 are not XML
    assert "references – windows-1252" in text

    _, text = chapter_of("deep_nesting")
    assert "deep text" in text


def test_five_thousand_paragraphs() -> None:
    body = "".join(f"<p>Paragraph {i} of a very long newsletter.</p>" for i in range(5000))
    chapter = Chapter(title="Long read", body_html=body, author="Tester", date=WHEN)
    data = build_epub(newsletter_book(chapter, message_id="<long@test>"))  # its time: benchmarks/bounds.py
    [doc] = Opened.of(data).chapters()
    paragraphs = doc.findall(".//x:div[@class='chapter-body']/x:p", NS)
    assert len(paragraphs) == 5000 and paragraphs[-1].text == "Paragraph 4999 of a very long newsletter."


# --- EPUBCheck ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def epubcheck_reports(java_available: bool) -> dict:
    """Every book of this module checked in one JVM."""
    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    long_body = "".join(f"<p>Paragraph {i}.</p>" for i in range(5000))
    books = {
        "newsletter": build_epub(newsletter_book()),
        "digest": build_epub(Book.for_digest("alice", "Weekly", WHEN, digest_chapters())),
        **{f"random-{seed}": build_epub(random_book(seed)) for seed in range(12)},
        "5000-paragraphs": build_epub(newsletter_book(Chapter("Long", long_body), message_id="<long@test>")),
        "no-chapters": build_epub(Book("urn:uuid:0", "Empty", "Nobody", "en", WHEN, ())),
        **{f"adversarial-{name}": build_epub(adversarial_book(name)) for name in ADVERSARIAL},
    }
    # A book with a real defect: EPUBCheck must notice it (the wrapper reports errors).
    good = zipfile.ZipFile(io.BytesIO(books["newsletter"]))
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as out:
        for info in good.infolist():
            data = good.read(info)
            if info.filename.endswith("c001.xhtml"):
                data = data.replace(b'<div class="chapter-body">', b'<div class="chapter-body"><p><ul><li>x</li></ul></p>')
            if not info.filename.endswith(".png"):
                out.writestr(info, data)
    books["broken"] = broken.getvalue()
    reports = run_epubcheck_many(list(books.values()), names=list(books))
    return dict(zip(books, reports.values()))


def test_every_built_book_passes_epubcheck(epubcheck_reports: dict) -> None:
    failures = {name: r.summary() for name, r in epubcheck_reports.items() if name != "broken" and not r.ok}
    assert not failures, "\n".join(failures.values())
    assert len(epubcheck_reports) == 5 + 12 + len(ADVERSARIAL)


def test_epubcheck_reports_real_defects(epubcheck_reports: dict) -> None:
    report = epubcheck_reports["broken"]
    assert not report.ok
    joined = "\n".join(report.errors + report.fatals)
    assert "RSC-001" in joined or "RSC-007" in joined  # the PNG listed in the manifest is gone
    assert "RSC-005" in joined  # a list inside a paragraph


def test_run_epubcheck_on_one_book(java_available: bool, tmp_path: Path) -> None:
    from inbox_pipeline.core.epubcheck import run_epubcheck

    path = tmp_path / "ledger.epub"
    path.write_bytes(build_epub(newsletter_book()))
    report = run_epubcheck(path)
    assert report.ok and report.fatals == [] and report.errors == [], report.summary()
    assert report.name == "ledger.epub"


def test_epubcheck_without_a_jdk_checks_each_book_in_its_own_jvm(
    java_available: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI images with only a JRE (no javac) still get real reports, one JVM per book."""
    import os
    import shutil

    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    jre_only = tmp_path / "bin"
    jre_only.mkdir()
    (jre_only / "java").symlink_to(os.path.realpath(shutil.which("java")))
    monkeypatch.setenv("PATH", str(jre_only))
    assert shutil.which("javac") is None
    bad = build_epub(newsletter_book()).replace(b"mimetype", b"mimetypf", 1)  # breaks the container
    [report] = run_epubcheck_many([bad], names=["bad"]).values()
    assert not report.ok
    assert any("PKG-006" in m for m in report.errors + report.fatals), report.summary()  # mimetype missing


def test_raw_corpus_html_still_passes_epubcheck(java_available: bool, corpus_dir: Path) -> None:
    """Even uncleaned email HTML (layout tables, fonts, trackers) becomes a valid book."""
    from inbox_pipeline.core.epubcheck import run_epubcheck_many

    books: dict[str, bytes] = {}
    for path in sorted(corpus_dir.iterdir()):
        if path.suffix == ".html":
            html = path.read_text("utf-8", "replace")
        elif path.suffix == ".eml":
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            part = message.get_body(("html",))
            if part is None:
                continue
            try:
                html = part.get_content()
            except (LookupError, ValueError):
                html = (part.get_payload(decode=True) or b"").decode("latin-1")
        else:
            continue
        chapter = Chapter(title=path.stem, body_html=html, author="Corpus", date=WHEN)
        books[path.name] = build_epub(newsletter_book(chapter, message_id=f"<{path.name}@corpus>"))
    assert len(books) >= 30
    reports = run_epubcheck_many(list(books.values()), names=list(books))
    failures = [r.summary() for r in reports.values() if not r.ok]
    assert not failures, "\n".join(failures)
