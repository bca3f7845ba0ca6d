"""The ops of both email jobs: each calls pipeline steps and reports what it did.

``process_email`` has one op per stage (parse_email .. deliver_to_kindle);
``take_inbox`` takes a burst's emails from the inbox and queues them;
``process_inbox_batch`` is a worker: its one op (work_queue) claims queued
emails one at a time and takes each through the same stage functions
(``_parse`` .. ``_deliver``). In a worker run, run tags stay the run's (its
emails' ids, the outcomes that need a look) and routine log lines are left out:
each is an event-log write, and the email's materializations (Message-ID,
subject, sender, user, outcome) and database row say the same.

Ops hold no business logic: they call ``inbox_pipeline.services``, turn its
errors into Dagster's (permanent -> ``dg.Failure(allow_retries=False)``,
anything else -> retried by the op's RetryPolicy) and log materializations,
the EPUB check and run tags so the UI can find every email.
"""

import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import dagster as dg

from inbox_pipeline.defs.common import (
    MAX_RETRIES,
    TAG_EMAIL_ID,
    TAG_EMAIL_IDS,
    TAG_INBOX_KEY,
    TAG_MESSAGE_ID,
    TAG_OUTCOME,
    TAG_OUTCOMES,
    TAG_REASON,
    TAG_SENDER,
    TAG_SUBJECT,
    TAG_NOT_TAKEN,
    TAG_TAKEN_IDS,
    TAG_USER,
    BATCH_OP,
    TAKE_OP,
    BatchConfig,
    EmailConfig,
    InboxObjectConfig,
    TakeConfig,
    log_materialization,
)
from inbox_pipeline.defs.email.assets import (
    CLEANED_HTML,
    EPUB,
    EPUB_CHECK_NAME,
    INBOX_EMAIL,
    KINDLE_DELIVERY,
    NEWSLETTER,
    REJECTION_CHECK_NAME,
    rejection_rate_evaluation,
)
from inbox_pipeline.defs.resources import PipelineResource

ON_THE_WAY = ("routed", "ready")  # routing's outcome for an email that goes on to delivery
DELIVERED_OUTCOMES = ON_THE_WAY + ("sent", "link_sent", "delivered", "already_sent")  # nothing to point out


def mapping_key(email_id: int) -> str:
    """How a worker run names an email in its outcomes tag and log lines: ``e<id>``."""
    return f"e{email_id}"


def _in_worker(context: dg.OpExecutionContext) -> bool:
    """The op is a worker run's (many emails), not one of a per-email run's steps."""
    return context.op_def.name == BATCH_OP


# A worker run retries an email by putting it back in the queue, not by retrying its op: the
# email's attempt (0 for the first) stands in for the op's retry number while it is worked on.
_RETRY_NUMBER: ContextVar[int | None] = ContextVar("retry_number", default=None)


def _retry_number(context: dg.OpExecutionContext) -> int:
    number = _RETRY_NUMBER.get()
    return context.retry_number if number is None else number


def take_from_inbox(context: dg.OpExecutionContext, p, objects: list[InboxObjectConfig], *, queue: bool = False):
    """Register and archive the run's pending objects (the sensor only found them, so that a
    previewed tick changes nothing); ``queue``: and queue each for the worker runs as it is taken.
    Errors are retried with the op (taking is idempotent); on the last attempt the objects taken go
    on and the rest are returned as errors."""
    from datetime import datetime, timezone

    from inbox_pipeline.seams.inbox import InboxObject
    from inbox_pipeline.services.intake import take_pending, take_until_empty

    def received(text: str) -> datetime:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return datetime.now(timezone.utc)

    found = [InboxObject(o.key, 0, received(o.received_at), o.version) for o in objects]
    if queue:  # a take run: these, then what arrives in the inbox while it goes
        tick = take_until_empty(p, found, busy=lambda: _busy_elsewhere(context), on_round=lambda t: _tag_taken(context, t))
    else:
        tick = take_pending(p, found)
    if tick.errors and context.retry_number < MAX_RETRIES:
        raise RuntimeError(f"{len(tick.errors)} email(s) could not be taken from the inbox: {tick.errors[0]}")
    if tick.not_taken:
        from inbox_pipeline.services.intake import give_up_taking

        give_up_taking(p, tick.not_taken)
    return tick


