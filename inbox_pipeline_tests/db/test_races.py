"""Real OS processes racing on one database: the constraints hold."""

from __future__ import annotations

import pytest

from inbox_pipeline.db.engine import make_engine, session_factory
from inbox_pipeline.db.intake import get_inbound, register_inbound
from inbox_pipeline.db.ledger import find_delivery
from inbox_pipeline.db.quota import quota_usage
from inbox_pipeline.db.users import add_user, issue_address, set_plan
from inbox_pipeline_tests.conftest import migrated

from . import _race_workers
from ._races import run_race
from ._race_workers import NOW

PROCESSES = 8


def _migrated(url: str):
    migrated(url)
    engine = make_engine(url)
    return engine, session_factory(engine)


def test_eight_processes_claim_one_delivery_exactly_one_wins(postgres_url: str) -> None:
    engine, factory = _migrated(postgres_url)
    try:
        outcomes = run_race(_race_workers.claim_worker, postgres_url, [42] * PROCESSES)
        winners = [o for o in outcomes.values() if o is not None]
        assert len(winners) == 1
        with factory.begin() as s:
            row = find_delivery(s, item_kind="newsletter", item_id=42, recipient="a_k@kindle.com")
            assert row is not None and row.id == winners[0] and row.attempts == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_eight_processes_race_past_a_quota_of_five(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    engine, factory = _migrated(url)
    try:
        with factory.begin() as s:
            set_plan(s, "five", monthly_limit=5)
            uid = add_user(s, email="racer@example.com", plan="five").id
        outcomes = run_race(_race_workers.quota_worker, url, [uid] * PROCESSES)
        assert sorted(outcomes.values()) == [False] * 3 + [True] * 5
        with factory.begin() as s:
            assert quota_usage(s, uid, NOW).used == 5
    finally:
        engine.dispose()


def test_copies_routed_at_once_only_one_is_routed(postgres_url: str) -> None:
    engine, factory = _migrated(postgres_url)
    try:
        with factory.begin() as s:
            uid = add_user(s, email="a@example.com").id
            address = issue_address(s, uid, domain="in.example.com").address
            ids = [
                register_inbound(s, storage_key=f"copy-{i}", size=1, sha256="0" * 64, received_at=NOW)[0].id
                for i in range(4)
            ]
        outcomes = run_race(_race_workers.route_worker, postgres_url, [(i, address) for i in ids])
        assert sorted(outcomes.values()) == ["duplicate"] * 3 + ["routed"]
        with factory.begin() as s:
            rows = [get_inbound(s, i) for i in ids]
            winner = next(r for r in rows if r.state == "routed")
            for row in rows:
                if row.id != winner.id:
                    assert row.reason == f"duplicate of inbound email #{winner.id} (same Message-ID) for a@example.com"
    finally:
        engine.dispose()


def test_deploys_migrating_at_once_do_not_collide(postgres_url: str) -> None:
    from inbox_pipeline.db.engine import head_revision

    outcomes = run_race(_race_workers.upgrade_worker, postgres_url, [None] * 3)
    assert set(outcomes.values()) == {head_revision()}
    engine, factory = _migrated(postgres_url)
    try:
        with factory.begin() as s:
            from inbox_pipeline.db.users import list_plans

            assert [p.name for p in list_plans(s)] == ["free", "pro", "unlimited"]
    finally:
        engine.dispose()
