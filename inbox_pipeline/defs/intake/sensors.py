"""The inbox sensor: new emails -> registered rows -> runs.

Run sizing (README "Throughput"): a tick that takes one email launches the
per-email job (lowest latency; the run is tagged with the email's Message-ID,
user and subject). A tick that takes several launches ``process_inbox_batch``
runs of at most ``INBOX_PIPELINE_BATCH_SIZE`` emails each (default 100), split
evenly (and in two from 20 emails on) so that several runs share the cores; each email keeps its own steps and
retries inside the run. ``INBOX_PIPELINE_BATCH_SIZE=1`` means one run per email
always.

Announced inbox (``INBOX_PIPELINE_INBOX=s3://...?queue=...``): a tick takes the
objects the bucket's event notifications announced on the SQS queue and lists the
prefix only to reconcile (lost notifications), at most every
``INBOX_PIPELINE_RECONCILE_SECONDS`` (default 600). The time of the last complete
reconcile is the sensor's cursor (JSON); an absent or unreadable cursor means
"reconcile now", and a reconcile that failed or hit the tick's cap is done again
on the next tick.
"""

import hashlib
import json
import math
import time

import dagster as dg

from inbox_pipeline.defs.email.ops import TAG_EMAIL_ID, TAG_INBOX_KEY
from inbox_pipeline.defs.resources import PipelineResource

INBOX_SENSOR = "inbox_sensor"
# A burst of at least this many emails is split into at least two runs, so both cores of a
# small machine work on it (a run executes its steps one at a time).
SPLIT_FROM = 20
# Batch runs: the emails' id range ("12..61") and how many; each email's own
# materializations (Message-ID, subject, sender, id) link to the run.
TAG_EMAILS = "inbox-pipeline/emails"
TAG_EMAIL_COUNT = "inbox-pipeline/email-count"


def run_request_for(registered) -> dg.RunRequest:
    from inbox_pipeline.defs.email.job import JOB_NAME

    return dg.RunRequest(
        run_key=registered.run_key,
        job_name=JOB_NAME,
        run_config={
            "ops": {
                "parse_email": {
                    "config": {"inbound_email_id": registered.email_id, "storage_key": registered.storage_key}
                }
            }
        },
        tags={TAG_EMAIL_ID: str(registered.email_id), TAG_INBOX_KEY: registered.storage_key},
    )


def batch_run_request_for(batch: list) -> dg.RunRequest:
    """One run for several registered emails; its run key is stable for the same registrations."""
    from inbox_pipeline.defs.email.job import BATCH_JOB_NAME, batch_run_config

    batch = sorted(batch, key=lambda r: r.email_id)
    digest = hashlib.sha256("\n".join(sorted(r.run_key for r in batch)).encode()).hexdigest()[:20]
    first, last = batch[0].email_id, batch[-1].email_id
    return dg.RunRequest(
        run_key=f"batch:{first}-{last}:{len(batch)}:{digest}",
        job_name=BATCH_JOB_NAME,
        run_config=batch_run_config([(r.email_id, r.storage_key) for r in batch]),
        tags={TAG_EMAILS: f"{first}..{last}", TAG_EMAIL_COUNT: str(len(batch))},
    )


def run_requests_for(registered: list, batch_size: int) -> list[dg.RunRequest]:
    """One email: a per-email run. Several: ceil(n / batch_size) batch runs of even size (two from
    SPLIT_FROM emails on)."""
    if not registered:
        return []
    if batch_size <= 1 or len(registered) == 1:
        return [run_request_for(r) for r in registered]
    ordered = sorted(registered, key=lambda r: r.email_id)
    runs = max(math.ceil(len(ordered) / batch_size), 2 if len(ordered) >= SPLIT_FROM else 1)
    size = math.ceil(len(ordered) / runs)
    chunks = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    return [batch_run_request_for(c) if len(c) > 1 else run_request_for(c[0]) for c in chunks]


def _already_in_a_run(instance: dg.DagsterInstance, stale: list) -> set[int]:
    """Emails of ``stale`` that a batch run created since the oldest of them already covers.

    Per-email requests are de-duplicated by their run key; a batch's composition cannot be
    rebuilt from the database, so its emails are looked up in the runs' config (queued runs
    wait here, sometimes longer than the relaunch delay, during a burst).
    """
    from datetime import timedelta

    from inbox_pipeline.defs.email.job import BATCH_JOB_NAME, email_ids_of_run

    oldest = min(r.registered_at for r in stale if r.registered_at is not None) if stale else None
    filters = dg.RunsFilter(
        job_name=BATCH_JOB_NAME,
        created_after=(oldest - timedelta(minutes=5)) if oldest is not None else None,
    )
    covered: set[int] = set()
    for run in instance.get_runs(filters=filters):
        covered.update(email_ids_of_run(run))
    return covered


