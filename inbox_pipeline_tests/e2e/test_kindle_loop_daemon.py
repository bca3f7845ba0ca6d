"""Closing the loop with Amazon through the real daemon: S3 (moto) for the inbox, PostgreSQL, an SMTP sink.

Amazon's notices are written in their real shape, as SES stores them (its Received line naming the
sender address, its Authentication-Results on top), and land in the same inbox prefix as the
newsletters. What is asserted is what a person would see: what reached each Kindle and each user's
own mailbox (and how often), the rows' states and reasons, the runs' outcome tags.
"""

from __future__ import annotations

import re
import subprocess
import uuid
import zipfile
from collections import Counter
from email.message import EmailMessage
from io import BytesIO

import boto3
import dagster as dg
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.e2e.conftest import ROOT, SENDER, Daemon, seed, wait_for
from inbox_pipeline_tests.e2e.test_daemon import finished_runs, ledger, open_instance, rows
from inbox_pipeline_tests.fixtures.kindle_notices import E999_TEXT, NOT_APPROVED_TEXT, kindle_notice
from inbox_pipeline_tests.helpers import noise_jpeg, via_ses

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ALICE, BOB = "alice@example.org", "bob@example.org"
ALICE_KINDLE, BOB_KINDLE = "alice_7kq2x@kindle.example", "bob_m3v9t@kindle.example"
WEB_LINK = "https://example-0.substack.com/p/x?view=browser"  # mails.article_html's "View in browser" (n=0)
TOKENED = re.compile(r"[a-z0-9][a-z0-9.-]{0,50}\.k-([a-z2-7]{16})\.epub")


def illustrated_newsletter(to: str) -> bytes:
    """A Substack-shaped issue with a photo inline (``cid:``), so the safe-mode book's missing image shows."""
    topic, line = mails.TOPICS[0]
    html = mails.article_html(0, topic, line, "substack").replace(
        "</h2>", '</h2><p><img src="cid:harbour@news" alt="the harbour at dawn" width="400"></p>', 1
    )
    msg = EmailMessage()
    msg["From"] = '"Ferries Weekly" <letters@ferries-substack.example>'
    msg["To"] = to
    msg["Subject"] = mails.subject(0)
    msg["Date"] = "Mon, 02 Mar 2026 06:00:00 +0000"
    msg["Message-ID"] = "<issue-0-ferries@substack.example>"
    msg.set_content(f"{topic} #0: {line}.")
    msg.add_alternative(html, subtype="html")
    msg.get_payload()[1].add_related(noise_jpeg(400, 3), "image", "jpeg", cid="<harbour@news>")
    return via_ses(msg.as_bytes(), to)


def epub_of(message) -> tuple[str, str]:
    """(the attachment's file name, the book's text: its XHTML and OPF)."""
    (part,) = [a for a in message.iter_attachments() if a.get_content_type() == "application/epub+zip"]
    with zipfile.ZipFile(BytesIO(part.get_content())) as z:
        text = " ".join(z.read(n).decode("utf-8", "replace") for n in z.namelist() if n.endswith((".xhtml", ".opf")))
    return part.get_filename(), text


def received(sink, to: str) -> list:
    return [p for m, p in zip(sink.messages, sink.parsed()) if to in m["to"]]


def world(app_db: str):
    """Every ledger row and user notice, and the Amazon notices' rows: what a forged notice must not change."""
    from sqlalchemy import select

    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.models import KindleDevice, Notification

    engine = make_engine(app_db)
    try:
        with session_factory(engine)() as session:
            notices = [(n.user_id, n.kind, n.dedup_key, n.status) for n in session.scalars(select(Notification).order_by(Notification.id))]
            devices = [(d.email, d.check_state) for d in session.scalars(select(KindleDevice).order_by(KindleDevice.id))]
    finally:
        engine.dispose()
    deliveries = [(d.id, d.recipient, d.variant, d.status, d.rejection_cause) for d in ledger(app_db)]
    return deliveries, notices, devices


def notice_rows(app_db: str) -> list[tuple[int, bool, str, int | None]]:
    from sqlalchemy import select

    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.models import KindleNotice

    engine = make_engine(app_db)
    try:
        with session_factory(engine)() as session:
            return [
                (n.inbound_email_id, n.authentic, n.action, n.delivery_id)
                for n in session.scalars(select(KindleNotice).order_by(KindleNotice.id))
            ]
    finally:
        engine.dispose()


