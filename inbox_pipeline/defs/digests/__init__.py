"""Digests in Dagster: an hourly schedule and the job that compiles and delivers due digests.

``build_digest_definitions(settings)`` returns the job, the schedule and the
``digest`` asset spec; it names no resources of its own and uses the
``pipeline`` resource of ``defs.resources.build_resources``, so it is merged
with the main definitions (``dg.Definitions.merge``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from inbox_pipeline.defs.digests.jobs import DIGEST, DIGEST_SPEC, build_digest_job
from inbox_pipeline.defs.digests.schedules import SCHEDULE_NAME, build_digest_schedule

if TYPE_CHECKING:
    from inbox_pipeline.config import Settings

__all__ = ["DIGEST", "SCHEDULE_NAME", "build_digest_definitions"]


def build_digest_definitions(settings: "Settings") -> dg.Definitions:
    job = build_digest_job(settings.retry_delay_seconds)
    return dg.Definitions(assets=[DIGEST_SPEC], jobs=[job], schedules=[build_digest_schedule(job)])
