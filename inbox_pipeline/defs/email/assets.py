"""Asset specs for lineage and the blocking EPUB check.

The per-email job is op-based (one run per email, thousands a day): each op
reports an ``AssetMaterialization`` for these keys with the email's
metadata, so the asset graph shows inbox email -> newsletter -> cleaned HTML
-> EPUB -> Kindle delivery, and each asset's history lists the emails.
"""

import dagster as dg

from inbox_pipeline.defs.resources import PipelineResource
from inbox_pipeline.defs.run_limits import CHECK_RUN_SECONDS, max_runtime

GROUP = "newsletters"

INBOX_EMAIL = dg.AssetKey("inbox_email")
NEWSLETTER = dg.AssetKey("newsletter")
CLEANED_HTML = dg.AssetKey("cleaned_html")
EPUB = dg.AssetKey("epub")
KINDLE_DELIVERY = dg.AssetKey("kindle_delivery")
EPUB_CHECK_NAME = "kindle_ready"
REJECTION_CHECK_NAME = "amazon_rejection_rate"

# Each stage's asset, its kind and what it is, in pipeline order: each depends on the one before.
_STAGES = (
    (
        INBOX_EMAIL,
        "email",
        "A raw inbound email: an object in the inbox (S3 prefix written by SES, or a folder), "
        "registered once by the inbox sensor and archived. One materialization per email.",
    ),
    (NEWSLETTER, "sql", "A routed newsletter: its database row (user, sender, subject, Message-ID, raw HTML)."),
    (CLEANED_HTML, "html", "The newsletter's article with email clutter removed (platform rules), as XHTML."),
    (EPUB, "epub", "The Kindle EPUB (images embedded, cover, nav), kept in storage."),
    (
        KINDLE_DELIVERY,
        "email",
        "The EPUB sent to the user's Kindle address (or a download link to their own email when too "
        "large), exactly once through the delivery ledger.",
    ),
)
ASSET_SPECS = [
    dg.AssetSpec(key, deps=[_STAGES[n - 1][0]] if n else None, group_name=GROUP, kinds={kind}, description=text)
    for n, (key, kind, text) in enumerate(_STAGES)
]

EPUB_CHECK_DESCRIPTION = (
    "Blocking: the EPUB passes the built-in Kindle preflight (and EPUBCheck when INBOX_PIPELINE_EPUBCHECK "
    "is on). The per-email job evaluates it after storing each EPUB and does not deliver one that fails. "
    "Run from the UI, it checks the latest EPUB."
)


@dg.asset_check(asset=EPUB, name=EPUB_CHECK_NAME, blocking=True, description=EPUB_CHECK_DESCRIPTION)
def epub_kindle_ready(context: dg.AssetCheckExecutionContext, pipeline: PipelineResource) -> dg.AssetCheckResult:
    from inbox_pipeline.services.process import check_epub_bytes

    record = context.instance.get_latest_materialization_event(EPUB)
    materialization = record.asset_materialization if record else None
    if materialization is None or "storage_key" not in materialization.metadata:
        return dg.AssetCheckResult(passed=True, description="no EPUB materialized yet", metadata={"checked": False})
    key = materialization.metadata["storage_key"].value
    p = pipeline.pipeline()
    outcome = check_epub_bytes(p.storage.get(str(key)), epubcheck=p.options.epubcheck)
    return dg.AssetCheckResult(
        passed=outcome.passed,
        metadata={"storage_key": str(key), "checks": ", ".join(outcome.checks), "problems": len(outcome.problems)},
        description="; ".join(outcome.problems[:5]) or "valid",
    )


REJECTION_CHECK_DESCRIPTION = (
    "Warns (never blocks) when Amazon refuses too many books for one cause: per cause (conversion errors "
    "such as E999, sender not approved), the books refused by a notice out of those that reached Amazon in "
    "the last 7 days; a warning above 5% with at least 3 refused. Evaluated each time a notice marks a "
    "delivery rejected and daily by the kindle_rejection_rate schedule (so it clears as the week moves on)."
)


def rejection_rate_evaluation(p) -> dict:
    """The check's verdict (the fields of an ``AssetCheckResult`` / ``AssetCheckEvaluation``)."""
    from inbox_pipeline.core.kindle_notice import REJECTION_MIN_COUNT, REJECTION_RATE_WARN
    from inbox_pipeline.services.kindle_notices import REJECTION_WINDOW, rejection_rates

    reached, rates = rejection_rates(p)
    days = REJECTION_WINDOW.days
    metadata: dict = {"window_days": days, "books_reached_amazon": reached}
    for r in rates:
        metadata[f"{r.cause}_rejected"] = r.rejected
        metadata[f"{r.cause}_rate"] = dg.MetadataValue.float(round(r.rate, 4))
    parts = [f"{r.cause.replace('_', ' ')} {r.rejected} ({r.rate:.1%})" for r in rates]
    rising = [r for r in rates if r.rising]
    verdict = (
        "rising: " + ", ".join(r.cause.replace("_", " ") for r in rising)
        if rising else "below the warning level"
    )
    return dict(
        passed=not rising,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"Amazon refused, of {reached} books in the last {days} days: {'; '.join(parts)}. {verdict} "
            f"(warns above {REJECTION_RATE_WARN:.0%} with at least {REJECTION_MIN_COUNT} refused)"
        ),
        metadata=metadata,
    )


@dg.asset_check(
    asset=KINDLE_DELIVERY, name=REJECTION_CHECK_NAME, blocking=False, description=REJECTION_CHECK_DESCRIPTION
)
def kindle_rejection_rate(pipeline: PipelineResource) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(**rejection_rate_evaluation(pipeline.pipeline()))


def build_rejection_rate_schedule() -> dg.ScheduleDefinition:
    """Daily: the rate's window moves on even when no notice arrives."""
    job = dg.define_asset_job(
        "kindle_rejection_rate",
        selection=dg.AssetSelection.checks(kindle_rejection_rate),
        description="Evaluates the amazon_rejection_rate check on kindle_delivery (Amazon's refusals per cause, last 7 days).",
        tags=max_runtime(CHECK_RUN_SECONDS),
    )
    return dg.ScheduleDefinition(
        name="kindle_rejection_rate_schedule",
        job=job,
        cron_schedule="0 6 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily at 06:00 UTC: Amazon's refusals per cause over the last 7 days (warns when one rises).",
    )
