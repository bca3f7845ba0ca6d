"""The storage seam: where EPUBs (and other produced files) are kept.

``S3Storage`` for an operator (presigned links for EPUBs too large to email),
``FolderStorage`` for a self-hoster (a ``file://`` link stands in for the presigned
one). Keys are relative paths such as ``epubs/42/the-weekly.epub``.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from inbox_pipeline.seams._aws import aws_client, is_not_found
from inbox_pipeline.seams._common import ObjectNotFound, check_key, looks_like_uri, write_atomically

__all__ = ["FolderStorage", "ObjectNotFound", "S3Storage", "Storage", "storage_from_uri"]

# SigV4 presigned URLs cannot live longer than seven days.
MAX_LINK_SECONDS = 7 * 24 * 3600


class Storage(ABC):
    @property
    @abstractmethod
    def uri(self) -> str:
        """Where the storage is, for logs and the UI."""

    @abstractmethod
    def object_uri(self, key: str) -> str:
        """The full location of ``key`` (``s3://...`` or ``file://...``)."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store ``data`` under ``key`` (replacing it) and return its URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The stored bytes; ``ObjectNotFound`` if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def check(self) -> None:
        """Raise when storage cannot be used now (unreachable, no such bucket or folder): the watchdog's probe."""
        self.exists("health-probe")

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is fine (cleanup may run twice)."""

    @abstractmethod
    def download_link(self, key: str, expires_seconds: int = MAX_LINK_SECONDS, *, file_name: str | None = None) -> str:
        """A link a person can open to download ``key``, valid for ``expires_seconds``."""


def _check_expiry(expires_seconds: int) -> int:
    if not 1 <= expires_seconds <= MAX_LINK_SECONDS:
        raise ValueError(f"a download link must expire within 1 s and 7 days, not {expires_seconds} s")
    return int(expires_seconds)


class FolderStorage(Storage):
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser().absolute()

    def __repr__(self) -> str:
        return f"FolderStorage({str(self.path)!r})"

    def check(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"storage {self.path} is not a folder")
        if self.path.exists() and not os.access(self.path, os.W_OK | os.X_OK):
            raise PermissionError(f"storage {self.path} is not writable")

    @property
    def uri(self) -> str:
        return str(self.path)

    def _file(self, key: str) -> Path:
        return self.path / check_key(key)

    def object_uri(self, key: str) -> str:
        return self._file(key).as_uri()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        # The content type is implied by the file name here; S3 keeps it for downloads.
        write_atomically(self._file(key), data, fsync=True)
        return self.object_uri(key)

    def get(self, key: str) -> bytes:
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"nothing stored at {self._file(key)}") from None

    def exists(self, key: str) -> bool:
        return self._file(key).is_file()

    def delete(self, key: str) -> None:
        self._file(key).unlink(missing_ok=True)

    def download_link(self, key: str, expires_seconds: int = MAX_LINK_SECONDS, *, file_name: str | None = None) -> str:
        _check_expiry(expires_seconds)
        if not self.exists(key):
            raise ObjectNotFound(f"nothing stored at {self._file(key)}")
        return self.object_uri(key)  # a local file does not expire


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix``; client from boto3's environment."""

    def __init__(self, bucket: str, prefix: str = "", *, region: str | None = None):
        if not bucket:
            raise ValueError("S3 storage needs a bucket name")
        self.bucket = bucket
        self.region = region
        prefix = prefix.lstrip("/")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage({self.uri!r})"

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                # SigV4 for presigned URLs: required in newer regions, accepted everywhere.
                self._client = aws_client("s3", region=self.region, signature_version="s3v4")
            return self._client

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def object_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)
        return self.object_uri(key)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if is_not_found(exc):
                raise ObjectNotFound(f"nothing stored at {self.object_uri(key)}") from None
            raise

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)  # a missing bucket is a 404 here, not False

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def download_link(self, key: str, expires_seconds: int = MAX_LINK_SECONDS, *, file_name: str | None = None) -> str:
        """A presigned GET URL.

        It stops working early if the signing credentials expire first (an ECS task
        role's session lasts hours): sign with long-lived credentials for 7-day links.
        """
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self._key(key)}
        if file_name:
            safe = "".join(c for c in file_name if c.isascii() and c.isprintable() and c not in '"\\')
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        return self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=_check_expiry(expires_seconds)
        )


def storage_from_uri(uri: str, *, region: str | None = None) -> Storage:
    """``s3://bucket/prefix/``, ``file:///path`` or a folder path; ``region`` as for ``inbox_from_uri``."""
    text = (uri or "").strip()
    if not text:
        raise ValueError("INBOX_PIPELINE_STORAGE is empty: give s3://bucket/prefix/ or a folder path")
    if not looks_like_uri(text):
        return FolderStorage(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise ValueError(f"storage {uri!r}: file:// URIs must name a local path (file:///path)")
        return FolderStorage(parts.path)
    if parts.scheme != "s3":
        raise ValueError(
            f"storage {uri!r}: unsupported scheme {parts.scheme!r}; use s3://bucket/prefix/ or a folder path"
        )
    if not parts.netloc:
        raise ValueError(f"storage {uri!r}: no bucket name; use s3://bucket/prefix/")
    if parts.query and parse_qs(parts.query, keep_blank_values=True):
        raise ValueError(f"storage {uri!r}: takes no ?options")
    return S3Storage(parts.netloc, parts.path, region=region)
