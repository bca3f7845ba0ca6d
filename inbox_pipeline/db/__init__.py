"""The app database: SQLAlchemy 2 models, Alembic migrations, state transitions.

Modules (each documents its public functions):

- ``engine``: ``make_engine``, ``session_factory``, ``upgrade``, ``current_revision``, ``head_revision``
- ``models``: the tables and the state enums (``InboundState``, ``NewsletterStatus``, ...)
- ``users``: users, inbound addresses, Kindle devices, plans
- ``intake``: register inbound emails, the state machine, routing + de-duplication
- ``newsletters``: newsletter rows
- ``quota``: monthly quota check-and-increment
- ``ledger``: the exactly-once delivery ledger
- ``digests``: which digests are due, digest rows and members
- ``notifications``: tell a user once

Importing this package is cheap: names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_engine": "engine",
    "session_factory": "engine",
    "upgrade": "engine",
    "current_revision": "engine",
    "head_revision": "engine",
    "Base": "models",
    "InboundState": "models",
    "NewsletterStatus": "models",
    "DeliveryMode": "models",
    "DeliveryStatus": "models",
    "DigestStatus": "models",
    "NotificationStatus": "models",
    "DbInputError": "errors",
    "InvalidInput": "errors",
    "NotFound": "errors",
    "AlreadyExists": "errors",
    "InvalidTransition": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inbox_pipeline.db' has no attribute {name!r}")
    return getattr(importlib.import_module(f"inbox_pipeline.db.{module}"), name)
