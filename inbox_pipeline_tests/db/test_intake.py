"""Inbound emails: registration, states with reasons, routing and de-duplication."""

from __future__ import annotations

from datetime import timedelta

import pytest

from inbox_pipeline.db.errors import InvalidTransition
from inbox_pipeline.db.intake import (
    count_by_state,
    find_inbound,
    get_inbound,
    mark_parsed,
    register_inbound,
    route_inbound,
    set_state,
)
from inbox_pipeline.db.models import InboundState
from inbox_pipeline.db.users import add_user, issue_address, set_address_enabled

from .conftest import NOW


def _register(s, key: str, sha: str = "a" * 64):
    return register_inbound(s, storage_key=key, size=1234, sha256=sha, received_at=NOW)


@pytest.fixture
def alice(factory):
    with factory.begin() as s:
        uid = add_user(s, email="alice@example.com").id
        address = issue_address(s, uid, "news", domain="in.example.com").address
    return uid, address


def test_register_inbound_is_idempotent_on_storage_key(factory) -> None:
    with factory.begin() as s:
        email, created = _register(s, "inbox/2026/abc")
        assert created and email.state == InboundState.RECEIVED
        assert email.received_at == NOW
    with factory.begin() as s:
        again, created = _register(s, "inbox/2026/abc")
        assert not created and again.id == email.id
        other, created = _register(s, "inbox/2026/abd")
        assert created and other.id != email.id
    with factory.begin() as s:
        assert [e.storage_key for e in find_inbound(s, storage_key="inbox/2026/abc")] == ["inbox/2026/abc"]


def test_parse_then_route_records_state_and_reason(factory, alice) -> None:
    uid, address = alice
    with factory.begin() as s:
        email, _ = _register(s, "k1")
        parsed = mark_parsed(
            s, email.id, message_id="<m1@sender.example>", subject="Issue 1", sender="News <n@sender.example>",
            recipients=[address.upper()],
        )
        assert parsed.state == InboundState.PARSED and parsed.message_id == "m1@sender.example"
        local, domain = address.split("@")
        decision = route_inbound(
            s, email.id, recipients=["someone@else.example", f"{local}+tag@{domain}"],
            message_id="m1@sender.example", content_sha256="c1", now=NOW,
        )
    assert decision.state == InboundState.ROUTED and decision.user_id == uid
    assert decision.reason == f"routed to alice@example.com via {address}"
    with factory.begin() as s:
        row = get_inbound(s, email.id)
        assert (row.state, row.reason, row.user_id) == ("routed", decision.reason, uid)
        assert row.state_changed_at == NOW
        # routing again (an op retry) returns the stored decision and changes nothing
        again = route_inbound(s, email.id, recipients=[address], message_id="m1@sender.example",
                              content_sha256="c1", now=NOW + timedelta(hours=1))
        assert again == decision
        assert get_inbound(s, email.id).state_changed_at == NOW


def test_unknown_and_disabled_addresses_are_unroutable(factory, alice) -> None:
    _, address = alice
    with factory.begin() as s:
        e1, _ = _register(s, "k1")
        d1 = route_inbound(s, e1.id, recipients=["nobody@in.example.com"], message_id="m1", content_sha256="c1",
                           now=NOW)
        set_address_enabled(s, address, False)
        e2, _ = _register(s, "k2")
        d2 = route_inbound(s, e2.id, recipients=[address], message_id="m2", content_sha256="c2", now=NOW)
    assert d1.state == InboundState.UNROUTABLE
    assert d1.reason == "no inbound address matches the envelope recipients: nobody@in.example.com"
    assert d2.state == InboundState.UNROUTABLE and d2.reason == f"inbound address {address} is disabled"
    with factory.begin() as s:
        assert get_inbound(s, e2.id).reason == d2.reason
        assert count_by_state(s)["unroutable"] == 2


