"""Users, their inbound addresses, Kindle devices and plans.

Public functions (all take a ``Session``; none commits):

- ``add_user(session, *, email, timezone="UTC", delivery="instant", plan="free", kindle=None) -> User``
- ``get_user(session, ref: int | str) -> User``  (id or email; raises ``NotFound``)
- ``find_user(session, user_id) -> User | None``, ``user_email(session, user_id) -> str | None``
- ``users_per_plan(session) -> dict[int, int]``  (plan id -> users on it)
- ``addresses_with_owners(session, user_id=None) -> list[tuple[InboundAddress, str]]``  (with the owner's email)
- ``first_address_on(session, user_id, domain) -> str | None``: the user's oldest address on ``domain``
- ``newest_device_id(session, user_id) -> int | None``, ``has_active_kindle(session, user_id) -> bool``
- ``set_device_check(session, device_id, state, reason, *, now) -> KindleDevice | None`` (``kindle verify``)
- ``settle_device_checks(session, *, checked_before, reason) -> int``: ``pending`` checks older than that
  become ``unconfirmed``
- ``list_users(session) -> list[User]``
- ``update_user(session, user_id, *, timezone=None, delivery=None, plan=None) -> User``
- ``set_user_plan(session, user_id, plan_name) -> User``
- ``issue_address(session, user_id, label=None, *, domain) -> InboundAddress``
- ``set_address_enabled(session, address: str, enabled: bool, *, now=None) -> InboundAddress``
- ``resolve_address(session, recipient: str) -> InboundAddress | None``
  (case-insensitive, ``alias+tag@domain`` -> ``alias@domain``; returns disabled
  addresses too, so routing can say why it refused)
- ``set_kindle(session, user_id, address, *, name=None) -> KindleDevice``
  (makes ``address`` the user's one active device)
- ``set_plan(session, name, *, monthly_limit: int | None) -> Plan``  (create or change)
- ``get_plan(session, name) -> Plan``, ``list_plans(session) -> list[Plan]``
- ``parse_delivery(spec) -> DeliveryPreference``, ``format_delivery(user) -> str``
- ``normalize_email(value, what="email address") -> str``, ``validate_timezone(name) -> str``

Wrong input raises ``InvalidInput``, ``NotFound`` or ``AlreadyExists`` with a
sentence a person can read.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from inbox_pipeline.db.errors import AlreadyExists, InvalidInput, NotFound
from inbox_pipeline.db.models import DeliveryMode, InboundAddress, KindleCheck, KindleDevice, Plan, User, utcnow

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Deliberately simple: one @, no spaces, a dotted domain. Real validation is the mail server's.
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
ADDRESS_SUFFIX_LEN = 8  # 40 random bits: unguessable, still easy to type


@dataclass(frozen=True)
class DeliveryPreference:
    mode: DeliveryMode
    hour: int | None = None  # local hour, 0-23
    weekday: int | None = None  # 0=Monday .. 6=Sunday

    def __str__(self) -> str:
        if self.mode is DeliveryMode.DAILY:
            return f"daily@{self.hour:02d}"
        if self.mode is DeliveryMode.WEEKLY:
            return f"weekly@{WEEKDAYS[self.weekday or 0]}@{self.hour:02d}"
        return "instant"


def normalize_email(value: str, what: str = "email address") -> str:
    email = (value or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidInput(f"{value!r} is not a valid {what}")
    return email


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidInput(f"unknown timezone {name!r} (use an IANA name such as Europe/Berlin)") from None
    return name


def parse_delivery(spec: str) -> DeliveryPreference:
    """``instant``, ``daily@HH`` or ``weekly@DAY@HH`` (DAY: mon..sun)."""
    text = (spec or "").strip().lower()
    usage = f"bad delivery {spec!r}: use instant, daily@HH or weekly@DAY@HH (e.g. weekly@sun@07)"
    if text == "instant":
        return DeliveryPreference(DeliveryMode.INSTANT)
    parts = text.split("@")
    if parts[0] == "daily" and len(parts) == 2:
        return DeliveryPreference(DeliveryMode.DAILY, hour=_hour(parts[1], usage))
    if parts[0] == "weekly" and len(parts) == 3:
        day = parts[1]
        if day in WEEKDAYS:
            weekday = WEEKDAYS.index(day)
        elif day in _FULL_WEEKDAYS:
            weekday = _FULL_WEEKDAYS.index(day)
        else:
            raise InvalidInput(usage)
        return DeliveryPreference(DeliveryMode.WEEKLY, hour=_hour(parts[2], usage), weekday=weekday)
    raise InvalidInput(usage)


def _hour(value: str, usage: str) -> int:
    value = value.removesuffix(":00")
    if not (value.isascii() and value.isdigit()) or not 0 <= int(value) <= 23:  # int() also reads "²"
        raise InvalidInput(usage)
    return int(value)


def format_delivery(user: User) -> str:
    return str(
        DeliveryPreference(DeliveryMode(user.delivery_mode), user.delivery_hour, user.delivery_weekday)
    )


# --- plans -------------------------------------------------------------------


def get_plan(session: Session, name: str) -> Plan:
    plan = session.scalar(select(Plan).where(Plan.name == name.strip().lower()))
    if plan is None:
        known = ", ".join(p.name for p in list_plans(session))
        raise NotFound(f"unknown plan {name!r} (known: {known})")
    return plan


def list_plans(session: Session) -> list[Plan]:
    return list(session.scalars(select(Plan).order_by(Plan.id)))


def set_plan(session: Session, name: str, *, monthly_limit: int | None) -> Plan:
    """Create the plan or change its monthly limit (``None``: unlimited)."""
    name = name.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise InvalidInput(f"bad plan name {name!r}: letters, digits, '-' and '_' only")
    if monthly_limit is not None and monthly_limit < 0:
        raise InvalidInput(f"monthly limit must be 0 or more, not {monthly_limit}")
    plan = session.scalar(select(Plan).where(Plan.name == name))
    if plan is None:
        plan = Plan(name=name, monthly_limit=monthly_limit)
        session.add(plan)
    else:
        plan.monthly_limit = monthly_limit
    session.flush()
    return plan


# --- users -------------------------------------------------------------------


def add_user(
    session: Session,
    *,
    email: str,
    timezone: str = "UTC",
    delivery: str | DeliveryPreference = "instant",
    plan: str = "free",
    kindle: str | None = None,
) -> User:
    email = normalize_email(email)
    timezone = validate_timezone(timezone)
    pref = delivery if isinstance(delivery, DeliveryPreference) else parse_delivery(delivery)
    kindle_email = normalize_email(kindle, "Kindle address") if kindle else None
    plan_row = get_plan(session, plan)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AlreadyExists(f"a user with email {email} already exists")
    user = User(
        email=email,
        timezone=timezone,
        plan=plan_row,
        delivery_mode=pref.mode.value,
        delivery_hour=pref.hour,
        delivery_weekday=pref.weekday,
    )
    session.add(user)
    session.flush()
    if kindle_email:
        set_kindle(session, user.id, kindle_email)
    return user


def get_user(session: Session, ref: int | str) -> User:
    """A user by id or by email (case-insensitive)."""
    user: User | None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isascii() and ref.strip().isdigit()):
        user = session.get(User, int(ref))
    else:
        user = session.scalar(select(User).where(User.email == ref.strip().lower()))
    if user is None:
        raise NotFound(f"no user {ref!r}")
    return user


def find_user(session: Session, user_id: int) -> User | None:
    """The user, or None when the row is gone."""
    return session.get(User, user_id)


def user_email(session: Session, user_id: int) -> str | None:
    return session.scalar(select(User.email).where(User.id == user_id))


def users_per_plan(session: Session) -> dict[int, int]:
    return {plan_id: int(n) for plan_id, n in session.execute(select(User.plan_id, func.count()).group_by(User.plan_id))}


def addresses_with_owners(session: Session, user_id: int | None = None) -> list[tuple[InboundAddress, str]]:
    """Inbound addresses (one user's, or everyone's) with their owner's email, oldest first."""
    query = select(InboundAddress, User.email).join(User).order_by(InboundAddress.id)
    if user_id is not None:
        query = query.where(InboundAddress.user_id == user_id)
    return [(address, email) for address, email in session.execute(query)]


