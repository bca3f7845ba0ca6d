"""The digest job: one op that compiles every due digest and delivers it exactly once.

The op holds no logic: ``services.digests.compile_and_deliver_due`` decides
what is due (the user's hour in the user's zone, DST-correct), builds the
volumes and sends them through the delivery ledger; the op reports what it did.
"""

# No "from __future__ import annotations": Dagster reads the config and resource annotations at definition time.
from datetime import datetime, timedelta, timezone

import dagster as dg

from inbox_pipeline.defs.common import (
    DIGEST_JOB,
    DIGEST_OP,
    DigestRunConfig,
    in_process_job,
    log_materialization,
    network_retry,
)
from inbox_pipeline.defs.resources import PipelineResource
from inbox_pipeline.defs.run_limits import DIGEST_RUN_SECONDS

DIGEST = dg.AssetKey("digest")
# A little slack for clocks: an "as of" a few seconds ahead of this machine is still accepted.
CLOCK_SKEW = timedelta(minutes=1)

DIGEST_SPEC = dg.AssetSpec(
    DIGEST,
    deps=[dg.AssetKey("epub")],
    group_name="newsletters",
    kinds={"epub", "email"},
    description=(
        "A user's daily or weekly digest: the newsletters held since the last one, oldest first, one chapter "
        "each, grouped by newsletter in the table of contents, with a dated cover; split into volumes over "
        "the email size budget and sent to the Kindle exactly once. One materialization per delivered digest."
    ),
)


class DigestsIncomplete(Exception):
    """Some digests hit a transient error; the op's retry (or the next hour) finishes them."""


def run_time(as_of: str) -> datetime:
    now = datetime.now(timezone.utc)
    if not as_of.strip():
        return now
    try:
        when = datetime.fromisoformat(as_of.strip())
    except ValueError:
        raise dg.Failure(description=f"as_of {as_of!r} is not an ISO 8601 time", allow_retries=False) from None
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    if when > now + CLOCK_SKEW:
        raise dg.Failure(description=f"as_of {when:%Y-%m-%d %H:%M} UTC is in the future", allow_retries=False)
    return when


@dg.op(
    name=DIGEST_OP,
    description=(
        "Find the users whose daily or weekly digest is due (their hour, their IANA zone, DST-correct; a missed "
        "tick is caught up, also across the period's end), take their held newsletters oldest first, build the "
        "EPUB (volumes when over the size budget), check it and send each volume once through the delivery "
        "ledger. Nothing new: nothing sent. Unfinished digests of earlier runs are finished here."
    ),
    out=dg.Out(dg.Nothing),
)
def compile_and_deliver_digests(
    context: dg.OpExecutionContext, config: DigestRunConfig, pipeline: PipelineResource
) -> None:
    from inbox_pipeline.services.digests import compile_and_deliver_due

    now = run_time(config.as_of)
    run = compile_and_deliver_due(pipeline.pipeline(), now)
    counts: dict[str, int] = {}
    for outcome in run.outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        line = f"{outcome.user_email} {outcome.period_key}: {outcome.status}: {outcome.reason}"
        if outcome.status in ("failed", "unconfirmed", "retry"):
            context.log.warning(line)
        else:
            context.log.info(line)
        if outcome.status == "delivered":
            log_materialization(
                context, DIGEST, outcome.reason, user=outcome.user_email, period=outcome.period_key,
                digest_id=outcome.digest_id or 0, newsletters=outcome.newsletters, volumes=len(outcome.volumes),
                bytes=sum(v.bytes for v in outcome.volumes),
                recipients=", ".join(sorted({v.recipient for v in outcome.volumes})),
            )
    context.add_output_metadata(
        {"as_of": now.isoformat(), "emails_sent": run.sent, **{f"digests_{k}": v for k, v in sorted(counts.items())}}
    )
    if run.retry:
        raise DigestsIncomplete(
            f"{len(run.retry)} digest(s) hit a transient error: "
            + "; ".join(f"{o.user_email} {o.period_key}: {o.reason}" for o in run.retry[:5])
        )


def build_digest_job(retry_delay_seconds: float = 60) -> dg.JobDefinition:
    @in_process_job(
        DIGEST_JOB,
        (
            "Compile and deliver every digest that is due: launched hourly by the digest schedule (only when "
            "something is due), or by hand with an optional as_of time. Safe to run again: each period makes one "
            "digest and each volume is sent once."
        ),
        DIGEST_RUN_SECONDS,
    )
    def compile_digests() -> None:
        compile_and_deliver_digests.with_retry_policy(network_retry(retry_delay_seconds))()

    return compile_digests
