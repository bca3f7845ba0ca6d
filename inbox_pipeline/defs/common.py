"""What every domain of the Dagster shell shares: run tags, the retry policy, job and op names, and
the run config of each job as ``dg.Config`` classes, built and read back through them.

A run's config is written once (``RunRequest(run_config=dg.RunConfig(...))``) and read back from a
stored run by validating it against the same class (``email_ids_of_run``, ``inbox_objects_of_run``),
never by walking raw dicts.
"""

# No "from __future__ import annotations": Dagster reads the config annotations at definition time.
import json
from collections.abc import Iterable
from typing import Any, NamedTuple

import dagster as dg
from pydantic import Field, ValidationError

from inbox_pipeline.defs.run_limits import max_runtime

# --- run tags: filter runs in the UI by any of these ----------------------------------------
TAG_EMAIL_ID = "inbox-pipeline/email-id"
TAG_EMAIL_IDS = "inbox-pipeline/email-ids"  # the emails a worker run claimed, comma-separated
TAG_TAKEN_IDS = "inbox-pipeline/taken-ids"  # the emails a take run registered and queued, comma-separated
TAG_NOT_TAKEN = "inbox-pipeline/not-taken"  # pending objects a take run could not take (a JSON list of names)
TAG_EMAIL_COUNT = "inbox-pipeline/email-count"  # how many emails a take run (or a watchdog resume) names
TAG_INBOX_KEY = "inbox-pipeline/inbox-key"
TAG_MESSAGE_ID = "inbox-pipeline/message-id"
TAG_SUBJECT = "inbox-pipeline/subject"
TAG_SENDER = "inbox-pipeline/sender"
TAG_USER = "inbox-pipeline/user"
TAG_OUTCOME = "inbox-pipeline/outcome"
TAG_REASON = "inbox-pipeline/reason"  # why a per-email run ended without a book on the Kindle
TAG_OUTCOMES = "inbox-pipeline/outcomes"  # a worker run's emails that did not go to a Kindle: "unroutable: e4 e9; ..."
SENDS_MAIL_TAG = {"inbox-pipeline/sends": "mail"}  # dagster.yaml limits how many such runs send at once
# Dagster's own run tags (shown in the UI): a re-execution's parent and root, and the run-retry decision
# Dagster stores on a failed run when run retries are enabled ("true"/"false").
PARENT_RUN_TAG = "dagster/parent_run_id"
ROOT_RUN_TAG = "dagster/root_run_id"
WILL_RETRY_TAG = "dagster/will_retry"

# --- jobs and the ops whose config names their work -------------------------------------------
EMAIL_JOB = "process_email"
EMAIL_OP = "parse_email"
BATCH_JOB = "process_inbox_batch"  # a worker run: works the queue of taken emails (services/work.py)
BATCH_OP = "work_queue"
TAKE_JOB = "take_inbox"  # takes a burst's emails from the inbox and queues them for the worker runs
TAKE_OP = "take_inbox_emails"
DIGEST_JOB = "compile_digests"
DIGEST_OP = "compile_and_deliver_digests"

# --- retries ---------------------------------------------------------------------------------
MAX_RETRIES = 3  # of the network steps' RetryPolicy; the last attempt records the failure


