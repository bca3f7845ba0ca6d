"""What every step works with: the database, the inbox, storage, the mailer and options."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from inbox_pipeline.config import Settings
    from inbox_pipeline.seams.inbox import Inbox
    from inbox_pipeline.seams.storage import Storage

LINK_EXPIRES_SECONDS = 7 * 24 * 3600  # the longest an S3 presigned link may live


class PermanentStepError(Exception):
    """Retrying cannot help: the email is recorded as failed with this reason at once."""


@dataclass(frozen=True)
class PipelineOptions:
    sender: str = "kindle@localhost"
    fetch_images: bool = True
    epubcheck: bool = False
    size_budget_bytes: int = 29 * 1024 * 1024
    image_cache_dir: Path | None = None
    link_expires_seconds: int = LINK_EXPIRES_SECONDS
    trusted_authserv_ids: tuple[str, ...] = ()  # whose Authentication-Results count (Amazon's notices)
    send_rate: float = 0.0  # messages a second for every mailer (0: none; SES: its account's)
    send_daily_quota: int = 0  # at most this many in 24 hours (0: none; SES: its account's)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "PipelineOptions":
        return cls(
            sender=settings.sender,
            fetch_images=settings.fetch_images,
            epubcheck=settings.epubcheck,
            size_budget_bytes=settings.size_budget_bytes,
            image_cache_dir=settings.data_dir / "image-cache",
            trusted_authserv_ids=settings.trusted_authserv_ids,
            send_rate=settings.send_rate,
            send_daily_quota=settings.send_daily_quota,
        )


_engines: dict[str, Any] = {}
_engines_lock = threading.Lock()


def sessions_for(database_url: str) -> "sessionmaker[Session]":
    """One engine per URL and process (pooled connections), sessions from it."""
    from inbox_pipeline.db.engine import make_engine, session_factory

    with _engines_lock:
        engine = _engines.get(database_url)
        if engine is None:
            engine = _engines[database_url] = make_engine(database_url)
    return session_factory(engine)


def dispose_engines() -> None:
    """Close pooled connections (tests dropping their database call this)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@dataclass
class Pipeline:
    """The seams one run works with; built from Settings or by the Dagster resources."""

    database_url: str
    inbox_uri: str
    storage_uri: str
    mailer_uri: str
    options: PipelineOptions = field(default_factory=PipelineOptions)
    _inbox: Any = field(default=None, repr=False)
    _storage: Any = field(default=None, repr=False)
    _mailer: Any = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Pipeline":
        return cls(
            database_url=settings.database_url,
            inbox_uri=settings.inbox,
            storage_uri=settings.storage,
            mailer_uri=settings.mailer,
            options=PipelineOptions.from_settings(settings),
        )

    @property
    def sessions(self) -> "sessionmaker[Session]":
        return sessions_for(self.database_url)

    @property
    def inbox(self) -> "Inbox":
        if self._inbox is None:
            from inbox_pipeline.seams.inbox import inbox_from_uri

            self._inbox = inbox_from_uri(self.inbox_uri)
        return self._inbox

    @property
    def storage(self) -> "Storage":
        if self._storage is None:
            from inbox_pipeline.seams.storage import storage_from_uri

            self._storage = _configured("INBOX_PIPELINE_STORAGE", storage_from_uri, self.storage_uri)
        return self._storage

    @property
    def mailer(self) -> Any:
        """The configured mailer; behind the shared send-rate limiter when there is a rate to keep
        (SES's account, or ``send_rate``): services/pacing.py."""
        if self._mailer is None:
            from inbox_pipeline.seams.mailer import SesMailer, mailer_from_uri

            mailer = _configured("INBOX_PIPELINE_MAILER", mailer_from_uri, self.mailer_uri, self.options.sender)
            if isinstance(mailer, SesMailer) or self.options.send_rate > 0:
                from inbox_pipeline.services.pacing import CachedPace, PacedMailer

                rate, daily = self.options.send_rate, self.options.send_daily_quota
                mailer = PacedMailer(mailer, self.sessions, CachedPace(mailer, rate=rate, daily=daily))
            self._mailer = mailer
        return self._mailer


def _configured(variable: str, make, *args):
    """A seam from its URI; a URI that cannot work is our configuration's fault, not an email's."""
    from inbox_pipeline.services.holds import UnusableConfiguration

    try:
        return make(*args)
    except ValueError as exc:
        raise UnusableConfiguration(f"{variable} cannot work: {exc}") from exc


_pipelines: "OrderedDict[tuple, Pipeline]" = OrderedDict()
_pipelines_lock = threading.Lock()
_MAX_PIPELINES = 8


def pipeline_for(
    database_url: str, inbox_uri: str, storage_uri: str, mailer_uri: str, options: PipelineOptions
) -> Pipeline:
    """One ``Pipeline`` per configuration and process (as ``sessions_for`` keeps one engine per URL).

    Its seams hold boto3 clients, and making one costs about 0.3 s of CPU (botocore loads its
    endpoint rules): one per op made a batch of 500 emails spend minutes on it. The S3 inbox also
    keeps the SQS announcements a sensor tick took until their objects are archived. The key
    includes boto3's endpoint variables, which choose the server the clients talk to.
    """
    import os

    key = (
        database_url,
        inbox_uri,
        storage_uri,
        mailer_uri,
        options,
        os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get("AWS_MAX_ATTEMPTS"),
    )
    with _pipelines_lock:
        pipeline = _pipelines.get(key)
        if pipeline is None:
            pipeline = _pipelines[key] = Pipeline(database_url, inbox_uri, storage_uri, mailer_uri, options)
            while len(_pipelines) > _MAX_PIPELINES:
                _pipelines.popitem(last=False)
        else:
            _pipelines.move_to_end(key)
        return pipeline


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
