"""process_images: make every <img> of an XHTML fragment point at an embedded JPEG/PNG.

Sources are ``cid:`` parts of the email, ``data:`` URIs and http(s) URLs.
Each distinct source is handled once, in a thread pool (network waits
overlap), and its outcome is applied to every <img> that uses it. One bad
image only ever drops that image.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import html as html_lib
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_to_bytes, urlsplit
from xml.sax.saxutils import escape as xml_escape

import lxml.html
from lxml import etree

from inbox_pipeline.core.images.cache import ImageCache
from inbox_pipeline.core.images.convert import ConvertedImage, ImageRejected, convert_image
from inbox_pipeline.core.images.fetch import FetchedImage, FetchFailure, HttpImageFetcher, ImageFetcher, format_bytes
from inbox_pipeline.core.images.policy import ImagePolicy
from inbox_pipeline.core.images.trackers import is_tracker_element, is_tracker_url
from inbox_pipeline.core.message import InlinePart

EPUB_NS = "http://www.idpf.org/2007/ops"
# Attributes that point at other files or describe the original, not the embedded, image.
_STRIP_ATTRIBUTES = ("srcset", "sizes", "loading", "decoding", "fetchpriority", "crossorigin",
                     "referrerpolicy", "width", "height", "longdesc", "usemap", "ismap", "lowsrc")
# Wrappers left with nothing once their image is gone.
_EMPTY_WRAPPERS = {"a", "figure", "picture", "p", "span", "div", "center", "font"}
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}


@dataclass(frozen=True)
class EpubImage:
    file_name: str  # e.g. "images/img001.jpg", relative to the chapter
    media_type: str  # "image/jpeg" or "image/png"
    data: bytes


@dataclass(frozen=True)
class ImagesResult:
    html: str  # the fragment with src rewritten and dropped images removed
    images: list[EpubImage] = field(default_factory=list)
    kept: int = 0  # <img> elements left in the html
    dropped: int = 0  # <img> elements removed
    reasons: list[str] = field(default_factory=list)  # one per dropped source: "<where>: <why>"


@dataclass
class _Source:
    kind: str  # "cid", "data" or "remote"
    ref: str  # content id, data URI or absolute URL
    label: str  # how reasons name it (no query strings: they carry subscriber tokens)
    elements: list[etree._Element] = field(default_factory=list)
    image: ConvertedImage | None = None
    reason: str | None = None
    position: int = 0  # of its first <img>


class _DownloadBudget:
    """Bytes downloaded by one call, shared by its workers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def exhausted(self) -> bool:
        with self._lock:
            return self.used >= self.limit

    def take(self, n: int) -> bool:
        with self._lock:
            self.used += n
            return self.used <= self.limit


def process_images(
    html: str,
    inline_parts: Mapping[str, InlinePart],
    policy: ImagePolicy | None = None,
    *,
    fetcher: ImageFetcher | None = None,
) -> ImagesResult:
    """Embed, convert or drop every <img> in ``html`` (an XHTML body fragment)."""
    policy = policy or ImagePolicy()
    root = _parse_fragment(html)
    _unwrap_pictures(root)

    dropped_elements: list[etree._Element] = []
    reasons: list[tuple[int, str]] = []  # (document position, reason): reported in reading order
    sources: dict[str, _Source] = {}
    for position, img in enumerate([el for el in root.iter() if _local(el) == "img"]):
        src = (img.get("src") or "").strip()
        if not src and img.get("srcset"):
            src = img.get("srcset", "").split()[0].rstrip(",")  # the first candidate
        attributes = {k.lower(): v for k, v in img.attrib.items() if isinstance(k, str)}
        for name in _STRIP_ATTRIBUTES:
            img.attrib.pop(name, None)
        if img.get("alt") is None:
            img.set("alt", "")
        if not src:
            dropped_elements.append(img)
            reasons.append((position, "<img> without a src: dropped"))
            continue
        source = _source_for(src)
        if source.reason is None and is_tracker_element(attributes):
            dropped_elements.append(img)
            reasons.append((position, f"{source.label}: tracking pixel or spacer (declared size)"))
            continue
        existing = sources.get(source.ref)
        if existing is None:
            source.position = position
            sources[source.ref] = existing = source
        existing.elements.append(img)

    _resolve(list(sources.values()), inline_parts, policy, fetcher)

    images: list[EpubImage] = []
    kept = 0
    total = 0
    for source in sources.values():
        image = source.image
        if image is not None and total + len(image.data) > policy.max_total_bytes:
            image, source.reason = None, f"over the {format_bytes(policy.max_total_bytes)} total for images"
        if image is None:
            dropped_elements.extend(source.elements)
            reasons.append((source.position, f"{source.label}: {source.reason or 'dropped'}"))
            continue
        total += len(image.data)
        name = f"images/img{len(images) + 1:03d}.{image.extension}"
        images.append(EpubImage(file_name=name, media_type=image.media_type, data=image.data))
        for element in source.elements:
            element.set("src", name)
            kept += 1

    for element in dropped_elements:
        _remove_with_empty_wrappers(element, root)
    return ImagesResult(
        html=_serialise_fragment(root),
        images=images,
        kept=kept,
        dropped=len(dropped_elements),
        reasons=[reason for _position, reason in sorted(reasons, key=lambda item: item[0])],
    )


