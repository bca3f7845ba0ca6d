"""Admin input (issue 9, point 6): one-line errors, never a traceback, no mail loops.

The validation is being built on branch ``routing``; the cases that hold today
are unmarked.
"""

from __future__ import annotations

import pytest

from inbox_pipeline_tests.hostile.bounded import measure
from inbox_pipeline_tests.hostile.conftest import run_cli

SECONDS, MEGABYTES = 60, 300



def session(commands: list[list[str]]) -> list[tuple[int, str, str]]:
    return [run_cli(argv) for argv in commands]


def admin(*commands: list[str]) -> list[tuple[int, str, str]]:
    return measure(session, list(commands), seconds=SECONDS, megabytes=MEGABYTES).value


def refused(result: tuple[int, str, str], *words: str) -> None:
    code, _out, err = result
    assert code == 2, result
    lines = err.strip().splitlines()
    # One error line (argparse puts its usage line above it), never a traceback.
    assert "Traceback" not in err and len(lines) <= 2 and "error:" in lines[-1], err
    assert all(word in err.lower() for word in words), err


def test_setup_works(admin_env) -> None:
    *_, listed = admin(["user", "add", "reader@example.org"], ["user", "list"])
    assert listed[0] == 0 and "reader@example.org" in listed[1]


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "add", "not-an-address"],
        ["user", "add", "reader@example.org", "--tz", "Mars/Olympus_Mons"],
        ["user", "add", "reader@example.org", "--delivery", "hourly"],
        ["plan", "set", "gold", "--monthly-limit", "-5"],
        ["status", "--hours", "0"],
        ["user", "add", "read\ner@example.org"],
    ],
    ids=["no-at", "timezone", "delivery", "negative-limit", "zero-hours", "newline"],
)
def test_bad_input_that_is_already_refused(admin_env, argv: list[str]) -> None:
    (result,) = admin(argv)
    refused(result)


def test_a_superscript_hour_is_refused(admin_env) -> None:
    (result,) = admin(["user", "add", "reader@example.org", "--delivery", "daily@²"])
    refused(result, "delivery")


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "set", "gold", "--monthly-limit", "9" * 40],
        ["status", "--hours", "9" * 40],
        ["user", "set", "9223372036854775808", "--plan", "gold"],  # found by test_fuzz's deep profile
    ],
    ids=["plan-limit", "status-hours", "user-id"],
)
def test_huge_numbers_are_refused(admin_env, argv: list[str]) -> None:
    (result,) = admin(argv)
    refused(result)


@pytest.mark.parametrize(
    "email",
    ["read\x07er@example.org", "read\x1ber@example.org", "r" * 65 + "@example.org", "reader@" + "d" * 250 + ".org"],
    ids=["bell", "escape", "long-local-part", "long-domain"],
)
def test_malformed_user_addresses_are_refused(admin_env, email: str) -> None:
    (result,) = admin(["user", "add", email])
    refused(result)


@pytest.mark.parametrize("where", ["user", "kindle"])
def test_our_own_inbound_address_is_refused(admin_env, where: str) -> None:
    added, issued = admin(["user", "add", "owner@example.org"], ["address", "add", "owner@example.org"])
    assert added[0] == 0 and issued[0] == 0
    ours = issued[1].strip()
    command = ["user", "add", ours] if where == "user" else ["kindle", "set", "owner@example.org", ours]
    (result,) = admin(command)
    refused(result)
