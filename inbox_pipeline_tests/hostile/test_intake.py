"""Poison objects and not-mail in the pipeline (issue 9, points 4 and 5), being built on branch ``intake``.

Each case puts one poison object and one good newsletter for alice into the
inbox and drains it with the real sensor and job: the good one must reach
alice's Kindle, the poison one must end recorded with its reason (or moved
aside), never retried forever.
"""

from __future__ import annotations

import os

import pytest

from inbox_pipeline_tests.hostile import inputs
from inbox_pipeline_tests.hostile.bounded import measure
from inbox_pipeline_tests.hostile.pipeline import MEGABYTES, SECONDS, arrived, kindle, run_pipeline

TERMINAL = {"unreadable", "quarantined", "failed", "unroutable"}


def intake(what: str):
    return pytest.mark.xfail(strict=True, reason=f"issue 9: {what}, branch intake")


def good(addresses: dict[str, str]) -> bytes:
    return inputs.html_email(inputs.ARTICLE, to=addresses["alice"], msgid="<good@harbour.example>")


def drained(monkeypatch, tmp_path, smtp_sink, objects, put=None, **settings) -> dict:
    settings = {"MAILER": smtp_sink.url, **settings}
    got = measure(run_pipeline, monkeypatch, tmp_path, objects, settings, put, seconds=SECONDS,
                  megabytes=MEGABYTES).value
    got["mail"] = arrived(smtp_sink)
    return got


def good_one_delivered(got: dict) -> None:
    assert len(got["mail"].get(kindle("alice"), [])) == 1, list(got["mail"])
    assert all(got["runs_ok"]), got["runs_ok"]


def test_a_good_newsletter_alone_is_delivered(monkeypatch, tmp_path, smtp_sink) -> None:
    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {"b-good.eml": good(a)})
    good_one_delivered(got)


@intake("input that is not mail becomes a book")
@pytest.mark.parametrize("name", ["random bytes", "a PNG"])
def test_not_mail_ends_unreadable_and_the_batch_goes_on(monkeypatch, tmp_path, smtp_sink, name: str) -> None:
    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        "a-poison.eml": inputs.not_mail()[name], "b-good.eml": good(a)
    })
    good_one_delivered(got)
    states = {subject: (state, reason) for _id, state, reason, subject in got["rows"]}
    assert sorted(s for s, _ in states.values()) == ["delivered", "unreadable"], got["rows"]
    assert all(reason for _state, reason in states.values())


def _put_raw_name(dep, key: str, data: bytes) -> None:
    """Write a file whose name is bytes (not UTF-8) straight into the inbox folder."""
    folder = os.fsencode(str(dep.settings.inbox)) if not str(dep.settings.inbox).startswith("s3:") else None
    name = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    with open(os.path.join(folder, name), "wb") as out:
        out.write(data)


def poison_recorded(got: dict) -> None:
    """The poison object ends with a recorded state and reason (or left the inbox): never retried forever."""
    good_one_delivered(got)
    poison = [(state, reason) for _id, state, reason, subject in got["rows"] if state != "delivered"]
    assert poison and all(state in TERMINAL and reason for state, reason in poison), got["rows"]


@intake("a key with invalid UTF-8 never gets a row")
def test_a_name_that_is_not_utf8_is_recorded(monkeypatch, tmp_path, smtp_sink) -> None:
    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        "a-\udcff\udcfe.eml": good(a).replace(b"good@", b"other@"), "b-good.eml": good(a)
    }, put=_put_raw_name)
    poison_recorded(got)


@intake("a key with a backslash never gets a row")
def test_a_key_with_a_backslash_is_recorded(monkeypatch, tmp_path, smtp_sink, s3_bucket) -> None:
    import boto3

    def put(dep, key, data):
        boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"incoming/{key}", Body=data)

    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        "a\\poison.eml": good(a).replace(b"good@", b"other@"), "b-good.eml": good(a)
    }, put=put, INBOX=f"s3://{s3_bucket}/incoming/", STORAGE=f"s3://{s3_bucket}/books/")
    poison_recorded(got)


@intake("a long name that collides on archive never gets a row")
def test_a_long_name_colliding_in_the_archive_is_recorded(monkeypatch, tmp_path, smtp_sink) -> None:
    long_name = "n" * 250 + ".eml"

    def put(dep, key, data):
        inbox = dep.pipeline().inbox
        if key == long_name:  # the same name archived before, holding another email
            inbox.put(key, data.replace(b"other@", b"earlier@"))
            dep.drain(max_ticks=3)
        inbox.put(key, data)

    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        long_name: good(a).replace(b"good@", b"other@"), "b-good.eml": good(a)
    }, put=put)
    assert len(got["rows"]) == 3, got["rows"]
    assert all(state in TERMINAL | {"delivered", "duplicate"} and reason for _i, state, reason, _s in got["rows"])
    assert len(got["mail"].get(kindle("alice"), [])) >= 1