# --- sources ------------------------------------------------------------------


def _source_for(src: str) -> _Source:
    lowered = src[:5].lower()
    if lowered.startswith("cid:"):
        content_id = unquote(src[4:]).strip().strip("<>")
        return _Source("cid", f"cid:{content_id}", f"cid:{content_id}")
    if lowered.startswith("data:"):
        media = src[5:].split(",", 1)[0].split(";", 1)[0] or "unknown type"
        return _Source("data", src, f"data:{media} ({format_bytes(len(src))})")
    url = re.sub(r"[\t\r\n]", "", src).replace(" ", "%20")
    if url.startswith("//"):
        url = "https:" + url  # protocol-relative: assume the secure one
    try:
        parts = urlsplit(url)
    except ValueError:
        return _Source("invalid", url, _label(url), reason="not a valid URL")
    label = _label(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        why = f"unsupported URL scheme {scheme}:" if scheme else "not an absolute URL"
        return _Source("invalid", url, label, reason=why)
    if not parts.hostname:
        return _Source("invalid", url, label, reason="the URL has no host")
    if is_tracker_url(url):
        return _Source("tracker", url, label, reason="tracking pixel")
    return _Source("remote", url, label)


def _label(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None and parts.scheme and parts.netloc:
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")
    else:
        shown = url.split("?", 1)[0] + ("?…" if "?" in url else "")
    return shown if len(shown) <= 120 else shown[:119] + "…"


def _find_part(content_id: str, inline_parts: Mapping[str, InlinePart]) -> InlinePart | None:
    part = inline_parts.get(content_id)
    if part is not None:
        return part
    wanted = content_id.lower()
    for key, part in inline_parts.items():
        if key.strip("<>").lower() == wanted or (part.content_id or "").strip("<>").lower() == wanted:
            return part
    return None


def _decode_data_uri(uri: str, cap: int) -> tuple[str | None, bytes]:
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ImageRejected("malformed data: URI")
    params = [p.strip().lower() for p in header.split(";")]
    media_type = params[0] or None
    if "base64" in params[1:]:
        text = re.sub(r"\s+", "", unquote(payload))
        if len(text) * 3 // 4 > cap:
            raise ImageRejected(f"larger than {format_bytes(cap)}")
        try:
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise ImageRejected("malformed base64 in data: URI") from None
    else:
        data = unquote_to_bytes(payload)
    if len(data) > cap:
        raise ImageRejected(f"larger than {format_bytes(cap)}")
    return media_type, data


# --- resolving sources into images --------------------------------------------


def _resolve(
    sources: list[_Source],
    inline_parts: Mapping[str, InlinePart],
    policy: ImagePolicy,
    fetcher: ImageFetcher | None,
) -> None:
    """Fill in ``image`` or ``reason`` for every source."""
    work: list[_Source] = []
    for source in sources:
        if source.reason is not None:
            continue
        if len(work) >= policy.max_images:
            source.reason = f"more than {policy.max_images} images"
        elif source.kind == "remote" and not policy.fetch_remote:
            source.reason = "image fetching is off"
        else:
            work.append(source)
    if not work:
        return

    remote = sum(1 for s in work if s.kind == "remote")
    if fetcher is None and remote:
        # Only for remote images: its TLS context alone costs ~20 ms of CPU to build.
        fetcher = HttpImageFetcher(policy)
    cache = ImageCache(policy.cache_dir, scope=policy.network_scope)
    budget = _DownloadBudget(policy.max_total_bytes)

    def run(source: _Source) -> tuple[ConvertedImage | None, str | None]:
        try:
            return _load(source, inline_parts, policy, fetcher, cache, budget), None
        except ImageRejected as exc:
            return None, str(exc)
        except Exception as exc:  # one image must never fail the document
            return None, f"failed ({type(exc).__name__}: {exc})"

    workers = max(1, min(policy.max_concurrency, len(work)))
    # A backstop only: each fetch has its own deadline. It covers what has none (a DNS lookup).
    waves = math.ceil(remote / workers) if remote else 0
    limit = policy.timeout_seconds * (waves + 1) + 30
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="images")
    try:
        futures = {pool.submit(run, source): source for source in work}
        concurrent.futures.wait(futures, timeout=limit)
        for future, source in futures.items():
            if future.done():
                source.image, source.reason = future.result()
            else:
                future.cancel()  # a late answer is ignored: results are only read here
                source.reason = f"timed out after {policy.timeout_seconds:g} s"
    finally:
        # Queued work is dropped; running work is bounded (fetch deadlines, the SVG worker's kill,
        # the pixel cap), so waiting for it keeps every thread inside the step that started it.
        pool.shutdown(wait=True, cancel_futures=True)


def _load(
    source: _Source,
    inline_parts: Mapping[str, InlinePart],
    policy: ImagePolicy,
    fetcher: ImageFetcher | None,  # None when no source is remote
    cache: ImageCache,
    budget: _DownloadBudget,
) -> ConvertedImage:
    if source.kind == "cid":
        part = _find_part(source.ref[4:], inline_parts)
        if part is None:
            raise ImageRejected("no inline part with this Content-ID")
        if len(part.data) > policy.max_bytes_per_image:
            raise ImageRejected(f"larger than {format_bytes(policy.max_bytes_per_image)}")
        return convert_image(part.data, part.content_type, policy)
    if source.kind == "data":
        media_type, data = _decode_data_uri(source.ref, policy.max_bytes_per_image)
        return convert_image(data, media_type, policy)

    fetched = cache.get(source.ref)
    if fetched is None:
        if budget.exhausted():
            raise ImageRejected(f"over the {format_bytes(policy.max_total_bytes)} download total for images")
        assert fetcher is not None  # _resolve makes one whenever a source is remote
        result = fetcher.fetch(source.ref)
        if isinstance(result, FetchFailure):
            raise ImageRejected(result.reason)
        fetched = result
        if not budget.take(len(fetched.data)):
            raise ImageRejected(f"over the {format_bytes(policy.max_total_bytes)} download total for images")
        if len(fetched.data) > policy.max_bytes_per_image:
            raise ImageRejected(f"larger than {format_bytes(policy.max_bytes_per_image)}")
        cache.put(source.ref, FetchedImage(url=source.ref, content_type=fetched.content_type, data=fetched.data))
    elif len(fetched.data) > policy.max_bytes_per_image:
        raise ImageRejected(f"larger than {format_bytes(policy.max_bytes_per_image)}")
    return convert_image(fetched.data, fetched.content_type, policy)


# --- the XHTML fragment -------------------------------------------------------


def _local(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""  # comments, processing instructions
    return tag.rsplit("}", 1)[-1].lower()


def _numeric_entities(text: str) -> str:
    """HTML named entities (&nbsp;) -> numeric references, which XML accepts."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _XML_ENTITIES:
            return match.group(0)
        char = html_lib.unescape(match.group(0))
        if char == match.group(0):
            return "&amp;" + match.group(0)[1:]
        return "".join(f"&#{ord(c)};" for c in char)

    return re.sub(r"&([A-Za-z][A-Za-z0-9]*);", replace, text)


def _parse_fragment(fragment: str) -> etree._Element:
    wrapped = f'<div xmlns:epub="{EPUB_NS}">{_numeric_entities(fragment)}</div>'
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_pis=False)
    try:
        return etree.fromstring(wrapped, parser)
    except etree.XMLSyntaxError:
        # Not well-formed after all: read it as HTML rather than lose the document.
        return lxml.html.fragment_fromstring(fragment, create_parent="div")


def _serialise_fragment(root: etree._Element) -> str:
    etree.cleanup_namespaces(root)
    out = [xml_escape(root.text or "")]
    for child in root:
        out.append(etree.tostring(child, encoding="unicode", method="xml", with_tail=True))
    return "".join(out)


def _unwrap_pictures(root: etree._Element) -> None:
    """<picture><source/><img/></picture> -> <img/>: e-readers only read the <img>."""
    for picture in [el for el in root.iter() if _local(el) == "picture"]:
        for child in list(picture):
            if _local(child) == "source":
                _remove(child)
        _unwrap(picture)


def _add_text_before(el: etree._Element, text: str | None) -> None:
    if not text:
        return
    previous = el.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + text
    else:
        parent = el.getparent()
        parent.text = (parent.text or "") + text  # type: ignore[union-attr]


def _unwrap(el: etree._Element) -> None:
    """Replace ``el`` by its children, keeping all text in place."""
    parent = el.getparent()
    if parent is None:
        return
    children = list(el)
    _add_text_before(el, el.text)
    if children:
        children[-1].tail = (children[-1].tail or "") + (el.tail or "")
    else:
        _add_text_before(el, el.tail)
    index = parent.index(el)
    el.tail = None
    parent.remove(el)
    for offset, child in enumerate(children):
        parent.insert(index + offset, child)


def _remove(el: etree._Element) -> None:
    """Remove ``el`` but keep the text that followed it."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        previous = el.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _remove_with_empty_wrappers(el: etree._Element, root: etree._Element) -> None:
    parent = el.getparent()
    if parent is None:
        return  # already gone with an emptied wrapper
    _remove(el)
    while parent is not root and _local(parent) in _EMPTY_WRAPPERS:
        if len(parent) or (parent.text or "").strip():
            break
        grandparent = parent.getparent()
        if grandparent is None:
            break
        _remove(parent)
        parent = grandparent
