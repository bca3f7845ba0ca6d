"""How big Dagster's own PostgreSQL database gets, and what the cleanup job's purge leaves.

1. A real run of the real job on a PostgreSQL instance (app database on
   SQLite, local inbox folder, outbox mailer, the benchmark's generated
   newsletters): the take and worker runs of ``--batch`` emails, and
   one ``process_email`` run of one email.
2. Those runs' rows (runs, run tags, event log, asset check executions) are
   copied in SQL, each copy under a new run id and aged, until they hold
   ``--emails`` emails' worth, spread evenly over ``--days`` days. The copies
   are byte for byte what Dagster wrote for the real runs.
3. The purge the daily cleanup job runs (``purge_dagster_history``, public
   instance APIs: ``delete_run`` per run) with the default retention (30
   days, failed runs 90), timed.

Printed for each shape (batch runs, then one run per email): database size
empty, after the emails, after the purge with a plain VACUUM (PostgreSQL
keeps the freed pages and reuses them for new runs: the disk size stops
growing), and after VACUUM FULL (the live data).

    .venv/bin/python benchmarks/dagster_size.py [--emails 10000] [--days 60] [--batch 100]

Needs PostgreSQL at 127.0.0.1:5432 (trust auth; INBOX_PIPELINE_TEST_PG as in benchmarks/e2e.py).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.e2e import newsletter  # noqa: E402 - after the path
from inbox_pipeline_tests.conftest import pg_database  # noqa: E402

UTC = timezone.utc
COPIED_TABLES = ("runs", "run_tags", "event_logs", "asset_check_executions")  # what grows per run


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@contextmanager
def app(workdir: Path, batch_size: int):
    """The app's side on this machine: SQLite, folders, outbox; one reader."""
    from inbox_pipeline.db.engine import upgrade

    data = workdir / "data"
    for key, value in {
        "DATA_DIR": str(data),
        "FETCH_IMAGES": "false",
        "BATCH_SIZE": str(batch_size),
        "RETRY_DELAY_SECONDS": "0",
        "INBOUND_DOMAIN": "in.bench.example",
    }.items():
        os.environ["INBOX_PIPELINE_" + key] = value
    from inbox_pipeline.config import Settings

    upgrade(Settings.from_env().database_url)
    yield data


def instance_home(workdir: Path, url: str) -> Path:
    """A DAGSTER_HOME in ``workdir`` whose instance stores everything in PostgreSQL at ``url``."""
    home = workdir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f'storage:\n  postgres:\n    postgres_url: "{url}"\npython_logs:\n  python_log_level: INFO\n'
        "telemetry:\n  enabled: false\n"
    )
    return home


def reader_address() -> str:
    from inbox_pipeline.config import Settings
    from inbox_pipeline.db.users import add_user, issue_address
    from inbox_pipeline.services.context import Pipeline

    with Pipeline.from_settings(Settings.from_env()) as pipeline, pipeline.sessions.begin() as session:
        user = add_user(session, email="reader@bench.example", kindle="reader@kindle.example")
        return issue_address(session, user.id, "news", domain="in.bench.example").address


def real_runs(instance, data: Path, emails: int, rng: random.Random) -> tuple[list[str], float]:
    """Put ``emails`` newsletters in the inbox, tick the real sensor and execute the runs it asks for
    (a burst is split into runs so both cores work)."""
    from inbox_pipeline_tests.defs.harness import Deployment, forget_reconstructed_jobs

    forget_reconstructed_jobs()
    address = reader_address()
    inbox = data / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for n in range(emails):
        (inbox / f"m{n}.eml").write_bytes(newsletter(n, address, rng))
    dep = Deployment(instance=instance, data_dir=data)
    started = time.perf_counter()
    results = dep.drain()
    assert results and all(r.success for r in results), [r.run_id for r in results]
    return [r.run_id for r in results], time.perf_counter() - started


def columns(conn, table: str) -> list[tuple[str, str]]:
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = :t AND column_name <> 'id' ORDER BY ordinal_position"
        ),
        {"t": table},
    )
    return [(r[0], r[1]) for r in rows]


