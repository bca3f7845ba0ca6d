"""The inbox seam: where raw inbound emails land (an S3 prefix or a local folder).

Why "process and move" rather than a cursor
-------------------------------------------
SES's S3 action names each object after its message id, a random-looking string,
so keys are not in arrival order. A sensor cursor "last key seen" used with S3
``StartAfter`` would silently skip every later email whose key happens to sort
before the cursor; a cursor on ``LastModified`` has one-second resolution and still
needs the whole prefix listed to filter on it, so the tick cost grows with history.

So the inbox prefix holds only *pending* objects. The sensor lists it
(``list_pending``: cost proportional to what is pending, not to what was ever
processed), registers each object in the database, then ``archive``\\ s it: moves it
to the archive prefix/folder (S3: copy + delete; folder: rename). Order no longer
matters and nothing can be skipped: an object stays listed until it is archived,
however many arrive in the same second and whatever their names.

``archive`` is idempotent, so a sensor that crashes between register and archive
(or between S3's copy and delete) simply does it again next tick: if the source is
gone and the archived copy exists, the archived key is returned. An archived object
is never overwritten by a *different* one that reused its name: that one is archived
as ``<name>-dup<N>``; callers must record the key ``archive`` returns. A caller that has
just read the object (``read_to_archive``) passes its head to ``archive``: S3's move then
skips looking it up, and its copy is guarded by the ETag read, so what is archived is
exactly what was read.

Layout
------
- S3: the inbox is flat. Only objects directly under the prefix are pending (listed
  with ``Delimiter="/"``); the archive is a sibling prefix, by default
  ``incoming/`` -> ``incoming-archive/`` (``archive/`` when the inbox is the bucket
  root, which the delimiter keeps out of the listing). Override with
  ``s3://bucket/incoming/?archive=processed/``. A lifecycle rule on the archive prefix
  is a cheap safety net for retention.
- Folder: pending emails are the regular files directly in the folder; the archive
  is the hidden sub-folder ``.archive/``. Inside the inbox rather than beside it so
  that a rename is always possible: an inbox that is its own mount point (a Docker
  volume) cannot rename into a sibling folder. Hidden names (``.*``), ``*.tmp``,
  ``*.part``, ``*.partial``, ``*~`` and sub-folders are ignored: writers must write
  under such a name and rename into place (as ``put`` and Maildir delivery do).

Announcements: S3 event notifications through SQS
--------------------------------------------------
Listing the prefix costs O(pending) on real S3, whose listing reads the key index,
but some S3-compatible servers scan every key of the bucket for any prefix (moto
does): there a tick would slow down with the archive beside the inbox. With
``s3://bucket/incoming/?queue=<SQS queue URL or name>`` the bucket's event
notifications (``s3:ObjectCreated:*``, prefix filter ``incoming/``) announce each new
object on that queue, and ``take_announced`` reads the queue instead of the bucket:
a tick's cost no longer depends on the bucket at all. A bare queue name is resolved
with GetQueueUrl on first use, so defining the inbox needs no AWS.

A message is deleted from the queue only once every object it announces has been
archived or found no longer pending (``forget``); a message announcing nothing of
ours (``s3:TestEvent``, another prefix such as the archive, another bucket, a body
that is not an S3 event) is logged and deleted so it never blocks. If the process
dies first, SQS delivers the message again after the queue's visibility timeout,
and registering and archiving are idempotent. Notifications can still be lost (the
queue created after mail arrived, messages expired), so the caller also lists the
prefix now and then (``list_pending``) to reconcile. Without ``?queue=`` (and for a
folder) ``take_announced`` returns None: the caller lists every time.
"""

from __future__ import annotations

import errno
import filecmp
import hashlib
import heapq
import json
import logging
import os
import re
import shutil
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from inbox_pipeline.seams._aws import aws_client, error_code, is_not_found
from inbox_pipeline.seams._common import (
    MAX_EMAIL_BYTES,
    ObjectNotFound,
    ObjectTooLarge,
    check_key,
    looks_like_uri,
    read_file_within,
    write_atomically,
)

