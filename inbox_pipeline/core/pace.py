"""Paced sending: one send rate and a rolling daily quota, shared fairly between recipients.

A pure calculation over a small state (kept in one database row by ``db/pace.py``, so every run
and process shares it). Each send reserves a slot: the next free one after the last reserved, at
least ``1 / rate`` seconds apart, so sends are spread evenly (paced, never stalled and
retried). A recipient who already holds a slot while others wait is spaced ``k / rate`` apart
(``k``: the recipients holding slots), so one user's 300 emails share the rate with another
user's one instead of going first. The daily quota counts reserved slots per hour over the last
24 hours; when it is spent, ``reserve`` refuses with the time it frees up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
KEEP_SECONDS = 60.0  # a recipient's last slot is remembered this long (for spacing)
HOUR = 3600


@dataclass(frozen=True)
class Pace:
    """The limits: sends per second (> 0) and at most ``daily`` sends in any 24 hours (0: none)."""

    rate: float
    daily: int = 0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"a send rate must be a positive number of messages a second, not {self.rate!r}")
        if self.daily < 0:
            raise ValueError(f"a daily quota must be 0 (none) or positive, not {self.daily!r}")


@dataclass
class PaceState:
    """What the limiter remembers: the slots reserved (recent and future), each recent recipient's
    last slot, and the sends per hour (hour number since the epoch) of the last 24 hours."""

    slots: list[float] = field(default_factory=list)
    users: dict[str, float] = field(default_factory=dict)
    hours: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"slots": list(self.slots), "users": dict(self.users), "hours": {str(h): n for h, n in self.hours.items()}}

    @classmethod
    def from_json(cls, data: dict | None) -> "PaceState":
        data = data or {}
        return cls(
            slots=[float(t) for t in data.get("slots") or ()],
            users={str(k): float(v) for k, v in (data.get("users") or {}).items()},
            hours={int(k): int(v) for k, v in (data.get("hours") or {}).items()},
        )


@dataclass(frozen=True)
class Slot:
    """A reserved send at ``at`` (epoch seconds); ``waits`` seconds after it was asked for."""

    at: float
    waits: float


@dataclass(frozen=True)
class QuotaSpent:
    """The daily quota is spent: nothing may be sent before ``until`` (epoch seconds)."""

    sent: int
    until: float


def reserve(state: PaceState, *, who: str, now: float, pace: Pace) -> tuple[Slot | QuotaSpent, PaceState]:
    """The slot for one send to ``who`` asked for at ``now``, and the state after it."""
    interval = 1.0 / pace.rate
    hour = int(now // HOUR)
    hours = {h: n for h, n in state.hours.items() if h > hour - 24}
    users = {u: t for u, t in state.users.items() if t > now - KEEP_SECONDS}
    slots = sorted(t for t in state.slots if t > now - interval)
    sent = sum(hours.values())
    if pace.daily and sent >= pace.daily:
        return QuotaSpent(sent, (min(hours) + 24) * HOUR), PaceState(slots, users, hours)
    at = now
    waiting = {u for u, t in users.items() if t > now} | {who}
    if who in users and len(waiting) > 1:  # its fair share while others wait: every k-th slot
        at = max(at, users[who] + len(waiting) * interval)
    for t in slots:  # the earliest gap of one interval on both sides
        if at + interval <= t:
            break
        if t + interval > at:
            at = t + interval
    users[who] = at
    slot_hour = int(at // HOUR)
    hours[slot_hour] = hours.get(slot_hour, 0) + 1
    return Slot(at, at - now), PaceState(sorted([*slots, at]), users, hours)
