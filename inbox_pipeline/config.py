"""Configuration from environment variables (a ``.env`` file is read too).

The variable names are the public contract listed in PRODUCT.md ("Operating it").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "INBOX_PIPELINE_"


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
    batch_size: int  # most emails in one batch run; 1: one run per email
    reconcile_seconds: float  # an announced inbox (?queue=) is also listed at most this often
    # authserv-ids of the receiving system whose Authentication-Results are believed (Amazon's notices)
    trusted_authserv_ids: tuple[str, ...] = ()
    send_rate: float = 0.0  # messages a second, shared by all runs (0: none; SES: its account's rate)
    send_daily_quota: int = 0  # messages in any 24 hours (0: none; SES: its account's quota)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            value = env.get(PREFIX + name, "").strip()
            return value or default

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
            # SES refuses messages over 40 MB after base64 (4/3 growth) and headers.
            size_budget_bytes=int(get("SIZE_BUDGET_BYTES", str(29 * 1024 * 1024))),
            sensor_interval_seconds=max(1, int(float(get("SENSOR_INTERVAL_SECONDS", "30")))),
            batch_size=max(1, int(float(get("BATCH_SIZE", "100")))),
            reconcile_seconds=max(0.0, float(get("RECONCILE_SECONDS", "600"))),
            trusted_authserv_ids=tuple(r.strip().lower() for r in authserv_ids.split(",") if r.strip()),
            send_rate=max(0.0, float(get("SEND_RATE", "0"))),
            send_daily_quota=max(0, int(float(get("SEND_DAILY_QUOTA", "0")))),
        )


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}
