"""Throughput end to end: the real daemon, PostgreSQL, an S3 API server and an SMTP server.

Every figure comes from real processes on this machine: ``dagster-daemon run``
(inbox sensor every second, queued run coordinator with the production
concurrency limits, the default run launcher: one process per run) with its
instance in PostgreSQL, the app database in PostgreSQL, moto's S3 server
(``ThreadedMotoServer``) as the inbox and EPUB storage, with the bucket's S3
event notifications on an SQS queue of the same server announcing new emails
(``?queue=``, as docs/DEPLOY.md sets it up), and an aiosmtpd server
as the Kindle relay, recording when it accepted each message. Newsletters are
generated here (30-80 KB of HTML each, several users, instant delivery).

Scenarios (each alone with ``--only NAME``, repeatable; all by default):

- ``burst``: N emails (8 users) put in S3 at once, batch runs, the send-rate limiter at
  ``--rate`` (14/s, a new SES account's): time from the first put to the last SMTP accept,
  against the time this process takes to convert the same N emails (``core.convert``, no
  image downloads), measured in the same run: the ratio (target <= 6.5); then Dagster's events
  and event-log bytes per email, and the instance database's growth per 1,000 emails;
- ``slow``: the same burst with the limiter at ``--slow-rate`` (5/s): N / 5 s (+- 10 %), paced,
  not stalled;
- ``users``: two users, 450 + 50 emails (scaled with N), the first user's put first: the second
  user's last accept within 20 s of its first put;
- ``idle``: 10 emails one at a time (each waited for), put -> accepted: median <= 5 s, p95 <= 10 s;
- ``per_email``: the burst with one run per email (``INBOX_PIPELINE_BATCH_SIZE=1``), capped by
  ``--per-email-timeout``: emails/s and the extrapolated time (a comparison);
- ``tick`` (measured first, on a quiet machine): the real sensor function
  evaluated against the real instance and resources, the inbox announced by
  the bucket's S3 event notifications on an SQS queue (``?queue=``, both on
  moto's server), with an empty bucket and again with 50,000 archived objects
  in the bucket (written into moto's S3 backend, the state its API serves) and
  50,000 processed rows in the app database; the median of 21 ticks with
  nothing new and of 11 ticks taking one new email each, evaluated with the
  cursor of a reconciling tick run just before (so they read the queue only),
  and separately the median of 11 reconciling ticks (which also list the
  inbox prefix, at most every INBOX_PIPELINE_RECONCILE_SECONDS) and of 21
  listings alone.

The Dagster instance is deploy/production/dagster.yaml's concurrency (8 runs,
4 sending mail), run queue (looked at every second, runs launched side by side)
and ``python_logs: python_log_level: INFO``
(no DEBUG lines such as "Writing file at ..." in the event log).

    .venv/bin/python benchmarks/e2e.py [--burst 500] [--only burst --only users ...] [--rate 14] [--slow-rate 5] [--phase 1.5]

Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres; override with
INBOX_PIPELINE_TEST_PG) and Java only if EPUBCheck is turned on (it is off).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_BURST_RATIO = 6.5  # first put -> last accept, over converting the same emails in one process
TARGET_SLOW_TOLERANCE = 0.10  # the burst at the slow rate takes N / rate, +- this share
TARGET_USERS_S = 20.0  # the second user's first put -> its last accept
TARGET_IDLE_MEDIAN_S = 5.0
TARGET_IDLE_P95_S = 10.0
SCENARIOS = ("tick", "burst", "slow", "users", "idle", "per_email")
TARGET_TICK_RATIO = 1.5
USERS = 8
MAIL_RUNS = [4]  # runs sending mail at once (the instance's tag limit); --mail-runs

INSTANCE_YAML = """
storage:
  custom:  # dagster-postgres's storage, each process keeping its connections open
    module: inbox_pipeline.defs.instance_storage
    class: PooledPostgresStorage
    config:
      postgres_url: "{url}"
# As deploy/production/dagster.yaml: 8 runs at once, 4 of them sending mail (--mail-runs).
concurrency:
  runs:
    max_concurrent_runs: 8
    tag_concurrency_limits:
      - key: inbox-pipeline/sends
        value: mail
        limit: {mail_runs}
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1  # as deploy/production/dagster.yaml: the run queue looked at every second,
    dequeue_use_threads: true  # and runs launch side by side
    dequeue_num_workers: 4
python_logs:
  python_log_level: INFO  # recommended for production too: no DEBUG lines ("Writing file at ...") in the event log
sensors:
  use_threads: true
  num_workers: 2
telemetry:
  enabled: false
