"""How long a ``delivery_failed`` notice waits before the user hears of it.

Apart from ``services.notify`` because the definitions read it when Dagster loads
them, and ``services.notify`` brings SQLAlchemy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

GRACE_VARIABLE = "INBOX_PIPELINE_NOTICE_GRACE_MINUTES"
DEFAULT_GRACE = timedelta(minutes=30)  # time for the operator to re-execute before the user hears of it


def notice_grace(environ: Mapping[str, str] | None = None) -> timedelta:
    """How long a ``delivery_failed`` notice waits (``INBOX_PIPELINE_NOTICE_GRACE_MINUTES``, default 30)."""
    value = ((os.environ if environ is None else environ).get(GRACE_VARIABLE) or "").strip()
    return timedelta(minutes=float(value)) if value else DEFAULT_GRACE