__all__ = [
    "FolderInbox",
    "Inbox",
    "InboxObject",
    "ObjectHead",
    "ObjectNotFound",
    "ObjectTooLarge",
    "S3Inbox",
    "archive_name",
    "inbox_from_uri",
]

# Writers name files like this while still writing them.
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~")
# SES writes this object when a receipt rule is created; it is not an email.
_SES_SETUP_OBJECT = "AMAZON_SES_SETUP_NOTIFICATION"
# Metadata on an archived S3 object: the ETag of the inbox object it was moved from.
_SOURCE_ETAG_META = "inbox-source-etag"
# SQS hands out at most this many messages per ReceiveMessage call.
_SQS_MAX_MESSAGES = 10
# Messages announcing nothing new (dropped) or an object already taken, read per call at most.
_MAX_FOREIGN_MESSAGES = 1000
# SQS queue names: letters, digits, "-" and "_", at most 80 characters (FIFO: ".fifo" included).
_SQS_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo")
_SQS_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}

logger = logging.getLogger(__name__)

# Archived names (and so the registered storage keys, run tags and log lines) are plain,
# printable UTF-8 of at most this many bytes, so that the archive's "-dupN" suffix, a file
# system's 255-byte names and S3's 1024-byte keys (prefix included) always fit.
MAX_ARCHIVE_NAME_BYTES = 200
_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f\\\ud800-\udfff]")


@dataclass(frozen=True)
class InboxObject:
    key: str  # the name under the inbox prefix/folder, without "/"
    size: int
    last_modified: datetime  # timezone-aware UTC
    version: str = ""  # S3 ETag, or mtime+size for a file: tells a reused name apart


@dataclass(frozen=True)
class ObjectHead:
    """What archiving needs of a pending S3 object, from the read that just fetched it: moving
    exactly that object (the copy is guarded by its ETag) needs no second look at it."""

    etag: str  # as S3 gives it, quoted
    metadata: dict[str, str]
    content_type: str

    @classmethod
    def of(cls, response: dict[str, Any]) -> "ObjectHead":
        """From a HeadObject or GetObject response."""
        return cls(
            etag=str(response["ETag"]),
            metadata=dict(response.get("Metadata") or {}),
            content_type=response.get("ContentType") or "application/octet-stream",
        )


# Who may have recorded the envelope of an email in an inbox (``Envelope.recorded_by``):
# mail lands in a bucket only through SES (or as a webhook payload our own receiver
# wrote), so a bucket trusts only those records. See docs/DEPLOY.md, "Routing".
TRUSTED_RECEIVERS = frozenset({"ses", "ses-receipt", "postmark", "mailgun", "sendgrid"})