"""


# --- outside things -------------------------------------------------------------


class SmtpSink:
    """An SMTP server that accepts everything and notes when (the Kindle relay)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from inbox_pipeline_tests.conftest import free_port

        self.accepted: list[tuple[float, tuple[str, ...]]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.accepted.append((time.time(), tuple(envelope.rcpt_tos)))
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


# --- newsletters ----------------------------------------------------------------

WORDS = (
    "harbour lantern orchard ledger ferry meadow quarry tide bellows furrow gazette kiln lattice "
    "marsh parish quay rafter saddle thatch umber verge wharf yarrow almanac beacon cobble dovetail "
    "estuary fathom gable hedgerow inkwell juniper keel lichen millpond nettle oxbow pewter"
).split()


def newsletter(n: int, to: str, rng: random.Random) -> bytes:
    """A newsletter of 30-80 KB of HTML: header, article, layout tables, links, footer."""
    target = rng.randint(30_000, 80_000)
    title = f"Field notes {n}: the {rng.choice(WORDS)} and the {rng.choice(WORDS)}"
    parts = [
        '<html><head><style>p{margin:0 0 1em}</style></head><body>'
        '<div style="display:none;max-height:0">A short preview of this issue</div>'
        '<table role="presentation" width="100%"><tr><td align="center">'
        f'<table role="presentation" width="600"><tr><td><p><a href="https://news.example/{n}?view=web">'
        f"View in browser</a></p><h1>{title}</h1>"
    ]
    size = sum(map(len, parts))
    k = 0
    while size < target:
        k += 1
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 80)))
        chunk = (
            f"<h2>Section {k}</h2>" if k % 6 == 1 else ""
        ) + f'<p>{sentence.capitalize()}, as <a href="https://news.example/{n}/ref/{k}">the record</a> shows.</p>'
        parts.append(chunk)
        size += len(chunk)
    parts.append(
        '<p style="font-size:11px"><a href="https://news.example/unsubscribe">Unsubscribe</a> · '
        f'<a href="https://news.example/prefs">Preferences</a></p>'
        f'<img src="https://news.example/open/{n}.gif" width="1" height="1" alt="">'
        "</td></tr></table></td></tr></table></body></html>"
    )
    msg = EmailMessage()
    msg["From"] = f'"Field Notes {n % 7}" <letters@fieldnotes{n % 7}.example>'
    msg["To"] = to
    msg["Subject"] = title
    msg["Date"] = "Mon, 02 Mar 2026 08:00:00 +0000"
    msg["Message-ID"] = f"<bench-{n}-{uuid.uuid4().hex[:8]}@fieldnotes.example>"
    msg["List-Unsubscribe"] = "<https://news.example/unsubscribe>"
    msg.set_content(f"{title}\n\nRead it on your Kindle.")
    msg.add_alternative("".join(parts), subtype="html")
    from inbox_pipeline_tests.helpers import via_ses

    return via_ses(msg.as_bytes(), to)  # as SES stores it: routing reads only its envelope


# --- one deployment ---------------------------------------------------------------


