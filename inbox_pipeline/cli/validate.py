"""Checks on what an operator types, for every admin command: each refusal is one line.

The ``*_arg`` functions are argparse ``type=`` callables (argparse prints the
message and exits 2); the others raise ``CliError``.
"""

from __future__ import annotations

import argparse
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr

from inbox_pipeline.cli.errors import CliError

MAX_LOCAL_PART = 64  # RFC 5321, 4.5.3.1.1
MAX_ADDRESS = 254  # RFC 5321's 256-octet path, less its angle brackets
MAX_COUNT = 2**31 - 1  # the database's INTEGER columns
MAX_HOURS = 24 * 366 * 10  # ten years: further back than any retention
MAX_TEXT = 200


def control_free(value: str, what: str, *, max_len: int = MAX_TEXT) -> str:
    """``value`` stripped; refused with control or format characters (newlines, NUL, bidi overrides) or too long."""
    text = (value or "").strip()
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if bad is not None:
        raise CliError(f"{what} contains a control character (U+{ord(bad):04X}): {text!r}")
    if len(text) > max_len:
        raise CliError(f"{what} is too long: {len(text)} characters (at most {max_len})")
    return text


@dataclass(frozen=True)
class OwnAddresses:
    """Where our own mail comes from and goes to: a user's or Kindle address there would loop."""

    inbound_domain: str
    sender: str

    @classmethod
    def from_settings(cls, settings) -> OwnAddresses:
        return cls(settings.inbound_domain.strip().lower(), parseaddr(settings.sender)[1].strip().lower())

    def claims(self, address: str) -> str | None:
        """Why ``address`` is one of ours, or None."""
        domain = address.rpartition("@")[2]
        if address == self.sender:
            return "it is the sender address our mail comes from"
        if domain == self.inbound_domain or domain.endswith("." + self.inbound_domain):
            return f"it is on the inbound domain {self.inbound_domain}"
        return None


def mail_address(value: str, what: str, *, ours: OwnAddresses | None = None) -> str:
    """``value`` lower-cased, within RFC 5321's lengths and not one of ``ours`` (its syntax is the data layer's)."""
    text = control_free(value, what, max_len=MAX_ADDRESS + 64).lower()
    local, at, domain = text.rpartition("@")
    if not at:
        return text  # not an address at all: the data layer says so in its own words
    if len(local.encode()) > MAX_LOCAL_PART:
        raise CliError(f"{what} {text!r}: the part before @ is {len(local.encode())} bytes (at most {MAX_LOCAL_PART})")
    if len(text.encode()) > MAX_ADDRESS:
        raise CliError(f"{what} {text!r} is {len(text.encode())} bytes long (at most {MAX_ADDRESS})")
    why = ours.claims(text) if ours else None
    if why:
        raise CliError(f"{what} {text} cannot be used: {why} (mail to it would come back to us in a loop)")
    return text


def user_ref(value: str) -> str:
    """A user's id (a plain number) or email."""
    text = control_free(value, "user", max_len=MAX_ADDRESS + 64)
    if text.isascii() and text.isdigit() and int(text) > MAX_COUNT:
        raise CliError(f"no user {text} (ids go up to {MAX_COUNT})")
    return text


def count_arg(value: str) -> int:
    """argparse: a whole number from 0 to ``MAX_COUNT`` (ASCII digits: int() also takes '²' and '٣')."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {value!r}")
    if len(text) > 10 or int(text) > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value!r} is too large (at most {MAX_COUNT})")
    return int(text)


def hours_arg(value: str) -> int:
    """argparse: hours to look back, 1 to ``MAX_HOURS``."""
    number = count_arg(value)
    if not 1 <= number <= MAX_HOURS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_HOURS} hours, got {value!r}")
    return number
