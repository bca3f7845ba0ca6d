"""Amazon's notices at the sender address, acted on once per cause, seen at a real SMTP server.

Newsletters go through the real per-email steps (``digest_world.World``); the notice is an email
written in Amazon's shape as SES stores it, registered in the inbox like any other.
"""

from __future__ import annotations

import zipfile
from datetime import datetime, timedelta, timezone
from io import BytesIO

import pytest

from inbox_pipeline_tests.fixtures.kindle_notices import E999_TEXT, NOT_APPROVED_TEXT, UNKNOWN_TEXT, kindle_notice
from inbox_pipeline_tests.helpers import noise_jpeg
from inbox_pipeline_tests.services.digest_world import World
from inbox_pipeline_tests.services.test_notifications import arrived

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
ERIN, FAY = "erin@example.org", "fay@example.org"
ERIN_KINDLE, FAY_KINDLE = "erin_7kq2x@kindle.example", "fay_m3v9t@kindle.example"


@pytest.fixture
def world(tmp_path, database_url, smtp_sink):
    w = World.create(tmp_path, database_url, smtp_sink.url)
    w.add_user(ERIN, timezone="UTC", delivery="instant", kindle=ERIN_KINDLE)
    w.add_user(FAY, timezone="UTC", delivery="instant", kindle=FAY_KINDLE)
    try:
        yield w
    finally:
        w.close()


def attachment(msg):
    (part,) = list(msg.iter_attachments())
    return part.get_filename(), part.get_content()


def epub_text(data: bytes) -> str:
    with zipfile.ZipFile(BytesIO(data)) as z:
        return " ".join(z.read(n).decode("utf-8", "replace") for n in z.namelist() if n.endswith((".xhtml", ".opf")))


def notice_arrives(world: World, text: str, at: datetime, **kwargs):
    from inbox_pipeline.services.kindle_notices import handle_kindle_notice

    email_id = world.register(kindle_notice(to=world.pipeline.options.sender, text=text, **kwargs), at)
    return email_id, handle_kindle_notice(world.pipeline, email_id)


def rows(world: World):
    from sqlalchemy import select

    from inbox_pipeline.db.models import Delivery, InboundEmail, KindleNotice

    with world.pipeline.sessions() as s:
        deliveries = [(d.recipient, d.variant, d.status, d.rejection_cause) for d in s.scalars(select(Delivery).order_by(Delivery.id))]
        notices = [(n.cause, n.authentic, n.action, n.delivery_id) for n in s.scalars(select(KindleNotice).order_by(KindleNotice.id))]
        states = {e.id: (e.state, e.reason) for e in s.scalars(select(InboundEmail))}
    return deliveries, notices, states


def test_a_conversion_error_gets_one_safe_mode_resend_then_the_user_is_told(world, smtp_sink) -> None:
    arrival = world.arrive(ERIN, NOW, expect="sent", image=noise_jpeg(64, 1))
    world.arrive(FAY, NOW, expect="sent")
    (first,) = arrived(smtp_sink, ERIN_KINDLE)
    name, book = attachment(first)
    assert "<img" in epub_text(book)

    email_id, outcome = notice_arrives(world, E999_TEXT.format(document=name), NOW + timedelta(minutes=5))
    assert outcome.action == "safe_mode_resend" and outcome.reason == "safe-mode resend: sent"
    first_resend, = arrived(smtp_sink, ERIN_KINDLE)[1:]
    safe_name, safe_book = attachment(first_resend)
    assert safe_name != name and safe_name.isascii()
    assert "<img" not in epub_text(safe_book) and arrival.marker in epub_text(safe_book)
    assert not arrived(smtp_sink, ERIN)  # nothing to tell the user yet

    # the same notice handled again (a retried step): nothing more is sent
    from inbox_pipeline.services.kindle_notices import handle_kindle_notice

    assert handle_kindle_notice(world.pipeline, email_id).action == "safe_mode_resend"
    assert len(arrived(smtp_sink, ERIN_KINDLE)) == 2

    # the safe-mode book is rejected too: the user is told, once
    _, second = notice_arrives(world, E999_TEXT.format(document=safe_name), NOW + timedelta(minutes=9))
    assert second.action == "user_told"
    notice_arrives(world, E999_TEXT.format(document=safe_name) + "\n", NOW + timedelta(minutes=10))
    (told,) = arrived(smtp_sink, ERIN)
    assert told["Subject"] == f"Your Kindle could not open: {arrival.subject}"
    body = told.get_body(("plain",)).get_content()
    assert "simpler version without images" in body and "Traceback" not in body
    assert len(arrived(smtp_sink, ERIN_KINDLE)) == 2
    assert not arrived(smtp_sink, FAY)
    deliveries, notices, _ = rows(world)
    assert (ERIN_KINDLE, "standard", "rejected", "conversion") in deliveries
    assert (ERIN_KINDLE, "safe_mode", "rejected", "conversion") in deliveries
    assert (FAY_KINDLE, "standard", "sent", None) in deliveries
    assert [n[2] for n in notices] == ["safe_mode_resend", "user_told", "user_told"]


