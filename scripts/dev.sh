#!/usr/bin/env bash
# Run inbox-pipeline locally: SQLite, local folders, a demo user, sample
# newsletters in the inbox, and the Dagster UI on http://localhost:3000.
#
#   scripts/dev.sh               set up, then `dagster dev -p 3000`
#   scripts/dev.sh --setup-only  set up and stop (what the test drives)
#   PORT=3100 scripts/dev.sh     another port
#
# State lives in $INBOX_PIPELINE_DATA_DIR (default ./.inbox_pipeline) and
# $DAGSTER_HOME (default ./.dagster_home); delete both to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

export INBOX_PIPELINE_DATA_DIR="$(realpath -m "${INBOX_PIPELINE_DATA_DIR:-.inbox_pipeline}")"
export DAGSTER_HOME="$(realpath -m "${DAGSTER_HOME:-.dagster_home}")"
# A person is watching: look at the inbox every few seconds, retry quickly.
export INBOX_PIPELINE_SENSOR_INTERVAL_SECONDS="${INBOX_PIPELINE_SENSOR_INTERVAL_SECONDS:-5}"
export INBOX_PIPELINE_RETRY_DELAY_SECONDS="${INBOX_PIPELINE_RETRY_DELAY_SECONDS:-10}"
# `python -m inbox_pipeline.demo --amazon-says e999` plays Amazon for the newest book in the outbox;
# its notice carries the verdict of the demo's stand-in receiver, believed only because it is named
# here (a folder inbox believes no receiver otherwise: docs/DEPLOY.md).
export INBOX_PIPELINE_TRUSTED_AUTHSERV_IDS="${INBOX_PIPELINE_TRUSTED_AUTHSERV_IDS:-demo.localhost}"
mkdir -p "$INBOX_PIPELINE_DATA_DIR" "$DAGSTER_HOME"
# The instance file: the top-level dagster.yaml (an existing one is yours, and kept).
if [ ! -f "$DAGSTER_HOME/dagster.yaml" ]; then
  cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
elif ! cmp -s dagster.yaml "$DAGSTER_HOME/dagster.yaml"; then
  echo "note: $DAGSTER_HOME/dagster.yaml differs from ./dagster.yaml (kept; delete it to take the new one)"
fi

# Migrate the database, create the demo user, drop the samples (first time only).
.venv/bin/python -m inbox_pipeline.demo

echo "inbox:  ${INBOX_PIPELINE_INBOX:-$INBOX_PIPELINE_DATA_DIR/inbox}   (drop .eml files here)"
echo "outbox: $INBOX_PIPELINE_DATA_DIR/outbox   (the EPUB emails appear here)"
echo "amazon: .venv/bin/python -m inbox_pipeline.demo --amazon-says e999   (Amazon's notice for the newest book)"
if [ "${1:-}" = "--setup-only" ]; then
  exit 0
fi
# No arguments: `dagster dev` takes the code location from pyproject.toml.
exec .venv/bin/dagster dev -h "${HOST:-127.0.0.1}" -p "${PORT:-3000}"
