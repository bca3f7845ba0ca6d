"""Which recipients route an email, per inbox kind: only what a trusted receiver recorded."""

from __future__ import annotations

import pytest

from inbox_pipeline.core.parse import parse_email
from inbox_pipeline.seams.inbox import FolderInbox, S3Inbox
from inbox_pipeline.core.envelope import envelope_recipients
from inbox_pipeline_tests.helpers import via_ses

BOB = "bob-2b2b@in.example.com"
ALICE = "alice-7f3k@in.example.com"
SENDER_WRITTEN = (
    f"To: {ALICE}, {BOB}\nCc: {BOB}\nX-Original-To: {BOB}\nDelivered-To: {BOB}\nEnvelope-To: {BOB}\n"
    f"X-Rcpt-To: {BOB}\nSubject: s\n\nbody\n"
).encode()
MTA_RECEIVED = f"Received: from x (x [203.0.113.9])\n by mx.home.example with ESMTP id 1\n for <{ALICE}>; Mon, 2 Mar 2026\n"


@pytest.mark.parametrize("inbox", [S3Inbox, FolderInbox])
def test_ses_received_routes_to_its_for_clause_only(inbox) -> None:
    email = parse_email(via_ses(SENDER_WRITTEN, ALICE))
    assert envelope_recipients(email, inbox.trusted_receivers) == ((ALICE,), "SES's Received header")


def test_a_bucket_trusts_no_other_receiver_and_no_headers() -> None:
    mta = parse_email(MTA_RECEIVED.encode() + SENDER_WRITTEN)
    assert envelope_recipients(mta, S3Inbox.trusted_receivers) == (
        (), "no envelope recorded by a receiver this inbox trusts (only the receiving server's Received header "
            "(mx.home.example))"
    )
    by_hand = parse_email(SENDER_WRITTEN)
    assert envelope_recipients(by_hand, S3Inbox.trusted_receivers)[0] == ()


def test_a_folder_trusts_its_own_mail_server_and_files_placed_by_hand() -> None:
    mta = parse_email(MTA_RECEIVED.encode() + SENDER_WRITTEN)
    assert envelope_recipients(mta, FolderInbox.trusted_receivers) == (
        (ALICE,), "the receiving server's Received header"
    )
    by_hand = parse_email(SENDER_WRITTEN)
    recipients, note = envelope_recipients(by_hand, FolderInbox.trusted_receivers)
    assert recipients == (ALICE, BOB) and note.startswith("To/Cc of a file placed by hand")
