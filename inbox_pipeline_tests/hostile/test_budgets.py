"""Unbounded work (issue 9, point 3): every case here must end within its ceilings.

Cover layout, SVG rasterising, image decoding, input size and run time limits.
Before the budgets (branch ``budgets``, merged) these cases passed a ceiling:
a 2,000-character word on the cover took ~100 s, an SVG <use> bomb never
ended, a 100-megapixel PNG peaked at 1.3 GB; the child running them was killed.
"""

from __future__ import annotations

import functools
import threading

import pytest

from inbox_pipeline_tests.hostile import inputs
from inbox_pipeline_tests.hostile.bounded import measure
from inbox_pipeline_tests.hostile.conftest import converted, run_cli

SECONDS, MEGABYTES = 30, 400


@functools.lru_cache(maxsize=None)
def _bomb(kind: str) -> bytes:
    return {
        "svg-use": inputs.svg_use_bomb(),
        "svg-png": inputs.svg_with_png(12_000),
        "png-100mp": inputs.png_bomb(10_000, rgba=True),
    }[kind]


def converted_without_leftover_threads(raw: bytes) -> dict:
    before = set(threading.enumerate())
    got = converted(raw)
    got["leftover_threads"] = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    got.pop("epub")
    return got


def book(raw: bytes) -> dict:
    return measure(converted_without_leftover_threads, raw, seconds=SECONDS, megabytes=MEGABYTES).value


def test_a_long_subject_on_the_cover_is_quick_enough() -> None:
    # 200 characters of one word: fine today, the yardstick for the two cases below.
    got = book(inputs.long_subject_email(200))
    assert got["title"] == "W" * 200 and inputs.MARKER in got["text"]


@pytest.mark.parametrize("length", [2_000, 10_000])
def test_an_unbroken_subject_of_thousands_of_characters_still_gets_a_cover(length: int) -> None:
    got = book(inputs.long_subject_email(length))
    assert inputs.MARKER in got["text"]


@pytest.mark.parametrize("carrier", ["cid", "data-url"])
def test_an_svg_use_bomb_is_dropped_with_its_reason(carrier: str) -> None:
    make = inputs.image_email if carrier == "cid" else inputs.data_url_email
    got = book(make(_bomb("svg-use"), "image/svg+xml"))
    assert inputs.MARKER in got["text"] and got["kept"] == 0
    assert any("svg" in r.lower() for r in got["reasons"]), got["reasons"]
    assert got["leftover_threads"] == []


def test_a_png_bomb_inside_an_svg_stays_under_the_memory_ceiling() -> None:
    got = book(inputs.image_email(_bomb("svg-png"), "image/svg+xml"))
    assert inputs.MARKER in got["text"] and got["kept"] == 0 and got["reasons"]


def test_a_hundred_megapixel_png_is_refused_before_decoding() -> None:
    got = book(inputs.image_email(_bomb("png-100mp"), "image/png"))
    assert inputs.MARKER in got["text"] and got["kept"] == 0
    assert any("pixel" in r.lower() for r in got["reasons"]), got["reasons"]


def test_a_decompression_bomb_beyond_pillows_limit_is_dropped() -> None:
    # 400 megapixels: over Pillow's own hard limit, refused today.
    raw = inputs.image_email(inputs.png_bomb(20_000), "image/png")
    got = measure(converted_without_leftover_threads, raw, seconds=SECONDS, megabytes=MEGABYTES).value
    assert inputs.MARKER in got["text"] and got["kept"] == 0 and got["reasons"]


def test_convert_refuses_a_huge_file_without_reading_it(tmp_path) -> None:
    huge = tmp_path / "huge.eml"
    inputs.sparse_file(huge, 1024**3)
    code, _out, err = measure(run_cli, ["convert", str(huge), "-o", str(tmp_path / "out.epub")], seconds=SECONDS,
                              megabytes=200).value
    assert code != 0 and "too large" in err and "Traceback" not in err
    assert not (tmp_path / "out.epub").exists()


def _run_time_limits() -> dict[str, str | None]:
    from inbox_pipeline.definitions import build_definitions

    defs = build_definitions()
    jobs = ("process_email", "process_inbox_batch")
    return {name: (defs.resolve_job_def(name).tags or {}).get("dagster/max_runtime") for name in jobs}


def test_every_email_run_has_a_maximum_runtime() -> None:
    limits = measure(_run_time_limits, seconds=SECONDS, megabytes=MEGABYTES).value
    assert all(value and float(value) > 0 for value in limits.values()), limits
