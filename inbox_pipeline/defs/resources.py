"""Resources: the app database, the inbox, storage and the mailer, chosen by environment variables.

Values that may hold secrets (the database URL, an SMTP URL with a password)
are passed as ``dg.EnvVar`` when the variable is set, so the Dagster UI shows
the variable's name, never its value.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg

from inbox_pipeline.config import PREFIX

if TYPE_CHECKING:
    from inbox_pipeline.config import Settings
    from inbox_pipeline.services.context import Pipeline


class DatabaseResource(dg.ConfigurableResource):
    """The app database: a SQLAlchemy URL (PostgreSQL, or SQLite for one machine)."""

    url: str

    def sessions(self):
        from inbox_pipeline.services.context import sessions_for

        return sessions_for(self.url)


class InboxResource(dg.ConfigurableResource):
    """Where raw inbound emails land: ``s3://bucket/prefix/`` (SES receipt rule) or a folder."""

    uri: str
    # authserv-ids of the receiving system whose Authentication-Results are believed (Amazon's notices)
    trusted_authserv_ids: list[str] = []

    def inbox(self):
        from inbox_pipeline.seams.inbox import inbox_from_uri

        return inbox_from_uri(self.uri)


class StorageResource(dg.ConfigurableResource):
    """Where EPUBs are kept: ``s3://bucket/prefix/`` or a folder."""

    uri: str

    def storage(self):
        from inbox_pipeline.seams.storage import storage_from_uri

        return storage_from_uri(self.uri)


class MailerResource(dg.ConfigurableResource):
    """How mail goes out: ``ses``, ``smtp://...``/``smtps://...`` or ``outbox:<folder>``, from one sender."""

    uri: str
    sender: str
    send_rate: float = 0.0  # messages a second shared by all runs (0: none; SES: its account's)
    send_daily_quota: int = 0

    def mailer(self):
        from inbox_pipeline.seams.mailer import mailer_from_uri

        return mailer_from_uri(self.uri, self.sender)


class ProcessingResource(dg.ConfigurableResource):
    """How emails are converted and checked."""

    fetch_images: bool = True
    epubcheck: bool = False
    size_budget_bytes: int = 29 * 1024 * 1024
    image_cache_dir: str = ""


class PipelineResource(dg.ConfigurableResource):
    """The four seams and the options together, as the pipeline steps take them."""

    database: DatabaseResource
    inbox: InboxResource
    storage: StorageResource
    mailer: MailerResource
    processing: ProcessingResource

    def pipeline(self) -> "Pipeline":
        """The process's ``Pipeline`` for this configuration (made once: its seams hold clients)."""
        from pathlib import Path

        from inbox_pipeline.services.context import PipelineOptions, pipeline_for

        return pipeline_for(
            database_url=self.database.url,
            inbox_uri=self.inbox.uri,
            storage_uri=self.storage.uri,
            mailer_uri=self.mailer.uri,
            options=PipelineOptions(
                sender=self.mailer.sender,
                fetch_images=self.processing.fetch_images,
                epubcheck=self.processing.epubcheck,
                size_budget_bytes=self.processing.size_budget_bytes,
                image_cache_dir=Path(self.processing.image_cache_dir) if self.processing.image_cache_dir else None,
                trusted_authserv_ids=tuple(self.inbox.trusted_authserv_ids),
                send_rate=self.mailer.send_rate,
                send_daily_quota=self.mailer.send_daily_quota,
            ),
        )


def _env_or(name: str, default: str) -> str:
    """``dg.EnvVar(name)`` when the variable is set (its value stays out of the UI), else the default."""
    return dg.EnvVar(PREFIX + name) if os.environ.get(PREFIX + name, "").strip() else default


def build_resources(settings: "Settings") -> dict[str, dg.ConfigurableResource]:
    """The resources for a deployment described by ``settings`` (from the environment)."""
    database = DatabaseResource(url=_env_or("DATABASE_URL", settings.database_url))
    inbox = InboxResource(
        uri=_env_or("INBOX", settings.inbox), trusted_authserv_ids=list(settings.trusted_authserv_ids)
    )
    storage = StorageResource(uri=_env_or("STORAGE", settings.storage))
    mailer = MailerResource(
        uri=_env_or("MAILER", settings.mailer),
        sender=settings.sender,
        send_rate=settings.send_rate,
        send_daily_quota=settings.send_daily_quota,
    )
    processing = ProcessingResource(
        fetch_images=settings.fetch_images,
        epubcheck=settings.epubcheck,
        size_budget_bytes=settings.size_budget_bytes,
        image_cache_dir=str(settings.data_dir / "image-cache"),
    )
    return {
        "database": database,
        "inbox": inbox,
        "storage": storage,
        "mailer": mailer,
        "processing": processing,
        "pipeline": PipelineResource(
            database=database, inbox=inbox, storage=storage, mailer=mailer, processing=processing
        ),
    }
