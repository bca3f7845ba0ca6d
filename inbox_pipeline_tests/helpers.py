"""Small readers for what a user sees (the text inside an EPUB), test material, and the one place for Dagster internals."""

from __future__ import annotations

import datetime
import io
import ipaddress
import re
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from lxml import etree

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lower-case letters and digits only: compares text ignoring punctuation and whitespace."""
    return _NOT_WORD.sub("", text.lower())


def epub_chapter_texts(epub: bytes) -> list[str]:
    """The reading text of each content document, in spine order (no nav, no cover)."""
    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        container = etree.fromstring(zf.read("META-INF/container.xml"))
        opf_path = container.find(".//{*}rootfile").get("full-path")
        base = opf_path.rsplit("/", 1)[0] + "/" if "/" in opf_path else ""
        opf = etree.fromstring(zf.read(opf_path))
        manifest = {
            item.get("id"): item
            for item in opf.iter("{http://www.idpf.org/2007/opf}item")
        }
        texts = []
        for ref in opf.iter("{http://www.idpf.org/2007/opf}itemref"):
            item = manifest[ref.get("idref")]
            props = item.get("properties") or ""
            href = item.get("href")
            if "nav" in props.split() or "cover" in href.lower():
                continue
            doc = etree.fromstring(zf.read(base + href))
            body = doc.find(".//{http://www.w3.org/1999/xhtml}body")
            texts.append(" ".join(body.itertext()) if body is not None else "")
        return texts


def epub_text(epub: bytes) -> str:
    return "\n".join(epub_chapter_texts(epub))


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 and its key, as PEM files in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def via_ses(raw: bytes, to: str) -> bytes:
    """``raw`` as SES stores it in the bucket: its own Received header on top, naming the envelope recipients
    (the addresses in ``to``)."""
    from email.utils import getaddresses

    envelope = ", ".join(f"<{addr}>" for _, addr in getaddresses([to]) if addr)
    header = (
        "Received: from mail.sender.example (mail.sender.example [203.0.113.9])\r\n"
        " by inbound-smtp.eu-west-1.amazonaws.com with SMTP id 7q0ub2kq1rl0e9t5\r\n"
        f" for {envelope};\r\n Mon, 02 Mar 2026 06:00:00 +0000 (UTC)\r\n"
    )
    newline = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    return header.encode().replace(b"\r\n", newline) + raw


def mime(n: int | str) -> bytes:
    """A minimal raw email, different for each ``n``, received by SES for b@in.example.com."""
    raw = f"From: a@example.com\r\nTo: b@in.example.com\r\nSubject: issue {n}\r\n\r\nbody {n}\r\n".encode()
    return via_ses(raw, "b@in.example.com")


class ListingMeter:
    """Counts ListObjectsV2 calls and the keys they returned, at a boto3 S3 client."""

    def __init__(self, client) -> None:
        self.calls = 0
        self.keys = 0
        client.meta.events.register("after-call.s3.ListObjectsV2", self._count)

    def _count(self, parsed, **_: object) -> None:
        self.calls += 1
        self.keys += len(parsed.get("Contents", [])) + len(parsed.get("CommonPrefixes", []))


class CallMeter:
    """Counts a boto3 client's calls by operation (``calls["HeadObject"]``), as sent to the server."""

    def __init__(self, client) -> None:
        self.calls: Counter[str] = Counter()
        client.meta.events.register(f"after-call.{client.meta.service_model.endpoint_prefix}", self._count)

    def _count(self, model, **_: object) -> None:
        self.calls[model.name] += 1


def refuse_to_register(sessions, storage_key: str) -> None:
    """Make the app database (SQLite) refuse to register one name: a trigger stands in for a real fault
    (a full disk, a constraint), so the code under test meets it where it would."""
    from sqlalchemy import text

    quoted = storage_key.replace("'", "''")  # a trigger's SQL takes no parameters
    with sessions.begin() as session:
        session.execute(text(
            f"CREATE TRIGGER refuse_one BEFORE INSERT ON inbound_emails WHEN NEW.storage_key = '{quoted}' "
            "BEGIN SELECT RAISE(ABORT, 'the disk refuses this one'); END"
        ))


def sparse_file(path: Path, size: int) -> Path:
    """A file ``size`` bytes long that uses no disk: for inputs too large to read."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def bytes_read() -> int:
    """Bytes this process has read so far through read(2) and friends (Linux /proc/self/io)."""
    import pytest

    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:
        pytest.skip("no /proc/self/io on this system")
    return next(int(line.split()[1]) for line in lines if line.startswith("rchar:"))


def email_message(
    *, sender: str, to: str, subject: str, date: str, message_id: str, text: str, list_unsubscribe: str | None = None
) -> EmailMessage:
    """An email with these headers and a plain-text body, for an HTML alternative (and its parts) to be added."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = message_id
    if list_unsubscribe:
        msg["List-Unsubscribe"] = list_unsubscribe
    msg.set_content(text)
    return msg


