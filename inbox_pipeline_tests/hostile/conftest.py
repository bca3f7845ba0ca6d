"""Fixtures of the hostile suite: what each case's child returns, and servers it attacks."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

import pytest

from inbox_pipeline_tests.core.test_images import ImageServer
from inbox_pipeline_tests.helpers import epub_text

_BODY = re.compile(r"<body.*</body>", re.S)


def epub_markup(epub: bytes) -> str:
    """The <body> markup of every content document (the chapter's own stylesheet link excluded)."""
    with zipfile.ZipFile(io.BytesIO(epub)) as zf:
        bodies = []
        for name in zf.namelist():
            if name.endswith(".xhtml") and "nav" not in name and "cover" not in name:
                found = _BODY.search(zf.read(name).decode("utf-8"))
                bodies.append(found.group(0) if found else "")
        return "\n".join(bodies)


def converted(raw: bytes, policy=None) -> dict:
    """Convert in the child; return what a reader and an operator would see."""
    from inbox_pipeline.core.convert import ConvertOptions, convert_email
    from inbox_pipeline.core.images import ImagePolicy

    conv = convert_email(raw, options=ConvertOptions(image_policy=policy or ImagePolicy(fetch_remote=False)))
    return {
        "text": epub_text(conv.epub),
        "markup": epub_markup(conv.epub),
        "title": conv.title,
        "kept": conv.images_kept,
        "dropped": conv.images_dropped,
        "reasons": list(conv.images.reasons),
        "epub": conv.epub,
    }


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    """An image server the policy trusts (127.0.0.2, on its allow list)."""
    with ImageServer("127.0.0.2") as srv:
        yield srv


@pytest.fixture
def internal_server() -> Iterator[ImageServer]:
    """A server on 127.0.0.1 standing for anything internal: it must never be reached."""
    with ImageServer("127.0.0.1") as srv:
        yield srv


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``inbox-pipeline ARGV`` in this process: (exit status, stdout, stderr) as a user would see them.

    An exception escaping ``main`` is printed as the interpreter would print it (a traceback).
    """
    import contextlib
    import os
    import traceback

    from inbox_pipeline.cli import main

    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - shown, as the interpreter would
            traceback.print_exc()
            code = 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def admin_env(tmp_path, monkeypatch) -> dict[str, str]:
    """A migrated SQLite database and the variables the admin CLI reads."""
    from inbox_pipeline_tests.conftest import migrated

    env = {
        "INBOX_PIPELINE_DATA_DIR": str(tmp_path / "data"),
        "INBOX_PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "INBOX_PIPELINE_INBOUND_DOMAIN": "in.example",
        "INBOX_PIPELINE_SENDER": "kindle-delivery@pipeline.example",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    migrated(env["INBOX_PIPELINE_DATABASE_URL"])
    return env


def _hypothesis_profiles() -> None:
    """``hostile`` (the default here): a short, bounded run for CI; ``HYPOTHESIS_PROFILE=deep`` for a long one."""
    import os

    from hypothesis import HealthCheck, settings

    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]}
    settings.register_profile("hostile", max_examples=40, derandomize=True, database=None, **common)
    settings.register_profile("deep", max_examples=1000, **common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "hostile"))


_hypothesis_profiles()