def test_amazons_notices_through_the_daemon_resend_once_tell_once_and_ignore_forgeries(
    tmp_path, postgres_url, daemon_env, moto_server, aws_env, s3_bucket, smtp_sink
) -> None:
    home, env = daemon_env(
        smtp_sink.url, EPUBCHECK="false", BATCH_SIZE="1",  # one run per email: each notice's run carries its outcome tag
    )
    addresses = seed(postgres_url, [{"email": ALICE, "kindle": ALICE_KINDLE}, {"email": BOB, "kindle": BOB_KINDLE}])
    s3 = boto3.client("s3", endpoint_url=moto_server)

    def arrives(data: bytes) -> None:
        s3.put_object(Bucket=s3_bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=data)

    def settled(count: int, what: str) -> None:
        """``count`` inbound emails registered, none still on its way, every run finished."""
        wait_for(
            lambda: len(r := rows(postgres_url)) == count
            and all(state in ("delivered", "kindle_notice") for _, state, _, _ in r),
            timeout=180, interval=1, what=what,
        )
        wait_for(lambda: finished_runs(instance), timeout=60, what="every run to finish")

    arrives(illustrated_newsletter(addresses[ALICE]))
    arrives(mails.newsletter(1, addresses[BOB]))
    daemon = Daemon(env, tmp_path / "daemon.log")
    instance = open_instance(home)
    try:
        try:
            # 1. Both newsletters delivered; each book carries its delivery's token.
            settled(2, "both newsletters delivered")
            (original,) = received(smtp_sink, ALICE_KINDLE)
            name, text = epub_of(original)
            assert "<img" in text  # the photo is in the standard book
            (alice_token,) = TOKENED.fullmatch(name).groups()
            assert f"kindle.{alice_token}." in original["Message-ID"]
            bob_name, _ = epub_of(received(smtp_sink, BOB_KINDLE)[0])
            before = world(postgres_url), len(smtp_sink.messages)

            # 2. Forged notices: Amazon's words with failing authentication (one with a "pass" verdict
            # written below the receiver's); alice's token in bob's book's name. Nothing changes.
            arrives(kindle_notice(to=SENDER, text=E999_TEXT.format(document=name), auth="fail"))
            bob_title_alice_token = bob_name.replace(TOKENED.fullmatch(bob_name).group(1), alice_token)
            arrives(
                kindle_notice(
                    to=SENDER, text=E999_TEXT.format(document=bob_title_alice_token), auth="fail", forged_auth_below=True
                )
            )
            settled(4, "the forged notices recorded")
            assert (world(postgres_url), len(smtp_sink.messages)) == before
            assert [(authentic, action) for _, authentic, action, _ in notice_rows(postgres_url)] == [
                (False, "ignored"), (False, "ignored")
            ]
            assert [r for _, s, r, _ in rows(postgres_url) if s == "kindle_notice"][0].startswith("not believed:")

            # 3. Amazon's genuine E999 for alice's book: one safe-mode resend; bob's "not approved":
            # the approval instructions to bob, no resend until he says it is done.
            arrives(kindle_notice(to=SENDER, text=E999_TEXT.format(document=name)))
            arrives(kindle_notice(to=SENDER, text=NOT_APPROVED_TEXT.format(sender=SENDER, document=bob_name)))
            settled(6, "the genuine notices acted on")
            books = received(smtp_sink, ALICE_KINDLE)
            assert len(books) == 2
            safe_name, safe_text = epub_of(books[1])
            assert safe_name.isascii() and safe_name != name
            (safe_token,) = TOKENED.fullmatch(safe_name).groups()
            assert safe_token != alice_token and f"kindle.{safe_token}." in books[1]["Message-ID"]
            assert "<img" not in safe_text and "the night ferry" in safe_text  # no images, the article kept
            assert not received(smtp_sink, ALICE)  # nothing to tell alice yet
            (approve,) = received(smtp_sink, BOB)
            body = approve.get_body(("plain",)).get_content()
            assert SENDER in [line.strip() for line in body.splitlines()]  # the exact address, on its own line
            assert "Approved Personal Document E-mail List" in body
            assert len(received(smtp_sink, BOB_KINDLE)) == 1

            # 4. The safe-mode book is refused too, and Amazon says so twice: alice is told once, in plain
            # words, with the newsletter's own link; nothing more reaches her Kindle.
            arrives(kindle_notice(to=SENDER, text=E999_TEXT.format(document=safe_name)))
            arrives(kindle_notice(to=SENDER, text=E999_TEXT.format(document=safe_name) + "\n"))
            settled(8, "the second notices acted on")
            (told,) = received(smtp_sink, ALICE)
            assert told["Subject"] == f"Your Kindle could not open: {mails.subject(0)}"
            body = told.get_body(("plain",)).get_content()
            assert WEB_LINK in body and "without images" in body and "E999" not in body and "Traceback" not in body
            assert len(received(smtp_sink, ALICE_KINDLE)) == 2
            runs = instance.get_runs()
            # In the UI: the rejection rate per cause, evaluated by the last rejecting notice's step.
            rate = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey("kindle_delivery"), "amazon_rejection_rate"), limit=10
            )
            assert len(rate) == 4  # one per genuine notice naming a delivery of ours
            metadata = rate[0].event.dagster_event.event_specific_data.metadata
            assert {k: metadata[k].value for k in ("books_reached_amazon", "conversion_rejected", "not_approved_rejected")} == {
                "books_reached_amazon": 3, "conversion_rejected": 2, "not_approved_rejected": 1
            }
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{rows(postgres_url)}\n{daemon.output()[-6000:]}") from None
    finally:
        daemon.stop()
        instance.dispose()

    outcomes = Counter(r.tags.get("inbox-pipeline/outcome") for r in runs)
    assert outcomes == {
        "sent": 2, "kindle_notice:ignored": 2, "kindle_notice:safe_mode_resend": 1,
        "kindle_notice:approval_requested": 1, "kindle_notice:user_told": 2,
    }
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    deliveries = {(recipient, variant): (status, cause) for _, recipient, variant, status, cause in world(postgres_url)[0]}
    assert deliveries == {
        (ALICE_KINDLE, "standard"): ("rejected", "conversion"),
        (ALICE_KINDLE, "safe_mode"): ("rejected", "conversion"),
        (BOB_KINDLE, "standard"): ("rejected", "not_approved"),
    }

    # 5. Bob approved our address and says so: `inbox-pipeline kindle verify` sends a test book and his
    # refused newsletter again, once.
    verify = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "inbox-pipeline"), "kindle", "verify", BOB],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "1 refused newsletter(s) sent again" in verify.stdout
    bob_books = [epub_of(m) for m in received(smtp_sink, BOB_KINDLE)]
    assert len(bob_books) == 3  # the newsletter, the test book, the newsletter again
    assert SENDER in bob_books[1][1] and "Part 1 of issue 1" in bob_books[2][1]
    assert "Check your Kindle" in received(smtp_sink, BOB)[-1]["Subject"]