class Stack:
    """App database, Dagster database, bucket, SMTP sink and a running daemon."""

    def __init__(
        self, moto: str, workdir: Path, *, batch_size: int | None, name: str, send_rate: float = 0.0
    ) -> None:
        self.moto, self.workdir, self.batch_size, self.name = moto, workdir / name, batch_size, name
        self.send_rate = send_rate
        self.stack = ExitStack()

    def __enter__(self) -> "Stack":
        import boto3

        from inbox_pipeline_tests.conftest import pg_database
        from inbox_pipeline_tests.e2e.conftest import Daemon

        self.workdir.mkdir(parents=True)
        self.app_db = self.stack.enter_context(pg_database("ip_bench_app"))
        self.dagster_db = self.stack.enter_context(pg_database("ip_bench_dagster"))
        self.bucket = f"bench-{uuid.uuid4().hex[:10]}"
        self.s3 = boto3.client("s3", endpoint_url=self.moto, region_name="us-east-1")
        self.s3.create_bucket(Bucket=self.bucket)
        self.queue_url = announce_new_objects(self.moto, self.bucket, "incoming/")  # as docs/DEPLOY.md sets it up
        self.sink = SmtpSink()
        self.sink.controller.start()
        self.stack.callback(self.sink.controller.stop)
        home = self.workdir / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(INSTANCE_YAML.format(url=self.dagster_db, mail_runs=MAIL_RUNS[0]))
        self.home = home
        self.env = self._env()
        self.addresses = seed_users(self.app_db)
        self.daemon = Daemon(self.env, self.workdir / "daemon.log")
        self.stack.callback(self.daemon.stop)
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def _env(self) -> dict[str, str]:
        from inbox_pipeline_tests.e2e.conftest import pipeline_env

        settings = {"BATCH_SIZE": str(self.batch_size)} if self.batch_size is not None else {}
        if self.send_rate:
            settings["SEND_RATE"] = str(self.send_rate)  # the shared limiter, as an SMTP relay is configured
        return pipeline_env(
            self.workdir,
            home=self.home,
            app_db=self.app_db,
            bucket=self.bucket,
            s3_endpoint=self.moto,
            smtp_url=self.sink.url,
            INBOX=f"s3://{self.bucket}/incoming/?queue={self.queue_url}",
            EPUBCHECK="false",
            **settings,
        )

    def put(self, data: bytes) -> float:
        self.s3.put_object(Bucket=self.bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=data)
        return time.time()

    def instance(self):
        import dagster as dg
        from dagster._core.instance.ref import InstanceRef

        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the daemon's sensor has ticked once (the code location is loaded)."""
        deadline = time.monotonic() + timeout
        with self.instance() as instance:
            while time.monotonic() < deadline:
                if not self.daemon.alive():
                    raise RuntimeError(self.daemon.output()[-3000:])
                states = [s for s in instance.all_instigator_state() if s.instigator_name == "inbox_sensor"]
                if states and instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=1):
                    return
                time.sleep(0.5)
        raise RuntimeError("the inbox sensor never ticked:\n" + self.daemon.output()[-3000:])

    def after_tick(self, phase: float | None, timeout: float = 30) -> None:
        """With ``phase``: until ``phase`` s after the inbox sensor's next tick starts (its loop comes
        round about every 5 s, so the tick after that sees a burst started now ``5 - phase`` s in)."""
        if phase is None:
            return
        with self.instance() as instance:
            states = [s for s in instance.all_instigator_state() if s.instigator_name == "inbox_sensor"]

            def newest() -> float | None:
                ticks = [t for s in states for t in instance.get_ticks(s.instigator_origin_id, s.selector_id, limit=1)]
                return max((t.timestamp for t in ticks), default=None)

            seen, deadline = newest(), time.monotonic() + timeout
            while time.monotonic() < deadline:
                latest = newest()
                if latest is not None and latest != seen:
                    time.sleep(max(0.0, latest + phase - time.time()))
                    return
                time.sleep(0.05)
        raise RuntimeError(f"the inbox sensor did not tick within {timeout:.0f} s")

    def timeline(self, since: float) -> str:
        """Each run: its job, emails, and when it was created, started and ended (s after ``since``)."""
        from inbox_pipeline.defs.common import TAG_TAKEN_IDS, email_ids_of_run

        lines = []
        with self.instance() as instance:
            records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp.timestamp())
            for rec in records:
                run = rec.dagster_run
                created = rec.create_timestamp.timestamp() - since
                start = (rec.start_time - since) if rec.start_time else float("nan")
                end = (rec.end_time - since) if rec.end_time else float("nan")
                taken = [i for i in run.tags.get(TAG_TAKEN_IDS, "").split(",") if i]
                emails = len(taken) or len(email_ids_of_run(run))  # a take run's queued, a worker's claimed
                lines.append(
                    f"    {run.job_name:20} {emails:4} email(s)  created {created:6.1f}  "
                    f"started {start:6.1f}  ended {end:6.1f}  {run.status.value.lower()}"
                )
            lines.append("    inbox sensor ticks (start +duration: runs requested):  " + "  ".join(
                f"{t.timestamp - since:.1f} +{(t.end_timestamp or t.timestamp) - t.timestamp:.1f}: {len(t.run_ids)}"
                for t in self.ticks(instance, since)
            ))
        return "\n".join(lines)

    def milestones(self, since: float, recipient: str | None = None) -> str:
        """When the first email was registered (a take run), first claimed (a worker) and first accepted
        (the SMTP server), in s after ``since``: where a burst's start goes. ``recipient``: that user's
        emails only (their inbound address, the queue's fair key)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.app_db)
        try:
            with engine.connect() as conn:
                registered, claimed, last_registered, last_claimed = conn.execute(
                    text("SELECT min(created_at), min(claimed_at), max(created_at), max(claimed_at) FROM inbound_emails"
                         + (" WHERE fair_key = :key" if recipient else "")),
                    {"key": (recipient or "").lower()},
                ).one()
        finally:
            engine.dispose()
        from datetime import timezone

        def at(moment) -> str:
            if moment is None:
                return "-"
            return f"{(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp() - since:.1f}"

        kindle = None if recipient is None else f"reader{self.addresses.index(recipient)}@kindle.example"  # seed_users
        first_accept = min((t for t, rcpts in self.sink.accepted if kindle in rcpts or not kindle), default=None)
        accept = "-" if first_accept is None else f"{first_accept - since:.1f}"
        last = f"; last registered {at(last_registered)}, last claimed {at(last_claimed)}" if recipient else ""
        return f"    first email registered {at(registered)}, first claimed {at(claimed)}, first accepted {accept}{last}" + (
            "" if recipient else "\n" + self.first_worker_stages(since)
        )

    def first_worker_stages(self, since: float) -> str:
        """The first worker run to start: when its step started and when it reported each stage of its
        first email (s after ``since``), where the time to the first accept goes."""
        import dagster as dg

        with self.instance() as instance:
            workers = instance.get_runs(dg.RunsFilter(job_name="process_inbox_batch"))
            if not workers:
                return "    (no worker run)"
            stats = {r.run_id: instance.get_run_stats(r.run_id) for r in workers}
            first = min(workers, key=lambda r: stats[r.run_id].launch_time or float("inf"))
            seen, stages = None, []
            for entry in instance.all_logs(first.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                kind = event.event_type_value
                if kind == "STEP_START":
                    stages.append(f"step {entry.timestamp - since:.1f}")
                elif kind == "ASSET_MATERIALIZATION":  # each of the email's stages (its id in the metadata)
                    materialization = event.step_materialization_data.materialization
                    email = materialization.metadata.get("inbound_email_id")
                    email = getattr(email, "value", email)
                    seen = email if seen is None else seen
                    if email != seen:
                        break
                    stages.append(f"{materialization.asset_key.path[-1]} {entry.timestamp - since:.1f}")
        run_stats = stats[first.run_id]
        return (f"    first worker: launched {run_stats.launch_time - since:.1f}, "
                f"started {run_stats.start_time - since:.1f}; " + ", ".join(stages))

    @staticmethod
    def ticks(instance, since: float) -> list:
        """The inbox sensor's ticks after ``since`` that requested runs, or took over a second, oldest first."""
        states = [s for s in instance.all_instigator_state() if s.instigator_name == "inbox_sensor"]
        ticks = [t for s in states for t in instance.get_ticks(s.instigator_origin_id, s.selector_id, limit=2000)]
        return sorted(
            (t for t in ticks if t.timestamp >= since and (t.run_ids or (t.end_timestamp or 0) - t.timestamp > 1)),
            key=lambda t: t.timestamp,
        )

    def database_size(self) -> int:
        """The Dagster instance's PostgreSQL database, in bytes."""
        from benchmarks.events import event_stats

        return event_stats(self.dagster_db)["database"]

    def runs_summary(self) -> str:
        from collections import Counter

        with self.instance() as instance:
            runs = instance.get_runs()
            kinds = Counter(r.job_name for r in runs)
            statuses = Counter(r.status.value for r in runs)
        return ", ".join(f"{n} {k}" for k, n in kinds.items()) + " (" + ", ".join(
            f"{n} {s.lower()}" for s, n in statuses.items()
        ) + ")"