def noise_jpeg(side: int, seed: int, *, quality: int = 92) -> bytes:
    """An incompressible photo-sized JPEG (random pixels): size budgets cannot be met by deflate."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def png_bomb(side: int, *, rgba: bool = False) -> bytes:
    """A side x side PNG of zeros (1-bit grey, or 8-bit RGBA), a few hundred KB at most, built row by
    row (never whole in memory)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    squeeze = zlib.compressobj(9)
    row = b"\x00" * (1 + (side * 4 if rgba else (side + 7) // 8))
    body = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8 if rgba else 1, 6 if rgba else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


SVG_NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg_use_bomb(levels: int = 10, fan: int = 10) -> bytes:
    """``fan`` ** ``levels`` rectangles drawn from a 2.6 KB document: the billion laughs of SVG."""
    groups = "".join(
        f'<g id="l{i}">' + f'<use xlink:href="#l{i - 1}"/>' * fan + "</g>" for i in range(1, levels + 1)
    )
    return (f'<svg {SVG_NS} width="100" height="100"><defs><rect id="l0" width="1" height="1"/>{groups}</defs>'
            f'<use xlink:href="#l{levels}"/></svg>').encode()


def svg_with_image(png: bytes) -> bytes:
    """An SVG that draws ``png``, embedded as a data: URL."""
    import base64

    return (f'<svg {SVG_NS} width="100" height="100"><image width="100" height="100" '
            f'xlink:href="data:image/png;base64,{base64.b64encode(png).decode()}"/></svg>').encode()


# --- Dagster internals -------------------------------------------------------------------------------
# The only place the tests reach into ``dagster._*``: each helper below does something Dagster's
# public API does not offer (checked against dagster 1.13). Imports stay inside the functions, so
# the tests that never call them do not pay for them.


@contextmanager
def in_process_workspace(instance, workspace_yaml: Path) -> Iterator:
    """The workspace ``dagster dev`` and the webserver load from ``workspace_yaml``, loaded here.

    No public API loads a workspace file in-process (the webserver and ``dagster dev`` do it
    with these classes); GraphQL tests need its request context.
    """
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace_yaml)])) as workspace:
        yield workspace


def instance_config(folder: Path) -> dict:
    """``folder/dagster.yaml`` as Dagster reads it: checked against its schema, defaults filled in.

    The public ``DagsterInstance.from_config`` would also open the storage it names (a
    production PostgreSQL); this reads and checks the file alone.
    """
    from dagster._core.instance.config import dagster_instance_config

    return dagster_instance_config(str(folder))[0]


def config_errors(config_schema, value: dict) -> list[str]:
    """What ``config_schema`` (a run launcher's ``config_type()``) says is wrong with ``value``.

    ``dg.validate_run_config`` checks a job's run config only; a pluggable class's config is
    checked by this internal function when an instance starts.
    """
    from dagster._config import validate_config

    result = validate_config(config_schema, value)
    return [] if result.success else [e.message for e in result.errors]


def check_run_timeout(instance, run_record) -> None:
    """Run monitoring's check of one run against its ``dagster/max_runtime``, as the daemon's loop does.

    The daemon applies it on its own schedule; no public API applies it to one run now.
    """
    import logging

    from dagster._daemon.monitoring.run_monitoring import check_run_timeout as check

    check(instance, run_record, logging.getLogger("run_monitoring"), 3600.0)


def tags_kept_on_retry(tags: Mapping[str, str]) -> dict[str, str]:
    """A run's tags as the UI and the run-retry daemon copy them onto a re-execution.

    ``dg.execute_job`` copies no tags; the set the UI leaves out is an internal constant.
    """
    from dagster._core.storage.tags import TAGS_TO_MAYBE_OMIT_ON_RETRY

    return {k: v for k, v in tags.items() if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY}


def forget_reconstructed_jobs() -> None:
    """Dagster caches the last reconstructed job per process; each test has its own environment.

    The cache sits on the internal ReconstructableJob (what ``dg.reconstructable`` returns).
    """
    from dagster._core.definitions.reconstruct import ReconstructableJob

    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()


def declared_sensor_state(instance, location_module: str, location_name: str, sensor_name: str):
    """The stored state of a sensor declared in code, as the daemon records it on its first tick.

    Its origin, state and tick records are internal classes: no public API writes them.
    """
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
    from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType, SensorInstigatorData
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name=location_module), location_name=location_name)
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), sensor_name)
    return instance.add_instigator_state(
        InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE, SensorInstigatorData())
    )


def stored_tick(instance, state, at: datetime.datetime, status: str, error: str | None = None) -> int:
    """A tick of ``state``'s sensor stored at ``at`` with ``status`` ("SUCCESS", "SKIPPED", "FAILURE"); its id."""
    from dagster._core.scheduler.instigation import TickData, TickStatus
    from dagster_shared.error import SerializableErrorInfo

    tick = instance.create_tick(
        TickData(
            instigator_origin_id=state.instigator_origin_id,
            instigator_name=state.instigator_name,
            instigator_type=state.instigator_type,
            status=TickStatus(status),
            timestamp=at.timestamp(),
            selector_id=state.selector_id,
            run_ids=[],
            run_keys=[],
            error=SerializableErrorInfo(error, [], error.split(":")[0]) if error else None,
        )
    )
    return tick.tick_id


def retry_policy_of(job, op_name: str):
    """The retry policy Dagster applies to the op ``op_name`` in ``job`` (its own, else the job's).

    Dagster resolves it by node handle; the handle's class is not exported.
    """
    from dagster._core.definitions.dependency import NodeHandle

    return job.get_retry_policy_for_handle(NodeHandle(op_name, None))
