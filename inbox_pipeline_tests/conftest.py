"""Shared test fixtures: real servers on this machine.

- ``postgres_url``: a fresh PostgreSQL database (127.0.0.1:5432, trust auth) per test.
- ``moto_server``: a ThreadedMotoServer (S3 + SES + SQS API) reached through ``endpoint_url``.
- ``event_queue``: an SQS queue there, to which a bucket's event notifications can be sent.
- ``smtp_sink``: an aiosmtpd server that keeps every message it accepts.
- ``corpus_dir``: ``../shared/corpus``.

Outside CI a missing PostgreSQL, Java or corpus skips the tests that need it;
with ``CI=true`` they fail instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(os.environ.get("INBOX_PIPELINE_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))
PG_ADMIN_URL = os.environ.get("INBOX_PIPELINE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL -----------------------------------------------------------


def _pg_admin_engine():
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _pg_admin(*statements: str) -> None:
    """Run ``statements`` (CREATE/DROP DATABASE ...) as the admin, outside a transaction."""
    from sqlalchemy import text

    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    from sqlalchemy import text

    try:
        with _pg_admin_engine().connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False


@contextmanager
def pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database named ``<prefix>_<random>`` on the admin's server (and driver);
    dropped afterwards, connections or not."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    if not postgres_available:
        unavailable("PostgreSQL is not answering at 127.0.0.1:5432")
    with pg_database("ip_test") as url:
        yield url


# --- a migrated app database, copied -------------------------------------------

# One database per backend migrated per test process (Alembic on an empty database takes 1-2 s),
# then copied for each test that wants the schema: PostgreSQL clones it as a template, SQLite
# through its backup API. The migrations themselves are tested on empty databases (db/test_migrations.py).
_TEMPLATES: dict[str, str] = {}


def migrated(url: str) -> str:
    """The app database at ``url`` (empty, or missing for SQLite) at the head revision, as ``upgrade`` leaves it.

    A database that already holds tables is migrated by ``upgrade`` itself.
    """
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from inbox_pipeline.db.engine import make_engine, upgrade

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql") or (backend == "sqlite" and not parsed.database):
        upgrade(url)
        return url
    if backend == "sqlite" and Path(parsed.database).exists() or backend == "postgresql":
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                empty = not inspect(conn).get_table_names()
        finally:
            engine.dispose()
        if not empty:
            upgrade(url)
            return url
    if backend == "sqlite":
        _copy_sqlite(_template("sqlite"), parsed.database)
    else:
        template = _template("postgresql")
        _pg_admin(f'DROP DATABASE "{parsed.database}" WITH (FORCE)',
                  f'CREATE DATABASE "{parsed.database}" TEMPLATE "{template}"')
    return url


def _template(backend: str) -> str:
    """The migrated database for ``backend``: a SQLite file path or a PostgreSQL database name."""
    import tempfile

    from inbox_pipeline.db.engine import upgrade

    if backend not in _TEMPLATES:
        if backend == "sqlite":
            path = Path(tempfile.mkdtemp(prefix="ip_template_")) / "app.db"
            upgrade(f"sqlite:///{path}")
            _TEMPLATES[backend] = str(path)
        else:
            name = f"ip_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            _pg_admin(f'CREATE DATABASE "{name}"')
            upgrade(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
            _TEMPLATES[backend] = name
    return _TEMPLATES[backend]


def _copy_sqlite(source: str, target: str) -> None:
    import sqlite3

    Path(target).parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


@pytest.fixture(scope="session", autouse=True)
def _drop_migrated_templates() -> Iterator[None]:
    yield
    if "sqlite" in _TEMPLATES:
        shutil.rmtree(Path(_TEMPLATES.pop("sqlite")).parent, ignore_errors=True)
    if "postgresql" in _TEMPLATES:
        _pg_admin(f'DROP DATABASE IF EXISTS "{_TEMPLATES.pop("postgresql")}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs a test twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue("postgres_url")


# --- S3 / SES API server ----------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real S3/SES HTTP API (moto server); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def moto_env(endpoint: str) -> dict[str, str]:
    """boto3's own environment variables for the moto server at ``endpoint``: its test credentials and region."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 pointed at the moto server through its own environment variables."""
    for name, value in moto_env(moto_server).items():
        monkeypatch.setenv(name, value)
    return moto_server