def test_sender_not_approved_tells_the_user_which_address_to_approve(world, smtp_sink) -> None:
    world.arrive(ERIN, NOW, expect="sent")
    name, _ = attachment(arrived(smtp_sink, ERIN_KINDLE)[0])
    sender = world.pipeline.options.sender
    _, outcome = notice_arrives(world, NOT_APPROVED_TEXT.format(sender=sender, document=name), NOW)
    assert outcome.action == "approval_requested"
    (told,) = arrived(smtp_sink, ERIN)
    body = told.get_body(("plain",)).get_content()
    assert sender in [line.strip() for line in body.splitlines()]  # on a line of its own, to copy
    assert "Approved Personal Document E-mail List" in body
    assert "no longer accepts a whole domain" in body
    assert len(arrived(smtp_sink, ERIN_KINDLE)) == 1  # no resend until the user approves


def test_approval_instructions_go_once_a_day_while_amazon_keeps_refusing(world, smtp_sink) -> None:
    import time_machine

    world.arrive(ERIN, NOW, expect="sent")
    world.arrive(ERIN, NOW + timedelta(minutes=5), expect="sent")
    names = [attachment(m)[0] for m in arrived(smtp_sink, ERIN_KINDLE)]
    text = NOT_APPROVED_TEXT.format(sender=world.pipeline.options.sender, document="{document}")
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        outcomes = [notice_arrives(world, text.format(document=n), NOW + timedelta(minutes=10))[1] for n in names]
    assert [o.reason for o in outcomes] == ["user notice: sent", "user notice: already_sent"]
    assert len(arrived(smtp_sink, ERIN)) == 1  # two refused books, one set of instructions
    world.arrive(ERIN, NOW + timedelta(days=1), expect="sent")
    third = attachment(arrived(smtp_sink, ERIN_KINDLE)[-1])[0]
    with time_machine.travel(NOW + timedelta(days=1, minutes=10), tick=False):
        _, outcome = notice_arrives(world, text.format(document=third), NOW + timedelta(days=1, minutes=10))
    assert outcome.reason == "user notice: sent"
    assert len(arrived(smtp_sink, ERIN)) == 2  # still refused the next day: reminded once more


@pytest.mark.parametrize(
    "kwargs",
    [{"auth": "fail"}, {"auth": None}, {"from_addr": "kindle@amazon-support.example"}, {"auth": "fail", "forged_auth_below": True}],
    ids=["failing-authentication", "no-verdict", "lookalike-sender", "forged-verdict-below"],
)
def test_a_forged_notice_changes_nothing(world, smtp_sink, kwargs) -> None:
    world.arrive(ERIN, NOW, expect="sent")
    name, _ = attachment(arrived(smtp_sink, ERIN_KINDLE)[0])
    email_id, outcome = notice_arrives(world, E999_TEXT.format(document=name), NOW, **kwargs)
    assert outcome.action == "ignored"
    deliveries, notices, states = rows(world)
    assert deliveries == [(ERIN_KINDLE, "standard", "sent", None)]
    assert notices == [("conversion", False, "ignored", deliveries and notices[0][3])]
    state, reason = states[email_id]
    assert state == "kindle_notice" and reason.startswith("not believed:")
    assert len(smtp_sink.messages) == 1


