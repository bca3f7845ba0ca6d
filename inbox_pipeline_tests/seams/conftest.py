"""The inbox and storage seams are tested once on a folder and once on S3 (the moto server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(params=["folder", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``place(name)``: where a seam keeps its objects, as its URI: the folder ``tmp_path/name``, or the
    prefix ``name`` in a new bucket on the moto server."""
    if request.param == "folder":
        return lambda name: str(tmp_path / name)
    bucket = request.getfixturevalue("s3_bucket")
    return lambda name: f"s3://{bucket}/{name}"