def seed_users(app_db: str) -> list[str]:
    from inbox_pipeline_tests.e2e.conftest import seed

    readers = [{"email": f"reader{u}@bench.example", "kindle": f"reader{u}@kindle.example"} for u in range(USERS)]
    return list(seed(app_db, readers).values())


# --- scenarios --------------------------------------------------------------------


def burst_emails(n: int, addresses: list[str], rng: random.Random) -> list[bytes]:
    return [newsletter(i, addresses[i % len(addresses)], rng) for i in range(n)]


def accepts_per_10s(accepted: list, since: float) -> str:
    """How many messages the SMTP sink accepted in each 10 s after ``since`` (the pace, over time)."""
    from collections import Counter

    bins = Counter(int((t - since) // 10) for t, _ in accepted)
    return " ".join(f"{b * 10}s:{bins.get(b, 0)}" for b in range(max(bins, default=-1) + 1))


def burst(
    stack: Stack, n: int, timeout: float, rng: random.Random, verbose: bool = True, emails=None, phase: float | None = None
) -> dict:
    emails = emails if emails is not None else burst_emails(n, stack.addresses, rng)
    stack.wait_ready()
    stack.after_tick(phase)
    stack.empty_size = stack.database_size()
    start = time.time()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(stack.put, emails))
    put_done = time.time()
    deadline = time.monotonic() + timeout
    while stack.sink.count() < n and time.monotonic() < deadline:
        if not stack.daemon.alive():
            raise RuntimeError(stack.daemon.output()[-3000:])
        time.sleep(0.5)
    delivered = stack.sink.count()
    last = max((t for t, _ in stack.sink.accepted), default=time.time())
    elapsed = (last - start) if delivered >= n else (time.time() - start)
    if verbose:
        print(stack.timeline(start), flush=True)
        print(stack.milestones(start), flush=True)
        print("    SMTP accepts per 10 s:  " + accepts_per_10s(stack.sink.accepted, start), flush=True)
    return {
        "n": n,
        "delivered": delivered,
        "complete": delivered >= n,
        "seconds": elapsed,
        "put_seconds": put_done - start,
        "rate": delivered / elapsed if elapsed > 0 else 0.0,
        "kb": statistics.mean(len(e) for e in emails) / 1024,
        "runs": stack.runs_summary(),
    }


def idle_latency(stack: Stack, count: int, rng: random.Random) -> list[float]:
    latencies = []
    for i in range(count):
        before = stack.sink.count()
        time.sleep(rng.uniform(0.5, 1.5))  # not in phase with the sensor's ticks
        put_at = stack.put(newsletter(100_000 + i, stack.addresses[i % USERS], rng))
        deadline = time.monotonic() + 120
        while stack.sink.count() <= before:
            if time.monotonic() > deadline:
                raise RuntimeError("an idle email was not delivered in 120 s:\n" + stack.daemon.output()[-3000:])
            time.sleep(0.05)
        latencies.append(stack.sink.accepted[before][0] - put_at)
    return latencies


def convert_in_process(emails: list[bytes]) -> float:
    """Seconds this process takes to convert ``emails`` (the pipeline's own steps, no image downloads)."""
    from inbox_pipeline.core.convert import ConvertOptions, convert_email

    options = ConvertOptions(fetch_images=False)
    convert_email(emails[0], options=options)  # imports and caches, as a run has them
    started = time.perf_counter()
    for raw in emails:
        convert_email(raw, options=options)
    return time.perf_counter() - started


def two_users(stack: Stack, n: int, timeout: float, rng: random.Random, phase: float | None = None) -> dict:
    """The first user's ``n - n // 10`` emails put first, then the second user's ``n // 10``."""
    first, second = stack.addresses[0], stack.addresses[1]
    many, few = n - n // 10, n // 10
    heavy = [newsletter(i, first, rng) for i in range(many)]
    light = [newsletter(10_000 + i, second, rng) for i in range(few)]
    stack.wait_ready()
    stack.after_tick(phase)
    start = time.time()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(stack.put, heavy))
        light_first_put = time.time()
        list(pool.map(stack.put, light))
    deadline = time.monotonic() + timeout
    while stack.sink.count() < n and time.monotonic() < deadline:
        if not stack.daemon.alive():
            raise RuntimeError(stack.daemon.output()[-3000:])
        time.sleep(0.5)
    kindle = "reader1@kindle.example"  # seed_users' second reader
    light_accepts = [t for t, rcpts in stack.sink.accepted if kindle in rcpts]
    return {
        "many": many,
        "few": few,
        "delivered": stack.sink.count(),
        "few_delivered": len(light_accepts),
        "few_seconds": (max(light_accepts) - light_first_put) if len(light_accepts) >= few else float("inf"),
        "all_seconds": max((t for t, _ in stack.sink.accepted), default=time.time()) - start,
        "start": start,
        "few_start": light_first_put,
        "runs": stack.runs_summary(),
    }


