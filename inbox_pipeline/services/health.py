"""The deployment's health, as the watchdog sees it: what is wrong now, and the episodes it opens.

``check_deployment`` probes each outside thing once (the inbox can be listed,
storage and the mailer answer, EPUBCheck can run, the mailer and storage URIs
can work) and counts the mail our outages hold and the mail sitting unprocessed
past a threshold. ``Watch`` turns successive findings into episodes: one alert
when a problem appears and one recovery when it is gone, queued in order and
kept until the mailer takes them (an alert about the mailer goes out when it is
back, before its recovery). It is plain data, kept in the watchdog's cursor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from inbox_pipeline.core.epubcheck import unavailable_reason
from inbox_pipeline.db.intake import stale_emails
from inbox_pipeline.services.context import Pipeline
from inbox_pipeline.services.holds import CAUSES, CONFIGURATION, EPUBCHECK, MAILER, STORAGE, waiting_emails

INBOX = "inbox"
INBOX_SENSOR = "inbox_sensor"
BACKLOG = "backlog"
UNPROCESSED = ("received", "parsed", "routed")  # states an email should pass through within minutes
WHAT = {
    INBOX: "the inbox",
    INBOX_SENSOR: "the inbox sensor",
    MAILER: "the mailer",
    STORAGE: "storage",
    EPUBCHECK: "EPUBCheck",
    CONFIGURATION: "the configuration",
    BACKLOG: "unprocessed mail",
}


@dataclass(frozen=True)
class Health:
    problems: dict[str, str]  # episode key -> one line for the operator
    usable: set[str]  # the hold causes that have cleared: their waiting emails can be resumed
    waiting: list  # holds.Waiting


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]


def check_deployment(pipeline: Pipeline, *, now: datetime, stale_after: timedelta) -> Health:
    """Probe the inbox, storage, the mailer and EPUBCheck once, and look at the held and stale mail."""
    problems: dict[str, str] = {}
    usable: set[str] = set()
    config_ok = True

    try:
        pipeline.inbox.list_pending(1)
    except Exception as exc:  # noqa: BLE001 - any failure to list is the finding
        problems[INBOX] = f"the inbox {pipeline.inbox_uri} cannot be read: {_describe(exc)}"

    for cause, probe in ((STORAGE, lambda: pipeline.storage.check()), (MAILER, lambda: pipeline.mailer.check())):
        try:
            probe()
        except ValueError as exc:  # UnusableConfiguration: the URI cannot work
            problems[cause] = f"{WHAT[cause]} cannot work as configured: {_describe(exc)}"
            config_ok = False
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, no such bucket
            problems[cause] = f"{WHAT[cause]} cannot be reached: {_describe(exc)}"
        else:
            usable.add(cause)
    if config_ok:
        usable.add(CONFIGURATION)

    if pipeline.options.epubcheck:
        why = unavailable_reason()
        if why:
            problems[EPUBCHECK] = (
                f"EPUBCheck is enabled (INBOX_PIPELINE_EPUBCHECK) but cannot run: {why}; install it or turn "
                "the check off. Emails wait until then."
            )
        else:
            usable.add(EPUBCHECK)
    else:
        usable.add(EPUBCHECK)

    waiting = waiting_emails(pipeline)
    for cause in CAUSES:
        held = [w for w in waiting if w.cause == cause]
        if held and cause not in problems:
            problems[cause] = (
                f"{len(held)} email(s) wait for {CAUSES[cause]} since {held[0].since:%Y-%m-%d %H:%M} UTC "
                f"(#{held[0].email_id}: {held[0].reason[:300]})"
            )

    with pipeline.sessions() as session:
        stale = stale_emails(session, UNPROCESSED, now - stale_after)
    if stale:
        minutes = int(stale_after.total_seconds() // 60)
        problems[BACKLOG] = (
            f"{stale.count} email(s) unprocessed for over {minutes} min; the oldest, #{stale.oldest_id}, is "
            f"{stale.oldest_state} since {stale.since:%Y-%m-%d %H:%M} UTC"
        )
    return Health(problems, usable, waiting)


@dataclass
class Watch:
    """Open episodes (key -> since, summary) and the operator messages not yet sent, in order."""

    open: dict[str, dict] = field(default_factory=dict)
    unsent: list[tuple[str, str]] = field(default_factory=list)
    resumed: dict[str, str] = field(default_factory=dict)  # hold cause -> when its emails were last resumed

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "Watch":
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(data.get("open", {}), [tuple(m) for m in data.get("unsent", [])], data.get("resumed", {}))

    def to_cursor(self) -> str:
        return json.dumps({"open": self.open, "unsent": self.unsent, "resumed": self.resumed}, sort_keys=True)

    def update(self, problems: dict[str, str], now: datetime) -> None:
        """Open an episode (queue its alert) for each new problem, close (queue a recovery) each one gone."""
        stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
        for key, summary in problems.items():
            if key in self.open:
                self.open[key]["summary"] = summary
                continue
            self.open[key] = {"since": stamp, "summary": summary}
            self.unsent.append(
                (
                    f"[inbox-pipeline] problem: {WHAT.get(key, key)}",
                    f"Since {stamp}: {summary}\n\nEmails that need it wait (state 'waiting') and are resumed "
                    "when it is fixed; users are told nothing. A recovery message follows when it is over.",
                )
            )
        for key in [k for k in self.open if k not in problems]:
            episode = self.open.pop(key)
            self.unsent.append(
                (
                    f"[inbox-pipeline] recovered: {WHAT.get(key, key)}",
                    f"Recovered at {stamp} (the problem began {episode['since']}): {episode['summary']}",
                )
            )

    def due_for_resume(self, cause: str, now: datetime, every: timedelta) -> bool:
        last = self.resumed.get(cause)
        return last is None or datetime.fromisoformat(last) + every <= now