def network_retry(delay_seconds: float) -> dg.RetryPolicy:
    """The retry policy of every step that talks to the network (``INBOX_PIPELINE_RETRY_DELAY_SECONDS``)."""
    return dg.RetryPolicy(
        max_retries=MAX_RETRIES,
        delay=delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


PRIORITY_TAG = "dagster/priority"  # the run queue launches higher first (default 0)


def in_process_job(name: str, description: str, run_seconds: int, *, sends_mail: bool = True, priority: int = 0) -> Any:
    """``@dg.job`` as each of our jobs has it: every step in the run's own process, its runs ended past
    ``run_seconds`` (``run_limits``), and, when it sends mail, tagged so that dagster.yaml limits how many
    such runs send at once; ``priority``: launched before queued runs of a lower one."""
    tags = {**(SENDS_MAIL_TAG if sends_mail else {}), **max_runtime(run_seconds)}
    if priority:
        tags[PRIORITY_TAG] = str(priority)
    return dg.job(name=name, description=description, tags=tags, executor_def=dg.in_process_executor)


DEFAULT_MAIL_RUNS = 4  # as deploy/production/dagster.yaml


def mail_run_limit(instance: dg.DagsterInstance) -> int:
    """How many runs may send mail at once: the instance's tag concurrency limit on ``SENDS_MAIL_TAG``
    (dagster.yaml), or ``DEFAULT_MAIL_RUNS`` when it sets none (an instance without a run queue)."""
    [(key, value)] = SENDS_MAIL_TAG.items()
    try:
        queue = instance.get_concurrency_config().run_queue_config
    except Exception:  # noqa: BLE001 - an instance without concurrency settings
        return DEFAULT_MAIL_RUNS
    for rule in (queue.tag_concurrency_limits if queue else None) or []:
        if rule.get("key") == key and rule.get("value") in (value, None) and int(rule.get("limit", 0)) > 0:
            return int(rule["limit"])
    return DEFAULT_MAIL_RUNS


def log_materialization(context: Any, asset_key: dg.AssetKey, description: str, **metadata: Any) -> None:
    """Record that this op materialized ``asset_key`` (the op-based jobs report their assets so), with
    ``metadata`` in the asset's history."""
    context.log_event(dg.AssetMaterialization(asset_key, description=description, metadata=metadata))


# --- run config ------------------------------------------------------------------------------


class InboxObjectConfig(dg.Config):
    """A pending inbox object the run takes (registers and archives) itself."""

    key: str
    version: str = ""
    received_at: str = ""  # ISO 8601, when the inbox got it

    @classmethod
    def of(cls, obj) -> "InboxObjectConfig":
        """From a pending ``InboxObject``."""
        return cls(key=obj.key, version=obj.version, received_at=obj.last_modified.isoformat())


class EmailConfig(dg.Config):
    """Which email this run processes: a pending inbox object (set by the inbox sensor), or an
    inbound email registered before (an operator's replay by id)."""

    inbox: InboxObjectConfig | None = None
    inbound_email_id: int = 0
    storage_key: str = ""


class TakeConfig(dg.Config):
    """The pending inbox objects one take run registers, archives and queues (set by the inbox sensor)."""

    emails: list[InboxObjectConfig] = []


class BatchConfig(dg.Config):
    """A worker run: registered emails it claims before the queue's (held emails the watchdog resumes)."""

    registered: list[int] = []


class DigestRunConfig(dg.Config):
    as_of: str = Field(
        default="",
        description=(
            "The time to compile digests at, ISO 8601 (the schedule passes its tick). Empty: now. "
            "Never later than now: a digest is not sent before it is due."
        ),
    )


def email_run_config(*, obj=None, email_id: int = 0) -> dg.RunConfig:
    """Run config of ``process_email``: take one pending inbox object, or process a registered email by id."""
    inbox = InboxObjectConfig.of(obj) if obj is not None else None
    return dg.RunConfig(ops={EMAIL_OP: EmailConfig(inbox=inbox, inbound_email_id=email_id)})


def take_run_config(objects: Iterable) -> dg.RunConfig:
    """Run config of ``take_inbox``: the pending inbox objects to take and queue."""
    return dg.RunConfig(ops={TAKE_OP: TakeConfig(emails=[InboxObjectConfig.of(o) for o in objects])})


def batch_run_config(registered: Iterable[int] = ()) -> dg.RunConfig:
    """Run config of ``process_inbox_batch`` (a worker run): registered emails to claim first."""
    return dg.RunConfig(ops={BATCH_OP: BatchConfig(registered=list(registered))})


def digest_run_config(as_of: str) -> dg.RunConfig:
    """Run config of ``compile_digests`` at ``as_of`` (ISO 8601)."""
    return dg.RunConfig(ops={DIGEST_OP: DigestRunConfig(as_of=as_of)})


def _op_config(run: dg.DagsterRun | dg.RunRequest, op: str, model: type[dg.Config]) -> Any:
    """The config ``run`` gave ``op``, as ``model``; None when it has none (or none that fits). A
    ``RunRequest`` holds its ``dg.RunConfig`` as a dict too."""
    raw = ((run.run_config or {}).get("ops") or {}).get(op)
    if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
        return None
    try:
        return model.model_validate(raw["config"])
    except ValidationError:
        return None


def inbox_objects_of_run(run: dg.DagsterRun | dg.RunRequest) -> list[str]:
    """The names of the pending inbox objects a run takes (``take_inbox``, ``process_email``)."""
    if run.job_name == TAKE_JOB:
        take = _op_config(run, TAKE_OP, TakeConfig)
        named = [o.key for o in take.emails if o.key] if take else []
        return named + [key for key in _not_taken(run) if key not in named]
    if run.job_name == EMAIL_JOB:
        email = _op_config(run, EMAIL_OP, EmailConfig)
        return [email.inbox.key] if email and email.inbox and email.inbox.key else []
    return []


def _not_taken(run: dg.DagsterRun | dg.RunRequest) -> list[str]:
    """The objects a take run listed but could not take (its ``not-taken`` tag), so they count as its own."""
    try:
        keys = json.loads((run.tags or {}).get(TAG_NOT_TAKEN) or "[]")
    except ValueError:
        return []
    return [key for key in keys if isinstance(key, str) and key] if isinstance(keys, list) else []


def email_ids_of_run(run: dg.DagsterRun) -> list[int]:
    """The inbound emails a run worked on, in order, each once: the email-id tag(s) its first op adds
    once it has registered them (a run that has not got that far has none yet), and the ids its run
    config names (a replay by id, held emails a worker run resumes)."""
    ids: list[int] = []

    def add(value) -> None:
        text = str(value).strip()
        if text.isdigit() and int(text) > 0 and int(text) not in ids:  # 0: EmailConfig's "no id"
            ids.append(int(text))

    add(run.tags.get(TAG_EMAIL_ID, ""))
    for value in run.tags.get(TAG_EMAIL_IDS, "").split(","):
        add(value)
    email = _op_config(run, EMAIL_OP, EmailConfig)
    if email is not None:
        add(email.inbound_email_id)
    batch = _op_config(run, BATCH_OP, BatchConfig)
    for email_id in batch.registered if batch is not None else ():
        add(email_id)
    return ids


# --- sensor and schedule ticks ---------------------------------------------------------------


class TickTypes(NamedTuple):
    instigator_type: Any  # InstigatorType: SENSOR, SCHEDULE
    instigator_status: Any  # InstigatorStatus: RUNNING, STOPPED, DECLARED_IN_CODE
    tick_status: Any  # TickStatus: STARTED, SKIPPED, SUCCESS, FAILURE


def tick_types() -> TickTypes:
    """Dagster's types for sensor and schedule ticks, for ``DagsterInstance.all_instigator_state``,
    ``get_ticks`` and ``purge_ticks`` (the watchdog reads the inbox sensor's last tick; the history
    purge deletes old ticks).

    Dagster has no public Python API for ticks: only its GraphQL API reads them, the three instance
    methods are not marked ``@public`` and these enums are not exported from ``dagster``. This is the
    one place product code imports from ``dagster._core``; a Dagster upgrade that moves them breaks here.
    """
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import InstigatorStatus, TickStatus

    return TickTypes(InstigatorType, InstigatorStatus, TickStatus)