def tick_cost(moto: str, workdir: Path, rng: random.Random, archived: int) -> dict:
    """The real inbox sensor, evaluated here against a real instance and resources."""
    with ExitStack() as stack_:
        import boto3
        import dagster as dg

        from inbox_pipeline_tests.conftest import pg_database

        app_db = stack_.enter_context(pg_database("ip_bench_app"))
        dagster_db = stack_.enter_context(pg_database("ip_bench_dagster"))
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        queue_url = announce_new_objects(moto, bucket, "incoming/")
        home = workdir / "tick" / "dagster_home"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text(INSTANCE_YAML.format(url=dagster_db, mail_runs=MAIL_RUNS[0]))
        sink = SmtpSink()  # not used: the tick only launches runs
        from inbox_pipeline_tests.e2e.conftest import pipeline_env

        env = pipeline_env(
            workdir / "tick",
            home=home,
            app_db=app_db,
            bucket=bucket,
            s3_endpoint=moto,
            smtp_url=sink.url,
            INBOX=f"s3://{bucket}/incoming/?queue={queue_url}",
            EPUBCHECK="false",
            RECONCILE_SECONDS="600",  # the default, stated: no timed tick comes near it
        )
        saved = dict(os.environ)  # the sensor is evaluated in this process, configured by its environment
        os.environ.clear()
        os.environ.update(env)
        stack_.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
        addresses = seed_users(app_db)

        from datetime import datetime, timezone

        from inbox_pipeline.config import Settings
        from inbox_pipeline.definitions import build_definitions
        from inbox_pipeline.seams.inbox import InboxObject
        from inbox_pipeline.services.context import Pipeline
        from inbox_pipeline.services.intake import take_pending

        pipeline = stack_.enter_context(Pipeline.from_settings(Settings.from_env()))
        defs = build_definitions()
        repo = defs.get_repository_def()
        sensor = repo.get_sensor_def("inbox_sensor")
        instance = stack_.enter_context(dg.DagsterInstance.from_ref(
            __import__("dagster._core.instance.ref", fromlist=["InstanceRef"]).InstanceRef.from_dir(str(home))
        ))

        cursor: str | None = None  # the sensor's cursor, kept between ticks as the daemon keeps it

        def one_tick(new: int, *, reconciling: bool = False) -> float:
            """One evaluation; ``reconciling`` starts without a cursor, so the tick lists the prefix too."""
            nonlocal cursor
            for _ in range(new):
                s3.put_object(Bucket=bucket, Key=f"incoming/{uuid.uuid4().hex}", Body=newsletter(rng.randint(0, 10**6), addresses[0], rng))
            given = None if reconciling else cursor
            with dg.build_sensor_context(
                instance=instance, resources=defs.resources, repository_def=repo, cursor=given
            ) as ctx:
                started = time.perf_counter()
                result = sensor(ctx)
                took = time.perf_counter() - started
            requests = list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []
            assert len(requests) == (1 if new else 0), requests
            for request in requests:  # what the run's first op does, untimed: take it from the inbox
                config = request.run_config["ops"]["parse_email"]["config"]["inbox"]
                take_pending(pipeline, [InboxObject(config["key"], 0, datetime.now(timezone.utc), config["version"])])
            new_cursor = result.cursor if isinstance(result, dg.SensorResult) else None
            assert (new_cursor is not None) == reconciling, f"reconciled: {new_cursor is not None}"
            if new_cursor is not None:
                cursor = new_cursor
            return took

        from inbox_pipeline.seams.inbox import inbox_from_uri

        inbox = inbox_from_uri(env["INBOX_PIPELINE_INBOX"])

        def one_listing() -> float:
            started = time.perf_counter()
            inbox.list_pending(200)
            return time.perf_counter() - started

        def measure() -> tuple[float, float, float, float]:
            one_tick(0, reconciling=True)  # warm (connections, imports); its cursor serves the ticks below
            idle = statistics.median(one_tick(0) for _ in range(21))
            with_one = statistics.median(one_tick(1) for _ in range(11))
            listing = statistics.median(one_listing() for _ in range(21))
            reconcile = statistics.median(one_tick(0, reconciling=True) for _ in range(11))
            return idle, with_one, listing, reconcile

        empty = measure()
        fill_started = time.perf_counter()
        fill_archive(bucket, archived)
        fill_rows(app_db, archived)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="incoming-archive/", MaxKeys=1)["KeyCount"]
        assert listed == 1
        filled_in = time.perf_counter() - fill_started
        full = measure()
        return {"empty": empty, "full": full, "archived": archived, "fill_seconds": filled_in}


