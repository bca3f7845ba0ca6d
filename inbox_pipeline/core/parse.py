"""Raw bytes (MIME, inbound-parse webhook JSON, or a bare HTML document) -> ParsedEmail.

``parse_email`` never raises anything but ``EmailParseError`` and never hangs:
every header is capped before it is decoded, every charset degrades to a
replacement character, and the whole call is wrapped so that a surprise in the
standard library becomes a readable error instead of a crash. The readers live
in ``core/mime.py`` (MIME, bare HTML) and ``core/webhook.py`` (provider JSON).
"""

from __future__ import annotations

from inbox_pipeline.core.message import EmailParseError, ParsedEmail
from inbox_pipeline.core.mime import MAX_BYTES, parse_html_document, parse_mime
from inbox_pipeline.core.webhook import parse_webhook

__all__ = ["MAX_BYTES", "parse_email"]


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse raw MIME, an inbound-parse webhook JSON payload or a bare HTML document."""
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise EmailParseError(f"expected bytes, got {type(raw).__name__}")
    if len(raw) > MAX_BYTES:
        raise EmailParseError(f"email too large: {len(raw):,} bytes (limit {MAX_BYTES:,})")
    start = raw[:4096].lstrip(b"\xef\xbb\xbf\x00 \t\r\n")
    if not start:
        raise EmailParseError("empty input: no headers and no body")
    try:
        if start[:1] in (b"{", b"["):
            return parse_webhook(raw)
        if start[:1] == b"<":
            return parse_html_document(raw)
        return parse_mime(raw)
    except EmailParseError:
        raise
    except RecursionError as exc:
        raise EmailParseError("email is nested too deeply to read") from exc
    except MemoryError as exc:
        raise EmailParseError("email too large to read in memory") from exc
    except Exception as exc:  # a last resort: the contract is EmailParseError only
        raise EmailParseError(f"unreadable email ({type(exc).__name__}: {str(exc)[:200]})") from exc
