"""The local demo: a demo user with an inbound address and a Kindle address, and sample newsletters.

The samples in ``samples/`` were written for this project (Substack-, Beehiiv- and
Ghost-shaped newsletters and a double opt-in confirmation). They are addressed
to ``demo-reader@in.localhost``; ``drop_samples`` rewrites that to the demo
user's real inbound address and puts them in the inbox, as SES would.

``python -m inbox_pipeline.demo`` migrates the database, seeds the user and
drops the samples the first time (``--samples`` drops them again, with new
Message-IDs, so they are not duplicates).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from inbox_pipeline.config import Settings
from inbox_pipeline.db.engine import make_engine, session_factory, upgrade
from inbox_pipeline.db.errors import NotFound
from inbox_pipeline.db.users import add_user, first_address_on, get_user, issue_address
from inbox_pipeline.seams.inbox import inbox_from_uri

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
PLACEHOLDER_ADDRESS = b"demo-reader@in.localhost"
DEMO_USER_EMAIL = "reader@example.com"
DEMO_KINDLE = "reader_demo@kindle.example"


@dataclass(frozen=True)
class DemoSeed:
    user_email: str
    inbound_address: str
    kindle: str
    created: bool  # False when the demo user already existed


def sample_files() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.eml"))


def seed_demo(settings: Settings, *, migrate: bool = True) -> DemoSeed:
    """Create (once) the demo user with an inbound address on the configured domain and a Kindle address."""
    if migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine).begin() as session:
            try:
                user, created = get_user(session, DEMO_USER_EMAIL), False
            except NotFound:
                user, created = add_user(session, email=DEMO_USER_EMAIL, plan="unlimited", kindle=DEMO_KINDLE), True
            domain = settings.inbound_domain
            address = first_address_on(session, user.id, domain)
            if address is None:
                address = issue_address(session, user.id, "newsletters", domain=domain).address
            kindle = user.kindle.email if user.kindle else ""
            return DemoSeed(DEMO_USER_EMAIL, address, kindle, created)
    finally:
        engine.dispose()


def addressed_sample(path: Path, address: str, *, fresh_ids: bool = False) -> bytes:
    """A sample's bytes addressed to ``address`` (and with a new Message-ID if ``fresh_ids``), with the
    Received header SES prepends: routing reads the envelope there, in a bucket as in a folder."""
    data = path.read_bytes().replace(PLACEHOLDER_ADDRESS, address.encode("ascii"))
    newline = b"\r\n" if b"\r\n" in data[:2000] else b"\n"
    received = (
        "Received: from demo.localhost (demo.localhost [127.0.0.1])\n"
        " by inbound-smtp.us-east-1.amazonaws.com with SMTP id inbox-pipeline-demo\n"
        f" for {address};\n Tue, 03 Mar 2026 06:12:00 +0000 (UTC)\n"
    )
    data = received.encode("ascii").replace(b"\n", newline) + data
    if fresh_ids:
        data = data.replace(b"Message-ID: <demo-", f"Message-ID: <demo-{uuid.uuid4().hex[:8]}-".encode(), 1)
    return data


def drop_samples(settings: Settings, address: str, *, fresh_ids: bool = False) -> list[str]:
    """Put every sample into the inbox; returns the keys."""
    inbox = inbox_from_uri(settings.inbox, region=settings.aws_region)
    prefix = uuid.uuid4().hex[:6] + "-" if fresh_ids else ""
    keys = []
    for path in sample_files():
        key = prefix + path.name
        inbox.put(key, addressed_sample(path, address, fresh_ids=fresh_ids))
        keys.append(key)
    return keys