def build_inbox_sensor(
    job: dg.JobDefinition,
    batch_job: dg.JobDefinition,
    *,
    interval_seconds: int = 30,
    max_emails_per_tick: int = 200,
    relaunch_after_seconds: float = 120,
    batch_size: int = 100,
    reconcile_seconds: float = 600,
    announced: bool = False,
) -> dg.SensorDefinition:
    """The inbox sensor for ``job`` (process_email) and ``batch_job`` (process_inbox_batch);
    ``announced``: the inbox has a queue (for the description)."""
    mode = (
        "one run per email"
        if batch_size <= 1
        else f"one run for a lone email, batch runs of at most {batch_size} emails for several"
    )
    source = (
        "New emails are announced by the bucket's S3 event notifications on an SQS queue: a tick reads the "
        "queue, not the bucket, and lists the inbox prefix only to catch lost notifications, at most every "
        f"{reconcile_seconds:g} s."
        if announced
        else "Each tick lists the inbox for pending emails."
    )

    @dg.sensor(
        name=INBOX_SENSOR,
        jobs=[job, batch_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the inbox (S3 prefix or folder). {source} Each tick takes up to "
            f"{max_emails_per_tick} pending emails, registers each once in the database, moves it to the archive "
            f"and launches runs: {mode} (run key = the registrations, so a restart never runs one twice). "
            "Its cost follows the new emails only; the rest wait for the next tick. Registered emails whose run "
            f"never started after {relaunch_after_seconds:g} s are requested again."
        ),
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        from datetime import timedelta

        from inbox_pipeline.services.intake import take_new_emails, unlaunched

        p = pipeline.pipeline()
        started = time.time()
        reconcile = reconcile_due(context.cursor, started, reconcile_seconds)
        # A listing or queue error fails the tick: nothing is lost, the cursor stays.
        tick = take_new_emails(p, limit=max_emails_per_tick, reconcile=reconcile)
        cursor = _cursor_after(tick, started, max_emails_per_tick)
        requests = run_requests_for(tick.registered, batch_size)
        for error in tick.errors:
            context.log.error(f"could not take this email from the inbox (it stays there; the others go on): {error}")
        if tick.unannounced:
            context.log.info(
                f"reconcile: {tick.unannounced} pending email(s) had not been announced on the queue "
                "(lost or late S3 event notifications)"
            )
        taken = {r.email_id for r in tick.registered}
        stale = unlaunched(p, older_than=timedelta(seconds=relaunch_after_seconds), limit=max_emails_per_tick)
        recovered = [r for r in stale if r.email_id not in taken]
        if recovered and batch_size > 1:
            covered = _already_in_a_run(context.instance, recovered)
            recovered = [r for r in recovered if r.email_id not in covered]
        requests += run_requests_for(recovered, batch_size)
        if recovered:
            context.log.info(f"requesting {len(recovered)} registered email(s) again (Dagster skips known run keys)")
        if not requests:
            return dg.SensorResult(skip_reason=f"no new email in {p.inbox.uri}", cursor=cursor)
        context.log.info(
            f"{len(tick.registered)} new email(s) of {_found(tick)}, {len(recovered)} re-requested, "
            f"{len(requests)} run(s)"
        )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return inbox_sensor


def _found(tick) -> str:
    if tick.announced is None:
        return f"{tick.listed} listed"
    return f"{tick.announced} announced" + (f" and {tick.listed} listed" if tick.reconciled else "")


def reconcile_due(cursor: str | None, now: float, every_seconds: float) -> bool:
    """Whether this tick lists the prefix of an announced inbox: no readable reconcile time in the
    cursor, or ``every_seconds`` since it (or a time in the future: the clock moved back)."""
    last = _reconciled_at(cursor)
    return last is None or not 0 <= now - last < every_seconds


def _reconciled_at(cursor: str | None) -> float | None:
    try:
        value = float(json.loads(cursor or "")["reconciled_at"])
    except (TypeError, ValueError, KeyError, IndexError):
        return None
    return value if math.isfinite(value) else None


def _cursor_after(tick, started: float, limit: int) -> str | None:
    """The new cursor when this tick completed a reconcile of an announced inbox, else None (unchanged)."""
    complete = tick.reconciled and not tick.errors and tick.listed < limit  # else: again next tick
    if tick.announced is None or not complete:
        return None
    return json.dumps({"reconciled_at": started})