def first_address_on(session: Session, user_id: int, domain: str) -> str | None:
    return session.scalar(
        select(InboundAddress.address)
        .where(InboundAddress.user_id == user_id, InboundAddress.address.like(f"%@{domain}"))
        .order_by(InboundAddress.id)
    )


def newest_device_id(session: Session, user_id: int) -> int | None:
    """The id of the user's newest Kindle device, active or not."""
    return session.scalar(select(func.max(KindleDevice.id)).where(KindleDevice.user_id == user_id))


def has_active_kindle(session: Session, user_id: int) -> bool:
    return session.scalar(
        select(KindleDevice.id).where(KindleDevice.user_id == user_id, KindleDevice.active.is_(True)).limit(1)
    ) is not None


def set_device_check(
    session: Session, device_id: int, state: KindleCheck | str, reason: str, *, now: datetime
) -> KindleDevice | None:
    """Record a Kindle check's outcome on the device; None when the device is gone."""
    device = session.get(KindleDevice, device_id)
    if device is not None:
        device.check_state, device.check_reason, device.checked_at = KindleCheck(state).value, reason, now
        session.flush()
    return device


def settle_device_checks(session: Session, *, checked_before: datetime, reason: str) -> int:
    return session.execute(
        update(KindleDevice)
        .where(KindleDevice.check_state == KindleCheck.PENDING.value, KindleDevice.checked_at < checked_before)
        .values(check_state=KindleCheck.UNCONFIRMED.value, check_reason=reason)
    ).rowcount


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def update_user(
    session: Session,
    user_id: int,
    *,
    timezone: str | None = None,
    delivery: str | DeliveryPreference | None = None,
    plan: str | None = None,
) -> User:
    user = get_user(session, user_id)
    if timezone is not None:
        user.timezone = validate_timezone(timezone)
    if delivery is not None:
        pref = delivery if isinstance(delivery, DeliveryPreference) else parse_delivery(delivery)
        user.delivery_mode, user.delivery_hour, user.delivery_weekday = pref.mode.value, pref.hour, pref.weekday
    if plan is not None:
        user.plan = get_plan(session, plan)
    session.flush()
    return user