def copy_run(conn, template: str, copies: list[tuple[str, timedelta]]) -> None:
    """Copy every row of run ``template`` under each new run id, its times moved back by the age."""
    from sqlalchemy import text

    values = ", ".join(f"('{run_id}', interval '{int(age.total_seconds())} seconds')" for run_id, age in copies)
    for table in COPIED_TABLES:
        cols = columns(conn, table)
        exprs = []
        for col, kind in cols:
            if col == "run_id":
                exprs.append("c.run_id")
            elif kind == "text":
                exprs.append(f"replace(t.{col}, :template, c.run_id)")
            elif kind.startswith("timestamp"):
                exprs.append(f"t.{col} - c.age")
            elif col in ("start_time", "end_time"):
                exprs.append(f"t.{col} - extract(epoch from c.age)")
            else:
                exprs.append(f"t.{col}")
        names = ", ".join(col for col, _ in cols)
        conn.execute(
            text(
                f"INSERT INTO {table} ({names}) SELECT {', '.join(exprs)} "
                f"FROM {table} t CROSS JOIN (VALUES {values}) AS c(run_id, age) WHERE t.run_id = :template"
            ),
            {"template": template},
        )


def sizes(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = {"database": conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()}
            for table in COPIED_TABLES:
                out[f"{table} rows"] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            return out
    finally:
        engine.dispose()


def vacuum(url: str, full: bool) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM FULL" if full else "VACUUM"))
    finally:
        engine.dispose()


def scenario(label: str, emails_per_run: int, args, rng: random.Random) -> list[tuple[str, str]]:
    import dagster as dg
    from sqlalchemy import create_engine

    from inbox_pipeline.defs.maintenance.history import purge_dagster_history
    from inbox_pipeline.services.cleanup import RetentionPolicy

    groups = max(1, args.emails // emails_per_run)  # each group: copies of the real runs for emails_per_run emails
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ip-dagster-size-") as tmp, pg_database("ip_bench_dagster") as url:
        home = instance_home(Path(tmp), url)
        with app(Path(tmp), batch_size=emails_per_run) as data, dg.DagsterInstance.from_config(str(home)) as instance:
            empty = sizes(url)
            templates, took = real_runs(instance, data, emails_per_run, rng)
            print(f"{label}: {len(templates)} real run(s) of {emails_per_run} email(s) took {took:.1f} s", flush=True)
            now = datetime.now(UTC)
            span = timedelta(days=args.days)
            ages = [span * (i + 1) / groups for i in range(groups - 1)]
            engine = create_engine(url)
            try:
                for template in templates:
                    for start in range(0, len(ages), 500):
                        with engine.begin() as conn:
                            copy_run(conn, template, [(str(uuid.uuid4()), age) for age in ages[start : start + 500]])
            finally:
                engine.dispose()
            vacuum(url, full=False)
            full = sizes(url)
            started = time.perf_counter()
            # All of it in one go (the cleanup job stops at its time budget and goes on the next day).
            report = purge_dagster_history(instance, now, RetentionPolicy(), budget_seconds=float("inf"))
            purge_s = time.perf_counter() - started
            vacuum(url, full=False)
            after = sizes(url)
            vacuum(url, full=True)
            live = sizes(url)
    rows += [
        ("runs: the real ones and their copies", f"{groups * len(templates):,} ({len(templates)} per {emails_per_run} email(s))"),
        ("empty instance", mb(empty["database"])),
        (f"after {groups * emails_per_run:,} emails over {args.days} days", mb(full["database"])),
        ("  event log rows / asset check rows", f"{full['event_logs rows']:,} / {full['asset_check_executions rows']:,}"),
        (
            f"purge (30 days): runs deleted, time",
            f"{report.runs + report.failed_runs:,} in {purge_s:.1f} s ({purge_s / max(1, report.runs):.3f} s a run)",
        ),
        ("after the purge, plain VACUUM (disk; freed pages reused)", mb(after["database"])),
        ("after the purge, VACUUM FULL (live data)", mb(live["database"])),
        ("  event log rows / asset check rows left", f"{live['event_logs rows']:,} / {live['asset_check_executions rows']:,}"),
    ]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60, help="the emails are spread over this many days back")
    parser.add_argument("--batch", type=int, default=100, help="emails in one batch run")
    parser.add_argument("--skip-per-email", action="store_true", help="only the batch-run shape")
    args = parser.parse_args()
    rng = random.Random(7)
    shapes = [("batch runs", args.batch)] + ([] if args.skip_per_email else [("one run per email", 1)])
    for label, per_run in shapes:
        rows = scenario(label, per_run, args, rng)
        print(f"\n{label}")
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
