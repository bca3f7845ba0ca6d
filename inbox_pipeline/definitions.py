"""The Dagster code location: only assembles each domain's definitions and the resources.

Importing this module does nothing: ``defs`` is a ``@dg.definitions`` function,
which Dagster calls when it loads the code location. It reads ``Settings`` once
(environment variables, README "Configuration") and hands them to each domain's
builder (``defs/<domain>/__init__.py``) and to ``build_resources``. Nothing
heavy is imported here.
"""

from __future__ import annotations

import dagster as dg

from inbox_pipeline.config import Settings, load_dotenv_once
from inbox_pipeline.defs.alerts import build_alert_definitions
from inbox_pipeline.defs.digests import build_digest_definitions
from inbox_pipeline.defs.email import build_email_definitions
from inbox_pipeline.defs.maintenance import build_maintenance_definitions
from inbox_pipeline.defs.resources import build_resources


def settings_from_env() -> Settings:
    """The deployment's settings: ``.env`` in the working directory, then the environment."""
    load_dotenv_once()
    return Settings.from_env()


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Every job, sensor, schedule, asset spec, check and resource for ``settings`` (default: the environment's)."""
    settings = settings or settings_from_env()
    email = build_email_definitions(settings)
    digests = build_digest_definitions(settings)
    return dg.Definitions.merge(
        email,
        digests,
        build_alert_definitions(settings, watched=[*email.jobs, *digests.jobs]),
        build_maintenance_definitions(settings),
        dg.Definitions(resources=build_resources(settings)),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
