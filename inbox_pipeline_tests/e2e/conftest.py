"""Real Dagster processes for the end-to-end tests: a dagster-daemon with PostgreSQL instance storage.

``Daemon`` starts ``dagster-daemon run -w workspace.yaml`` (sensors, the queued
run coordinator and the default run launcher, as in production) in its own
process group with the given environment, and stops that group afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from inbox_pipeline_tests.conftest import free_port, moto_env, pg_database, serving

ROOT = Path(__file__).resolve().parents[2]
SENDER = "kindle-delivery@pipeline.example"


@pytest.fixture
def dagster_pg_url(postgres_available: bool) -> Iterator[str]:
    """A second fresh PostgreSQL database, for the Dagster instance (runs, events, schedules)."""
    from inbox_pipeline_tests.conftest import unavailable

    if not postgres_available:
        unavailable("PostgreSQL is not answering at 127.0.0.1:5432")
    with pg_database("ip_dagster") as url:
        yield dagster_url(url)


def dagster_url(pg_url: str) -> str:
    """``pg_url`` with psycopg2 named: with SQLAlchemy 2.1 a bare postgresql:// means psycopg 3, where
    dagster-postgres's "NOTIFY run_events, %(id)s" is a syntax error (runs never start)."""
    return pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)


INSTANCE_YAML = """
storage:
  custom:  # as deploy/production/dagster.yaml: dagster-postgres, connections kept open
    module: inbox_pipeline.defs.instance_storage
    class: PooledPostgresStorage
    config:
      postgres_url: "{url}"
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {max_runs}
    dequeue_interval_seconds: 1
sensors:
  use_threads: true
  num_workers: 2
telemetry:
  enabled: false
"""


def write_instance(home: Path, pg_url: str, *, max_runs: int = 3) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML.format(url=pg_url, max_runs=max_runs))
    return home


def pipeline_env(
    tmp_path: Path, *, home: Path, app_db: str, bucket: str, s3_endpoint: str, smtp_url: str, **settings: str
) -> dict[str, str]:
    """The environment of a daemon (and its runs) on this machine's servers: the app database, the
    bucket's ``incoming/`` inbox and ``books/`` storage on the S3 server, the SMTP server; every
    other INBOX_PIPELINE_/AWS_/DAGSTER_ variable left out. ``settings`` override, by name without
    the prefix (``BATCH_SIZE="10"``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INBOX_PIPELINE_", "AWS_", "DAGSTER_")) or k == "INBOX_PIPELINE_TEST_PG"
    }
    values = {
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": app_db,
        "INBOX": f"s3://{bucket}/incoming/",
        "STORAGE": f"s3://{bucket}/books/",
        "MAILER": smtp_url,
        "SENDER": SENDER,
        "INBOUND_DOMAIN": "in.example",
        "FETCH_IMAGES": "false",
        "EPUBCHECK": "true",
        "RETRY_DELAY_SECONDS": "1",
        "SENSOR_INTERVAL_SECONDS": "1",
        **settings,
    }
    env.update({f"INBOX_PIPELINE_{name}": value for name, value in values.items()})
    env.update(DAGSTER_HOME=str(home), **moto_env(s3_endpoint), AWS_MAX_ATTEMPTS="2")
    return env


@pytest.fixture
def daemon_env(tmp_path: Path, postgres_url: str, dagster_pg_url: str, moto_server: str, s3_bucket: str):
    """``daemon_env(smtp_url, **settings)``: a Dagster home on its own PostgreSQL database, and the
    ``pipeline_env`` of a daemon on the test's app database, bucket and SMTP server; returns both.
    ``s3_endpoint`` (the moto server's by default) is where the daemon reaches S3."""

    def make(smtp_url: str, *, s3_endpoint: str = moto_server, **settings: str) -> tuple[Path, dict[str, str]]:
        home = write_instance(tmp_path / "dagster_home", dagster_pg_url)
        env = pipeline_env(
            tmp_path, home=home, app_db=postgres_url, bucket=s3_bucket, s3_endpoint=s3_endpoint, smtp_url=smtp_url,
            **settings,
        )
        return home, env

    return make


# Two users with a Kindle each: the usual cast of the daemon tests.
ALICE_AND_BOB = (
    {"email": "alice@example.org", "kindle": "alice_k@kindle.example"},
    {"email": "bob@example.org", "kindle": "bob_k@kindle.example"},
)


def seed(app_db: str, readers: Sequence[dict]) -> dict[str, str]:
    """Users with one inbound address each; returns email -> address."""
    from inbox_pipeline.db.engine import make_engine, session_factory
    from inbox_pipeline.db.users import add_user, issue_address, set_plan
    from inbox_pipeline_tests.conftest import migrated

    migrated(app_db)
    engine = make_engine(app_db)
    out = {}
    with session_factory(engine).begin() as session:
        for r in readers:
            if r.get("limit") is not None:
                set_plan(session, r["plan"], monthly_limit=r["limit"])
            user = add_user(session, email=r["email"], plan=r.get("plan", "unlimited"), kindle=r.get("kindle"))
            out[r["email"]] = issue_address(session, user.id, "news", domain="in.example").address
    engine.dispose()
    return out


class Daemon:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:  # run workers and the code server started by this daemon
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.log.close()


def wait_for(predicate, *, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class StallingSmtpSink:
    """An SMTP server that keeps each message at once but can hold its answer until released (a slow relay)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict] = []
        self.attempts = 0
        self.stall = threading.Event()  # set: hold DATA until `release` is set
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.attempts += 1
        # The relay has the message (it will deliver it) but is slow to say "250": the
        # case where a client that dies now cannot know whether it was sent.
        self.messages.append({"to": list(envelope.rcpt_tos), "data": bytes(envelope.content)})
        self.arrived.set()
        while self.stall.is_set() and not self.release.is_set():
            await asyncio.sleep(0.05)
        return "250 OK"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def stalling_smtp() -> Iterator[StallingSmtpSink]:
    with serving(StallingSmtpSink()) as sink:
        try:
            yield sink
        finally:
            sink.release.set()  # a stalled reply returns before the server stops


def run_worker_pids(instance, run_id: str) -> list[int]:
    """The run worker's pid, from the run's own event log ("Started process for run (pid: N).")."""
    import re

    pids = []
    for record in instance.all_logs(run_id):
        match = re.search(r"(?:Started process for run|Executing steps in process) \(pid: (\d+)\)", record.message or "")
        if match:
            pids.append(int(match.group(1)))
    return sorted(set(pids))
