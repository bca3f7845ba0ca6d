"""The inbox sensor: pending emails -> runs that take them.

The sensor only finds pending objects and requests runs; the run's first op
registers and archives them (``services.intake``). So "Preview tick result" in
the UI, a dry run whose requests are dropped, changes no row, object or run. A
pending object already named by a run that has not finished (queued, starting,
running), or by one that failed in the last ``retake_after_seconds`` (default a
day; the run-failure sensor has alerted), is left alone; the run key (the
object's name and version) keeps it in exactly one run if a tick is repeated.

Run sizing (README "Throughput"): a tick that finds one email while nothing is
queued launches the per-email job (lowest latency; the run is tagged with the
email's Message-ID, user and subject). Otherwise the emails go through the work
queue (``services/work.py``): one ``take_inbox`` run at a time, named the
first ``INBOX_PIPELINE_BATCH_SIZE`` emails found (default 500), registers,
archives and queues them, outside the limit on runs that send mail, then lists
the inbox again and takes what arrived meanwhile until it finds nothing (so a
burst still arriving costs one run start, not one per tick; while it goes, the
sensor requests nothing for the inbox), and worker runs
(``process_inbox_batch``, one per ten emails due, up to that limit, read from
the instance) claim them one at a time as they free up, the recipient served
least first (the fewest claims in the last 10 minutes). ``INBOX_PIPELINE_BATCH_SIZE=1`` means one run per email
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

from inbox_pipeline.defs.common import (
    BATCH_JOB,
    EMAIL_JOB,
    TAKE_JOB,
    TAG_EMAIL_COUNT,
    TAG_EMAIL_ID,
    TAG_INBOX_KEY,
    batch_run_config,
    email_run_config,
    inbox_objects_of_run,
    mail_run_limit,
    take_run_config,
)
from inbox_pipeline.defs.resources import PipelineResource

INBOX_SENSOR = "inbox_sensor"
# Objects of a run that failed (it alerted) are requested again only after this long.
RETAKE_AFTER_SECONDS = 24 * 3600


def run_key_for(obj) -> str:
    """One object's run key: its (printable) name and version, so a reused name is a new run."""
    from inbox_pipeline.seams.inbox import archive_name

    return f"inbox:{archive_name(obj.key)}@{obj.version}"


def run_request_for(obj) -> dg.RunRequest:
    from inbox_pipeline.seams.inbox import archive_name

    return dg.RunRequest(
        run_key=run_key_for(obj),
        job_name=EMAIL_JOB,
        run_config=email_run_config(obj=obj),
        tags={TAG_INBOX_KEY: archive_name(obj.key)},
    )


def fanout_run_request(email_id: int) -> dg.RunRequest:
    """A run for a copy routing made for a further envelope recipient (it has no inbox object)."""
    return dg.RunRequest(
        run_key=f"fanout:{email_id}",
        job_name=EMAIL_JOB,
        run_config=email_run_config(email_id=email_id),
        tags={TAG_EMAIL_ID: str(email_id)},
    )


def take_run_request_for(batch: list) -> dg.RunRequest:
    """One take run for several pending objects; its run key is stable for the same objects."""
    batch = sorted(batch, key=lambda o: o.key)
    digest = hashlib.sha256("\n".join(run_key_for(o) for o in batch).encode("utf-8", "surrogateescape")).hexdigest()
    return dg.RunRequest(
        run_key=f"take:{len(batch)}:{digest[:24]}",
        job_name=TAKE_JOB,
        run_config=take_run_config(batch),
        tags={TAG_EMAIL_COUNT: str(len(batch))},
    )


def worker_run_requests(count: int, takes: list[dg.RunRequest], tick: float) -> list[dg.RunRequest]:
    """``count`` worker runs (they claim from the queue: their config names no email), keyed by the take
    runs requested with them, so a tick evaluated again requests the same runs; else by the tick's time."""
    basis = hashlib.sha256("\n".join(r.run_key or "" for r in takes).encode()).hexdigest()[:24] if takes else f"{tick:.3f}"
    return [
        dg.RunRequest(run_key=f"worker:{basis}:{n}", job_name=BATCH_JOB, run_config=batch_run_config())
        for n in range(count)
    ]


_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def runs_in_flight(instance: dg.DagsterInstance, *, retake_after_seconds: float, now: float) -> list[dg.DagsterRun]:
    """Runs not finished, and runs that failed or were canceled within ``retake_after_seconds``. Costs
    O(runs in flight + recent failures), never O(history)."""
    from datetime import datetime, timezone

    since = datetime.fromtimestamp(now - retake_after_seconds, tz=timezone.utc)
    runs = list(instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED)))
    runs += instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED], created_after=since
        )
    )
    return runs


def busy_objects(runs: list[dg.DagsterRun]) -> set[str]:
    """Names of the inbox objects that these runs already have (a finished run has archived its
    objects, so they are no longer pending)."""
    return {key for run in runs for key in inbox_objects_of_run(run)}


