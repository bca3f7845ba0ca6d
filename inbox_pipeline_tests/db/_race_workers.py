"""Process entry points for the race tests (spawned: each has its own engine)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
HOLD_S = 0.3  # keep the transaction open so the others really contend for it


def _race(url: str, start: Any, results: Any, index: int, work: Any) -> None:
    from inbox_pipeline.db.engine import make_engine, session_factory

    engine = make_engine(url)
    try:
        with engine.connect():  # connect before the start line, so all start together
            pass
        factory = session_factory(engine)
        start.wait(timeout=60)
        with factory.begin() as session:
            outcome = work(session)
            time.sleep(HOLD_S)
        results.put((index, outcome))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((index, f"error: {type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def claim_worker(url: str, start: Any, results: Any, index: int, item_id: int) -> None:
    from inbox_pipeline.db.ledger import claim_delivery

    def work(session: Any) -> Any:
        row = claim_delivery(session, item_kind="newsletter", item_id=item_id, recipient="a_k@kindle.com", now=NOW)
        return None if row is None else row.id

    _race(url, start, results, index, work)


def quota_worker(url: str, start: Any, results: Any, index: int, user_id: int) -> None:
    from inbox_pipeline.db.quota import consume_quota

    _race(url, start, results, index, lambda session: consume_quota(session, user_id, NOW))


def route_worker(url: str, start: Any, results: Any, index: int, payload: tuple[int, str]) -> None:
    from inbox_pipeline.db.intake import route_inbound

    email_id, address = payload

    def work(session: Any) -> Any:
        decision = route_inbound(session, email_id, recipients=[address], message_id="same@sender.example",
                                 content_sha256=f"body-{email_id}", now=NOW)
        return decision.state.value

    _race(url, start, results, index, work)


def upgrade_worker(url: str, start: Any, results: Any, index: int, _: Any) -> None:
    from inbox_pipeline.db.engine import upgrade

    try:
        start.wait(timeout=60)
        results.put((index, upgrade(url)))
    except Exception as exc:
        results.put((index, f"error: {type(exc).__name__}: {exc}"))


def queue_claim_worker(url: str, start: Any, results: Any, index: int, worker: str) -> None:
    """Claim from the work queue, one email a transaction, until none is due; report the ids claimed."""
    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.queue import claim_next

    engine = make_engine(url)
    try:
        with engine.connect():
            pass
        factory = session_factory(engine)
        start.wait(timeout=60)
        claimed = []
        while True:
            with factory.begin() as session:
                got = claim_next(session, worker, now=NOW)
                time.sleep(0.005)  # the claim uncommitted a moment: the others pick the same candidates
            if got is None:
                break
            claimed.append(got.email_id)
        results.put((index, claimed))
    except Exception as exc:
        results.put((index, f"error: {type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()
