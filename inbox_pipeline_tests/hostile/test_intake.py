"""Poison objects and not-mail in the pipeline (issue 9, points 4 and 5), being built on branch ``intake``.

Each case puts one poison object and one good newsletter for alice into the
inbox and drains it with the real sensor and job: the good one must reach
alice's Kindle, the poison one must end recorded with its reason (or moved
aside), never retried forever.
"""

from __future__ import annotations

import os

import pytest

from inbox_pipeline_tests.helpers import via_ses
from inbox_pipeline_tests.hostile import inputs
from inbox_pipeline_tests.hostile.bounded import measure
from inbox_pipeline_tests.hostile.pipeline import MEGABYTES, SECONDS, arrived, kindle, run_pipeline


def good(addresses: dict[str, str], tag: str = "good") -> bytes:
    """A newsletter for alice; each ``tag`` gives other content (never a duplicate of another)."""
    return inputs.html_email(f"<p>Issue {tag}.</p>" + inputs.ARTICLE, to=addresses["alice"],
                             msgid=f"<{tag}@harbour.example>")


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


@pytest.mark.parametrize("name", ["random bytes", "a PNG"])
def test_not_mail_ends_unreadable_and_the_batch_goes_on(monkeypatch, tmp_path, smtp_sink, name: str) -> None:
    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        "a-poison.eml": inputs.not_mail()[name], "b-good.eml": good(a)
    })
    good_one_delivered(got)
    states = {subject: (state, reason) for _id, state, reason, subject in got["rows"]}
    assert sorted(s for s, _ in states.values()) == ["delivered", "unreadable"], got["rows"]
    assert all(reason for _state, reason in states.values())


def _put_file(dep, key: str, data: bytes) -> None:
    """Write straight into the inbox folder, as a mail server would: any name the file system takes."""
    folder = os.fsencode(str(dep.settings.inbox))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, key.encode("utf-8", "surrogateescape")), "wb") as out:
        out.write(data)


def poison_recorded(got: dict, rows: int = 2) -> None:
    """Every object got its row with a reason (a valid email under an odd name may well be delivered)."""
    assert len(got["mail"].get(kindle("alice"), [])) >= 1, list(got["mail"])
    assert all(got["runs_ok"]), got["runs_ok"]
    assert len(got["rows"]) == rows and all(reason for _i, _state, reason, _s in got["rows"]), got["rows"]


def test_a_name_that_is_not_utf8_is_recorded(monkeypatch, tmp_path, smtp_sink) -> None:
    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        "a-\udcff\udcfe.eml": good(a, "poison"), "b-good.eml": good(a)
    }, put=_put_file)
    poison_recorded(got)


def test_a_key_with_a_backslash_is_recorded(monkeypatch, tmp_path, smtp_sink, s3_bucket) -> None:
    import boto3

    def put(dep, key, data):  # as SES stores it: an S3 inbox routes on SES's own envelope only
        data = via_ses(data, dep_addresses(dep)["alice"])
        boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"incoming/{key}", Body=data)

    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        "a\\poison.eml": good(a, "poison"), "b-good.eml": good(a)
    }, put=put, INBOX=f"s3://{s3_bucket}/incoming/", STORAGE=f"s3://{s3_bucket}/books/")
    poison_recorded(got)


def dep_addresses(dep) -> dict[str, str]:
    from sqlalchemy import select

    from inbox_pipeline.db.models import InboundAddress, User

    with dep.pipeline().sessions() as session:
        rows = session.execute(select(User.email, InboundAddress.address).join(InboundAddress.user))
        return {email.split("@")[0]: address for email, address in rows}


def test_a_long_name_colliding_in_the_archive_is_recorded(monkeypatch, tmp_path, smtp_sink) -> None:
    long_name = "n" * 250 + ".eml"  # 254 bytes: the archive's "-1" for a second email makes 256

    def put(dep, key, data):
        if key == long_name:  # the same name archived before, holding another email
            _put_file(dep, key, good(dep_addresses(dep), "earlier"))
            dep.drain(max_ticks=3)
        _put_file(dep, key, data)

    got = drained(monkeypatch, tmp_path, smtp_sink, lambda a: {
        long_name: good(a, "poison"), "b-good.eml": good(a)
    }, put=put)
    poison_recorded(got, rows=3)
