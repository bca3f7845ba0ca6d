"""The per-email job: one run per inbound email, its ops in pipeline order.

One run per email keeps each email's story on one page of the UI. To move to
one run per tick later, wrap ``_email_steps`` in a ``@dg.graph`` and map it
over a ``DynamicOut`` of email ids: the ops do not change.
"""

import dagster as dg

from inbox_pipeline.defs.email.ops import (
    build_epub,
    check_epub,
    clean_html,
    deliver_to_kindle,
    embed_images,
    forward_confirmation,
    network_retry,
    parse_email,
    record_newsletter,
    route_email,
    store_epub,
)

JOB_NAME = "process_email"
SENDS_MAIL_TAG = {"inbox-pipeline/sends": "mail"}  # dagster.yaml limits how many such runs send at once


def build_process_email_job(retry_delay_seconds: float = 60) -> dg.JobDefinition:
    retry = network_retry(retry_delay_seconds)

    @dg.job(
        name=JOB_NAME,
        description=(
            "One inbound email, start to finish: parse, route (unknown address, duplicate, quarantined, "
            "confirmation, over quota), record the newsletter, clean the HTML, embed images, build and store the "
            "EPUB, check it (blocking) and deliver it to the Kindle exactly once, or hold it for the digest. "
            "Launched by the inbox sensor; find a run by its Message-ID, user or subject tags."
        ),
        tags=SENDS_MAIL_TAG,
        executor_def=dg.in_process_executor,
    )
    def process_email() -> None:
        parsed = parse_email.with_retry_policy(retry)()
        newsletter_route, forward_route = route_email.with_retry_policy(retry)(parsed)
        forward_confirmation.with_retry_policy(retry)(parsed, forward_route)
        newsletter = record_newsletter.with_retry_policy(retry)(parsed, newsletter_route)
        cleaned = clean_html.with_retry_policy(retry)(newsletter)
        images = embed_images.with_retry_policy(retry)(cleaned)
        built = build_epub.with_retry_policy(retry)(images)
        stored = store_epub.with_retry_policy(retry)(built)
        checked = check_epub(stored)  # deterministic: no retries
        deliver_to_kindle.with_retry_policy(retry)(checked)

    return process_email
