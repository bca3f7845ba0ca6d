"""How long each job's run may take before run monitoring ends it.

The ``dagster/max_runtime`` run tag: the daemon's run monitoring (enabled in
every ``deploy/*/dagster.yaml``) terminates a run past it and marks it
failed, and the run-failure sensor then records its emails as failed and
alerts the operator. A stuck step never holds a run slot for good.
"""

from __future__ import annotations

MAX_RUNTIME_TAG = "dagster/max_runtime"

# One email at its slowest legitimate pace: 4 delivery attempts with 60 s
# exponential back-off (7 min of waiting), 60 remote images at 10 s each
# 8 at a time (~1.5 min), 60 SVGs at their 15 s limit 2 at a time (7.5 min).
EMAIL_RUN_SECONDS = 30 * 60
# A worker claims for at most 15 min (services/work.py), then finishes the email in hand.
BATCH_RUN_SECONDS = 60 * 60
# Up to 100 emails (BATCH_SIZE) registered and archived, 8 at a time: normally seconds.
TAKE_RUN_SECONDS = 15 * 60
# Every due digest, each retried on its own inside the op.
DIGEST_RUN_SECONDS = 60 * 60
# Retention over storage and database, 200 rows per transaction.
CLEANUP_RUN_SECONDS = 2 * 60 * 60
# One count over the delivery ledger's last week.
CHECK_RUN_SECONDS = 10 * 60


def max_runtime(seconds: int) -> dict[str, str]:
    """The run tag that limits a job's runs to ``seconds``."""
    return {MAX_RUNTIME_TAG: str(seconds)}