def set_user_plan(session: Session, user_id: int, plan_name: str) -> User:
    return update_user(session, user_id, plan=plan_name)


# --- Kindle devices -------------------------------------------------------------


def set_kindle(session: Session, user_id: int, address: str, *, name: str | None = None) -> KindleDevice:
    """Make ``address`` the user's one active Send-to-Kindle device."""
    email = normalize_email(address, "Kindle address")
    user = get_user(session, user_id)
    session.execute(
        update(KindleDevice).where(KindleDevice.user_id == user.id, KindleDevice.email != email).values(active=False)
    )
    device = session.scalar(select(KindleDevice).where(KindleDevice.user_id == user.id, KindleDevice.email == email))
    if device is None:
        device = KindleDevice(user_id=user.id, email=email, name=name, active=True)
        session.add(device)
    else:
        device.active = True
        if name is not None:
            device.name = name
    session.flush()
    session.expire(user, ["devices"])
    return device


# --- inbound addresses ------------------------------------------------------------


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:24].strip("-")


def issue_address(session: Session, user_id: int, label: str | None = None, *, domain: str) -> InboundAddress:
    """A new unguessable address ``<slug>-<8 random base32>@domain`` for the user."""
    user = get_user(session, user_id)
    domain = domain.strip().lower()
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", domain):
        raise InvalidInput(f"bad inbound domain {domain!r}")
    if label is not None and not _slug(label):
        raise InvalidInput(f"bad label {label!r}: use letters or digits")
    slug = _slug(label) if label else _slug(user.email.split("@", 1)[0]) or "inbox"
    for _ in range(10):  # a collision at 40 random bits is already unheard of
        suffix = "".join(secrets.choice(_BASE32) for _ in range(ADDRESS_SUFFIX_LEN))
        address = f"{slug}-{suffix}@{domain}"
        if session.scalar(select(InboundAddress.id).where(InboundAddress.address == address)) is None:
            row = InboundAddress(user_id=user.id, address=address, label=label, enabled=True)
            session.add(row)
            session.flush()
            return row
    raise RuntimeError("could not find a free inbound address")  # pragma: no cover


def canonical_address(recipient: str) -> str | None:
    """``"Alias+Tag@Domain"`` -> ``"alias@domain"``; None when it is no address."""
    text = (recipient or "").strip().strip("<>").strip().lower()
    if text.count("@") < 1:
        return None
    local, _, domain = text.rpartition("@")
    local = local.split("+", 1)[0]
    if not local or not domain:
        return None
    return f"{local}@{domain}"


def resolve_address(session: Session, recipient: str) -> InboundAddress | None:
    address = canonical_address(recipient)
    if address is None:
        return None
    return session.scalar(select(InboundAddress).where(InboundAddress.address == address))


def set_address_enabled(
    session: Session, address: str, enabled: bool, *, now: datetime | None = None
) -> InboundAddress:
    row = resolve_address(session, address)
    if row is None:
        raise NotFound(f"no inbound address {address!r}")
    row.enabled = enabled
    row.disabled_at = None if enabled else (now or utcnow())
    session.flush()
    return row


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def kindle_checks(session: Session) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Active Kindle devices per check state (``kindle verify``), and the rejected ones (address, reason)."""
    counts = dict(
        session.execute(
            select(KindleDevice.check_state, func.count()).where(KindleDevice.active.is_(True)).group_by(KindleDevice.check_state)
        ).all()
    )
    rejected = session.execute(
        select(KindleDevice.email, KindleDevice.check_reason)
        .where(KindleDevice.active.is_(True), KindleDevice.check_state == "rejected")
        .order_by(KindleDevice.id)
    ).all()
    return {state: int(n) for state, n in counts.items()}, [(email, reason or "") for email, reason in rejected]
