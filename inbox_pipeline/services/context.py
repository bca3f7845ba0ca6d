"""What every step works with: the database, the inbox, storage, the mailer and options."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inbox_pipeline.config import NOTICE_GRACE_MINUTES, SIZE_BUDGET_BYTES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from inbox_pipeline.config import Settings
    from inbox_pipeline.seams.inbox import Inbox
    from inbox_pipeline.seams.storage import Storage

LINK_EXPIRES_SECONDS = 7 * 24 * 3600  # the longest an S3 presigned link may live
DEFAULT_NOTICE_GRACE = timedelta(minutes=NOTICE_GRACE_MINUTES)
PARSED_KEPT = 8  # parsed emails a Pipeline keeps for the steps after parsing
# Raw emails a Pipeline keeps from taking them out of the inbox to parsing them: each under
# RAW_KEPT_EACH, at most RAW_KEPT_TOTAL bytes together (a batch takes up to 100 emails at once).
RAW_KEPT_EACH = 1024 * 1024
RAW_KEPT_TOTAL = 64 * 1024 * 1024


class PermanentStepError(Exception):
    """Retrying cannot help: the email is recorded as failed with this reason at once."""


@dataclass(frozen=True)
class PipelineOptions:
    """What the steps need from ``Settings`` besides the seams; built from them by ``from_settings``."""

    sender: str = "kindle@localhost"
    fetch_images: bool = True
    epubcheck: bool = False
    size_budget_bytes: int = SIZE_BUDGET_BYTES
    image_cache_dir: Path | None = None
    link_expires_seconds: int = LINK_EXPIRES_SECONDS
    trusted_authserv_ids: tuple[str, ...] = ()  # whose Authentication-Results count (Amazon's notices)
    send_rate: float = 0.0  # messages a second for every mailer (0: none; SES: its account's)
    send_daily_quota: int = 0  # at most this many in 24 hours (0: none; SES: its account's)
    operator_email: str | None = None  # where operator alerts go; None: logged only
    notice_grace: timedelta = DEFAULT_NOTICE_GRACE  # a "could not deliver" notice waits this long
    aws_region: str | None = None  # for the S3/SES/SQS clients; None: boto3's own configuration

    @classmethod
    def from_settings(cls, settings: "Settings") -> "PipelineOptions":
        return cls(
            **{name: getattr(settings, name) for name in _AS_SET},
            image_cache_dir=settings.data_dir / "image-cache",
            notice_grace=timedelta(minutes=settings.notice_grace_minutes),
        )


# The options that are settings of the same name, taken as they are.
_AS_SET = (
    "sender", "fetch_images", "epubcheck", "size_budget_bytes", "trusted_authserv_ids", "send_rate",
    "send_daily_quota", "operator_email", "aws_region",
)


@dataclass
class Pipeline:
    """The seams one run works with, and the clients behind them, which it owns.

    Made by the ``pipeline`` Dagster resource for each run or sensor tick (and closed after it),
    or by ``Pipeline.from_settings`` for the CLI (``with Pipeline.from_settings(s) as p:``). Its
    database engine and seams are made on first use, so a tick that never touches storage pays
    for no S3 client (about 0.3 s of CPU each: botocore loads its endpoint rules); a run makes
    each once for all its steps. ``parsed`` keeps the emails parsed in this run, so the steps
    after parsing read the email once; ``raw`` the bytes read when they were taken from the
    inbox, so parsing them does not read the archived copy again.
    """

    database_url: str
    inbox_uri: str
    storage_uri: str
    mailer_uri: str
    options: PipelineOptions = field(default_factory=PipelineOptions)
    parsed: "OrderedDict[str, Any]" = field(default_factory=OrderedDict, repr=False)
    raw: "OrderedDict[str, bytes]" = field(default_factory=OrderedDict, repr=False)
    _engine: Any = field(default=None, repr=False)
    _sessions: Any = field(default=None, repr=False)
    _inbox: Any = field(default=None, repr=False)
    _storage: Any = field(default=None, repr=False)
    _mailer: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Pipeline":
        """A ``Pipeline`` for ``Settings`` (the CLI); the Dagster resource makes its own from its fields."""
        return cls(
            database_url=settings.database_url,
            inbox_uri=settings.inbox,
            storage_uri=settings.storage,
            mailer_uri=settings.mailer,
            options=PipelineOptions.from_settings(settings),
        )

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled database connections; the seams' clients go with the object."""
        with self._lock:
            engine, self._engine, self._sessions = self._engine, None, None
            self.parsed.clear()
            self.raw.clear()
        if engine is not None:
            engine.dispose()

    def parsed_email(self, storage_key: str) -> Any:
        """The email parsed from ``storage_key`` earlier in this run, or None."""
        with self._lock:
            if storage_key in self.parsed:
                self.parsed.move_to_end(storage_key)
                return self.parsed[storage_key]
        return None

    def keep_parsed(self, storage_key: str, email: Any) -> None:
        """Keep a parsed email for the run's later steps (the last few: a batch has up to 100)."""
        with self._lock:
            self.parsed[storage_key] = email
            while len(self.parsed) > PARSED_KEPT:
                self.parsed.popitem(last=False)

    def keep_raw(self, storage_key: str, data: bytes) -> None:
        """Keep the bytes of the email archived as ``storage_key``, just read, for parsing it later
        in this run (small ones only, the oldest dropped past ``RAW_KEPT_TOTAL``)."""
        if len(data) > RAW_KEPT_EACH:
            return
        with self._lock:
            self.raw.pop(storage_key, None)
            self.raw[storage_key] = data
            while sum(map(len, self.raw.values())) > RAW_KEPT_TOTAL:
                self.raw.popitem(last=False)

    def take_raw(self, storage_key: str) -> bytes | None:
        """The bytes kept by ``keep_raw`` for ``storage_key`` (given once: parsing keeps the result), or None."""
        with self._lock:
            return self.raw.pop(storage_key, None)

    @property
    def sessions(self) -> "sessionmaker[Session]":
        with self._lock:
            if self._sessions is None:
                from inbox_pipeline.db.engine import make_engine, session_factory

                self._engine = make_engine(self.database_url)
                self._sessions = session_factory(self._engine)
            return self._sessions

    @property
    def inbox(self) -> "Inbox":
        if self._inbox is None:
            from inbox_pipeline.seams.inbox import inbox_from_uri

            self._inbox = inbox_from_uri(self.inbox_uri, region=self.options.aws_region)
        return self._inbox

    @property
    def storage(self) -> "Storage":
        if self._storage is None:
            from inbox_pipeline.seams.storage import storage_from_uri

            self._storage = _configured(
                "INBOX_PIPELINE_STORAGE", storage_from_uri, self.storage_uri, region=self.options.aws_region
            )
        return self._storage

    @property
    def mailer(self) -> Any:
        """The configured mailer; behind the shared send-rate limiter when there is a rate to keep
        (SES's account, or ``send_rate``): services/pacing.py."""
        if self._mailer is None:
            from inbox_pipeline.seams.mailer import SesMailer, mailer_from_uri

            mailer = _configured(
                "INBOX_PIPELINE_MAILER", mailer_from_uri, self.mailer_uri, self.options.sender,
                region=self.options.aws_region,
            )
            if isinstance(mailer, SesMailer) or self.options.send_rate > 0:
                from inbox_pipeline.services.pacing import CachedPace, PacedMailer

                rate, daily = self.options.send_rate, self.options.send_daily_quota
                mailer = PacedMailer(mailer, self.sessions, CachedPace(mailer, rate=rate, daily=daily))
            self._mailer = mailer
        return self._mailer


def _configured(variable: str, make, *args, **kwargs):
    """A seam from its URI; a URI that cannot work is our configuration's fault, not an email's."""
    from inbox_pipeline.services.holds import UnusableConfiguration

    try:
        return make(*args, **kwargs)
    except ValueError as exc:
        raise UnusableConfiguration(f"{variable} cannot work: {exc}") from exc


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
