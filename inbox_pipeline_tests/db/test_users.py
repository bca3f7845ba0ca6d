"""Users, inbound addresses, Kindle devices and plans."""

from __future__ import annotations

import re

import pytest

from inbox_pipeline.db.errors import AlreadyExists, InvalidInput, NotFound
from inbox_pipeline.db.models import DeliveryMode
from inbox_pipeline.db.users import (
    add_user,
    format_delivery,
    get_user,
    issue_address,
    list_users,
    parse_delivery,
    resolve_address,
    set_address_enabled,
    set_kindle,
    set_plan,
    update_user,
)


def test_add_user_stores_preferences_and_kindle(factory) -> None:
    with factory.begin() as s:
        user = add_user(
            s, email=" Alice@Example.COM ", timezone="Europe/Berlin", delivery="weekly@sun@07", plan="pro",
            kindle="Alice_K@Kindle.com",
        )
        uid = user.id
    with factory.begin() as s:
        user = get_user(s, "alice@example.com")
        assert user.id == uid
        assert (user.email, user.timezone, user.plan.name) == ("alice@example.com", "Europe/Berlin", "pro")
        assert (user.delivery_mode, user.delivery_hour, user.delivery_weekday) == ("weekly", 7, 6)
        assert format_delivery(user) == "weekly@sun@07"
        assert user.kindle is not None and user.kindle.email == "alice_k@kindle.com"
        assert [u.email for u in list_users(s)] == ["alice@example.com"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"email": "not-an-email"}, InvalidInput, "not a valid email address"),
        ({"email": "a@b.c", "timezone": "Mars/Olympus"}, InvalidInput, "unknown timezone 'Mars/Olympus'"),
        ({"email": "a@b.example", "delivery": "daily@25"}, InvalidInput, "bad delivery 'daily@25'"),
        ({"email": "a@b.example", "delivery": "weekly@funday@07"}, InvalidInput, "bad delivery"),
        ({"email": "a@b.example", "plan": "gold"}, NotFound, "unknown plan 'gold' (known: free, pro, unlimited)"),
        ({"email": "a@b.example", "kindle": "kindle"}, InvalidInput, "'kindle' is not a valid Kindle address"),
    ],
)
def test_add_user_refuses_bad_input(factory, kwargs, error, message) -> None:
    with factory.begin() as s:
        with pytest.raises(error) as info:
            add_user(s, **kwargs)
        assert message in str(info.value)
        assert list_users(s) == []


def test_duplicate_user_is_refused_case_insensitively(factory) -> None:
    with factory.begin() as s:
        add_user(s, email="bob@example.com")
    with factory.begin() as s:
        with pytest.raises(AlreadyExists, match="bob@example.com already exists"):
            add_user(s, email="BOB@example.com")


def test_parse_delivery_specs() -> None:
    assert parse_delivery("instant").mode is DeliveryMode.INSTANT
    assert parse_delivery("daily@7") == parse_delivery("DAILY@07")
    assert str(parse_delivery("daily@7")) == "daily@07"
    assert str(parse_delivery("weekly@Monday@23")) == "weekly@mon@23"
    for bad in ("", "daily", "daily@", "daily@-1", "weekly@sun", "weekly@7@sun", "monthly@1"):
        with pytest.raises(InvalidInput):
            parse_delivery(bad)


def test_issue_address_is_unguessable_unique_and_resolves(factory) -> None:
    with factory.begin() as s:
        uid = add_user(s, email="carol.smith@example.com").id
        a1 = issue_address(s, uid, "Money Stuff!", domain="In.Example.com")
        a2 = issue_address(s, uid, domain="in.example.com")
        addresses = [issue_address(s, uid, "x", domain="in.example.com").address for _ in range(20)]
    assert re.fullmatch(r"money-stuff-[a-z2-7]{8}@in\.example\.com", a1.address)
    assert re.fullmatch(r"carol-smith-[a-z2-7]{8}@in\.example\.com", a2.address)
    assert len(set(addresses)) == 20  # random suffix, never repeated
    local = a1.address.split("@")[0]
    with factory.begin() as s:
        # case-insensitive, with angle brackets, and alias+tag@ resolves to the alias
        for recipient in (a1.address.upper(), f"<{a1.address}>", f"{local}+tech@in.example.com", f"{local.upper()}+A+B@IN.EXAMPLE.COM"):
            found = resolve_address(s, recipient)
            assert found is not None and found.id == a1.id, recipient
        assert resolve_address(s, f"{local}@other.example.com") is None
        assert resolve_address(s, "money-stuff@in.example.com") is None
        assert resolve_address(s, "no address") is None
        disabled = set_address_enabled(s, f"{local}+tag@in.example.com", False)
        assert disabled.enabled is False and disabled.disabled_at is not None
    with factory.begin() as s:
        found = resolve_address(s, a1.address)
        assert found is not None and found.enabled is False
        with pytest.raises(NotFound):
            set_address_enabled(s, "nobody@in.example.com", True)
        with pytest.raises(InvalidInput):
            issue_address(s, uid, "!!!", domain="in.example.com")
        with pytest.raises(NotFound):
            issue_address(s, 999, domain="in.example.com")


def test_set_kindle_keeps_one_active_device(factory) -> None:
    with factory.begin() as s:
        uid = add_user(s, email="dan@example.com").id
        assert get_user(s, uid).kindle is None
        set_kindle(s, uid, "dan_1@kindle.com")
        set_kindle(s, uid, "Dan_2@Kindle.com", name="Oasis")
    with factory.begin() as s:
        user = get_user(s, uid)
        assert [(d.email, d.active) for d in user.devices] == [("dan_1@kindle.com", False), ("dan_2@kindle.com", True)]
        assert user.kindle.email == "dan_2@kindle.com" and user.kindle.name == "Oasis"
        set_kindle(s, uid, "dan_1@kindle.com")
    with factory.begin() as s:
        assert get_user(s, uid).kindle.email == "dan_1@kindle.com"
        assert len(get_user(s, uid).devices) == 2


def test_plans_are_created_changed_and_assigned(factory) -> None:
    with factory.begin() as s:
        assert set_plan(s, "free", monthly_limit=10).monthly_limit == 10
        team = set_plan(s, "Team", monthly_limit=None)
        assert (team.name, team.monthly_limit) == ("team", None)
        uid = add_user(s, email="erin@example.com").id
        assert update_user(s, uid, plan="team", timezone="Asia/Kolkata", delivery="daily@06").plan.name == "team"
        with pytest.raises(InvalidInput):
            set_plan(s, "free", monthly_limit=-1)
        with pytest.raises(InvalidInput):
            set_plan(s, "bad name", monthly_limit=1)
    with factory.begin() as s:
        user = get_user(s, uid)
        assert (user.plan.name, user.timezone, format_delivery(user)) == ("team", "Asia/Kolkata", "daily@06")