def announce_new_objects(moto: str, bucket: str, prefix: str) -> str:
    """An SQS queue receiving the bucket's ObjectCreated events under ``prefix`` (sent by moto's
    server, as S3 sends them); returns the queue's URL."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("s3", endpoint_url=moto, region_name="us-east-1").put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
            ]
        },
    )
    return url


def fill_archive(bucket: str, count: int) -> None:
    """``count`` archived emails in the bucket, written into moto's S3 backend (the state its API serves)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    body = b"From: a@b.example\r\nSubject: processed\r\n\r\nalready processed\r\n"
    for i in range(count):
        backend.put_object(bucket, f"incoming-archive/{i:06d}-{uuid.uuid4().hex}", body)


def fill_rows(app_db: str, count: int) -> None:
    """``count`` delivered emails in the app database (one bulk insert)."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import insert, text

    from inbox_pipeline.db.engine import make_engine
    from inbox_pipeline.db.models import InboundEmail

    now = datetime.now(timezone.utc)
    rows = [
        {
            "storage_key": f"incoming-archive/{i:06d}",
            "size": 60,
            "sha256": f"{i:064x}",
            "state": "delivered",
            "reason": "sent to Kindle",
            "received_at": now - timedelta(seconds=count - i),
            "created_at": now - timedelta(seconds=count - i),
            "state_changed_at": now - timedelta(seconds=count - i),
        }
        for i in range(count)
    ]
    engine = make_engine(app_db)
    with engine.begin() as conn:
        for i in range(0, count, 5000):
            conn.execute(insert(InboundEmail), rows[i : i + 5000])
    with engine.connect() as conn:  # what autovacuum does after a bulk load: fresh planner statistics
        conn.execute(text("ANALYZE inbound_emails"))
        conn.commit()
    engine.dispose()


# --- the table ----------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run this scenario (repeatable); default all")
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--rate", type=float, default=14.0, help="the send-rate limiter in the burst (SES: 14/s)")
    parser.add_argument("--slow-rate", type=float, default=5.0, help="the limiter in the slow burst")
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--archived", type=int, default=50_000)
    parser.add_argument("--skip-per-email", action="store_true", help="all scenarios but per_email")
    parser.add_argument("--tick-only", action="store_true", help="only the sensor tick scenario (as --only tick)")
    parser.add_argument("--per-email-timeout", type=float, default=150)
    parser.add_argument("--burst-timeout", type=float, default=600)
    parser.add_argument("--batch-size", type=int, default=None, help="INBOX_PIPELINE_BATCH_SIZE (default: the code's)")
    parser.add_argument(
        "--phase", type=float, default=None,
        help="start each burst this many s after an inbox sensor tick (the loop comes round about every 5 s, so "
        "the burst is first seen 5 - PHASE s in; 1.5: while the two-user burst is still arriving); default: when ready",
    )
    parser.add_argument(
        "--mail-runs", type=int, default=4, help="runs sending mail at once (production: 4; the limiter keeps the rate)"
    )
    args = parser.parse_args()
    MAIL_RUNS[0] = args.mail_runs
    chosen = set(args.only or SCENARIOS)
    if args.tick_only:
        chosen = {"tick"}
    if args.skip_per_email:
        chosen.discard("per_email")

    from moto.server import ThreadedMotoServer

    from inbox_pipeline_tests.conftest import free_port

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the sensor's own log lines
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # moto's; never real ones
        os.environ[key] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    rng = random.Random(5)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str, str, str]] = []
    n = args.burst
    with tempfile.TemporaryDirectory(prefix="ip-bench-") as tmp:
        workdir = Path(tmp)
        try:
            if "tick" in chosen:
                print(f"sensor tick, empty vs {args.archived} archived ...", flush=True)
                t = tick_cost(endpoint, workdir, rng, args.archived)
                print(f"  {t}", flush=True)
                rows += tick_rows(t)
            if "burst" in chosen or "idle" in chosen:
                with Stack(endpoint, workdir, batch_size=args.batch_size, name="burst", send_rate=args.rate) as stack:
                    if "burst" in chosen:
                        emails = burst_emails(n, stack.addresses, rng)
                        print(f"converting the burst's {n} emails in this process ...", flush=True)
                        convert_s = convert_in_process(emails)
                        print(f"  {convert_s:.1f} s ({convert_s / n * 1000:.1f} ms an email)", flush=True)
                        print(f"burst of {n}, batch runs, limiter {args.rate:g}/s ...", flush=True)
                        cpu_before, sql_before = cpu_seconds(), statements(stack)
                        b = burst(stack, n, args.burst_timeout, rng, emails=emails, phase=args.phase)
                        cpu = {k: v - cpu_before[k] for k, v in cpu_seconds().items()}
                        sql = {k: v - sql_before[k] for k, v in statements(stack).items()}
                        print(f"  {b}", flush=True)
                        ratio = b["seconds"] / convert_s
                        rows.append(
                            (
                                f"burst of {n} ({b['kb']:.0f} KB avg), batch runs, limiter {args.rate:g}/s: "
                                "first put -> last SMTP accept",
                                f"{b['seconds']:.1f} s ({b['rate']:.1f} emails/s; {b['delivered']} delivered; {b['runs']})",
                                "-",
                                verdict(None) if b["complete"] else "FAIL",
                            )
                        )
                        rows.append(
                            (
                                f"  over converting the same {n} in one process ({convert_s:.1f} s, "
                                f"{convert_s / n * 1000:.1f} ms an email)",
                                f"x{ratio:.2f}",
                                f"<= x{TARGET_BURST_RATIO}",
                                verdict(b["complete"] and ratio <= TARGET_BURST_RATIO),
                            )
                        )
                        rows += cost_rows(stack, b["delivered"])
                        rows.append(cpu_row(cpu, b["delivered"]))
                        rows.append(statements_row(sql, b["delivered"]))
                    if "idle" in chosen:
                        print(f"idle latency, {args.idle} emails one at a time ...", flush=True)
                        lat = idle_latency(stack, args.idle, rng)
                        print(f"  {[round(x, 1) for x in lat]}  runs: {stack.runs_summary()}", flush=True)
                        median = statistics.median(lat)
                        p95 = sorted(lat)[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
                        rows.append(
                            (
                                f"idle latency, {len(lat)} emails one at a time: S3 put -> SMTP accepted",
                                f"median {median:.1f} s, p95 {p95:.1f} s",
                                f"median <= {TARGET_IDLE_MEDIAN_S:.0f} s, p95 <= {TARGET_IDLE_P95_S:.0f} s",
                                verdict(median <= TARGET_IDLE_MEDIAN_S and p95 <= TARGET_IDLE_P95_S),
                            )
                        )
            if "slow" in chosen:
                print(f"burst of {n}, batch runs, limiter {args.slow_rate:g}/s ...", flush=True)
                with Stack(endpoint, workdir, batch_size=args.batch_size, name="slow", send_rate=args.slow_rate) as stack:
                    b = burst(stack, n, args.burst_timeout, rng, phase=args.phase)
                    print(f"  {b}", flush=True)
                expected = n / args.slow_rate
                rows.append(
                    (
                        f"the same burst, limiter {args.slow_rate:g}/s: first put -> last SMTP accept",
                        f"{b['seconds']:.1f} s ({b['rate']:.2f} emails/s; {b['delivered']} delivered)",
                        f"{expected:.0f} s +- {TARGET_SLOW_TOLERANCE:.0%}",
                        verdict(b["complete"] and abs(b["seconds"] - expected) <= TARGET_SLOW_TOLERANCE * expected),
                    )
                )
            if "users" in chosen:
                print(f"two users, {n - n // 10} + {n // 10} emails, limiter {args.rate:g}/s ...", flush=True)
                with Stack(endpoint, workdir, batch_size=args.batch_size, name="users", send_rate=args.rate) as stack:
                    u = two_users(stack, n, args.burst_timeout, rng, phase=args.phase)
                    print(stack.timeline(u["start"]), flush=True)
                    print(stack.milestones(u["start"]), flush=True)
                    print("  the second user's, after its first put:", flush=True)
                    print(stack.milestones(u["few_start"], recipient=stack.addresses[1]), flush=True)
                    print(f"  {u}", flush=True)
                rows.append(
                    (
                        f"two users, {u['many']} + {u['few']} emails (the first user's put first), limiter "
                        f"{args.rate:g}/s: the second user's first put -> its last SMTP accept",
                        f"{u['few_seconds']:.1f} s ({u['few_delivered']}/{u['few']}; all {u['delivered']} "
                        f"in {u['all_seconds']:.1f} s)",
                        f"<= {TARGET_USERS_S:.0f} s",
                        verdict(u["few_seconds"] <= TARGET_USERS_S),
                    )
                )
            if "per_email" in chosen:
                print(f"burst of {n}, one run per email (cap {args.per_email_timeout:.0f} s) ...", flush=True)
                with Stack(endpoint, workdir, batch_size=1, name="per_email", send_rate=args.rate) as stack:
                    p = burst(stack, n, args.per_email_timeout, rng, verbose=False)
                    print(f"  {p}", flush=True)
                figure = f"{p['seconds']:.1f} s" if p["complete"] else (
                    f"{p['delivered']}/{p['n']} in {p['seconds']:.0f} s (capped); "
                    f"extrapolated {p['n'] / max(p['rate'], 1e-9):.0f} s"
                )
                rows.append(
                    (
                        "same burst, one run per email (INBOX_PIPELINE_BATCH_SIZE=1)",
                        f"{figure} ({p['rate']:.2f} emails/s; {p['runs']})",
                        "comparison",
                        verdict(None),
                    )
                )
        finally:
            moto.stop()
    print()
    print(f"inbox-pipeline end to end on {os.cpu_count()} cores (dagster-daemon, PostgreSQL, moto S3, aiosmtpd)")
    widths = [max(len(r[i]) for r in [("scenario", "measured", "target", "verdict"), *rows]) for i in range(4)]
    for r in [("scenario", "measured", "target", "verdict"), tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0 if all(r[3] != "FAIL" for r in rows) else 1


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far: the whole machine (busy), this process (moto's S3 and SQS, the SMTP sink,
    the puts) and PostgreSQL (the postmaster and its live and ended backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
    own = sum(os.times()[:2])
    pg = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if name.startswith("postgres"):  # utime stime cutime cstime: fields 14-17
            pg += sum(int(x) for x in rest[11:15]) / tick
    return {"machine": busy, "bench": own, "postgres": pg}


def cpu_row(cpu: dict[str, float], emails: int) -> tuple[str, str, str, str]:
    """Where the burst's CPU went, per email: the rest is Dagster and the pipeline (daemon, code
    server, run workers)."""
    per = {k: v / max(1, emails) * 1000 for k, v in cpu.items()}
    rest = per["machine"] - per["bench"] - per["postgres"]
    return (
        "  CPU per email, all processes (ms): Dagster daemon + runs | PostgreSQL | moto S3/SQS + SMTP sink",
        f"{per['machine']:.0f} ms: {rest:.0f} | {per['postgres']:.0f} | {per['bench']:.0f}",
        "-",
        verdict(None),
    )


def statements(stack: Stack) -> dict[str, int]:
    """Transactions and rows written so far in the app's and the instance's databases (PostgreSQL's counters)."""
    from sqlalchemy import create_engine, make_url, text

    counts: dict[str, int] = {}
    from inbox_pipeline_tests.conftest import PG_ADMIN_URL

    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            for part, url in (("app", stack.app_db), ("dagster", stack.dagster_db)):
                row = conn.execute(
                    text("SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                         "WHERE datname = :db"),
                    {"db": make_url(url).database},
                ).one()
                counts[f"{part}_transactions"], counts[f"{part}_rows"] = int(row[0]), int(row[1])
    finally:
        engine.dispose()
    return counts


def statements_row(sql: dict[str, int], emails: int) -> tuple[str, str, str, str]:
    per = {k: v / max(1, emails) for k, v in sql.items()}
    return (
        "  PostgreSQL per email: transactions (rows written), app database | Dagster instance",
        f"{per['app_transactions']:.1f} ({per['app_rows']:.1f}) | {per['dagster_transactions']:.1f} "
        f"({per['dagster_rows']:.1f})",
        "-",
        verdict(None),
    )


def cost_rows(stack: Stack, emails: int) -> list[tuple[str, str, str, str]]:
    """Dagster's cost of the burst: events and event-log bytes per email, the instance's growth."""
    from benchmarks.events import event_stats

    stats = event_stats(stack.dagster_db)
    top = ", ".join(f"{k} {c / emails:.1f}" for k, (c, _) in list(stats["by_type"].items())[:6])
    growth = (stats["database"] - stack.empty_size) / max(1, emails) * 1000
    return [
        (
            "  Dagster events per email (the burst's runs, all event types)",
            f"{stats['rows'] / max(1, emails):.1f} events, {stats['bytes'] / max(1, emails) / 1024:.1f} KB ({top})",
            "-",
            verdict(None),
        ),
        (
            "  the instance's PostgreSQL size per 1,000 emails",
            f"{growth / 1e6:.1f} MB",
            "-",
            verdict(None),
        ),
    ]


def tick_rows(t: dict) -> list[tuple[str, str, str, str]]:
    (idle_e, one_e, list_e, rec_e), (idle_f, one_f, list_f, rec_f) = t["empty"], t["full"]
    return [
        (
            "sensor tick, nothing new (reads the SQS queue of S3 event notifications): empty bucket vs "
            f"{t['archived']:,} processed (archived objects + rows)",
            f"{idle_e * 1000:.0f} ms vs {idle_f * 1000:.0f} ms (x{idle_f / idle_e:.2f})",
            f"<= x{TARGET_TICK_RATIO}",
            verdict(idle_f / idle_e <= TARGET_TICK_RATIO),
        ),
        (
            f"sensor tick taking 1 new email: empty bucket vs {t['archived']:,} processed",
            f"{one_e * 1000:.0f} ms vs {one_f * 1000:.0f} ms (x{one_f / one_e:.2f})",
            f"<= x{TARGET_TICK_RATIO}",
            verdict(one_f / one_e <= TARGET_TICK_RATIO),
        ),
        (
            "reconciling tick, nothing new (also lists the inbox prefix; at most every "
            "INBOX_PIPELINE_RECONCILE_SECONDS, default 600 s)",
            f"{rec_e * 1000:.0f} ms vs {rec_f * 1000:.0f} ms (x{rec_f / rec_e:.2f})",
            "-",
            verdict(None),
        ),
        (
            "  of which the S3 listing (moto scans the whole bucket; S3 reads its key index)",
            f"{list_e * 1000:.0f} ms vs {list_f * 1000:.0f} ms (x{list_f / list_e:.2f})",
            "-",
            verdict(None),
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