def _busy_elsewhere(context: dg.OpExecutionContext) -> set[str]:
    """Pending objects that other runs have (as the inbox sensor counts them): a take run leaves them be."""
    from inbox_pipeline.defs.intake.sensors import RETAKE_AFTER_SECONDS, busy_objects, runs_in_flight

    runs = runs_in_flight(context.instance, retake_after_seconds=RETAKE_AFTER_SECONDS, now=time.time())
    return busy_objects([run for run in runs if run.run_id != context.run_id])


def _tag_taken(context: dg.OpExecutionContext, tick) -> None:
    """The take run's ``taken-ids`` tag, after each round: the emails it has registered and queued so far."""
    if tick.email_ids:
        context.instance.add_run_tags(context.run_id, {TAG_TAKEN_IDS: ",".join(map(str, tick.email_ids))})


def tag_run(context: dg.OpExecutionContext, tags: dict[str, str]) -> None:
    """Run tags describe the one email of a per-email run; a worker run's emails are told apart by
    their materializations instead (one run's tags cannot hold 100 Message-IDs)."""
    if not _in_worker(context):
        context.instance.add_run_tags(context.run_id, tags)


def tag_outcome(
    context: dg.OpExecutionContext, email_id: int, outcome: str, reason: str = "", user: str | None = None
) -> None:
    """Make an email's outcome visible in the run list: a per-email run gets the outcome (and, when
    nothing reached the Kindle, the reason) as tags; a worker run lists its emails with other outcomes
    in one tag (``duplicate: e3; unroutable: e4 e9``), written only when there is something to list."""
    if not _in_worker(context):
        tags = {TAG_OUTCOME: outcome}
        if reason and outcome not in DELIVERED_OUTCOMES:
            tags[TAG_REASON] = _tag(reason, 300)
        elif outcome not in ON_THE_WAY:
            run = context.instance.get_run_by_id(context.run_id)
            if run and run.tags.get(TAG_REASON):  # an earlier step's, or the re-executed run's: no longer true
                tags[TAG_REASON] = "-"
        if user:
            tags[TAG_USER] = user
        context.instance.add_run_tags(context.run_id, tags)
        return
    if outcome in DELIVERED_OUTCOMES:
        return
    # Emails, not counts: a re-execution inherits the tag and may decide the same email again.
    run = context.instance.get_run_by_id(context.run_id)
    emails: dict[str, set[str]] = {}
    for part in ((run.tags.get(TAG_OUTCOMES) or "") if run else "").split(";"):
        name, _, keys = part.partition(":")
        if name.strip():
            emails[name.strip()] = set(keys.split())
    emails.setdefault(outcome, set()).add(mapping_key(email_id))
    value = "; ".join(f"{name}: {' '.join(sorted(keys, key=_by_id))}" for name, keys in sorted(emails.items()))
    context.instance.add_run_tags(context.run_id, {TAG_OUTCOMES: value})


def _by_id(key: str) -> tuple[int, str]:
    return (int(key[1:]) if key[1:].isdigit() else 0, key)


class EmailHeld(dg.Failure):
    """The email waits for an outage of ours to clear (state ``waiting``); ops with nothing required
    downstream end quietly on it, so one outage neither fails the run nor tells the user."""