class Inbox(ABC):
    """Pending raw emails, read and then archived once registered."""

    trusted_receivers: frozenset[str] = TRUSTED_RECEIVERS

    @property
    @abstractmethod
    def uri(self) -> str:
        """Where the inbox is, for logs and the UI."""

    @property
    @abstractmethod
    def archive_uri(self) -> str:
        """Where archived emails go."""

    @abstractmethod
    def list_pending(self, limit: int, *, after: str | None = None) -> list[InboxObject]:
        """Up to ``limit`` pending objects in key order, keys strictly greater than ``after``.

        Costs O(pending), never O(archived). ``after`` pages within one tick (for
        example past objects that could not be archived); it is not a lasting cursor.
        """

    @abstractmethod
    def read(self, key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> bytes:
        """The bytes of a pending object; ``ObjectNotFound`` if it is not pending.

        ``ObjectTooLarge`` if it is over ``max_bytes``, known from its size before it is read.
        """

    def read_to_archive(self, key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> tuple[bytes, ObjectHead | None]:
        """``read``, with what ``archive(key, head=...)`` needs to move the object just read without
        looking it up again (None: ``archive`` looks it up itself, as a folder's does)."""
        return self.read(key, max_bytes=max_bytes), None

    @abstractmethod
    def is_pending(self, key: str) -> bool:
        """Whether ``key`` is still pending (not archived yet)."""

    @abstractmethod
    def archive(self, key: str, *, head: ObjectHead | None = None) -> str:
        """Move a pending object to the archive and return its archived key (idempotent).

        ``head`` (from ``read_to_archive``) saves looking the object up; the object moved is then the
        one read: if it changed since, the move fails (and is done again by the caller's retry).
        """

    @abstractmethod
    def read_archived(self, archived_key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> bytes:
        """The bytes of an archived object; ``ObjectNotFound`` if absent, ``ObjectTooLarge`` as ``read``."""

    @abstractmethod
    def delete_archived(self, archived_key: str) -> None:
        """Delete an archived object (retention); deleting a missing one is fine."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Drop a new pending object (the demo and tests; SES does this in production)."""

    @abstractmethod
    def archived_uri(self, archived_key: str) -> str:
        """The full location of an archived object, for records and the UI."""

    # Announcements (see the module docstring). An inbox without a source of them only lists.

    @property
    def announces(self) -> bool:
        """Whether new objects are announced (``take_announced``), so a tick need not list."""
        return False

    def take_announced(self, limit: int) -> list[InboxObject] | None:
        """Up to ``limit`` pending objects announced since they were last taken, in key order.

        None means this inbox has no announcement source: call ``list_pending`` instead.
        An announcement is settled when its object is archived or ``forget`` is called.
        """
        return None

    def forget(self, key: str) -> None:
        """``key`` is no longer pending (archived meanwhile): drop its announcement."""

    def announced_backlog(self) -> int | None:
        """About how many announcements wait to be read (None: no announcement source)."""
        return None


def archive_name(key: str) -> str:
    """The name a pending object is archived and registered under: ``key`` itself when it is a
    plain name, else a readable stand-in made unique by a hash of the original name (a backslash,
    control characters, bytes that are not UTF-8 in a file name, or a name too long to archive)."""
    if not _UNSAFE_NAME_CHARS.search(key) and len(key.encode("utf-8")) <= MAX_ARCHIVE_NAME_BYTES:
        return check_key(key, flat=True)
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    cleaned = _UNSAFE_NAME_CHARS.sub("_", key)
    stem, dot, ext = cleaned.rpartition(".")
    if not dot or not stem or len(ext) > 10:
        stem, ext = cleaned, ""
    suffix = f"~{digest}" + (f".{ext}" if ext else "")
    stem = stem.encode("utf-8")[: MAX_ARCHIVE_NAME_BYTES - len(suffix.encode("utf-8"))].decode("utf-8", "ignore")
    return (stem.lstrip(".") or "email") + suffix


def _pending_key(key: str) -> str:
    """A pending object's name as the inbox holds it: any name without "/" (a backslash, control
    characters or undecodable bytes included: senders and writers choose them, not us)."""
    if not isinstance(key, str) or not key or "/" in key or "\x00" in key or key in {".", ".."}:
        raise ValueError(f"invalid inbox key {key!r}: a pending email's name has no '/' and is not '.' or '..'")
    return key


def _ignored_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(_PARTIAL_SUFFIXES) or name == _SES_SETUP_OBJECT


def dup_name(key: str, n: int) -> str:
    """The archive name of the ``n``-th other email that reused ``key``."""
    stem, dot, ext = key.rpartition(".")
    if not dot or not stem:  # no extension (SES message ids) or a dot-leading name
        return f"{key}-dup{n}"
    return f"{stem}-dup{n}.{ext}"


def _check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return limit


# --- folder -----------------------------------------------------------------


class FolderInbox(Inbox):
    """Pending emails are files in ``path``; archived ones move to ``path/.archive``."""

    # A folder is written by the operator's own machine: its mail server prepends the
    # topmost Received header ("mta"), and a file with no Received header at all was
    # placed there by hand ("unreceived", routed by its To/Cc).
    trusted_receivers = TRUSTED_RECEIVERS | {"mta", "unreceived"}

    def __init__(self, path: str | os.PathLike[str], *, archive_dir: str | os.PathLike[str] | None = None):
        self.path = Path(path).expanduser().absolute()
        self.archive_path = Path(archive_dir).expanduser().absolute() if archive_dir else self.path / ".archive"

    def __repr__(self) -> str:
        return f"FolderInbox({str(self.path)!r})"

    @property
    def uri(self) -> str:
        return str(self.path)

    @property
    def archive_uri(self) -> str:
        return str(self.archive_path)

    def archived_uri(self, archived_key: str) -> str:
        return str(self._archived(archived_key))

    def _pending(self, key: str) -> Path:
        return self.path / _pending_key(key)

    def _archived(self, archived_key: str) -> Path:
        return self.archive_path / check_key(archived_key, flat=True)

    def list_pending(self, limit: int, *, after: str | None = None) -> list[InboxObject]:
        _check_limit(limit)
        try:
            scan = os.scandir(self.path)
        except FileNotFoundError:
            return []
        candidates: list[tuple[str, os.DirEntry[str]]] = []
        with scan:
            for entry in scan:
                name = entry.name
                if _ignored_name(name) or (after is not None and name <= after):
                    continue
                candidates.append((name, entry))
        objects: list[InboxObject] = []
        # nsmallest keeps the sort at O(pending log limit) for a large backlog.
        for name, entry in heapq.nsmallest(limit, candidates, key=lambda c: c[0]):
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # archived by a concurrent tick meanwhile
                continue
            objects.append(
                InboxObject(
                    key=name,
                    size=st.st_size,
                    last_modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
                    version=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                )
            )
        return objects

    def read(self, key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> bytes:
        try:
            return read_file_within(self._pending(key), max_bytes, f"pending email {key!r}")
        except FileNotFoundError:
            raise ObjectNotFound(f"no pending email {key!r} in {self.uri}") from None

    def is_pending(self, key: str) -> bool:
        return self._pending(key).is_file()

    def put(self, key: str, data: bytes) -> None:
        write_atomically(self._pending(key), data)

    def archive(self, key: str, *, head: ObjectHead | None = None) -> str:
        src = self._pending(key)
        name = archive_name(key)
        if not src.is_file():
            if self._archived(name).is_file():
                return name  # archived by an earlier call that was not recorded
            raise ObjectNotFound(f"no pending or archived email {key!r} in {self.uri}")
        candidate, n = name, 0
        while True:
            dest = self._archived(candidate)
            if not dest.exists():
                break
            if filecmp.cmp(src, dest, shallow=False):
                src.unlink(missing_ok=True)  # the same email, archived before
                return candidate
            n += 1
            candidate = dup_name(name, n)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            _move(src, dest)
        except FileNotFoundError:
            if dest.is_file():  # a concurrent archive() won the race
                return candidate
            raise
        return candidate

    def read_archived(self, archived_key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> bytes:
        try:
            return read_file_within(self._archived(archived_key), max_bytes, f"archived email {archived_key!r}")
        except FileNotFoundError:
            raise ObjectNotFound(f"no archived email {archived_key!r} in {self.archive_uri}") from None

    def delete_archived(self, archived_key: str) -> None:
        self._archived(archived_key).unlink(missing_ok=True)


def _move(src: Path, dest: Path) -> None:
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # A custom archive folder on another filesystem: copy durably, then remove.
        tmp = dest.parent / f".{dest.name}.moving.tmp"
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dest)
        src.unlink(missing_ok=True)


# --- S3 -----------------------------------------------------------------------


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def default_archive_prefix(prefix: str) -> str:
    """``incoming/`` -> ``incoming-archive/``; the bucket root -> ``archive/``."""
    prefix = _normalise_prefix(prefix)
    return prefix[:-1] + "-archive/" if prefix else "archive/"


@dataclass
class _Announcement:
    """One SQS message: its receipt handle and the keys it announces that are not settled yet."""

    receipt_handle: str
    keys: set[str]


class S3Inbox(Inbox):
    """Pending emails are the objects directly under ``s3://bucket/prefix``.

    With ``queue`` (an SQS queue URL or name) new objects are also announced by the
    bucket's event notifications (see the module docstring). The clients come from
    boto3's environment (``AWS_ENDPOINT_URL`` etc.).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        archive_prefix: str | None = None,
        queue: str | None = None,
        region: str | None = None,
    ):
        if not bucket:
            raise ValueError("S3 inbox needs a bucket name")
        self.bucket = bucket
        self.prefix = _normalise_prefix(prefix)
        self.archive_prefix = (
            _normalise_prefix(archive_prefix) if archive_prefix else default_archive_prefix(self.prefix)
        )
        if not self.archive_prefix or self.archive_prefix == self.prefix:
            raise ValueError(f"the archive prefix must differ from the inbox prefix {self.prefix!r}")
        self.queue = check_queue(queue) if queue is not None else None
        self.region = region
        self._client: Any = None
        self._sqs: Any = None
        self._queue_url: str | None = None
        self._client_lock = threading.Lock()
        # Announcements taken and not settled yet: message id -> message, key -> message ids.
        self._messages: dict[str, _Announcement] = {}
        self._messages_of: dict[str, set[str]] = {}
        self._announce_lock = threading.Lock()

    def __repr__(self) -> str:
        queue = f", queue={self.queue!r}" if self.queue else ""
        return f"S3Inbox({self.uri!r}, archive={self.archive_prefix!r}{queue})"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use (so defining the inbox needs no AWS)."""
        with self._client_lock:
            if self._client is None:
                self._client = aws_client("s3", region=self.region)
            return self._client

    @property
    def sqs(self) -> Any:
        """The boto3 SQS client, created on first use."""
        with self._client_lock:
            if self._sqs is None:
                self._sqs = aws_client("sqs", region=self.region)
            return self._sqs

    @property
    def queue_url(self) -> str:
        """The queue's URL; a bare name is resolved with GetQueueUrl on first use."""
        if self.queue is None:
            raise ValueError(f"inbox {self.uri} has no queue (add ?queue=<SQS queue URL or name>)")
        if self._queue_url is None:
            self._queue_url = self.queue if _is_url(self.queue) else self._resolve_queue_name(self.queue)
        return self._queue_url

    def _resolve_queue_name(self, name: str) -> str:
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        try:
            return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) in _SQS_MISSING_QUEUE:
                raise ValueError(self._missing_queue_message()) from None
            raise

    def _missing_queue_message(self) -> str:
        region = self.sqs.meta.region_name
        return (
            f"inbox {self.uri}: there is no SQS queue {self.queue!r} in region {region} "
            "(?queue= names the queue that receives the bucket's event notifications)"
        )

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def archive_uri(self) -> str:
        return f"s3://{self.bucket}/{self.archive_prefix}"

    def archived_uri(self, archived_key: str) -> str:
        return f"s3://{self.bucket}/{self.archive_prefix}{check_key(archived_key, flat=True)}"

    def list_pending(self, limit: int, *, after: str | None = None) -> list[InboxObject]:
        _check_limit(limit)
        # The delimiter keeps nested prefixes (an archive under the root) out of the pages.
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix,
            "Delimiter": "/",
            "MaxKeys": min(1000, limit + 1),  # +1: the SES setup object may be skipped
        }
        if after:
            kwargs["StartAfter"] = self.prefix + after
        objects: list[InboxObject] = []
        while len(objects) < limit:
            page = self.client.list_objects_v2(**kwargs)
            for item in page.get("Contents", ()):
                name = item["Key"][len(self.prefix) :]
                if not name or _ignored_name(name):
                    continue
                objects.append(
                    InboxObject(
                        key=name,
                        size=int(item.get("Size", 0)),
                        last_modified=item["LastModified"].astimezone(timezone.utc),
                        version=str(item.get("ETag", "")).strip('"'),
                    )
                )
            if not page.get("IsTruncated"):
                break
            kwargs.pop("StartAfter", None)
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
        return objects[:limit]

    def _head(self, full_key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        try:
            return self.client.head_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    def _get(self, full_key: str, what: str, max_bytes: int) -> tuple[bytes, dict[str, Any]]:
        """The object's bytes and the GetObject response (its ETag, metadata, content type)."""
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if is_not_found(exc):
                raise ObjectNotFound(f"no {what} s3://{self.bucket}/{full_key}") from None
            raise
        body = response["Body"]
        with body:  # closing drops the connection rather than draining an object we refuse
            size = int(response.get("ContentLength") or 0)
            if size > max_bytes:
                raise ObjectTooLarge(f"{what} s3://{self.bucket}/{full_key}", size, max_bytes)
            data = body.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ObjectTooLarge(f"{what} s3://{self.bucket}/{full_key}", len(data), max_bytes)
        return data, response

    def read(self, key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> bytes:
        return self.read_to_archive(key, max_bytes=max_bytes)[0]

    def read_to_archive(self, key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> tuple[bytes, ObjectHead | None]:
        data, response = self._get(self.prefix + _pending_key(key), "pending email", max_bytes)
        return data, ObjectHead.of(response)

    def is_pending(self, key: str) -> bool:
        return self._head(self.prefix + _pending_key(key)) is not None

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + check_key(key, flat=True), Body=data)

    def archive(self, key: str, *, head: ObjectHead | None = None) -> str:
        archived = self._archive(key, head)
        self.forget(key)  # moved out of the inbox: its announcement is settled
        return archived

    def _archive(self, key: str, read: ObjectHead | None = None) -> str:
        """Copy + delete. ``read``: the head of the object as the caller read it (else looked up here)."""
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        src = self.prefix + _pending_key(key)
        name = archive_name(key)
        head = read
        if head is None:
            found = self._head(src)
            if found is None:
                if self._head(self.archive_prefix + name) is not None:
                    return name  # archived by an earlier call that was not recorded
                raise ObjectNotFound(f"no pending or archived email {key!r} in {self.uri}")
            head = ObjectHead.of(found)
        etag = head.etag.strip('"')
        candidate, n = name, 0
        while True:
            dest_head = self._head(self.archive_prefix + candidate)
            if dest_head is None:
                break
            same = (dest_head.get("Metadata") or {}).get(_SOURCE_ETAG_META) == etag or _etag(dest_head) == etag
            if same:  # copied before, but the delete did not happen
                # A head the caller read earlier may be out of date (one looked up here is not): the pending
                # object is deleted only if it is still the one archived (a newer email of the same name stays).
                if read is None or ((current := self._head(src)) is not None and _etag(current) == etag):
                    self.client.delete_object(Bucket=self.bucket, Key=src)
                return candidate
            n += 1
            candidate = dup_name(name, n)
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self.archive_prefix + candidate,
                CopySource={"Bucket": self.bucket, "Key": src},
                CopySourceIfMatch=head.etag,
                MetadataDirective="REPLACE",
                Metadata={**head.metadata, _SOURCE_ETAG_META: etag},
                ContentType=head.content_type,
            )
        except ClientError as exc:
            if read is not None and is_not_found(exc):  # moved meanwhile: as without a head (idempotent)
                return self._archive(key)
            raise  # PreconditionFailed: it changed since it was read (or looked up)
        self.client.delete_object(Bucket=self.bucket, Key=src)
        return candidate

    def read_archived(self, archived_key: str, *, max_bytes: int = MAX_EMAIL_BYTES) -> bytes:
        return self._get(self.archive_prefix + check_key(archived_key, flat=True), "archived email", max_bytes)[0]

    def delete_archived(self, archived_key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.archive_prefix + check_key(archived_key, flat=True))

    # --- announcements: S3 event notifications on an SQS queue ---------------------

    @property
    def announces(self) -> bool:
        return self.queue is not None

    def take_announced(self, limit: int) -> list[InboxObject] | None:
        if self.queue is None:
            return None
        _check_limit(limit)
        # Anything not settled since the last call comes back from SQS after its visibility timeout.
        with self._announce_lock:
            self._messages.clear()
            self._messages_of.clear()
        found: dict[str, InboxObject] = {}
        seen = 0  # bounded, so that a flood of foreign or repeated messages cannot stall a tick
        while len(found) < limit and seen < limit + _MAX_FOREIGN_MESSAGES:
            messages = self._receive(min(_SQS_MAX_MESSAGES, limit - len(found)))
            if not messages:
                break
            seen += len(messages)
            for message in messages:
                for obj in self._hold(message):
                    found.setdefault(obj.key, obj)
        return sorted(found.values(), key=lambda o: o.key)[:limit]

    def forget(self, key: str) -> None:
        settled: list[str] = []
        with self._announce_lock:
            for message_id in self._messages_of.pop(key, ()):
                message = self._messages.get(message_id)
                if message is None:
                    continue
                message.keys.discard(key)
                if not message.keys:
                    settled.append(self._messages.pop(message_id).receipt_handle)
        for receipt_handle in settled:
            self._delete_message(receipt_handle)

    def announced_backlog(self) -> int | None:
        if self.queue is None:
            return None
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        try:
            reply = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        except ClientError as exc:
            if error_code(exc) in _SQS_MISSING_QUEUE:
                raise ValueError(self._missing_queue_message()) from None
            raise
        return int((reply.get("Attributes") or {}).get("ApproximateNumberOfMessages") or 0)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError  # lazy: botocore stays off Dagster's load path

        try:
            reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=count, WaitTimeSeconds=0)
        except ClientError as exc:
            if error_code(exc) in _SQS_MISSING_QUEUE:
                raise ValueError(self._missing_queue_message()) from None
            raise
        return list(reply.get("Messages") or ())

    def _hold(self, message: dict[str, Any]) -> list[InboxObject]:
        """The objects ``message`` announces, its handle kept until they are settled; a message
        announcing none of ours is deleted at once."""
        body = str(message.get("Body", ""))
        objects, why = _announced_objects(body, self.bucket, self.prefix)
        if not objects:
            logger.warning("inbox %s: dropping an SQS message that announces no new email here (%s): %.300s",
                           self.uri, why, body)
            self._delete_message(message["ReceiptHandle"])
            return []
        message_id = str(message.get("MessageId") or message["ReceiptHandle"])
        with self._announce_lock:
            self._messages[message_id] = _Announcement(message["ReceiptHandle"], {o.key for o in objects})
            for obj in objects:
                self._messages_of.setdefault(obj.key, set()).add(message_id)
        return objects

    def _delete_message(self, receipt_handle: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # lazy: botocore stays off Dagster's load path

        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle)
        except (BotoCoreError, ClientError) as exc:  # SQS delivers it again; taking it twice is harmless
            logger.warning("inbox %s: could not delete an SQS message (it will come back): %s", self.uri, exc)


def _etag(head: dict[str, Any]) -> str:
    """The ETag of a HeadObject response, unquoted."""
    return str(head.get("ETag", "")).strip('"')


def _announced_objects(body: str, bucket: str, prefix: str) -> tuple[list[InboxObject], str]:
    """The new pending objects an S3 event notification announces, or none and why."""
    try:
        event = json.loads(body)
    except ValueError:
        return [], "not JSON"
    if isinstance(event, dict) and event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
        return _announced_objects(event["Message"], bucket, prefix)  # S3 -> SNS -> SQS, raw delivery off
    if not isinstance(event, dict):
        return [], "not an S3 event notification"
    if event.get("Event") == "s3:TestEvent":
        return [], "s3:TestEvent, sent when the notification was configured"
    records = event.get("Records")
    if not isinstance(records, list):
        return [], "not an S3 event notification"
    objects = [obj for obj in (_announced_object(r, bucket, prefix) for r in records) if obj is not None]
    if objects:
        return objects, ""
    seen = ", ".join(_describe(r) for r in records[:5]) or "no records"
    return [], f"no ObjectCreated event for an object directly under s3://{bucket}/{prefix}; got {seen}"


def _describe(record: Any) -> str:
    """``ObjectCreated:Copy s3://bucket/key`` for a log line."""
    if not isinstance(record, dict):
        return "a malformed record"
    s3 = _field(record, "s3")
    key = unquote_plus(str(_field(s3, "object").get("key", "")))
    return f"{record.get('eventName', '?')} s3://{_field(s3, 'bucket').get('name', '?')}/{key}"


def _field(value: dict[str, Any], name: str) -> dict[str, Any]:
    """``value[name]`` when it is a JSON object, else an empty one (events come from outside)."""
    inner = value.get(name)
    return inner if isinstance(inner, dict) else {}


def _announced_object(record: Any, bucket: str, prefix: str) -> InboxObject | None:
    """The pending object one event record announces: created, in this bucket, directly under the prefix."""
    if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
        return None
    s3 = _field(record, "s3")
    obj = _field(s3, "object")
    if _field(s3, "bucket").get("name") != bucket or not isinstance(obj.get("key"), str):
        return None
    full_key = unquote_plus(obj["key"])  # event keys are URL-encoded, spaces as "+"
    name = full_key[len(prefix) :]
    if not full_key.startswith(prefix) or not name or "/" in name or _ignored_name(name):
        return None
    try:
        size = int(obj.get("size") or 0)
    except (TypeError, ValueError):
        size = 0
    return InboxObject(
        key=name, size=size, last_modified=_event_time(record.get("eventTime")), version=str(obj.get("eTag", ""))
    )


def _event_time(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return datetime.now(timezone.utc)


def _is_url(queue: str) -> bool:
    return queue.startswith(("https://", "http://"))


def check_queue(queue: str) -> str:
    """An SQS queue URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``) or a queue name."""
    queue = queue.strip()
    if not queue:
        raise ValueError("the SQS queue is empty: give its URL or its name")
    if _is_url(queue):
        parts = urlsplit(queue)
        segments = [s for s in parts.path.split("/") if s]
        if not parts.netloc or len(segments) != 2 or not _SQS_QUEUE_NAME.fullmatch(segments[-1]):
            raise ValueError(
                f"{queue!r} is not an SQS queue URL: expected https://sqs.<region>.amazonaws.com/<account>/<name>"
            )
        return queue
    if queue.startswith("arn:"):
        raise ValueError(f"{queue!r} is an ARN: give the SQS queue's URL or its name")
    if not _SQS_QUEUE_NAME.fullmatch(queue):
        raise ValueError(
            f"{queue!r} is neither an SQS queue URL nor a queue name "
            "(letters, digits, '-' and '_', at most 80 characters)"
        )
    return queue


# --- configuration --------------------------------------------------------------


def inbox_from_uri(uri: str, *, region: str | None = None) -> Inbox:
    """``s3://bucket/prefix/[?archive=other/][&queue=<SQS queue URL or name>]``, ``file:///path``
    or a folder path; ``region``: the AWS region of an S3 inbox when boto3's configuration names none."""
    text = (uri or "").strip()
    if not text:
        raise ValueError("INBOX_PIPELINE_INBOX is empty: give s3://bucket/prefix/ or a folder path")
    if not looks_like_uri(text):
        return FolderInbox(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise ValueError(f"inbox {uri!r}: file:// URIs must name a local path (file:///path)")
        return FolderInbox(parts.path)
    if parts.scheme != "s3":
        raise ValueError(f"inbox {uri!r}: unsupported scheme {parts.scheme!r}; use s3://bucket/prefix/ or a folder path")
    if not parts.netloc:
        raise ValueError(f"inbox {uri!r}: no bucket name; use s3://bucket/prefix/")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"archive", "queue"}
    if unknown:
        raise ValueError(
            f"inbox {uri!r}: unknown option(s) {sorted(unknown)}; known are ?archive=prefix/ and "
            "?queue=<SQS queue URL or name>"
        )
    archive = query.get("archive", [""])[-1] or None
    queue = query["queue"][-1] if "queue" in query else None
    try:
        return S3Inbox(parts.netloc, parts.path, archive_prefix=archive, queue=queue, region=region)
    except ValueError as exc:
        raise ValueError(f"inbox {uri!r}: {exc}") from None
