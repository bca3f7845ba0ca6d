"""Small readers for what a user sees: the text inside an EPUB."""

from __future__ import annotations

import io
import re
import zipfile

from lxml import etree

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower-case letters and digits only: compares text ignoring punctuation and whitespace."""
    return _NOT_WORD.sub("", text.lower())


def epub_chapter_texts(epub: bytes) -> list[str]:
    """The reading text of each content document, in spine order (no nav, no cover)."""
    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        container = etree.fromstring(zf.read("META-INF/container.xml"))
        opf_path = container.find(".//{*}rootfile").get("full-path")
        base = opf_path.rsplit("/", 1)[0] + "/" if "/" in opf_path else ""
        opf = etree.fromstring(zf.read(opf_path))
        manifest = {
            item.get("id"): item
            for item in opf.iter("{http://www.idpf.org/2007/opf}item")
        }
        texts = []
        for ref in opf.iter("{http://www.idpf.org/2007/opf}itemref"):
            item = manifest[ref.get("idref")]
            props = item.get("properties") or ""
            href = item.get("href")
            if "nav" in props.split() or "cover" in href.lower():
                continue
            doc = etree.fromstring(zf.read(base + href))
            body = doc.find(".//{http://www.w3.org/1999/xhtml}body")
            texts.append(" ".join(body.itertext()) if body is not None else "")
        return texts


def epub_text(epub: bytes) -> str:
    return "\n".join(epub_chapter_texts(epub))
