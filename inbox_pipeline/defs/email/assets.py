"""Asset specs for lineage and the blocking EPUB check.

The per-email job is op-based (one run per email, thousands a day): each op
reports an ``AssetMaterialization`` for these keys with the email's
metadata, so the asset graph shows inbox email -> newsletter -> cleaned HTML
-> EPUB -> Kindle delivery, and each asset's history lists the emails.
"""

import dagster as dg

from inbox_pipeline.defs.resources import PipelineResource

GROUP = "newsletters"

INBOX_EMAIL = dg.AssetKey("inbox_email")
NEWSLETTER = dg.AssetKey("newsletter")
CLEANED_HTML = dg.AssetKey("cleaned_html")
EPUB = dg.AssetKey("epub")
KINDLE_DELIVERY = dg.AssetKey("kindle_delivery")
EPUB_CHECK_NAME = "kindle_ready"

ASSET_SPECS = [
    dg.AssetSpec(
        INBOX_EMAIL,
        group_name=GROUP,
        kinds={"email"},
        description=(
            "A raw inbound email: an object in the inbox (S3 prefix written by SES, or a folder), "
            "registered once by the inbox sensor and archived. One materialization per email."
        ),
    ),
    dg.AssetSpec(
        NEWSLETTER,
        deps=[INBOX_EMAIL],
        group_name=GROUP,
        kinds={"sql"},
        description="A routed newsletter: its database row (user, sender, subject, Message-ID, raw HTML).",
    ),
    dg.AssetSpec(
        CLEANED_HTML,
        deps=[NEWSLETTER],
        group_name=GROUP,
        kinds={"html"},
        description="The newsletter's article with email clutter removed (platform rules), as XHTML.",
    ),
    dg.AssetSpec(
        EPUB,
        deps=[CLEANED_HTML],
        group_name=GROUP,
        kinds={"epub"},
        description="The Kindle EPUB (images embedded, cover, nav), kept in storage.",
    ),
    dg.AssetSpec(
        KINDLE_DELIVERY,
        deps=[EPUB],
        group_name=GROUP,
        kinds={"email"},
        description=(
            "The EPUB sent to the user's Kindle address (or a download link to their own email when too "
            "large), exactly once through the delivery ledger."
        ),
    ),
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
