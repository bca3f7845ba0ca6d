"""A fast check (milliseconds) for what Send-to-Kindle refuses, before we send.

EPUBCheck is the full conformance check but needs a JVM and seconds; this runs
on every book. Each problem is one sentence naming the file at fault.
"""

from __future__ import annotations

import io
import posixpath
import re
import threading
import zipfile
from urllib.parse import unquote

from lxml import etree

from inbox_pipeline.config import SIZE_BUDGET_BYTES as DEFAULT_MAX_BYTES  # SES: 40 MB after base64 (x4/3)

ALLOWED_IMAGES = {"image/jpeg", "image/png", "image/gif"}
MAX_NAME = 32  # per path segment; long or odd names are a known Send-to-Kindle failure
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
# BCP 47 as books use it: language, script, region, variants, private use.
LANGUAGE_TAG = re.compile(
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-(?:[A-Za-z]{2}|[0-9]{3}))?(-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(-x(-[A-Za-z0-9]{1,8})+)?$"
)
_XML_DECLARATION = re.compile(
    rb"^<\?xml\s+version=[\"']1\.[01][\"'](\s+encoding=[\"']utf-8[\"'])?\s*\?>", re.IGNORECASE
)
_SCRIPT_TYPES = {"application/javascript", "text/javascript", "application/ecmascript", "text/ecmascript"}
_IMAGE_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}
NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "x": "http://www.w3.org/1999/xhtml",
}
_parsers = threading.local()  # an lxml parser must not be shared between threads


def _xml(data: bytes) -> etree._Element:
    parser = getattr(_parsers, "xml", None)
    if parser is None:
        parser = _parsers.xml = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def kindle_preflight(epub: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    """Problems Send-to-Kindle would reject the book for; an empty list means it looks fine."""
    problems: list[str] = []
    if len(epub) > max_bytes:
        problems.append(f"the EPUB is {len(epub):,} bytes, over the {max_bytes:,} byte budget")
    try:
        archive = zipfile.ZipFile(io.BytesIO(epub))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        return problems + [f"not a ZIP archive: {exc}"]

    names = [info.filename for info in infos]
    _check_mimetype(infos, archive, problems)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"{name}: stored twice in the archive")
        seen.add(name)
        _check_name(name, problems)
    if "META-INF/encryption.xml" in seen:
        problems.append("META-INF/encryption.xml: the book is encrypted (DRM); Kindle refuses it")

    opf_path = _rootfile(archive, seen, problems)
    if opf_path is None:
        return problems
    try:
        opf = _xml(archive.read(opf_path))
    except etree.XMLSyntaxError as exc:
        return problems + [f"{opf_path}: the package document is not well-formed XML ({exc})"]
    _check_metadata(opf, opf_path, problems)
    _check_manifest(opf, opf_path, archive, seen, problems)
    return problems


def _check_mimetype(infos, archive, problems: list[str]) -> None:
    if not infos or infos[0].filename != "mimetype":
        problems.append("mimetype: must be the first file in the archive")
        return
    first = infos[0]
    if first.compress_type != zipfile.ZIP_STORED:
        problems.append("mimetype: must be stored uncompressed")
    if first.extra:
        problems.append("mimetype: must not carry a ZIP extra field")
    if archive.read(first) != b"application/epub+zip":
        problems.append("mimetype: must contain exactly 'application/epub+zip'")


def _check_name(name: str, problems: list[str]) -> None:
    if name == "mimetype" or name.endswith("/"):
        return
    for segment in name.split("/"):
        if not _SAFE_NAME.match(segment):
            problems.append(f"{name}: file name has characters other than ASCII letters, digits, '.', '_', '-'")
            return
        if len(segment) > MAX_NAME:
            problems.append(f"{name}: file name longer than {MAX_NAME} characters")
            return


