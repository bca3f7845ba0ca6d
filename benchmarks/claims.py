"""What a worker's claim on the work queue costs as a burst drains, on PostgreSQL and SQLite.

A burst of ``--due`` emails (one recipient in ten is a second user, as in e2e's two-user scenario) is
queued, then claimed and finished one at a time through ``db.queue`` (what a worker run does per
email), and the claim's time is printed at the start, middle and end of the queue, with the mean
claim + finish. The fair order looks at each recipient with mail due once, so a claim should cost
about the same at 50 due as at 5,000.

    .venv/bin/python benchmarks/claims.py [--due 500 --due 5000]

Needs PostgreSQL at 127.0.0.1:5432 (trust auth; override with INBOX_PIPELINE_TEST_PG).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("INBOX_PIPELINE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def drain(url: str, due: int) -> dict[str, float]:
    from inbox_pipeline.db import queue as q
    from inbox_pipeline.db.engine import make_engine, session_factory, upgrade
    from inbox_pipeline.db.intake import register_inbound
    from inbox_pipeline.services.context import utcnow

    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    try:
        now = utcnow()
        with sessions.begin() as session:
            emails = []
            for n in range(due):
                row, _ = register_inbound(session, storage_key=f"m{n:06d}", size=1, sha256=f"{n:064d}", received_at=now)
                emails.append((row.id, "few@in.example" if n % 10 == 0 else "many@in.example"))
            q.enqueue(session, emails, now=now)
        claims: list[float] = []
        started = time.perf_counter()
        while True:
            before = time.perf_counter()
            with sessions.begin() as session:
                claim = q.claim_next(session, "worker", now=utcnow())
            claims.append(time.perf_counter() - before)
            if claim is None:
                break
            with sessions.begin() as session:
                q.finish(session, claim.email_id, "worker")
        total = time.perf_counter() - started
        served = len(claims) - 1
        assert served == due, f"claimed {served} of {due}"
        ms = [c * 1000 for c in claims[:-1]]
        return {
            "first": statistics.median(ms[: max(1, due // 20)]),
            "middle": statistics.median(ms[due // 2 - due // 40 : due // 2 + due // 40 + 1]),
            "last": statistics.median(ms[-max(1, due // 20) :]),
            "per_email": total / due * 1000,
        }
    finally:
        engine.dispose()


def postgres_database():
    from sqlalchemy import create_engine, make_url, text

    name = f"ip_claims_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--due", type=int, action="append", help="emails queued at the start (repeatable); default 500 and 5000")
    args = parser.parse_args()
    print(f"{'database':<11} {'due':>6} | claim ms: first 5%  middle  last 5% | claim + finish, mean ms")
    for due in args.due or [500, 5000]:
        url, drop = postgres_database()
        try:
            pg = drain(url, due)
        finally:
            drop()
        with tempfile.TemporaryDirectory() as tmp:
            lite = drain(f"sqlite:///{Path(tmp) / 'app.db'}", due)
        for name, r in (("PostgreSQL", pg), ("SQLite", lite)):
            print(f"{name:<11} {due:>6} | {r['first']:17.2f} {r['middle']:7.2f} {r['last']:8.2f} | {r['per_email']:.2f}")


if __name__ == "__main__":
    main()
