"""``inbox-pipeline explain EMAIL-ID|MESSAGE-ID``: one email's whole story.

State and reason, the user, the newsletter and its EPUB, digest, delivery
ledger rows, notices sent to the user, and, when ``DAGSTER_HOME`` names the
Dagster instance, the runs that worked on it (found by their tags and run
config): the take run that queued it, and the worker run's materializations of
this email.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta
from typing import Any

from inbox_pipeline.cli.admin import _db_errors, _session
from inbox_pipeline.cli.errors import CliError
from inbox_pipeline.db.story import email_story, find_emails

# A take or worker run is created within seconds of its emails' registration (a worker may claim
# later, after back-offs); look a little wider.
BATCH_WINDOW = timedelta(hours=1)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help="one email's whole story: state, reason, runs, deliveries, notices"
    )
    p.add_argument("ref", metavar="EMAIL-ID|MESSAGE-ID", help="the inbound email's id (#42 or 42) or its Message-ID")
    p.set_defaults(func=cmd_explain)


@_db_errors
def cmd_explain(args: argparse.Namespace) -> int:
    with _session() as session:
        emails = find_emails(session, args.ref)
        if not emails:
            raise CliError(f"no inbound email has the id or Message-ID {args.ref!r}")
        stories = {e.id: _story_lines(email_story(session, e)) for e in emails}
        created = {e.id: e.created_at for e in emails}
    runs = _runs_lines(created)
    print("\n\n".join("\n".join(lines + runs[email_id]) for email_id, lines in stories.items()))
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _story_lines(story: Any) -> list[str]:
    e = story.email
    lines = [
        f"inbound email #{e.id}: {e.subject or '(no subject)'}",
        f"  state:       {e.state} (since {_when(e.state_changed_at)})",
        f"  reason:      {e.reason or '-'}",
        f"  from:        {e.sender or '-'}",
        f"  to:          {', '.join(e.recipients or []) or '-'}",
        f"  message-id:  {e.message_id or '-'}",
        f"  received:    {_when(e.received_at)}; registered {_when(e.created_at)}",
        f"  raw email:   {e.storage_key} ({e.size:,} bytes)",
        f"  user:        {story.user.email if story.user else '-'}",
    ]
    device = story.user.kindle if story.user is not None else None
    if device is not None:
        lines.append(
            f"  kindle:      {device.email}: {device.check_state}"
            + (f" ({device.check_reason})" if device.check_reason else "")
        )
    if story.duplicate_of is not None:
        lines.append(f"  duplicate of #{story.duplicate_of.id} ({story.duplicate_of.state})")
    n = story.newsletter
    if n is not None:
        lines.append(f"newsletter #{n.id}: {n.status}" + (f": {n.reason}" if n.reason else ""))
        if n.epub_key:
            lines.append(
                f"  epub:        {n.epub_key} ({n.epub_bytes or 0:,} bytes, {n.words or 0:,} words, "
                f"{n.images or 0} images, platform {n.platform or '-'})"
            )
        if n.delivered_at:
            lines.append(f"  delivered:   {_when(n.delivered_at)}")
    if story.digest is not None:
        d = story.digest
        lines.append(f"digest #{d.id} ({d.period_key}): {d.status}" + (f": {d.reason}" if d.reason else ""))
    lines.append(f"deliveries: {len(story.deliveries) or 'none'}")
    for d in story.deliveries:
        what = f"{d.item_kind} #{d.item_id}" + (f" volume {d.part}" if d.item_kind == "digest" else "")
        what += f" ({d.variant.replace('_', ' ')})" if d.variant != "standard" else ""
        lines.append(
            f"  #{d.id} {what} to {d.recipient}: {d.status}, attempt {d.attempts}, claimed {_when(d.claimed_at)}"
            + (f", finished {_when(d.finished_at)}" if d.finished_at else "")
            + (f": {d.reason}" if d.reason else "")
        )
    lines.append(f"notices to the user: {len(story.notifications) or 'none'}")
    for note in story.notifications:
        lines.append(
            f"  #{note.id} {note.kind} \"{note.subject}\": {note.status}"
            + (f" {_when(note.sent_at)}" if note.sent_at else "")
            + (f": {note.reason}" if note.reason else "")
        )
    return lines


def _runs_lines(created: dict[int, datetime]) -> dict[int, list[str]]:
    """For each email id (and its registration time): the runs that worked on it."""
    if not os.environ.get("DAGSTER_HOME"):  # Dagster's own variable, which dg.DagsterInstance.get() reads
        return {i: ["runs: set DAGSTER_HOME to the Dagster instance's folder to list them"] for i in created}
    # Dagster (and our definitions) only here: importing them costs every other command about a second.
    import dagster as dg

    from inbox_pipeline.defs.common import (
        BATCH_JOB,
        ROOT_RUN_TAG,
        TAG_EMAIL_ID,
        TAG_OUTCOME,
        TAG_REASON,
        TAG_TAKEN_IDS,
        TAKE_JOB,
        email_ids_of_run,
    )

    def worked_on(run, email_id: int) -> bool:
        taken = run.tags.get(TAG_TAKEN_IDS, "").split(",") if run.job_name == TAKE_JOB else []
        return str(email_id) in taken or email_id in email_ids_of_run(run)

    out: dict[int, list[str]] = {}
    with dg.DagsterInstance.get() as instance:
        for email_id, created_at in created.items():
            runs = {r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(tags={TAG_EMAIL_ID: str(email_id)}))}
            for job_name in (TAKE_JOB, BATCH_JOB):
                window = dg.RunsFilter(
                    job_name=job_name, created_after=created_at - BATCH_WINDOW, created_before=created_at + BATCH_WINDOW
                )
                runs.update({r.run_id: r for r in instance.get_runs(filters=window) if worked_on(r, email_id)})
            for root in list(runs):  # and their re-executions, whenever they were made
                for child in instance.get_runs(filters=dg.RunsFilter(tags={ROOT_RUN_TAG: root})):
                    runs[child.run_id] = child
            records = sorted(
                (instance.get_run_record_by_id(run_id) for run_id in runs), key=lambda r: r.create_timestamp
            )
            lines = [f"runs: {len(records) or 'none found in ' + str(instance.root_directory)}"]
            for record in records:
                run = record.dagster_run
                lines.append(
                    f"  {run.run_id} {run.job_name}: {run.status.value}, created {_when(record.create_timestamp)}"
                    + (f", re-execution of {run.parent_run_id}" if run.parent_run_id else "")
                )
                tags = run.tags
                if run.job_name == TAKE_JOB:
                    lines.append("    took it from the inbox and queued it")
                elif run.job_name == BATCH_JOB:
                    lines += _materialization_lines(instance, run.run_id, email_id)
                elif tags.get(TAG_OUTCOME):
                    reason = tags.get(TAG_REASON, "-")
                    lines.append(f"    outcome {tags[TAG_OUTCOME]}" + (f": {reason}" if reason != "-" else ""))
            out[email_id] = lines
    return out


def _materialization_lines(instance: Any, run_id: str, email_id: int) -> list[str]:
    """What a worker run reported of this email: each of its materializations, in order."""
    import dagster as dg  # lazy, as in _runs_lines

    lines = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        ref = materialization.metadata.get("inbound_email_id") if materialization else None
        if getattr(ref, "value", None) == email_id:
            lines.append(f"    {materialization.asset_key.to_user_string()}: {materialization.description or '-'}")
    return lines or ["    nothing reported of this email in the run"]
