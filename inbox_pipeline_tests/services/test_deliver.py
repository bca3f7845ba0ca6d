"""Sending a stored EPUB: the Kindle gets exactly what was stored; a worker hands it over in memory.

Real S3 (moto's server) for the inbox and the books, the app database, the outbox mailer. The stages
run as a worker run runs them: one in-memory work area per email, from cleaning to the send.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email import policy
from email.parser import BytesParser

from inbox_pipeline_tests.helpers import epub_chapter_texts
from inbox_pipeline_tests.services.digest_world import World, outbox_messages

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
IVY = "ivy@readers.example"


def test_the_kindle_gets_the_stored_epub_without_the_worker_reading_it_back(tmp_path, database_url, s3_bucket) -> None:
    from inbox_pipeline.services.deliver import deliver_epub
    from inbox_pipeline.services.process import (
        WORK_FILES,
        WorkArea,
        build_newsletter_epub,
        clean_newsletter,
        embed_images,
        store_newsletter_epub,
        work_key,
    )
    from inbox_pipeline.services.route import record_newsletter

    world = World.create(
        tmp_path, database_url, f"outbox:{tmp_path / 'outbox'}",
        inbox_uri=f"s3://{s3_bucket}/incoming/", storage_uri=f"s3://{s3_bucket}/books/",
    )
    try:
        world.add_user(IVY, timezone="UTC", delivery="instant", kindle="ivy@kindle.example")
        p = world.pipeline
        reads: list[str] = []
        p.storage.client.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: reads.append(params["Key"]))
        arrival, raw = world.mime(IVY, NOW)
        _, parsed, routed = world.ingest(raw, NOW)
        ref, reason = record_newsletter(p, parsed, routed)
        assert ref is not None, reason

        work = WorkArea.in_memory()  # as the worker run's _prepare
        epub = store_newsletter_epub(p, build_newsletter_epub(p, embed_images(p, clean_newsletter(p, ref, work), work), work), work)
        outcome = deliver_epub(p, epub, work)

        assert outcome.status == "sent" and outcome.recipient == "ivy@kindle.example"
        (sent,) = outbox_messages(tmp_path / "outbox")
        message = BytesParser(policy=policy.default).parsebytes(sent)
        (attachment,) = [part for part in message.iter_attachments() if part.get_filename().endswith(".epub")]
        assert not [key for key in reads if key.endswith(epub.key)]  # the send had it from the work area, in memory
        stored = p.storage.get(epub.key)
        assert attachment.get_content() == stored and arrival.marker in " ".join(epub_chapter_texts(stored))
        # What the work area still holds is that EPUB alone: the stages' intermediate files are gone.
        assert work.get(epub.key) == stored
        assert not [name for name in WORK_FILES if work.exists(work_key(ref.newsletter_id, name))]
    finally:
        world.close()