def take_running(runs: list[dg.DagsterRun]) -> bool:
    """Whether a take run is queued or going (it takes whatever arrives in the inbox until it is empty)."""
    return any(run.job_name == TAKE_JOB and run.status in _UNFINISHED for run in runs)


def workers_running(runs: list[dg.DagsterRun]) -> int:
    return sum(1 for run in runs if run.job_name == BATCH_JOB and run.status in _UNFINISHED)


def build_inbox_sensor(
    job: dg.JobDefinition,
    batch_job: dg.JobDefinition,
    take_job: dg.JobDefinition,
    *,
    interval_seconds: int = 30,
    max_emails_per_tick: int = 200,
    retake_after_seconds: float = RETAKE_AFTER_SECONDS,
    batch_size: int = 500,
    reconcile_seconds: float = 600,
    announced: bool = False,
) -> dg.SensorDefinition:
    """The inbox sensor for ``job`` (process_email), ``batch_job`` (process_inbox_batch, the worker
    runs) and ``take_job`` (take_inbox); ``announced``: the inbox has a queue (for the description)."""
    mode = (
        "one run per email"
        if batch_size <= 1
        else f"one run for a lone email when nothing is queued; otherwise one take run at a time (named up to "
        f"{batch_size} emails, it then takes what else arrives until the inbox is empty) queues them and worker "
        "runs (one per ten emails due, up to the instance's limit on runs that send mail) claim them one at a time, the recipient served least first"
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
        jobs=[job, batch_job, take_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the inbox (S3 prefix or folder). {source} Each tick finds up to "
            f"{max_emails_per_tick} pending emails that no run has yet and launches runs: {mode}. A run, not the "
            "sensor, registers each email once and moves it to the archive, so previewing a tick changes nothing "
            "(run key = the email's name and version, so a repeated tick never runs one twice). Its cost follows "
            "the pending emails and the runs in flight only; the rest wait for the next tick. Emails of a run that "
            f"failed are requested again after {retake_after_seconds / 3600:g} h."
        ),
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        from inbox_pipeline.services.intake import PendingTick, fanout_copies, find_pending
        from inbox_pipeline.services.work import queue_depth, workers_wanted

        p = pipeline.pipeline()
        started = time.time()
        reconcile = reconcile_due(context.cursor, started, reconcile_seconds)
        runs = runs_in_flight(context.instance, retake_after_seconds=retake_after_seconds, now=started)
        busy = busy_objects(runs)
        depth = queue_depth(p)
        workers = workers_running(runs)
        # A listing or queue error fails the tick: nothing is lost, the cursor stays. A burst's
        # announcements are settled once its emails are through the queue.
        settle = not (depth.due or depth.claimed)
        taking = take_running(runs)
        if taking:
            # A take run is going: it lists the inbox again after each round and takes what arrived
            # (``take_until_empty``), so this tick requests nothing for the inbox, and a lone email
            # is not given its own run behind the take run's back.
            found = PendingTick()
        else:
            found = find_pending(p, limit=max_emails_per_tick, reconcile=reconcile, busy=busy, settle=settle)
        cursor = _cursor_after(found, started, max_emails_per_tick + len(busy))
        due = depth.due
        requests, takes = [], []
        if batch_size <= 1 or (len(found.new) == 1 and not (depth.due or depth.later)):
            requests += [run_request_for(o) for o in found.new]
        elif found.new:
            takes = [take_run_request_for(sorted(found.new, key=lambda o: o.key)[:batch_size])]  # it lists the rest
            due += len(found.new)  # queued as the take run goes: workers start on the first at once
        wanted = workers_wanted(due, workers, mail_run_limit(context.instance), taking=bool(taking))
        requests += takes + worker_run_requests(wanted, takes, started)
        # Routing's copies for further users among an email's envelope recipients: run by id, once.
        requests += [fanout_run_request(email_id) for email_id in fanout_copies(p, limit=max_emails_per_tick)]
        if found.unannounced:
            context.log.info(
                f"reconcile: {found.unannounced} pending email(s) had not been announced on the queue "
                "(lost or late S3 event notifications)"
            )
        queued = f"; {depth.due} queued, {depth.claimed} with {workers} worker run(s)" if depth.due or workers else ""
        if not requests:
            waiting = f"; {found.busy} pending in runs already" if found.busy else ""
            if taking:
                return dg.SensorResult(
                    skip_reason=f"a take run is taking what arrives in {p.inbox.uri}{queued}", cursor=cursor
                )
            return dg.SensorResult(skip_reason=f"no new email in {p.inbox.uri}{waiting}{queued}", cursor=cursor)
        context.log.info(
            f"{len(found.new)} new email(s) of {_found(found)}, {found.busy} in runs already{queued}, "
            f"{len(requests)} run(s) ({wanted} worker(s))"
        )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return inbox_sensor


def _found(tick) -> str:
    if tick.announced is None:
        return f"{tick.listed} listed"
    if tick.burst and not tick.announced:
        return f"{tick.listed} listed (a burst: {tick.backlog} announcements waiting)"
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
    complete = tick.reconciled and tick.listed < limit  # else: again next tick
    if tick.announced is None or not complete:
        return None
    return json.dumps({"reconciled_at": started})
