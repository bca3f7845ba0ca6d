"""Configuration from environment variables (a ``.env`` file is read too).

The variable names are the public contract listed in PRODUCT.md ("Operating it")
and README "Configuration". This is the only module that reads the environment:
``Settings.from_env`` reads it once and everything else gets the values as
arguments (boto3 still reads its own ``AWS_*`` variables; Dagster its
``DAGSTER_HOME``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

PREFIX = "INBOX_PIPELINE_"

# SES refuses messages over 40 MB after base64 (4/3 growth) and headers.
SIZE_BUDGET_BYTES = 29 * 1024 * 1024
RETENTION_DAYS = 30
FAILED_RETENTION_DAYS = 90
NOTICE_GRACE_MINUTES = 30.0  # time for the operator to re-execute before the user hears of a failure
CLEANUP_CRON = "30 3 * * *"  # daily, a quiet hour UTC


def load_dotenv_once(path: str | os.PathLike[str] | None = None) -> None:
    """Read ``.env`` from the working directory without overriding real variables."""
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - python-dotenv is a dependency
        return
    load_dotenv(path or Path.cwd() / ".env", override=False)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    inbox: str  # "s3://bucket/prefix/" or a folder path
    storage: str  # "s3://bucket/prefix/" or a folder path
    mailer: str  # "ses", "smtp://...", "smtps://..." or "outbox:<folder>"
    sender: str
    inbound_domain: str
    fetch_images: bool
    epubcheck: bool
    retry_delay_seconds: float
    max_emails_per_tick: int
    size_budget_bytes: int
    sensor_interval_seconds: int  # how often the inbox sensor looks
    batch_size: int  # most emails the sensor names in a take run (it lists the rest); 1: one run per email (no queue)
    reconcile_seconds: float  # an announced inbox (?queue=) is also listed at most this often
    worker_idle_seconds: float = 5.0  # a worker run ends once nothing has been due in the queue this long
    # authserv-ids of the receiving system whose Authentication-Results are believed (Amazon's notices)
    trusted_authserv_ids: tuple[str, ...] = ()
    send_rate: float = 0.0  # messages a second, shared by all runs (0: none; SES: its account's rate)
    send_daily_quota: int = 0  # messages in any 24 hours (0: none; SES: its account's quota)
    retention_days: int = RETENTION_DAYS  # finished emails, EPUBs and rows are kept this long
    failed_retention_days: int = FAILED_RETENTION_DAYS  # failed ones, kept longer
    operator_email: str | None = None  # where alerts go; None: logged and recorded on the run only
    notice_grace_minutes: float = NOTICE_GRACE_MINUTES  # a "could not deliver" notice waits this long
    cleanup_cron: str = CLEANUP_CRON  # when cleanup runs (UTC)
    watchdog_interval_seconds: int = 60
    watchdog_resume_seconds: float = 120  # held emails are tried again at most this often
    watchdog_stall_seconds: float = 600  # an inbox sensor silent this long is a problem
    watchdog_stale_seconds: float = 1800  # mail unprocessed this long is a problem
    # boto3 reads only AWS_DEFAULT_REGION; AWS_REGION (what AWS's own tools set) is honoured too
    aws_region: str | None = None
    # The INBOX_PIPELINE_* variables set in this process's environment (none when read from a mapping):
    # a resource names those holding secrets as dg.EnvVar, which Dagster resolves from that environment.
    in_process_env: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            value = env.get(PREFIX + name, "").strip()
            return value or default

        defaults = {f.name: f.default for f in fields(cls)}

        def number(name: str) -> float:  # a field with a default: INBOX_PIPELINE_<NAME>, else the default
            return float(get(name.upper(), str(defaults[name])))

        data_dir = Path(get("DATA_DIR", "./.inbox_pipeline")).expanduser()
        inbox = get("INBOX", str(data_dir / "inbox"))
        # SES writes its own Authentication-Results into what it stores in S3; a folder has no receiver.
        authserv_ids = get("TRUSTED_AUTHSERV_IDS", "amazonses.com" if inbox.startswith("s3://") else "")
        return cls(
            data_dir=data_dir,
            database_url=get("DATABASE_URL", f"sqlite:///{(data_dir / 'inbox_pipeline.db').resolve()}"),
            inbox=inbox,
            storage=get("STORAGE", str(data_dir / "storage")),
            mailer=get("MAILER", f"outbox:{data_dir / 'outbox'}"),
            sender=get("SENDER", "kindle@localhost"),
            inbound_domain=get("INBOUND_DOMAIN", "in.localhost").lower(),
            fetch_images=_truthy(get("FETCH_IMAGES", "true")),
            epubcheck=_truthy(get("EPUBCHECK", "false")),
            retry_delay_seconds=float(get("RETRY_DELAY_SECONDS", "60")),
            max_emails_per_tick=int(get("MAX_EMAILS_PER_TICK", "200")),
            size_budget_bytes=int(get("SIZE_BUDGET_BYTES", str(SIZE_BUDGET_BYTES))),
            sensor_interval_seconds=max(1, int(float(get("SENSOR_INTERVAL_SECONDS", "30")))),
            batch_size=max(1, int(float(get("BATCH_SIZE", "500")))),
            worker_idle_seconds=max(0.0, float(get("WORKER_IDLE_SECONDS", "5"))),
            reconcile_seconds=max(0.0, float(get("RECONCILE_SECONDS", "600"))),
            trusted_authserv_ids=tuple(r.strip().lower() for r in authserv_ids.split(",") if r.strip()),
            send_rate=max(0.0, float(get("SEND_RATE", "0"))),
            send_daily_quota=max(0, int(float(get("SEND_DAILY_QUOTA", "0")))),
            retention_days=_days(get, "RETENTION_DAYS", RETENTION_DAYS),
            failed_retention_days=_days(get, "FAILED_RETENTION_DAYS", FAILED_RETENTION_DAYS),
            operator_email=get("OPERATOR_EMAIL", "") or None,
            notice_grace_minutes=number("notice_grace_minutes"),
            cleanup_cron=get("CLEANUP_CRON", CLEANUP_CRON),
            watchdog_interval_seconds=int(number("watchdog_interval_seconds")),
            watchdog_resume_seconds=number("watchdog_resume_seconds"),
            watchdog_stall_seconds=number("watchdog_stall_seconds"),
            watchdog_stale_seconds=number("watchdog_stale_seconds"),
            aws_region=(env.get("AWS_REGION") or "").strip() or None,
            in_process_env=frozenset(
                k for k, v in env.items() if environ is None and k.startswith(PREFIX) and v.strip()
            ),
        )


def _days(get, name: str, default: int) -> int:
    text = get(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{PREFIX}{name} must be a whole number of days, not {text!r}") from None


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}