@contextmanager
def step(
    context: dg.OpExecutionContext,
    p,
    email_id: int,
    newsletter_id: int | None = None,
    *,
    give_up: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Permanent errors fail at once (recorded); our outages hold the email (``waiting``) on the last
    attempt (at once when retrying cannot help); others are retried, and recorded on the last attempt."""
    from inbox_pipeline.services.context import PermanentStepError
    from inbox_pipeline.services.holds import CAUSES, IMMEDIATE, hold_email, outage_cause
    from inbox_pipeline.services.process import fail_email

    if give_up is None:
        give_up = lambda reason: fail_email(p, email_id, reason, newsletter_id=newsletter_id)  # noqa: E731
    try:
        yield
    except PermanentStepError as exc:
        give_up(str(exc))
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except dg.Failure:
        raise
    except Exception as exc:
        retry_number = _retry_number(context)
        attempt = retry_number + 1
        last = retry_number >= MAX_RETRIES
        cause = outage_cause(exc)
        if cause is not None and (last or cause in IMMEDIATE):
            detail = f"{context.op.name}: {type(exc).__name__}: {exc}"
            if hold_email(p, email_id, cause, detail):
                message = f"email #{email_id} waits for {CAUSES[cause]} (resumed when it is back): {detail}"
                context.log.warning(message)
                raise EmailHeld(description=message, allow_retries=False) from exc
        if last:
            give_up(f"{context.op.name} failed after {attempt} attempts: {type(exc).__name__}: {exc}")
        else:
            context.log.warning(f"attempt {attempt} of {context.op.name} failed, will retry: {exc}")
        raise


def _note(context: dg.OpExecutionContext, message: str, *, routine: bool) -> None:
    """Log ``message``, except a routine one in a worker run: every log line is an event-log write,
    and the email's materializations and row already say it."""
    if not (routine and _in_worker(context)):
        context.log.info(message)


def _tag(value: str, limit: int = 200) -> str:
    return " ".join((value or "").split())[:limit]


def _about(email: Any) -> dict[str, Any]:
    """The metadata every materialization of an email's stages starts with (parsed email, newsletter, EPUB)."""
    return {"subject": email.subject, "sender": email.sender, "inbound_email_id": email.email_id}


# --- what each step does and reports (shared by the fine ops and the batch's coarse ones) ---


def _parse(context: dg.OpExecutionContext, p, email_id: int):
    """What parsing found, or None for input that is not an email (recorded ``unreadable``: the run
    ends green, since there is nothing to retry and nobody to alert)."""
    from inbox_pipeline.services.process import UnreadableEmail, parse_inbound

    with step(context, p, email_id):
        parsed = parse_inbound(p, email_id)
    if isinstance(parsed, UnreadableEmail):
        tag_run(context, {TAG_OUTCOME: "unreadable"})
        context.log.info(f"unreadable: {parsed.reason}")
        log_materialization(
            context, INBOX_EMAIL, f"unreadable: {parsed.reason}", inbound_email_id=parsed.email_id,
            state="unreadable", reason=parsed.reason, bytes=parsed.size, storage_key=parsed.storage_key,
        )
        return None
    tag_run(
        context,
        {
            TAG_MESSAGE_ID: _tag(parsed.message_id, 500),
            TAG_SUBJECT: _tag(parsed.subject),
            TAG_SENDER: _tag(parsed.sender_email or parsed.sender),
        },
    )
    log_materialization(
        context, INBOX_EMAIL, parsed.subject, **_about(parsed), message_id=parsed.message_id,
        recipients=", ".join(parsed.recipients)[:1000], kind=f"{parsed.kind}: {parsed.kind_reason}",
        bytes=parsed.size, storage_key=parsed.storage_key,
    )
    return parsed


def _route(context: dg.OpExecutionContext, p, parsed):
    from inbox_pipeline.services.route import route_parsed

    with step(context, p, parsed.email_id):
        routed = route_parsed(p, parsed)
    tag_outcome(context, parsed.email_id, routed.state, routed.reason, routed.user_email)
    _note(context, f"{routed.state}: {routed.reason}", routine=routed.state == "routed")
    return routed


def _forward(context: dg.OpExecutionContext, p, parsed, routed):
    from inbox_pipeline.services.route import forward_to_user

    with step(context, p, parsed.email_id):
        outcome = forward_to_user(p, parsed, routed)
    tag_outcome(context, parsed.email_id, "confirmation_forwarded", outcome.reason)
    context.log.info(outcome.reason)
    return outcome


def _notice(context: dg.OpExecutionContext, p, routed):
    """Amazon's notice: its own outcome tag, and on the delivery it names a ``kindle_delivery`` record
    followed by the rejection rate's check (yielded: the evaluation is an op's output event)."""
    from inbox_pipeline.services.kindle_notices import handle_kindle_notice

    with step(context, p, routed.email_id):
        outcome = handle_kindle_notice(p, routed.email_id)
    tag_run(context, {TAG_OUTCOME: f"kindle_notice:{outcome.action}"})
    context.log.info(f"Amazon notice: {outcome.action}: {outcome.reason}")
    if outcome.delivery_id is not None and outcome.action not in ("ignored", "operator_told"):
        log_materialization(
            context, KINDLE_DELIVERY, f"rejected by Amazon: {outcome.action.replace('_', ' ')}",
            inbound_email_id=routed.email_id, status="rejected", cause=outcome.cause, action=outcome.action,
            outcome=outcome.reason,  # e.g. "safe-mode resend: sent", "user notice: sent"
            delivery_id=outcome.delivery_id, user_id=outcome.user_id or 0,
        )
        yield dg.AssetCheckEvaluation(
            asset_key=KINDLE_DELIVERY, check_name=REJECTION_CHECK_NAME, blocking=False, **rejection_rate_evaluation(p)
        )
    return outcome


def _record(context: dg.OpExecutionContext, p, parsed, routed):
    """The newsletter to convert, or None (over quota: kept and reported)."""
    from inbox_pipeline.services.route import record_newsletter as record

    with step(context, p, parsed.email_id):
        ref, reason = record(p, parsed, routed)
    metadata = {**_about(parsed), "user": routed.user_email or ""}
    if ref is None:
        tag_outcome(context, parsed.email_id, "over_quota", reason)
        context.log.info(reason)
        log_materialization(context, NEWSLETTER, reason, **metadata, status="over_quota")
        return None
    log_materialization(
        context, NEWSLETTER, parsed.subject, **metadata, newsletter_id=ref.newsletter_id, status="recorded"
    )
    return ref


def _clean(context: dg.OpExecutionContext, p, newsletter, work=None):
    from inbox_pipeline.services.process import clean_newsletter

    with step(context, p, newsletter.email_id, newsletter.newsletter_id):
        cleaned = clean_newsletter(p, newsletter, work)
    log_materialization(
        context, CLEANED_HTML, cleaned.title, **_about(newsletter), platform=cleaned.platform,
        language=cleaned.language, words=cleaned.words, removed=cleaned.removed,
    )
    return cleaned


def _embed(context: dg.OpExecutionContext, p, cleaned, work=None):
    from inbox_pipeline.services.process import embed_images as embed

    ref = cleaned.newsletter
    with step(context, p, ref.email_id, ref.newsletter_id):
        images = embed(p, cleaned, work)
    if images.reasons:  # one line, not one event per image: each event is a database write
        shown = "; ".join(images.reasons[:5])
        more = f" (+{len(images.reasons) - 5} more)" if len(images.reasons) > 5 else ""
        context.log.info(f"{images.dropped} image(s) dropped: {shown}{more}")
    return images


def _build(context: dg.OpExecutionContext, p, images, work=None):
    from inbox_pipeline.services.process import build_newsletter_epub

    ref = images.cleaned.newsletter
    with step(context, p, ref.email_id, ref.newsletter_id):
        return build_newsletter_epub(p, images, work)


def _store(context: dg.OpExecutionContext, p, built, work=None):
    from inbox_pipeline.services.process import store_newsletter_epub

    ref = built.images.cleaned.newsletter
    with step(context, p, ref.email_id, ref.newsletter_id):
        epub = store_newsletter_epub(p, built, work)
    log_materialization(
        context, EPUB, epub.title, **_about(epub), title=epub.title, words=epub.words, images=epub.images,
        images_dropped=built.images.dropped, images_dropped_reasons="; ".join(built.images.reasons[:10]) or "none",
        bytes=epub.bytes, reading_minutes=epub.reading_minutes, file_name=epub.file_name, storage_key=epub.key,
    )
    return epub


def _check(context: dg.OpExecutionContext, p, epub, work=None) -> tuple[dg.AssetCheckEvaluation, bool]:
    from inbox_pipeline.services.process import validate_epub

    with step(context, p, epub.email_id, epub.newsletter_id):
        outcome = validate_epub(p, epub, work)
    evaluation = dg.AssetCheckEvaluation(
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
    return evaluation, outcome.passed


def _deliver(context: dg.OpExecutionContext, p, epub, sent: Callable[[], Any] | None = None):
    """Deliver ``epub`` and report it; ``sent``: the outcome of a delivery already under way (a worker
    run's sending thread), whose errors are handled here as the delivery's own."""
    from inbox_pipeline.services.deliver import DeliveryUnconfirmed, deliver_epub, give_up
    from inbox_pipeline.services.process import fail_email

    def record_failure(reason: str) -> None:
        give_up(p, epub, reason)

    with step(context, p, epub.email_id, epub.newsletter_id, give_up=record_failure):
        try:
            outcome = sent() if sent is not None else deliver_epub(p, epub)
        except DeliveryUnconfirmed as exc:  # it may have arrived: record it, do not tell the user it failed
            fail_email(p, epub.email_id, str(exc), newsletter_id=epub.newsletter_id)
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    tag_outcome(context, epub.email_id, outcome.status, outcome.reason)
    _note(context, outcome.reason, routine=outcome.status in ("sent", "link_sent"))  # + the materialization
    if outcome.status not in ("sent", "link_sent"):
        return outcome  # held for the digest, kept for lack of a Kindle, or sent by an earlier run
    log_materialization(
        context, KINDLE_DELIVERY, outcome.reason, **_about(epub), status=outcome.status,
        recipient=outcome.recipient, words=epub.words, images=epub.images, bytes=epub.bytes,
        delivery_id=outcome.delivery_id or 0, provider_message_id=outcome.provider_message_id or "",
        paced_seconds=round(outcome.paced_seconds, 3),  # held back by the shared send rate
    )
    return outcome


# --- the per-email job's ops: one step per stage ------------------------------------------


@dg.op(
    description="Read the raw email from the inbox archive, parse it (MIME or inbound-parse JSON) and classify it; "
    "tags the run with its Message-ID, subject and sender. Input that is not an email is recorded as unreadable "
    "and the run ends here.",
    out=dg.Out(
        is_required=False,
        description="What parsing found (ids, headers, kind); the email itself stays in the archive.",
    ),
)
def parse_email(context: dg.OpExecutionContext, config: EmailConfig, pipeline: PipelineResource):
    p = pipeline.pipeline()
    email_id = config.inbound_email_id
    if config.inbox is not None:
        tick = take_from_inbox(context, p, [config.inbox])
        if tick.errors:
            raise dg.Failure(description=f"could not take the email from the inbox: {tick.errors[0]}")
        if not tick.registered:
            context.log.info(f"{config.inbox.key!r} is no longer in the inbox and was never registered: nothing to do")
            return
        email_id = tick.registered[0].email_id
        tag_run(context, {TAG_EMAIL_ID: str(email_id), TAG_INBOX_KEY: tick.registered[0].storage_key})
    parsed = _parse(context, p, email_id)
    if parsed is not None:
        yield dg.Output(parsed)


@dg.op(
    description="Route to the user by the recipient address: unknown address, duplicate (same Message-ID or "
    "content), quarantined (SES verdicts) stop here with their reason; confirmations go to the user's own "
    "email; newsletters go on.",
    out={
        "newsletter": dg.Out(is_required=False, description="Routed as a newsletter for the user's Kindle."),
        "forward": dg.Out(is_required=False, description="A confirmation or notice for the user's own email."),
        "notice": dg.Out(is_required=False, description="Mail to our sender address: Amazon's notice about a book."),
    },
)
def route_email(context: dg.OpExecutionContext, parsed, pipeline: PipelineResource):
    routed = _route(context, pipeline.pipeline(), parsed)
    if routed.path in ("newsletter", "forward", "notice"):
        yield dg.Output(routed, routed.path, metadata={"state": routed.state, "reason": routed.reason})


@dg.op(
    description="Read Amazon's notice about a delivered book: believed only when the receiving system "
    "authenticated it as Amazon's, matched to one delivery by its token, then acted on once per cause "
    "(safe-mode resend, the user told, or the operator).",
)
def read_kindle_notice(context: dg.OpExecutionContext, routed, pipeline: PipelineResource):
    outcome = yield from _notice(context, pipeline.pipeline(), routed)
    yield dg.Output(outcome)


@dg.op(
    description="Forward a subscription confirmation (or other notice) to the user's own email with the "
    "confirm link first; never to the Kindle. Sent once (the notification row is claimed first).",
)
def forward_confirmation(context: dg.OpExecutionContext, parsed, routed, pipeline: PipelineResource):
    return _forward(context, pipeline.pipeline(), parsed, routed)


@dg.op(
    description="Record the newsletter row (user, sender, subject, Message-ID, raw HTML) and take one unit of the "
    "month's quota; over quota it is kept, not delivered, and the user told once.",
    out=dg.Out(is_required=False, description="The newsletter, when it is to be converted and delivered."),
)
def record_newsletter(context: dg.OpExecutionContext, parsed, routed, pipeline: PipelineResource):
    ref = _record(context, pipeline.pipeline(), parsed, routed)
    if ref is not None:
        yield dg.Output(ref)


@dg.op(
    description="Strip email clutter (tracking pixels, view-in-browser, share and subscribe blocks, footers, "
    "layout tables) with the platform's rules; keep the article.",
)
def clean_html(context: dg.OpExecutionContext, newsletter, pipeline: PipelineResource):
    return _clean(context, pipeline.pipeline(), newsletter)


@dg.op(
    description="Embed cid: images, download remote ones (bounded, SSRF-safe, cached), convert and downscale "
    "for e-ink; a failed image drops that image only.",
)
def embed_images(context: dg.OpExecutionContext, cleaned, pipeline: PipelineResource):
    return _embed(context, pipeline.pipeline(), cleaned)


@dg.op(description="Build the EPUB 3 (nav, NCX, cover, e-ink CSS, stable identifier from the Message-ID).")
def build_epub(context: dg.OpExecutionContext, images, pipeline: PipelineResource):
    return _build(context, pipeline.pipeline(), images)


@dg.op(description="Keep the EPUB in storage and record its size, words, images and reading time.")
def store_epub(context: dg.OpExecutionContext, built, pipeline: PipelineResource):
    return _store(context, pipeline.pipeline(), built)


@dg.op(
    description="Blocking asset check on the EPUB: the Kindle preflight, and EPUBCheck when enabled. "
    "An EPUB that fails is recorded as failed and never delivered.",
    out=dg.Out(is_required=False, description="The EPUB, only when it passed."),
)
def check_epub(context: dg.OpExecutionContext, epub, pipeline: PipelineResource):
    try:
        evaluation, passed = _check(context, pipeline.pipeline(), epub)
    except EmailHeld:
        return  # waits for EPUBCheck: not checked, not delivered, not failed
    yield evaluation
    if passed:
        yield dg.Output(epub)


@dg.op(
    description="Send the EPUB to the user's Kindle from the one sender address, exactly once through the delivery "
    "ledger; too large: a download link to the user's own email; digest users: held; no Kindle: kept, user told.",
)
def deliver_to_kindle(context: dg.OpExecutionContext, epub, pipeline: PipelineResource):
    try:
        return _deliver(context, pipeline.pipeline(), epub)
    except EmailHeld:
        tag_run(context, {TAG_OUTCOME: "waiting"})
        return None


# --- the take job and the worker runs --------------------------------------------------
# A Dagster step costs about six event-log writes of its own (start, input, loaded input, output,
# handled output, success): in a burst that, not the conversion, limited throughput and grew the
# instance. So a worker run has one step, and each email in it costs only its materializations.
# Every stage's service call is idempotent (decisions are stored and found again; the delivery
# ledger sends once), so an email retried by the queue redoes its stages quickly and decides
# nothing twice.


@dg.op(
    name=TAKE_OP,
    description="Take a burst's emails from the inbox: those named in the run config, then whatever else arrives, "
    "listing the inbox again after each round until it finds nothing (at most 5 minutes). What it lists is read "
    "first, then 50 a round are registered once, moved to the archive and queued for the worker runs "
    "(process_inbox_batch), the envelope recipients taken fewest times first; the workers claim them one at a time. "
    "A recipient with a full share unclaimed in the queue gets no more until the workers catch up (the rest of a user's "
    "hundreds waits in the inbox, and the CPU goes to converting and sending). Fails (the operator is alerted) "
    "when some could not be taken; they stay in the inbox, and the sensor requests them again a day later.",
    out={},
)
def take_inbox_emails(context: dg.OpExecutionContext, config: TakeConfig, pipeline: PipelineResource):
    p = pipeline.pipeline()
    tick = take_from_inbox(context, p, config.emails, queue=True)
    context.log.info(
        f"{len(tick.email_ids)} email(s) taken from the inbox ({len(config.emails)} named by the sensor, the rest listed "
        f"as they arrived); {tick.queued} queued for the worker runs"
        + (
            f"; {tick.held_back} left in the inbox for the next take run, their recipients' share of the "
            "queue still unclaimed"
            if tick.held_back else ""
        )
    )
    if tick.errors:
        # Left alone by the sensor and later take runs for a day, as a failed run's named objects are.
        context.instance.add_run_tags(context.run_id, {TAG_NOT_TAKEN: json.dumps([k for k, _ in tick.not_taken])})
        for error in tick.errors:
            context.log.error(f"could not take this email from the inbox (it stays there): {error}")
        raise dg.Failure(
            description=f"{len(tick.errors)} email(s) could not be taken from the inbox: "
            f"{'; '.join(tick.errors)[:1000]}",
            allow_retries=False,
        )


def build_work_queue_op(retry_delay_seconds: float, idle_seconds: float) -> dg.OpDefinition:
    """The worker run's op; an email that fails for a reason worth retrying goes back in the queue for
    ``retry_delay_seconds``, doubled each attempt (as the per-email job's RetryPolicy); the run ends once
    nothing has been due for ``idle_seconds``."""

    @dg.op(
        name=BATCH_OP,
        description="A worker: claims queued emails one at a time (the recipient served least first, so "
        "one user's hundreds do not go before another's one) and takes each start to finish: parse and classify, "
        "route (unknown address, duplicate, quarantined, confirmation -> forwarded to the user's own email, over "
        "quota), record the newsletter, clean the HTML, embed images, build, store and check the EPUB (blocking), "
        "then send it to the user's Kindle exactly once through the delivery ledger, under the shared send rate, "
        "while it converts the next. Reports each email's inbox_email, newsletter, cleaned_html, epub and "
        "kindle_delivery materializations. A failure worth retrying puts the email back in the queue with back-off; "
        "one failing does not stop the others (the run then ends failed). Ends when nothing has been due for a few "
        "seconds.",
        out={},
    )
    def work_queue(context: dg.OpExecutionContext, config: BatchConfig, pipeline: PipelineResource):
        yield from _work_queue(context, pipeline.pipeline(), config.registered, retry_delay_seconds, idle_seconds)

    return work_queue


SEND_AHEAD = 2  # converted emails a worker run keeps waiting for their send slots


def _work_queue(context: dg.OpExecutionContext, p, named: list[int], retry_delay_seconds: float, idle_seconds: float):
    from inbox_pipeline.services.deliver import deliver_epub
    from inbox_pipeline.services.work import Worker, warm_up

    worker = Worker(p, context.run.root_run_id or context.run_id, idle_seconds=idle_seconds, warm=lambda: warm_up(p))
    failed: list[str] = []
    # One sending thread: each converted email waits there for its slot under the shared send rate
    # while the next are converted. Up to SEND_AHEAD wait, so the rate stays full when a conversion
    # runs long; each delivery is reported (in order) once it is done.
    sending: deque = deque()  # (claim, epub, future)
    tagged, tagged_at = 0, 0.0

    def tag_claimed(at_most_every: float) -> None:  # the run's email-ids tag: a write, so at most once a second
        nonlocal tagged, tagged_at
        if len(worker.claimed) > tagged and time.monotonic() - tagged_at >= at_most_every:
            context.instance.add_run_tags(context.run_id, {TAG_EMAIL_IDS: ",".join(map(str, dict.fromkeys(worker.claimed)))})
            tagged, tagged_at = len(worker.claimed), time.monotonic()

    def report(keep: int):  # the deliveries done, and more (waiting for them) while over ``keep``
        while sending and (len(sending) > keep or sending[0][2].done()):
            claim, epub, future = sending.popleft()
            yield from _attempt(context, worker, claim, failed, retry_delay_seconds, _sent(context, p, epub, future))

    with ThreadPoolExecutor(1, thread_name_prefix="send") as sender:
        for claim in worker.claims(named):
            tag_claimed(1.0)
            prepared = yield from _attempt(context, worker, claim, failed, retry_delay_seconds, _prepare(context, p, claim))
            if prepared is not None:  # the EPUB, and the work area holding it: sent from memory
                epub, work = prepared
                sending.append((claim, epub, sender.submit(deliver_epub, p, epub, work)))
            yield from report(SEND_AHEAD)
        yield from report(0)
    tag_claimed(0.0)
    context.log.info(f"worked on {len(worker.claimed)} email(s) from the queue; {len(failed)} failed")
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} email(s) failed: {'; '.join(failed)[:1000]}",
            allow_retries=False,
        )


