"""Errors the repository raises for wrong input; their message is one readable sentence."""

from __future__ import annotations


class DbInputError(ValueError):
    """Base: a request the data layer refuses (the CLI shows the message as is)."""


class InvalidInput(DbInputError):
    """A malformed value: email, timezone, delivery spec, plan limit..."""


class NotFound(DbInputError, LookupError):
    """No such user, plan, address or row."""


class AlreadyExists(DbInputError):
    """The row would break a uniqueness rule (same user email, same plan...)."""


class InvalidTransition(DbInputError):
    """A state change that the state machine does not allow."""