def test_duplicates_by_message_id_and_by_content_hash_per_user(factory, alice) -> None:
    uid, address = alice
    with factory.begin() as s:
        bob = add_user(s, email="bob@example.com").id
        bob_address = issue_address(s, bob, domain="in.example.com").address
        ids = [_register(s, f"k{i}")[0].id for i in range(5)]
        first = route_inbound(s, ids[0], recipients=[address], message_id="m1", content_sha256="c1", now=NOW)
        same_mid = route_inbound(s, ids[1], recipients=[address], message_id="m1", content_sha256="c-other", now=NOW)
        same_body = route_inbound(s, ids[2], recipients=[address], message_id="m-new", content_sha256="c1", now=NOW)
        other_user = route_inbound(s, ids[3], recipients=[bob_address], message_id="m1", content_sha256="c1", now=NOW)
        new = route_inbound(s, ids[4], recipients=[address], message_id="m2", content_sha256="c2", now=NOW)
    assert first.state == InboundState.ROUTED
    assert same_mid.state == InboundState.DUPLICATE and same_mid.duplicate_of_id == ids[0]
    assert same_mid.reason == f"duplicate of inbound email #{ids[0]} (same Message-ID) for alice@example.com"
    assert same_body.state == InboundState.DUPLICATE
    assert same_body.reason == f"duplicate of inbound email #{ids[0]} (same content) for alice@example.com"
    assert other_user.state == InboundState.ROUTED and other_user.user_id == bob  # per user, not global
    assert new.state == InboundState.ROUTED
    with factory.begin() as s:
        assert get_inbound(s, ids[1]).state == "duplicate"
        counts = count_by_state(s, since=NOW - timedelta(days=365 * 10))
        assert (counts["routed"], counts["duplicate"]) == (3, 2)


def test_set_state_follows_the_state_machine(factory) -> None:
    with factory.begin() as s:
        email, _ = _register(s, "k1")
        set_state(s, email.id, InboundState.PARSED, "parsed")
        with pytest.raises(InvalidTransition, match="cannot go from parsed to delivered"):
            set_state(s, email.id, InboundState.DELIVERED, "skipping ahead")
        set_state(s, email.id, InboundState.QUARANTINED, "SES virus verdict FAIL")
        with pytest.raises(InvalidTransition):
            set_state(s, email.id, InboundState.ROUTED, "no")
    with factory.begin() as s:
        row = get_inbound(s, email.id)
        assert (row.state, row.reason) == ("quarantined", "SES virus verdict FAIL")
        # an operator may replay it, and a failure may be retried from anywhere
        set_state(s, email.id, "received", "replayed by the operator")
        set_state(s, email.id, "failed", "parse crashed")
        set_state(s, email.id, "routed", "retried")
        set_state(s, email.id, "delivered", "sent", force=False)
        assert get_inbound(s, email.id).state == "delivered"
        set_state(s, email.id, "parsed", "forced", force=True)
        assert get_inbound(s, email.id).state == "parsed"


def test_each_user_among_the_envelope_recipients_gets_one_copy(factory, alice) -> None:
    alice_id, alice_address = alice
    with factory.begin() as s:
        bob_id = add_user(s, email="bob@example.com").id
        bob_address = issue_address(s, bob_id, "news", domain="in.example.com").address
        bob_second = issue_address(s, bob_id, "other", domain="in.example.com").address
        email, _ = _register(s, "k-both")
        envelope = [alice_address, bob_address, bob_second, alice_address.upper(), "stranger@in.example.com"]
        decision = route_inbound(s, email.id, recipients=envelope, message_id="m", content_sha256="c", now=NOW)
        # A retry changes nothing: no second copy.
        assert route_inbound(s, email.id, recipients=envelope, message_id="m", content_sha256="c", now=NOW) == decision
    assert decision.state == InboundState.ROUTED and decision.user_id == alice_id
    assert decision.reason.endswith("(1 more user(s) among the envelope recipients get their own copy)")
    with factory.begin() as s:
        rows = find_inbound(s)
        assert len(rows) == 2
        copy = rows[1]
        assert (copy.state, copy.fanout_of_id, copy.user_id) == ("received", email.id, bob_id)
        assert copy.reason == f"copy of inbound email #{email.id} for {bob_address}: the envelope names several users"
        # The copy is routed to its own user only, whatever the envelope says, and counts as bob's.
        routed = route_inbound(s, copy.id, recipients=envelope, message_id="m", content_sha256="c", now=NOW)
        assert (routed.state, routed.user_id) == (InboundState.ROUTED, bob_id)
        assert routed.reason == f"routed to bob@example.com via {bob_address}"
        assert len(find_inbound(s)) == 2


def test_no_envelope_recipient_is_unroutable_with_where_we_looked(factory) -> None:
    with factory.begin() as s:
        email, _ = _register(s, "k-none")
        decision = route_inbound(s, email.id, recipients=[], message_id="m", content_sha256="c", now=NOW,
                                 note="no envelope recipient in SES's Received header")
    assert decision.state == InboundState.UNROUTABLE
    assert decision.reason == "no envelope recipient in SES's Received header"
