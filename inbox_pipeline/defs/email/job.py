"""The jobs that process inbound emails: one run per email, or take and worker runs for a burst.

``process_email``: one run per email (the quiet-inbox case, lowest latency; the
run is tagged with the email's Message-ID, user and subject).

``take_inbox`` and ``process_inbox_batch``: a burst. One take run registers,
archives and queues the (up to ``INBOX_PIPELINE_BATCH_SIZE``) emails the sensor
named, then lists the inbox and takes what else arrives until it is empty; worker runs
(``process_inbox_batch``) claim them from the queue one at a time
(``services/work.py``) with one op, ``work_queue``, which calls the same stage
functions as ``process_email``'s nine ops, parse .. blocking EPUB check ..
deliver. Each Dagster step costs about six event-log writes of its own, so a
step per stage (or per email) made the event log, not the conversion, the
limit (measured on 2 cores with benchmarks/e2e.py: the nine ops mapped 0.8
emails/s, a step per email 6.0/s, the worker runs 9.3/s). A run process costs
seconds of CPU before its first op, which is what one run per email pays 500
times in a burst.

Both run every step in the run's process (in-process executor). Outputs go to
the default filesystem IO manager: they are small summaries (the artefacts are
in storage), and persisting them is what lets a run be re-executed from
failure (by hand or by the instance's run retries) in a new process.
"""

import dagster as dg

from inbox_pipeline.defs.common import BATCH_JOB, EMAIL_JOB, TAKE_JOB, in_process_job, network_retry
from inbox_pipeline.defs.email.ops import (
    build_epub,
    build_work_queue_op,
    check_epub,
    clean_html,
    deliver_to_kindle,
    embed_images,
    forward_confirmation,
    parse_email,
    read_kindle_notice,
    record_newsletter,
    route_email,
    store_epub,
    take_inbox_emails,
)
from inbox_pipeline.defs.run_limits import BATCH_RUN_SECONDS, EMAIL_RUN_SECONDS, TAKE_RUN_SECONDS


def _after_parse(parsed, retry: dg.RetryPolicy) -> None:
    """The per-email job's steps after parsing (routing yields one of its three outputs: one path runs)."""
    newsletter_route, forward_route, notice_route = route_email.with_retry_policy(retry)(parsed)
    forward_confirmation.with_retry_policy(retry)(parsed, forward_route)
    read_kindle_notice.with_retry_policy(retry)(notice_route)
    newsletter = record_newsletter.with_retry_policy(retry)(parsed, newsletter_route)
    cleaned = clean_html.with_retry_policy(retry)(newsletter)
    images = embed_images.with_retry_policy(retry)(cleaned)
    built = build_epub.with_retry_policy(retry)(images)
    stored = store_epub.with_retry_policy(retry)(built)
    checked = check_epub(stored)  # deterministic: no retries
    deliver_to_kindle.with_retry_policy(retry)(checked)


def build_process_email_job(retry_delay_seconds: float = 60) -> dg.JobDefinition:
    retry = network_retry(retry_delay_seconds)

    @in_process_job(
        EMAIL_JOB,
        (
            "One inbound email, start to finish: parse, route (unknown address, duplicate, quarantined, "
            "confirmation, over quota), record the newsletter, clean the HTML, embed images, build and store the "
            "EPUB, check it (blocking) and deliver it to the Kindle exactly once, or hold it for the digest. "
            "Launched by the inbox sensor when a tick finds one email; find a run by its Message-ID, user or "
            "subject tags."
        ),
        EMAIL_RUN_SECONDS,
    )
    def process_email() -> None:
        _after_parse(parse_email.with_retry_policy(retry)(), retry)

    return process_email


def build_process_inbox_batch_job(retry_delay_seconds: float = 60, idle_seconds: float = 5) -> dg.JobDefinition:
    @in_process_job(
        BATCH_JOB,
        (
            "A worker run: claims queued emails (taken from the inbox by take_inbox runs) one at a time, the "
            "recipient served least first, and takes each through the same stages as process_email, "
            "sending one while it converts the next; ends when the queue has been empty for a few seconds. A "
            "failure worth retrying puts the email back in the queue with back-off; one email failing does not stop "
            "the others, though the run then ends failed. Find an email: its `inbox_email` materialization "
            "(Message-ID, subject, sender, id) links to its run; the run's email-ids tag lists what it claimed."
        ),
        BATCH_RUN_SECONDS,
    )
    def process_inbox_batch() -> None:
        build_work_queue_op(retry_delay_seconds, idle_seconds).with_retry_policy(network_retry(retry_delay_seconds))()

    return process_inbox_batch


def build_take_inbox_job(retry_delay_seconds: float = 60) -> dg.JobDefinition:
    @in_process_job(
        TAKE_JOB,
        (
            "Takes a burst of emails from the inbox (the inbox sensor's run config names them): registers each "
            "once, moves it to the archive and queues it for the worker runs (process_inbox_batch). It sends no "
            "mail, so it is not held back by the limit on runs that do, and it is launched ahead of queued runs "
            "(dagster/priority 1): a burst is queued as it arrives."
        ),
        TAKE_RUN_SECONDS,
        sends_mail=False,
        priority=1,  # queued ahead of worker runs: the sooner a burst is queued, the sooner it is shared fairly
    )
    def take_inbox() -> None:
        take_inbox_emails.with_retry_policy(network_retry(retry_delay_seconds))()

    return take_inbox


__all__ = ["build_process_email_job", "build_process_inbox_batch_job", "build_take_inbox_job"]
