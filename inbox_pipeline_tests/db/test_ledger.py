"""The delivery ledger: claim before sending, at most once, the operator decides."""

from __future__ import annotations

from datetime import timedelta

import pytest

from inbox_pipeline.db.errors import InvalidInput, InvalidTransition
from inbox_pipeline.db.ledger import (
    claim_delivery,
    count_deliveries,
    find_delivery,
    mark_delivery_failed,
    mark_delivery_sent,
    delivery_by_token,
    reject_delivery,
    release_delivery,
    stale_deliveries,
)
from inbox_pipeline.db.users import add_user, set_kindle

from .conftest import NOW


@pytest.fixture
def device(factory):
    with factory.begin() as s:
        uid = add_user(s, email="a@example.com").id
        dev = set_kindle(s, uid, "a_k@kindle.com")
        return uid, dev.id


def _claim(s, device, item_id=1, kind="newsletter", now=NOW, part=1):
    uid, dev = device
    return claim_delivery(s, item_kind=kind, item_id=item_id, recipient="A_K@kindle.com", now=now,
                          user_id=uid, device_id=dev, part=part)


def test_second_claim_loses_and_sent_is_final(factory, device) -> None:
    with factory.begin() as s:
        d = _claim(s, device)
        assert d is not None and (d.status, d.attempts, d.recipient) == ("claimed", 1, "a_k@kindle.com")
    with factory.begin() as s:
        assert _claim(s, device) is None  # claimed, not finished: nobody else sends
        other_part = _claim(s, device, part=2)  # a digest's second volume is its own item
        assert other_part is not None
        assert _claim(s, device, kind="digest") is not None  # digest #1 is not newsletter #1
    with factory.begin() as s:
        sent = mark_delivery_sent(s, d.id, provider_message_id="<ses-1@email.amazonses.com>", now=NOW)
        assert (sent.status, sent.provider_message_id, sent.finished_at) == (
            "sent", "<ses-1@email.amazonses.com>", NOW
        )
        assert mark_delivery_sent(s, d.id, provider_message_id="<ses-1@email.amazonses.com>").status == "sent"
        with pytest.raises(InvalidTransition):
            mark_delivery_failed(s, d.id, reason="late failure", retryable=True)
    with factory.begin() as s:
        assert _claim(s, device) is None
        counts = count_deliveries(s, since=NOW - timedelta(hours=24))
        assert (counts["sent"], counts["claimed"], counts["failed"]) == (1, 2, 0)


def test_only_a_retryable_failure_is_claimed_again(factory, device) -> None:
    with factory.begin() as s:
        d = _claim(s, device)
        mark_delivery_failed(s, d.id, reason="451 try again later", retryable=True)
    with factory.begin() as s:
        again = _claim(s, device, now=NOW + timedelta(minutes=5))
        assert again is not None and again.id == d.id and again.attempts == 2 and again.status == "claimed"
        assert _claim(s, device) is None
        mark_delivery_failed(s, d.id, reason="550 mailbox unknown", retryable=False)
    with factory.begin() as s:
        assert _claim(s, device) is None
        row = find_delivery(s, item_kind="newsletter", item_id=1, recipient="a_k@kindle.com")
        assert (row.status, row.reason, row.retryable) == ("failed", "550 mailbox unknown", False)
        with pytest.raises(InvalidInput):
            claim_delivery(s, item_kind="email", item_id=1, recipient="x@kindle.com", now=NOW)


def test_stale_claim_waits_for_the_operator(factory, device) -> None:
    with factory.begin() as s:
        d = _claim(s, device)
    with factory.begin() as s:
        assert stale_deliveries(s, now=NOW + timedelta(minutes=10)) == []
        stale = stale_deliveries(s, now=NOW + timedelta(minutes=16))
        assert [x.id for x in stale] == [d.id]
        # time alone never makes it claimable again: the relay may have accepted it
        assert _claim(s, device, now=NOW + timedelta(days=1)) is None
        released = release_delivery(s, d.id, reason="operator: not in the SES log, resend")
        assert (released.status, released.retryable) == ("failed", True)
        with pytest.raises(InvalidTransition):
            release_delivery(s, d.id, reason="twice")
    with factory.begin() as s:
        assert _claim(s, device, now=NOW + timedelta(days=1)).attempts == 2


def test_an_amazon_notice_is_matched_by_the_delivery_token_only(factory, device) -> None:
    with factory.begin() as s:
        d = _claim(s, device)
        other = _claim(s, device, item_id=8)
        assert d.token and other.token and d.token != other.token
        mark_delivery_sent(s, d.id, provider_message_id="0100018e-abc")
    with factory.begin() as s:
        assert delivery_by_token(s, "a" * 16) is None
        row = reject_delivery(s, delivery_by_token(s, d.token).id, cause="conversion", reason="E999: Send to Kindle Internal Error")
        assert (row.id, row.status, row.rejection_cause) == (d.id, "rejected", "conversion")
        assert _claim(s, device) is None  # a rejection never re-opens the same claim
        # the one safe-mode resend is its own ledger row, claimed once
        def safe_mode():
            return claim_delivery(s, item_kind="newsletter", item_id=d.item_id, recipient="a_k@kindle.com", now=NOW, variant="safe_mode")

        safe = safe_mode()
        assert safe is not None and safe.token != d.token
        assert safe_mode() is None
    with factory.begin() as s:
        # a notice for a row that was never sent (or already rejected) changes nothing
        again = reject_delivery(s, d.id, cause="unknown", reason="later notice")
        assert (again.status, again.rejection_cause) == ("rejected", "conversion")

