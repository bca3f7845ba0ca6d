"""Small pieces shared by the seams: key checks and atomic file writes."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path


class ObjectNotFound(LookupError):
    """The inbox, archive or storage has no object under that key."""


class ObjectTooLarge(ValueError):
    """The object is over the size we read; found from its size, without reading it."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} too large: {size:,} bytes (limit {limit:,})")
        self.size, self.limit = size, limit


# The largest email read into memory; SES itself refuses mail over 40 MB.
MAX_EMAIL_BYTES = 50 * 1024 * 1024


def read_file_within(path: Path, max_bytes: int, what: str) -> bytes:
    """The file's bytes, or ObjectTooLarge from its size before a byte is read.

    Reads at most ``max_bytes + 1``, so a file that grows after the check is still caught.
    """
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise ObjectTooLarge(what, size, max_bytes)
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ObjectTooLarge(what, len(data), max_bytes)
    return data


# "s3:", "smtp:", "file:" ... but not a Windows drive letter.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def looks_like_uri(text: str) -> bool:
    """True for ``scheme:...`` strings; anything else is taken as a folder path."""
    return bool(_SCHEME.match(text))


def check_key(key: str, *, flat: bool = False) -> str:
    """Refuse keys that could escape their folder or mean different things on S3 and disk."""
    if not isinstance(key, str) or not key:
        raise ValueError("an object key must be a non-empty string")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}: no leading '/', backslash or NUL")
    parts = key.split("/")
    if any(part in {"", ".", ".."} for part in parts):
        raise ValueError(f"invalid object key {key!r}: empty, '.' or '..' path segment")
    if flat and len(parts) > 1:
        raise ValueError(f"invalid inbox key {key!r}: inbox keys are plain names without '/'")
    return key


def write_atomically(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write to a hidden temp file beside ``path`` and rename it into place.

    Readers (and the folder inbox's lister, which skips hidden and ``*.tmp`` names)
    never see a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