def _attempt(context: dg.OpExecutionContext, worker, claim, failed: list[str], delay: float, stage):
    """Run one ``stage`` (a generator) of the claimed email; returns its value, or None when the email is
    done with (stopped, held, failed) or back in the queue for a retry. What the worker does next with
    it: done (out of the queue) unless the stage handed an EPUB on, back in the queue on a failure
    worth retrying, failed after the last attempt."""
    from inbox_pipeline.services.work import backoff_seconds

    token = _RETRY_NUMBER.set(claim.attempt - 1)
    try:
        value = yield from stage
    except EmailHeld:
        value = None  # state waiting: the watchdog resumes it when the cause clears
    except dg.Failure as exc:  # recorded by ``step``
        failed.append(f"{mapping_key(claim.email_id)}: {exc.description}")
        value = None
    except Exception as exc:  # noqa: BLE001 - one email's failure never stops the others
        if claim.attempt > MAX_RETRIES:  # ``step`` recorded it on this last attempt
            failed.append(f"{mapping_key(claim.email_id)}: {type(exc).__name__}: {exc}")
        else:
            worker.retry_later(claim.email_id, backoff_seconds(claim.attempt, delay))
            return None
        value = None
    finally:
        _RETRY_NUMBER.reset(token)
    if value is None:
        worker.done(claim.email_id)
    return value