def test_a_genuine_notice_naming_no_delivery_of_ours_goes_to_the_operator(world, smtp_sink) -> None:
    from dataclasses import replace

    world.pipeline.options = replace(world.pipeline.options, operator_email="ops@example.net")
    world.arrive(ERIN, NOW, expect="sent")
    _, unmatched = notice_arrives(world, E999_TEXT.format(document="2026-03-02-someone-elses.epub"), NOW)
    _, unknown = notice_arrives(world, UNKNOWN_TEXT, NOW + timedelta(minutes=1), subject="Your Kindle storage")
    assert (unmatched.action, unknown.action) == ("unmatched", "operator_told")
    alerts = arrived(smtp_sink, "ops@example.net")
    assert len(alerts) == 2 and "Kindle storage is almost full" in alerts[1].get_body(("plain",)).get_content()
    assert not arrived(smtp_sink, ERIN)
    deliveries, _, _ = rows(world)
    assert deliveries == [(ERIN_KINDLE, "standard", "sent", None)]


def test_kindle_verify_sends_a_test_book_and_a_rejection_marks_the_device(world, smtp_sink) -> None:
    import time_machine

    from inbox_pipeline.services.kindle_check import settle_kindle_checks, verify_kindle

    sender = world.pipeline.options.sender
    outcome = verify_kindle(world.pipeline, world.users[ERIN])
    assert (outcome.state, outcome.sent, outcome.warnings) == ("pending", "sent", ())
    (book,) = arrived(smtp_sink, ERIN_KINDLE)
    name, data = attachment(book)
    assert sender in epub_text(data) and ERIN_KINDLE in epub_text(data)
    (told,) = arrived(smtp_sink, ERIN)
    assert sender in [line.strip() for line in told.get_body(("plain",)).get_content().splitlines()]

    _, notice = notice_arrives(world, NOT_APPROVED_TEXT.format(sender=sender, document=name), NOW)
    assert notice.action == "check_rejected"
    device = _device(world, ERIN)
    assert device.check_state == "rejected" and device.check_reason.startswith("not_approved")
    assert "Approve our address" in arrived(smtp_sink, ERIN)[-1]["Subject"]

    # a guessable address is named as such; with no notice within the window, the check is unconfirmed
    from inbox_pipeline.db.users import set_kindle

    with world.pipeline.sessions.begin() as s:
        set_kindle(s, world.users[FAY], "fay@kindle.example")
    with time_machine.travel(NOW, tick=False):
        fay = verify_kindle(world.pipeline, world.users[FAY])
    assert fay.warnings and "easy to guess" in fay.warnings[0]
    assert settle_kindle_checks(world.pipeline, now=NOW + timedelta(minutes=59)) == 0
    assert settle_kindle_checks(world.pipeline, now=NOW + timedelta(minutes=61)) == 1
    assert _device(world, FAY).check_state == "unconfirmed"
    assert verify_kindle(world.pipeline, world.users[FAY], arrived=True).state == "verified"


def test_after_the_user_approves_our_sender_verify_resends_what_amazon_refused(world, smtp_sink) -> None:
    from inbox_pipeline.services.kindle_check import verify_kindle

    arrival = world.arrive(ERIN, NOW, expect="sent")
    name, _ = attachment(arrived(smtp_sink, ERIN_KINDLE)[0])
    notice_arrives(world, NOT_APPROVED_TEXT.format(sender=world.pipeline.options.sender, document=name), NOW)
    outcome = verify_kindle(world.pipeline, world.users[ERIN])
    assert outcome.resent == 1
    books = [attachment(m) for m in arrived(smtp_sink, ERIN_KINDLE)]
    assert len(books) == 3  # the newsletter, the test book, the newsletter again
    assert arrival.marker in epub_text(books[2][1])
    assert verify_kindle(world.pipeline, world.users[ERIN]).resent == 0  # once


def _device(world: World, user: str):
    from inbox_pipeline.db.models import User

    with world.pipeline.sessions() as s:
        return s.get(User, world.users[user]).kindle