@pytest.fixture
def s3_bucket(aws_env: str) -> str:
    """A new, empty bucket on the moto server."""
    import boto3

    name = f"bucket-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=aws_env).create_bucket(Bucket=name)
    return name


class EventQueue:
    """An SQS queue on the moto server receiving a bucket's S3 event notifications (sent by the server)."""

    VISIBILITY_TIMEOUT = 1  # seconds: a received, undeleted message comes back this soon

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.sqs = boto3.client("sqs", endpoint_url=endpoint)
        self.s3 = boto3.client("s3", endpoint_url=endpoint)
        self.name = f"inbox-events-{uuid.uuid4().hex[:10]}"
        self.url = self.sqs.create_queue(
            QueueName=self.name, Attributes={"VisibilityTimeout": str(self.VISIBILITY_TIMEOUT)}
        )["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def notify(self, bucket: str, prefix: str | None = "incoming/") -> None:
        """Send the bucket's ObjectCreated events (under ``prefix``; None: all keys) here. S3 sends
        an ``s3:TestEvent`` message first, as AWS does."""
        config: dict = {"QueueArn": self.arn, "Events": ["s3:ObjectCreated:*"]}
        if prefix is not None:
            config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
        self.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]}
        )

    def stop_notifying(self, bucket: str) -> None:
        """No notifications: objects put now are never announced (a lost notification)."""
        self.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})

    def messages(self) -> int:
        """Messages still in the queue, waiting or received and not deleted."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.url, MessageBody=body)

    def past_visibility_timeout(self):
        """Travel in time past the visibility timeout: a received, undeleted message is visible again.

        The moto server runs in this process, so it reads the travelled clock too.
        """
        import time

        import time_machine

        return time_machine.travel(time.time() + self.VISIBILITY_TIMEOUT + 1, tick=True)


@pytest.fixture
def event_queue(aws_env: str) -> EventQueue:
    """A new SQS queue on the moto server (visibility timeout 1 s)."""
    return EventQueue(aws_env)


# --- SMTP -------------------------------------------------------------------


class SmtpSink:
    """An aiosmtpd server keeping what it accepts; can refuse the first N attempts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict] = []
        self.refuse_next = 0  # answer "451" to this many DATA commands first
        self.clock = time.monotonic  # a test in virtual time sets its clock here
        self.times: list[float] = []  # when each message was accepted (by ``clock``)
        self.attempts = 0
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.attempts += 1
        if self.refuse_next > 0:
            self.refuse_next -= 1
            return "451 4.3.0 Try again later"
        self.messages.append(
            {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": bytes(envelope.content)}
        )
        self.times.append(self.clock())
        return "250 OK"

    def parsed(self):
        from email import policy
        from email.parser import BytesParser

        return [BytesParser(policy=policy.default).parsebytes(m["data"]) for m in self.messages]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@contextmanager
def serving(sink):
    """An aiosmtpd sink (anything with a ``controller``) listening for the with-block, stopped after."""
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with serving(SmtpSink()) as sink:
        yield sink


# --- shared material ---------------------------------------------------------


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS_DIR / "LABELS.tsv").exists():
        unavailable(f"the shared corpus is not at {CORPUS_DIR}")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def java_available() -> bool:
    if shutil.which("java") is None:
        unavailable("no Java runtime for EPUBCheck")
    return True


# --- tables a test wants shown in the output --------------------------------


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest's hook signature
    """Print what tests recorded with ``record_property("report", text)``, also under xdist."""
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for name, value in getattr(report, "user_properties", ()):
            if name == "report" and report.when == "call":
                terminalreporter.write_sep("-", report.nodeid.split("::")[-1])
                terminalreporter.write_line(str(value))


# --- the order files are handed to xdist workers --------------------------------------------

# With ``--dist loadfile --no-loadscope-reorder`` (.ci/run) each worker takes the next file in
# this order. The longest files go first, so the run does not end with one worker alone on a
# minutes-long daemon test: the end-to-end daemons, then the Dagster harness files, then the rest.
_FIRST = ("e2e", "defs", "hostile", "services", "db", "deploy", "cli", "seams", "core")


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest's hook signature
    def rank(item) -> int:
        parts = item.nodeid.split("/")
        folder = parts[1] if len(parts) > 2 and parts[0] == "inbox_pipeline_tests" else ""
        return _FIRST.index(folder) if folder in _FIRST else len(_FIRST)

    items.sort(key=rank)  # stable: a file's tests keep their order