def _prepare(context: dg.OpExecutionContext, p, claim):
    """One email up to its checked EPUB: the EPUB to deliver and the in-memory work area holding its
    bytes, or None when it goes no further."""
    email_id = claim.email_id
    parsed = _parse(context, p, email_id)
    if parsed is None:
        return None
    routed = _route(context, p, parsed)
    if routed.path == "forward":
        _forward(context, p, parsed, routed)
        return None
    if routed.path == "notice":
        yield from _notice(context, p, routed)
        return None
    if routed.path != "newsletter":
        return None
    newsletter = _record(context, p, parsed, routed)
    if newsletter is None:
        return None
    from inbox_pipeline.services.process import WorkArea

    work = WorkArea.in_memory()  # the stages hand over in memory: a retry redoes them all
    cleaned = _clean(context, p, newsletter, work)
    epub = _store(context, p, _build(context, p, _embed(context, p, cleaned, work), work), work)
    evaluation, passed = _check(context, p, epub, work)
    yield evaluation
    return (epub, work) if passed else None


def _sent(context: dg.OpExecutionContext, p, epub, future):
    """Report the delivery the sending thread made (its errors raised here, as the delivery's own)."""
    _deliver(context, p, epub, future.result)
    return None
    yield  # a generator, as every stage _attempt runs
