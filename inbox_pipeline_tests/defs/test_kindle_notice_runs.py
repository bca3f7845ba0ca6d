"""Amazon's notice arrives through the inbox at our sender address and is handled by the email jobs.

The real Definitions, inbox sensor and jobs on a Dagster test instance, an S3 inbox on the moto
server (mail as SES stores it) and the aiosmtpd sink. What is asserted is what arrived there, the
rows, the run's outcome tag and the ``kindle_delivery`` record.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from inbox_pipeline.defs.email.ops import TAG_OUTCOME
from inbox_pipeline_tests.defs.harness import add_reader, deployment
from inbox_pipeline_tests.defs.test_one_path import orchard_newsletter
from inbox_pipeline_tests.defs.test_pipeline import by_recipient, epub_attachment
from inbox_pipeline_tests.fixtures.kindle_notices import E999_TEXT, kindle_notice
from inbox_pipeline_tests.helpers import via_ses

KINDLE = "alice_7kq2x@kindle.example"


@pytest.mark.parametrize("batch_size", ["1", "20"], ids=["process_email", "process_inbox_batch"])
def test_a_notice_at_the_sender_address_gets_one_safe_mode_resend(
    monkeypatch, tmp_path: Path, smtp_sink, s3_bucket, batch_size
) -> None:
    settings = dict(
        MAILER=smtp_sink.url, BATCH_SIZE=batch_size, INBOX=f"s3://{s3_bucket}/incoming/",
        STORAGE=f"s3://{s3_bucket}/books/",
    )
    with deployment(monkeypatch, tmp_path, **settings) as dep:
        sender = dep.settings.sender
        assert dep.settings.trusted_authserv_ids == ("amazonses.com",)  # an S3 inbox: SES's own verdicts
        alice = add_reader(dep, "alice@example.org", kindle=KINDLE)
        dep.pipeline().inbox.put("orchard.eml", via_ses(orchard_newsletter(alice), alice))
        assert all(run.success for run in dep.drain())
        (book,) = by_recipient(smtp_sink)[KINDLE]
        name, _ = epub_attachment(book)

        forged = kindle_notice(to=sender, text=E999_TEXT.format(document=name), auth="fail")
        dep.pipeline().inbox.put("forged.eml", forged)
        dep.pipeline().inbox.put("notice.eml", kindle_notice(to=sender, text=E999_TEXT.format(document=name)))
        runs = dep.drain()
        assert runs and all(run.success for run in runs)

        books = by_recipient(smtp_sink)[KINDLE]
        assert len(books) == 2  # the original and one safe-mode resend; the forged notice did nothing
        safe_name, _ = epub_attachment(books[1])
        assert safe_name != name
        assert not by_recipient(smtp_sink).get("alice@example.org")  # nothing to tell her yet
        states = sorted(state for _, state, _, _ in dep.rows())
        assert states == ["delivered", "kindle_notice", "kindle_notice"]
        reasons = [reason for _, state, reason, _ in dep.rows() if state == "kindle_notice"]
        assert any(r.startswith("not believed:") for r in reasons)
        assert any("safe mode resend" in r for r in reasons)
        records = dep.instance.fetch_materializations(dg.AssetKey("kindle_delivery"), limit=10).records
        rejected = [r.asset_materialization.metadata for r in records if r.asset_materialization.metadata["status"].value == "rejected"]
        assert [(m["cause"].value, m["action"].value) for m in rejected] == [("conversion", "safe_mode_resend")]
        if batch_size == "1":
            outcomes = {run.dagster_run.tags.get(TAG_OUTCOME) for run in runs}
            assert {"kindle_notice:ignored", "kindle_notice:safe_mode_resend"} <= outcomes
