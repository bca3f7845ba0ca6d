"""The inbox sensor: each email registered once, capped ticks, restart safety, S3 outages, O(new) ticks."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import dagster as dg
import pytest

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import add_reader, configure, deployment, requested_emails
from inbox_pipeline_tests.e2e.proxy import TcpProxy


def requests_of(result) -> list[dg.RunRequest]:
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def test_a_tick_takes_at_most_the_cap_and_the_rest_wait_for_the_next(monkeypatch, tmp_path) -> None:
    with deployment(monkeypatch, tmp_path, MAX_EMAILS_PER_TICK="2") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        for n in range(5):
            dep.pipeline().inbox.put(f"m{n}.eml", mails.newsletter(n, address))
        sizes, keys, ids = [], [], []
        for _ in range(4):
            requests = requests_of(dep.tick())
            sizes.append(sum(len(requested_emails(r)) for r in requests))
            keys += [r.run_key for r in requests]
            # Each request names its emails in config and tags, for the run and the UI: a lone
            # email gets a per-email run, two taken together one batch run.
            ids += [i for r in requests for i in requested_emails(r)]
            for r in requests:
                if r.job_name == "process_inbox_batch":
                    assert r.tags["inbox-pipeline/email-count"] == str(len(requested_emails(r)))
                else:
                    assert r.tags["inbox-pipeline/email-id"]
        assert sizes == [2, 2, 1, 0]
        assert len(set(keys)) == 3 and sorted(ids) == sorted(r[0] for r in dep.rows())
        assert sorted(r[1] for r in dep.rows()) == ["received"] * 5
        skipped = dep.tick()
        assert isinstance(skipped, dg.SensorResult) and "no new email" in (skipped.skip_reason.skip_message or "")


def test_restart_between_register_and_archive_registers_once(monkeypatch, tmp_path) -> None:
    """A daemon killed after registering but before archiving: the next tick finishes the job, same row."""
    from inbox_pipeline.db.intake import register_inbound

    with deployment(monkeypatch, tmp_path) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        data = mails.newsletter(1, address)
        inbox = dep.pipeline().inbox
        inbox.put("m1.eml", data)
        (obj,) = inbox.list_pending(10)
        with dep.pipeline().sessions.begin() as session:  # what the killed tick had done
            row, created = register_inbound(
                session, storage_key="m1.eml", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                received_at=obj.last_modified,
            )
            first_id = row.id
        (request,) = requests_of(dep.tick())
        assert request.tags["inbox-pipeline/email-id"] == str(first_id)
        assert inbox.list_pending(10) == []
        assert len(dep.rows()) == 1
        assert dep.run(request).success
        assert [r[1] for r in dep.rows()] == ["delivered"]


def test_restart_after_archive_before_the_run_is_requested_again_with_the_same_key(monkeypatch, tmp_path) -> None:
    """A daemon killed after archiving but before launching: the run is requested again, under the same run key."""
    with deployment(monkeypatch, tmp_path, RELAUNCH_AFTER_SECONDS="2") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        dep.pipeline().inbox.put("m1.eml", mails.newsletter(1, address))
        (lost,) = requests_of(dep.tick())  # the daemon dies before launching it
        assert requests_of(dep.tick()) == []  # too fresh to be called lost
        time.sleep(2.5)
        (again,) = requests_of(dep.tick())
        assert again.run_key == lost.run_key  # Dagster launches one run per run key
        assert again.run_config == lost.run_config
        assert dep.run(again).success
        assert requests_of(dep.tick()) == []
        assert [r[1] for r in dep.rows()] == ["delivered"]


@pytest.fixture
def s3_via_proxy(moto_server, aws_env, s3_bucket, monkeypatch):
    host, port = moto_server.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # fail fast while cut off
    try:
        yield proxy, s3_bucket
    finally:
        proxy.close()


def test_s3_unreachable_during_a_tick_loses_nothing(monkeypatch, tmp_path, s3_via_proxy, smtp_sink) -> None:
    proxy, bucket = s3_via_proxy
    with deployment(
        monkeypatch, tmp_path, INBOX=f"s3://{bucket}/incoming/", STORAGE=f"s3://{bucket}/books/", MAILER=smtp_sink.url
    ) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        for n in range(6):
            dep.pipeline().inbox.put(f"m{n}", mails.newsletter(n, address))
        proxy.cut()
        with pytest.raises(Exception):
            dep.tick()  # the tick fails (the UI shows the error); nothing is half done
        assert dep.rows() == []
        proxy.reconnect()
        runs = dep.drain()
        assert all(r.success for r in runs)
        assert sorted(i for r in dep.requested for i in requested_emails(r)) == sorted(r[0] for r in dep.rows())
        assert sorted(r[1] for r in dep.rows()) == ["delivered"] * 6
        assert len(smtp_sink.messages) == 6
        subjects = sorted(" ".join(str(m["Subject"]).split()) for m in smtp_sink.parsed())
        assert subjects == sorted(mails.subject(n) for n in range(6))


def test_tick_cost_does_not_grow_with_the_emails_already_processed(monkeypatch, tmp_path, s3_via_proxy) -> None:
    proxy, bucket = s3_via_proxy
    with deployment(monkeypatch, tmp_path, INBOX=f"s3://{bucket}/incoming/", MAX_EMAILS_PER_TICK="100") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox

        def one_tick_bytes(name: str) -> int:
            inbox.put(name, mails.newsletter(1, address))
            before = proxy.bytes_down
            assert len(requests_of(dep.tick())) == 1
            return proxy.bytes_down - before

        first = one_tick_bytes("first")
        # Many emails arrive in the same second, all are taken.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: inbox.put(f"burst-{n:03d}", mails.newsletter(n, address)), range(80)))
        assert sum(len(requested_emails(r)) for r in requests_of(dep.tick())) == 80
        later = one_tick_bytes("later")
        assert later <= first * 1.3 + 2000, (first, later)
        s3 = boto3.client("s3")
        archived = s3.list_objects_v2(Bucket=bucket, Prefix="incoming-archive/")["KeyCount"]
        assert archived == 82
        assert len(dep.rows()) == 82 and len({r[0] for r in dep.rows()}) == 82


def test_an_announced_inbox_reconciles_on_the_first_tick_then_only_after_the_interval(
    monkeypatch, tmp_path, s3_bucket, event_queue
) -> None:
    """With ?queue=, ticks read the queue; the prefix is listed on the first tick and then every
    INBOX_PIPELINE_RECONCILE_SECONDS, the time of the last reconcile kept in the sensor's cursor."""
    import json

    inbox_uri = f"s3://{s3_bucket}/incoming/?queue={event_queue.url}"
    with deployment(monkeypatch, tmp_path, INBOX=inbox_uri, RECONCILE_SECONDS="2") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox
        inbox.put("before-the-queue", mails.newsletter(1, address))  # never announced
        event_queue.notify(s3_bucket)

        first = time.time()
        (run,) = requests_of(dep.tick())  # no cursor yet: reconcile
        assert run.tags["inbox-pipeline/inbox-key"] == "before-the-queue"
        reconciled_at = json.loads(dep.cursors["inbox_sensor"])["reconciled_at"]
        assert first <= reconciled_at <= time.time()

        event_queue.stop_notifying(s3_bucket)
        inbox.put("lost", mails.newsletter(2, address))  # its notification is lost
        event_queue.notify(s3_bucket)
        inbox.put("announced", mails.newsletter(3, address))
        (run,) = requests_of(dep.tick())  # within the interval: the queue only
        assert run.tags["inbox-pipeline/inbox-key"] == "announced"
        assert json.loads(dep.cursors["inbox_sensor"])["reconciled_at"] == reconciled_at
        assert requests_of(dep.tick()) == []

        time.sleep(2.1)
        (run,) = requests_of(dep.tick())  # the interval has passed: the listing finds it
        assert run.tags["inbox-pipeline/inbox-key"] == "lost"
        assert json.loads(dep.cursors["inbox_sensor"])["reconciled_at"] > reconciled_at

        event_queue.stop_notifying(s3_bucket)
        inbox.put("lost-again", mails.newsletter(4, address))
        dep.cursors["inbox_sensor"] = "garbled"  # an unreadable cursor means: reconcile now
        (run,) = requests_of(dep.tick())
        assert run.tags["inbox-pipeline/inbox-key"] == "lost-again"
        json.loads(dep.cursors["inbox_sensor"])

        assert sorted(r[1] for r in dep.rows()) == ["received"] * 4
        assert event_queue.messages() == 0
        assert inbox.list_pending(10) == []


def test_the_sensor_description_says_where_new_emails_come_from(monkeypatch, tmp_path) -> None:
    from inbox_pipeline.definitions import build_definitions

    def description(**values: str) -> str:
        configure(monkeypatch, tmp_path, **values)
        return build_definitions().get_repository_def().get_sensor_def("inbox_sensor").description

    assert "lists the inbox" in description()
    announced = description(INBOX="s3://bucket/incoming/?queue=inbox-events", RECONCILE_SECONDS="900")
    assert "S3 event notifications on an SQS queue" in announced and "every 900 s" in announced
    assert "every 600 s" in description(INBOX="s3://bucket/incoming/?queue=inbox-events")
