"""The app engine's pooled PostgreSQL connections: checked after sitting idle, trusted while in use.

The server ends a connection (``pg_terminate_backend``, as a restart or an idle timeout would) and the
next transactions show what a worker would meet.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from inbox_pipeline.db.engine import make_engine


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _end_backend(admin, pid: int) -> None:
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


@pytest.fixture
def admin(postgres_url: str):
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    yield engine
    engine.dispose()


def test_a_connection_that_sat_idle_is_checked_and_replaced_unseen_when_the_server_closed_it(postgres_url, admin) -> None:
    engine = make_engine(postgres_url, ping_after_idle=0.0)  # every checkout counts as after an idle spell
    try:
        first = _backend_pid(engine)
        _end_backend(admin, first)
        with engine.begin() as conn:  # no error: the check found it closed and the pool connected anew
            assert conn.execute(text("SELECT 41 + 1")).scalar_one() == 42
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_a_connection_used_moments_ago_is_not_checked_a_closed_one_fails_once_then_all_are_new(postgres_url, admin) -> None:
    engine = make_engine(postgres_url)  # the default: checked only after 10 s idle
    try:
        first = _backend_pid(engine)
        _end_backend(admin, first)
        with pytest.raises(OperationalError), engine.begin() as conn:  # trusted, so its loss shows (once)
            conn.execute(text("SELECT 1"))
        with engine.begin() as conn:  # the pool replaced it: the caller's retry goes through
            assert conn.execute(text("SELECT 41 + 1")).scalar_one() == 42
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_connections_in_steady_use_keep_their_server_backend(postgres_url) -> None:
    engine = make_engine(postgres_url)
    try:
        pids = {_backend_pid(engine) for _ in range(20)}
        assert len(pids) == 1  # one pooled connection, reused (no reconnect per transaction)
    finally:
        engine.dispose()
