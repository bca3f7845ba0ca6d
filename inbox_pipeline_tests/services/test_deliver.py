"""Sending a stored EPUB: the Kindle gets exactly what was stored, handed over in memory within a run.

Real S3 (moto's server) for the inbox and the books, the app database, the outbox mailer.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email import policy
from email.parser import BytesParser

from sqlalchemy import select

from inbox_pipeline.db.models import Newsletter
from inbox_pipeline_tests.helpers import epub_chapter_texts
from inbox_pipeline_tests.services.digest_world import World, outbox_messages

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
IVY = "ivy@readers.example"


def test_the_kindle_gets_the_stored_epub_without_the_run_reading_it_back(tmp_path, database_url, s3_bucket) -> None:
    world = World.create(
        tmp_path, database_url, f"outbox:{tmp_path / 'outbox'}",
        inbox_uri=f"s3://{s3_bucket}/incoming/", storage_uri=f"s3://{s3_bucket}/books/",
    )
    try:
        world.add_user(IVY, timezone="UTC", delivery="instant", kindle="ivy@kindle.example")
        storage = world.pipeline.storage
        reads: list[str] = []
        storage.client.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: reads.append(params["Key"]))

        arrival = world.arrive(IVY, NOW, expect="sent")

        with world.pipeline.sessions() as session:
            epub_key = session.scalar(select(Newsletter.epub_key).where(Newsletter.id == world.newsletter_ids[arrival.number]))
        (sent,) = outbox_messages(tmp_path / "outbox")
        message = BytesParser(policy=policy.default).parsebytes(sent)
        (attachment,) = [part for part in message.iter_attachments() if part.get_filename().endswith(".epub")]
        assert not [key for key in reads if key.endswith(epub_key)]  # the send had it from the store, in memory
        stored = storage.get(epub_key)
        assert attachment.get_content() == stored and arrival.marker in " ".join(epub_chapter_texts(stored))
        assert world.pipeline.take_stored(epub_key) is None  # handed over once: a retried send reads storage
    finally:
        world.close()
