"""The send-rate limiter's calculation: even spacing, the daily quota, fairness between recipients."""

from __future__ import annotations

import pytest

from inbox_pipeline.core.pace import Pace, PaceState, QuotaSpent, Slot, reserve
from inbox_pipeline.core.mime import recipient_hint

T0 = 1_780_000_000.0  # an instant on an hour boundary is not needed; any epoch second works


def _reserve_all(whos: list[str], now: float, pace: Pace, state: PaceState | None = None):
    state = state or PaceState()
    slots = []
    for who in whos:
        slot, state = reserve(state, who=who, now=now, pace=pace)
        slots.append(slot)
    return slots, state


def test_sends_asked_for_at_once_are_spread_one_interval_apart() -> None:
    slots, _ = _reserve_all(["a@k.example"] * 5, T0, Pace(rate=5))
    assert [round(s.at - T0, 6) for s in slots] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert [round(s.waits, 6) for s in slots] == [0.0, 0.2, 0.4, 0.6, 0.8]


def test_a_send_after_a_quiet_spell_goes_at_once() -> None:
    _, state = _reserve_all(["a@k.example"] * 3, T0, Pace(rate=5))
    slot, _ = reserve(state, who="a@k.example", now=T0 + 10, pace=Pace(rate=5))
    assert slot == Slot(T0 + 10, 0.0)


def test_one_users_backlog_does_not_go_before_another_users_one_send() -> None:
    pace = Pace(rate=10)
    # user a holds three future slots (three runs waiting); b asks for one
    slots, state = _reserve_all(["a"] * 3, T0, pace)
    b, state = reserve(state, who="b", now=T0, pace=pace)
    a4, state = reserve(state, who="a", now=T0, pace=pace)
    b2, state = reserve(state, who="b", now=T0, pace=pace)
    assert isinstance(b, Slot) and isinstance(a4, Slot) and isinstance(b2, Slot)
    assert round(b.at - T0, 6) == 0.3  # the next free slot
    # while b waits, a gets every second slot: b's second send goes right after a's fourth, not after all of a's
    assert round(a4.at - T0, 6) == 0.4 and round(b2.at - T0, 6) == 0.5
    # no two slots closer than one interval
    every = sorted(s.at for s in [*slots, b, a4, b2])
    assert all(later - earlier >= 0.1 - 1e-6 for earlier, later in zip(every, every[1:]))


def test_a_spaced_user_leaves_the_gap_to_the_next_asker() -> None:
    pace = Pace(rate=10)
    _, state = _reserve_all(["a", "b"], T0, pace)  # a at 0.0, b at 0.1; both wait (now = T0 - 1 below)
    state.users = {"a": T0 + 0.0, "b": T0 + 0.1}
    a, state = reserve(state, who="a", now=T0 - 0.05, pace=pace)  # spaced: 0.0 + 2 * 0.1
    c, state = reserve(state, who="c", now=T0 - 0.05, pace=pace)
    assert isinstance(a, Slot) and isinstance(c, Slot)
    assert round(a.at - T0, 6) == 0.2
    assert round(c.at - T0, 6) == 0.3


def test_the_daily_quota_refuses_until_the_oldest_hour_leaves_the_window() -> None:
    pace = Pace(rate=100, daily=3)
    slots, state = _reserve_all(["a", "b", "c"], T0, pace)
    assert all(isinstance(s, Slot) for s in slots)
    refused, state = reserve(state, who="d", now=T0 + 60, pace=pace)
    assert isinstance(refused, QuotaSpent)
    assert refused.sent == 3
    hour = int(T0 // 3600)
    assert refused.until == (hour + 24) * 3600
    again, _ = reserve(state, who="d", now=refused.until, pace=pace)
    assert isinstance(again, Slot) and again.waits == 0


def test_the_state_survives_its_json_form() -> None:
    _, state = _reserve_all(["a", "b"], T0, Pace(rate=2, daily=10))
    assert PaceState.from_json(state.to_json()) == state
    assert PaceState.from_json(None) == PaceState()


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_a_rate_must_be_a_positive_number(rate: float) -> None:
    with pytest.raises(ValueError, match="send rate"):
        Pace(rate=rate)


def test_recipient_hint_reads_the_topmost_received_for_clause() -> None:
    raw = (
        b"Received: from mail.sender.example by inbound-smtp.us-east-1.amazonaws.com\r\n"
        b" with SMTP id abc for Reader+Tag@In.Example.com;\r\n Mon, 02 Mar 2026 08:00:00 +0000\r\n"
        b"Received: from forged by x.example for other@in.example.com; Mon, 02 Mar 2026 07:00:00 +0000\r\n"
        b"To: someone@else.example\r\nSubject: hi\r\n\r\nReceived: in the body for body@in.example.com;\r\n"
    )
    assert recipient_hint(raw) == "reader+tag@in.example.com"
    assert recipient_hint(b"To: Reader <A@In.Example.com>, b@in.example.com\r\n\r\nbody") == "a@in.example.com"
    assert recipient_hint(b"Subject: nobody\r\n\r\nTo: body@in.example.com") == ""
    assert recipient_hint(b'{"OriginalRecipient": "a@in.example.com"}') == ""
