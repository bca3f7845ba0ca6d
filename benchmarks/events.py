"""Dagster's events per email: how many rows and bytes one email adds to the instance's event log.

A real run of the real jobs on a PostgreSQL instance (app database on SQLite, a local inbox
folder, the outbox mailer, this folder's generated newsletters), as ``benchmarks/dagster_size.py``
runs them: ``--emails`` newsletters drained by the inbox sensor into batch runs, then the same
with one run per email. Printed for each: event-log rows and bytes (the ``event`` column's JSON)
per email, by event type, and the instance database's size per 1,000 emails.

    .venv/bin/python benchmarks/events.py [--emails 40] [--batch 100] [--skip-per-email]

Needs PostgreSQL at 127.0.0.1:5432 (trust auth; INBOX_PIPELINE_TEST_PG as in benchmarks/e2e.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dagster_size import app, instance_home, real_runs  # noqa: E402 - after the path
from inbox_pipeline_tests.conftest import pg_database  # noqa: E402


def event_stats(url: str) -> dict:
    """The instance's event log: rows and bytes in all and by event type (log lines: ``log``),
    and the database's size."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT coalesce(dagster_event_type, 'log'), count(*), sum(length(event)) "
                    "FROM event_logs GROUP BY 1 ORDER BY 2 DESC"
                )
            ).all()
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    finally:
        engine.dispose()
    return {
        "rows": sum(r[1] for r in rows),
        "bytes": sum(int(r[2] or 0) for r in rows),
        "by_type": {r[0]: (r[1], int(r[2] or 0)) for r in rows},
        "database": size,
    }


def per_email(stats: dict, emails: int) -> str:
    """One line: rows and KB per email, then the event types (rows and KB per email)."""
    kinds = ", ".join(f"{k} {n / emails:.2f} ({b / emails / 1024:.1f} KB)" for k, (n, b) in stats["by_type"].items())
    return f"{stats['rows'] / emails:.1f} events ({stats['bytes'] / emails / 1024:.1f} KB) per email: {kinds}"


def measure(label: str, emails: int, per_run: int, rng: random.Random) -> dict:
    import dagster as dg

    with tempfile.TemporaryDirectory(prefix="ip-events-") as tmp, pg_database("ip_bench_dagster") as url:
        home = instance_home(Path(tmp), url)
        with app(Path(tmp), batch_size=per_run) as data, dg.DagsterInstance.from_config(str(home)) as instance:
            empty = event_stats(url)
            runs, took = real_runs(instance, data, emails, rng)
            stats = event_stats(url)
    stats["runs"], stats["seconds"], stats["empty_database"] = len(runs), took, empty["database"]
    print(f"{label}: {emails} emails in {len(runs)} run(s), {took:.1f} s", flush=True)
    print(f"  {per_email(stats, emails)}", flush=True)
    growth = (stats["database"] - empty["database"]) / emails * 1000
    print(f"  instance database: +{growth / 1e6:.1f} MB per 1,000 emails (includes PostgreSQL's page slack)", flush=True)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=40)
    parser.add_argument("--batch", type=int, default=100, help="emails in one batch run")
    parser.add_argument("--skip-per-email", action="store_true")
    parser.add_argument("--per-email-emails", type=int, default=5, help="emails for the one-run-per-email shape")
    args = parser.parse_args()
    rng = random.Random(11)
    measure("batch runs", args.emails, args.batch, rng)
    if not args.skip_per_email:
        measure("one run per email", args.per_email_emails, 1, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