def _rootfile(archive, names: set[str], problems: list[str]) -> str | None:
    if "META-INF/container.xml" not in names:
        problems.append("META-INF/container.xml: missing")
        return None
    try:
        container = _xml(archive.read("META-INF/container.xml"))
    except etree.XMLSyntaxError as exc:
        problems.append(f"META-INF/container.xml: not well-formed XML ({exc})")
        return None
    rootfile = container.find(".//c:rootfile", NS)
    path = rootfile.get("full-path") if rootfile is not None else None
    if not path:
        problems.append("META-INF/container.xml: no rootfile names the package document")
        return None
    if path not in names:
        problems.append(f"META-INF/container.xml: the package document {path} is missing")
        return None
    return path


def _check_metadata(opf, opf_path: str, problems: list[str]) -> None:
    metadata = opf.find("opf:metadata", NS)
    if metadata is None:
        problems.append(f"{opf_path}: no <metadata>")
        return
    unique = opf.get("unique-identifier")
    identifiers = metadata.findall("dc:identifier", NS)
    if not any((i.text or "").strip() for i in identifiers):
        problems.append(f"{opf_path}: no dc:identifier")
    elif unique and not any(i.get("id") == unique and (i.text or "").strip() for i in identifiers):
        problems.append(f"{opf_path}: unique-identifier '{unique}' names no dc:identifier")
    if not any((t.text or "").strip() for t in metadata.findall("dc:title", NS)):
        problems.append(f"{opf_path}: no dc:title")
    languages = [(lang.text or "").strip() for lang in metadata.findall("dc:language", NS)]
    if not languages:
        problems.append(f"{opf_path}: no dc:language")
    for language in languages:
        if not LANGUAGE_TAG.match(language):
            problems.append(f"{opf_path}: dc:language '{language}' is not a valid BCP 47 tag")


def _check_manifest(opf, opf_path: str, archive, names: set[str], problems: list[str]) -> None:
    base = posixpath.dirname(opf_path)
    manifest = opf.find("opf:manifest", NS)
    if manifest is None:
        problems.append(f"{opf_path}: no <manifest>")
        return
    ids: set[str] = set()
    has_nav = False
    for item in manifest.findall("opf:item", NS):
        href = item.get("href") or ""
        media_type = (item.get("media-type") or "").strip().lower()
        properties = (item.get("properties") or "").split()
        ids.add(item.get("id") or "")
        if "scripted" in properties:
            problems.append(f"{href}: marked as scripted; Kindle books may not run scripts")
        if href.startswith(("http:", "https:")):
            problems.append(f"{href}: remote resource in the manifest")
            continue
        path = posixpath.normpath(posixpath.join(base, unquote(href))) if base else posixpath.normpath(unquote(href))
        if path not in names:
            problems.append(f"{path}: listed in the manifest but missing from the archive")
            continue
        if media_type.startswith("image/"):
            if media_type not in ALLOWED_IMAGES:
                problems.append(f"{path}: {media_type} images are not accepted (use JPEG, PNG or GIF)")
            elif not archive.read(path).startswith(_IMAGE_MAGIC[media_type]):
                problems.append(f"{path}: content is not a {media_type} image")
        elif media_type in _SCRIPT_TYPES:
            problems.append(f"{path}: a script; Kindle books may not run scripts")
        elif media_type == "application/xhtml+xml":
            has_nav = has_nav or "nav" in properties
            _check_xhtml(path, archive.read(path), problems)
    if not has_nav:
        problems.append(f"{opf_path}: no navigation document (manifest item with properties=\"nav\")")
    spine = opf.find("opf:spine", NS)
    refs = spine.findall("opf:itemref", NS) if spine is not None else []
    if not refs:
        problems.append(f"{opf_path}: the spine is empty")
    for ref in refs:
        if ref.get("idref") not in ids:
            problems.append(f"{opf_path}: spine item '{ref.get('idref')}' is not in the manifest")


def _check_xhtml(path: str, data: bytes, problems: list[str]) -> None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not _XML_DECLARATION.match(data):
        problems.append(f"{path}: does not start with <?xml version=\"1.0\" encoding=\"utf-8\"?>")
    try:
        root = _xml(data)
    except etree.XMLSyntaxError as exc:
        problems.append(f"{path}: not well-formed XHTML ({exc})")
        return
    if root.find(".//x:script", NS) is not None or root.find(".//script") is not None:
        problems.append(f"{path}: contains a <script>; Kindle books may not run scripts")
