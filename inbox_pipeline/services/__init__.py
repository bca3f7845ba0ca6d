"""The pipeline steps the Dagster ops call: intake, route, process, deliver.

Each step is a plain function over a ``Pipeline`` (the seams and the database)
and small values, so it is tested without Dagster and the ops stay thin. Steps
are safe to run again: every one first looks at what an earlier attempt left
(the inbound email's state, the newsletter row, the delivery ledger).

Errors: ``PermanentStepError`` means "retrying cannot help" (bad input, a
refused recipient); anything else is treated as transient and retried by the
op's RetryPolicy.
"""

from inbox_pipeline.services.context import Pipeline, PipelineOptions, PermanentStepError

__all__ = ["Pipeline", "PipelineOptions", "PermanentStepError"]
