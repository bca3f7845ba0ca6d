"""One hostile case through the real Definitions, in the forked child of ``bounded.measure``.

The child builds the deployment (database, Dagster instance, inbox), drops the
case's objects into the inbox, ticks the real sensor and runs what it asks
for; it returns the rows and quotas an operator would look at. Mail goes to
the SMTP sink living in the test process, so the test reads what arrived there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from inbox_pipeline_tests.defs.harness import add_reader, deployment
from inbox_pipeline_tests.defs.test_pipeline import by_recipient as arrived  # parsed messages per recipient

__all__ = ["MEGABYTES", "SECONDS", "arrived", "kindle", "own", "run_pipeline"]

SECONDS, MEGABYTES = 180, 600  # a deployment, a few runs; ceilings, not timings
READERS = ("alice", "bob")


def kindle(name: str) -> str:
    return f"{name}_k@kindle.example"


def own(name: str) -> str:
    return f"{name}@example.org"


def run_pipeline(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    objects: Callable[[dict[str, str]], dict[str, bytes]],
    settings: dict[str, str],
    put: Callable | None = None,
) -> dict:
    """``objects(addresses)`` -> {inbox key: bytes}; ``put(dep, key, data)`` when the inbox's own put will not do."""
    from sqlalchemy import select

    from inbox_pipeline.db.models import User
    from inbox_pipeline.db.quota import quota_usage
    from inbox_pipeline.services.context import utcnow

    with deployment(monkeypatch, tmp_path, **settings) as dep:
        addresses = {name: add_reader(dep, own(name), kindle=kindle(name)) for name in READERS}
        inbox = dep.pipeline().inbox
        for key, data in objects(addresses).items():
            (put or (lambda _dep, k, d: inbox.put(k, d)))(dep, key, data)
        runs = dep.drain(max_ticks=6)
        with dep.pipeline().sessions() as session:
            used = {
                user.email.split("@")[0]: quota_usage(session, user.id, utcnow()).used
                for user in session.scalars(select(User))
            }
        return {
            "runs_ok": [r.success for r in runs],
            "rows": dep.rows(),
            "used": used,
            "addresses": addresses,
        }
