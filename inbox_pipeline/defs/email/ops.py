"""The ops of the per-email job: each calls one pipeline step and reports what it did.

Ops hold no business logic: they call ``inbox_pipeline.services``, turn its
errors into Dagster's (permanent -> ``dg.Failure(allow_retries=False)``,
anything else -> retried by the op's RetryPolicy) and log materializations,
the EPUB check and run tags so the UI can find every email.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from inbox_pipeline.defs.email.assets import CLEANED_HTML, EPUB, EPUB_CHECK_NAME, INBOX_EMAIL, KINDLE_DELIVERY, NEWSLETTER
from inbox_pipeline.defs.resources import PipelineResource

MAX_RETRIES = 3  # of the network steps' RetryPolicy; the last attempt records the failure

# Run tags: filter runs in the UI by any of these.
TAG_EMAIL_ID = "inbox-pipeline/email-id"
TAG_INBOX_KEY = "inbox-pipeline/inbox-key"
TAG_MESSAGE_ID = "inbox-pipeline/message-id"
TAG_SUBJECT = "inbox-pipeline/subject"
TAG_SENDER = "inbox-pipeline/sender"
TAG_USER = "inbox-pipeline/user"
TAG_OUTCOME = "inbox-pipeline/outcome"


class EmailConfig(dg.Config):
    """Which registered inbound email this run processes (set by the inbox sensor)."""

    inbound_email_id: int
    storage_key: str = ""


def network_retry(delay_seconds: float) -> dg.RetryPolicy:
    return dg.RetryPolicy(
        max_retries=MAX_RETRIES,
        delay=delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


@contextmanager
def step(context: dg.OpExecutionContext, give_up: Callable[[str], None]) -> Iterator[None]:
    """Permanent errors fail at once (recorded); others are retried, and recorded on the last attempt."""
    from inbox_pipeline.services.context import PermanentStepError

    try:
        yield
    except PermanentStepError as exc:
        give_up(str(exc))
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except dg.Failure:
        raise
    except Exception as exc:
        attempt = context.retry_number + 1
        if context.retry_number >= MAX_RETRIES:
            give_up(f"{context.op.name} failed after {attempt} attempts: {type(exc).__name__}: {exc}")
        else:
            context.log.warning(f"attempt {attempt} of {context.op.name} failed, will retry: {exc}")
        raise


def _tag(value: str, limit: int = 200) -> str:
    return " ".join((value or "").split())[:limit]


def _email_metadata(subject: str, sender: str, email_id: int) -> dict[str, Any]:
    return {"subject": subject, "sender": sender, "inbound_email_id": email_id}


def _fail(p, email_id: int, newsletter_id: int | None = None) -> Callable[[str], None]:
    from inbox_pipeline.services.process import fail_email

    return lambda reason: fail_email(p, email_id, reason, newsletter_id=newsletter_id)


@dg.op(
    description="Read the raw email from the inbox archive, parse it (MIME or inbound-parse JSON) and classify it; "
    "tags the run with its Message-ID, subject and sender.",
    out=dg.Out(description="What parsing found (ids, headers, kind); the email itself stays in the archive."),
)
def parse_email(context: dg.OpExecutionContext, config: EmailConfig, pipeline: PipelineResource):
    from inbox_pipeline.services.process import parse_inbound

    p = pipeline.pipeline()
    with step(context, _fail(p, config.inbound_email_id)):
        parsed = parse_inbound(p, config.inbound_email_id)
    context.instance.add_run_tags(
        context.run_id,
        {
            TAG_MESSAGE_ID: _tag(parsed.message_id, 500),
            TAG_SUBJECT: _tag(parsed.subject),
            TAG_SENDER: _tag(parsed.sender_email or parsed.sender),
        },
    )
    context.log_event(
        dg.AssetMaterialization(
            INBOX_EMAIL,
            description=parsed.subject,
            metadata={
                **_email_metadata(parsed.subject, parsed.sender, parsed.email_id),
                "message_id": parsed.message_id,
                "recipients": ", ".join(parsed.recipients),
                "kind": f"{parsed.kind}: {parsed.kind_reason}",
                "bytes": parsed.size,
                "storage_key": parsed.storage_key,
            },
        )
    )
    return parsed


@dg.op(
    description="Route to the user by the recipient address: unknown address, duplicate (same Message-ID or "
    "content), quarantined (SES verdicts) stop here with their reason; confirmations go to the user's own "
    "email; newsletters go on.",
    out={
        "newsletter": dg.Out(is_required=False, description="Routed as a newsletter for the user's Kindle."),
        "forward": dg.Out(is_required=False, description="A confirmation or notice for the user's own email."),
    },
)
def route_email(context: dg.OpExecutionContext, parsed, pipeline: PipelineResource):
    from inbox_pipeline.services.route import route_parsed

    p = pipeline.pipeline()
    with step(context, _fail(p, parsed.email_id)):
        routed = route_parsed(p, parsed)
    tags = {TAG_OUTCOME: routed.state}
    if routed.user_email:
        tags[TAG_USER] = routed.user_email
    context.instance.add_run_tags(context.run_id, tags)
    context.log.info(f"{routed.state}: {routed.reason}")
    if routed.path == "newsletter":
        yield dg.Output(routed, "newsletter", metadata={"state": routed.state, "reason": routed.reason})
    elif routed.path == "forward":
        yield dg.Output(routed, "forward", metadata={"state": routed.state, "reason": routed.reason})


@dg.op(
    description="Forward a subscription confirmation (or other notice) to the user's own email with the "
    "confirm link first; never to the Kindle. Sent once (the notification row is claimed first).",
    pool="mailer",
)
def forward_confirmation(context: dg.OpExecutionContext, parsed, routed, pipeline: PipelineResource):
    from inbox_pipeline.services.route import forward_to_user

    p = pipeline.pipeline()
    with step(context, _fail(p, parsed.email_id)):
        outcome = forward_to_user(p, parsed, routed)
    context.instance.add_run_tags(context.run_id, {TAG_OUTCOME: "confirmation_forwarded"})
    context.log.info(outcome.reason)
    return outcome


@dg.op(
    description="Record the newsletter row (user, sender, subject, Message-ID, raw HTML) and take one unit of the "
    "month's quota; over quota it is kept, not delivered, and the user told once.",
    out=dg.Out(is_required=False, description="The newsletter, when it is to be converted and delivered."),
)
def record_newsletter(context: dg.OpExecutionContext, parsed, routed, pipeline: PipelineResource):
    from inbox_pipeline.services.route import record_newsletter as record

    p = pipeline.pipeline()
    with step(context, _fail(p, parsed.email_id)):
        ref, reason = record(p, parsed, routed)
    metadata = {**_email_metadata(parsed.subject, parsed.sender, parsed.email_id), "user": routed.user_email or ""}
    if ref is None:
        context.instance.add_run_tags(context.run_id, {TAG_OUTCOME: "over_quota"})
        context.log.info(reason)
        context.log_event(
            dg.AssetMaterialization(NEWSLETTER, description=reason, metadata={**metadata, "status": "over_quota"})
        )
        return
    context.log_event(
        dg.AssetMaterialization(
            NEWSLETTER,
            description=parsed.subject,
            metadata={**metadata, "newsletter_id": ref.newsletter_id, "status": "recorded"},
        )
    )
    yield dg.Output(ref)


@dg.op(
    description="Strip email clutter (tracking pixels, view-in-browser, share and subscribe blocks, footers, "
    "layout tables) with the platform's rules; keep the article.",
)
def clean_html(context: dg.OpExecutionContext, newsletter, pipeline: PipelineResource):
    from inbox_pipeline.services.process import clean_newsletter

    p = pipeline.pipeline()
    with step(context, _fail(p, newsletter.email_id, newsletter.newsletter_id)):
        cleaned = clean_newsletter(p, newsletter)
    context.log_event(
        dg.AssetMaterialization(
            CLEANED_HTML,
            description=cleaned.title,
            metadata={
                **_email_metadata(newsletter.subject, newsletter.sender, newsletter.email_id),
                "platform": cleaned.platform,
                "language": cleaned.language,
                "words": cleaned.words,
                "removed": cleaned.removed,
            },
        )
    )
    return cleaned


@dg.op(
    description="Embed cid: images, download remote ones (bounded, SSRF-safe, cached), convert and downscale "
    "for e-ink; a failed image drops that image only.",
)
def embed_images(context: dg.OpExecutionContext, cleaned, pipeline: PipelineResource):
    from inbox_pipeline.services.process import embed_images as embed

    p = pipeline.pipeline()
    ref = cleaned.newsletter
    with step(context, _fail(p, ref.email_id, ref.newsletter_id)):
        images = embed(p, cleaned)
    for reason in images.reasons[:10]:
        context.log.info(f"image dropped: {reason}")
    return images


@dg.op(description="Build the EPUB 3 (nav, NCX, cover, e-ink CSS, stable identifier from the Message-ID).")
def build_epub(context: dg.OpExecutionContext, images, pipeline: PipelineResource):
    from inbox_pipeline.services.process import build_newsletter_epub

    p = pipeline.pipeline()
    ref = images.cleaned.newsletter
    with step(context, _fail(p, ref.email_id, ref.newsletter_id)):
        return build_newsletter_epub(p, images)


@dg.op(description="Keep the EPUB in storage and record its size, words, images and reading time.")
def store_epub(context: dg.OpExecutionContext, built, pipeline: PipelineResource):
    from inbox_pipeline.services.process import store_newsletter_epub

    p = pipeline.pipeline()
    ref = built.images.cleaned.newsletter
    with step(context, _fail(p, ref.email_id, ref.newsletter_id)):
        epub = store_newsletter_epub(p, built)
    context.log_event(
        dg.AssetMaterialization(
            EPUB,
            description=epub.title,
            metadata={
                **_email_metadata(epub.subject, epub.sender, epub.email_id),
                "title": epub.title,
                "words": epub.words,
                "images": epub.images,
                "bytes": epub.bytes,
                "reading_minutes": epub.reading_minutes,
                "file_name": epub.file_name,
                "storage_key": epub.key,
            },
        )
    )
    return epub


@dg.op(
    description="Blocking asset check on the EPUB: the Kindle preflight, and EPUBCheck when enabled. "
    "An EPUB that fails is recorded as failed and never delivered.",
    out=dg.Out(is_required=False, description="The EPUB, only when it passed."),
)
def check_epub(context: dg.OpExecutionContext, epub, pipeline: PipelineResource):
    from inbox_pipeline.services.process import validate_epub

    outcome = validate_epub(pipeline.pipeline(), epub)
    yield dg.AssetCheckEvaluation(
        asset_key=EPUB,
        check_name=EPUB_CHECK_NAME,
        passed=outcome.passed,
        blocking=True,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(outcome.problems[:5]) or f"{epub.title}: valid",
        metadata={
            "subject": epub.subject,
            "storage_key": epub.key,
            "checks": ", ".join(outcome.checks),
            "problems": len(outcome.problems),
        },
    )
    if outcome.passed:
        yield dg.Output(epub)


@dg.op(
    description="Send the EPUB to the user's Kindle from the one sender address, exactly once through the delivery "
    "ledger; too large: a download link to the user's own email; digest users: held; no Kindle: kept, user told.",
    pool="mailer",
)
def deliver_to_kindle(context: dg.OpExecutionContext, epub, pipeline: PipelineResource):
    from inbox_pipeline.services.deliver import DeliveryUnconfirmed, deliver_epub, give_up
    from inbox_pipeline.services.process import fail_email

    p = pipeline.pipeline()

    def record_failure(reason: str) -> None:
        give_up(p, epub, reason)

    with step(context, record_failure):
        try:
            outcome = deliver_epub(p, epub)
        except DeliveryUnconfirmed as exc:  # it may have arrived: record it, do not tell the user it failed
            fail_email(p, epub.email_id, str(exc), newsletter_id=epub.newsletter_id)
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    context.instance.add_run_tags(context.run_id, {TAG_OUTCOME: outcome.status})
    context.log.info(outcome.reason)
    if outcome.status not in ("sent", "link_sent"):
        return outcome  # held for the digest, kept for lack of a Kindle, or sent by an earlier run
    context.log_event(
        dg.AssetMaterialization(
            KINDLE_DELIVERY,
            description=outcome.reason,
            metadata={
                **_email_metadata(epub.subject, epub.sender, epub.email_id),
                "status": outcome.status,
                "recipient": outcome.recipient,
                "words": epub.words,
                "images": epub.images,
                "bytes": epub.bytes,
                "delivery_id": outcome.delivery_id or 0,
                "provider_message_id": outcome.provider_message_id or "",
            },
        )
    )
    return outcome
