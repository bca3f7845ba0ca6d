"""The inbox sensor: each email registered once, capped ticks, restart safety, S3 outages, O(new) ticks."""

from __future__ import annotations

import contextlib
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import dagster as dg
import pytest
import time_machine

from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import add_reader, configure, deployment, requested_emails
from inbox_pipeline_tests.e2e.proxy import TcpProxy
from inbox_pipeline_tests.helpers import in_process_workspace


def requests_of(result) -> list[dg.RunRequest]:
    return list(result.run_requests or []) if isinstance(result, dg.SensorResult) else []


def test_a_tick_names_at_most_the_cap_and_its_take_run_lists_and_takes_the_rest(monkeypatch, tmp_path) -> None:
    from inbox_pipeline.defs.common import TAG_TAKEN_IDS

    with deployment(monkeypatch, tmp_path, MAX_EMAILS_PER_TICK="2") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        for n in range(5):
            dep.pipeline().inbox.put(f"m{n}.eml", mails.newsletter(n, address))
        take, worker = requests_of(dep.tick())
        # The tick names two (its cap): a take run that queues them, and a worker run for the queue.
        assert (take.job_name, worker.job_name) == ("take_inbox", "process_inbox_batch")
        assert requested_emails(take) == ["m0.eml", "m1.eml"] and take.tags["inbox-pipeline/email-count"] == "2"
        taken = dep.run(take)
        assert taken.success and dep.pipeline().inbox.list_pending(10) == []  # it listed and took the other three
        run = dep.instance.get_run_by_id(taken.run_id)
        assert sorted(map(int, run.tags[TAG_TAKEN_IDS].split(","))) == sorted(r[0] for r in dep.rows())
        assert len(dep.rows()) == 5
        worked = dep.run(worker)
        assert worked.success and sorted(dep.emails_of(worked)) == sorted(r[0] for r in dep.rows())
        assert sorted(r[1] for r in dep.rows()) == ["delivered"] * 5
        skipped = dep.tick()
        assert isinstance(skipped, dg.SensorResult) and "no new email" in (skipped.skip_reason.skip_message or "")


def test_emails_whose_run_waits_in_the_queue_are_not_requested_again(monkeypatch, tmp_path) -> None:
    """The daemon created the run (queued): the next tick leaves its emails alone and finds only new ones."""
    with deployment(monkeypatch, tmp_path) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox
        for n in range(3):
            inbox.put(f"q{n}.eml", mails.newsletter(n, address))
        first = requests_of(dep.tick())
        assert [r.job_name for r in first] == ["take_inbox", "process_inbox_batch"]
        again = requests_of(dep.tick())  # the daemon died before creating the runs: the same requests
        assert [(r.run_key, r.run_config) for r in again] == [(r.run_key, r.run_config) for r in first]
        for r in first:
            dep.queue(r)
        assert requests_of(dep.tick()) == []
        inbox.put("late.eml", mails.newsletter(9, address))
        # A take run is waiting to start: it will list the inbox after its own three and take the late
        # one too, so the tick gives the late one no run of its own (it would be worked twice).
        waiting = dep.tick()
        assert requests_of(waiting) == []
        assert "a take run is taking what arrives" in (waiting.skip_reason.skip_message or "")
        assert dep.rows() == []  # only runs register
        (take,) = [r for r in first if r.job_name == "take_inbox"]
        assert dep.run(take).success
        from inbox_pipeline.db.intake import get_inbound

        with dep.pipeline().sessions() as session:
            names = sorted(get_inbound(session, r[0]).storage_key.rsplit("/", 1)[-1] for r in dep.rows())
        assert names == ["late.eml", "q0.eml", "q1.eml", "q2.eml"]


def test_a_burst_gets_its_workers_a_few_a_tick_up_to_the_mail_run_limit(monkeypatch, tmp_path) -> None:
    """Starting every worker at once would slow them all (each run process spends its first second
    or two starting): a tick adds at most WORKERS_PER_TICK, none while a take run goes, and the next
    ticks add more while work is due."""
    from inbox_pipeline.defs.common import DEFAULT_MAIL_RUNS
    from inbox_pipeline.services.work import WORKERS_PER_TICK

    assert DEFAULT_MAIL_RUNS > WORKERS_PER_TICK  # the harness's instance: 4 runs may send mail
    with deployment(monkeypatch, tmp_path) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        for n in range(60):
            dep.pipeline().inbox.put(f"m{n:02}.eml", mails.newsletter(n, address))
        first = requests_of(dep.tick())
        assert [r.job_name for r in first] == ["take_inbox"] + ["process_inbox_batch"] * WORKERS_PER_TICK
        take, *workers = first
        for r in workers:
            dep.queue(r)  # created by the daemon, starting
        assert dep.run(take).success  # 60 queued: work for six workers, four may send mail
        another_take = dep.queue(take)  # say the next burst's take run is going
        assert requests_of(dep.tick()) == []  # workers start after it: it has the machine busiest
        dep.instance.delete_run(another_take.run_id)
        second = requests_of(dep.tick())
        assert [r.job_name for r in second] == ["process_inbox_batch"] * (DEFAULT_MAIL_RUNS - WORKERS_PER_TICK)
        assert len({r.run_key for r in first[1:] + second}) == DEFAULT_MAIL_RUNS  # each a new run
        for r in second:
            dep.queue(r)
        waiting = dep.tick()
        assert requests_of(waiting) == []  # at the limit: more would only wait in Dagster's queue
        assert "60 queued" in (waiting.skip_reason.skip_message or "")


def test_a_run_killed_between_register_and_archive_is_retaken_by_its_retry_same_row(monkeypatch, tmp_path) -> None:
    """A run killed after registering but before archiving: its retry (or re-execution) finishes the job."""
    from inbox_pipeline.db.intake import register_inbound

    with deployment(monkeypatch, tmp_path) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        data = mails.newsletter(1, address)
        inbox = dep.pipeline().inbox
        inbox.put("m1.eml", data)
        (request,) = requests_of(dep.tick())
        (obj,) = inbox.list_pending(10)
        with dep.pipeline().sessions.begin() as session:  # what the killed attempt had done
            row, created = register_inbound(
                session, storage_key="m1.eml", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                received_at=obj.last_modified,
            )
            first_id = row.id
        result = dep.run(request)
        assert result.success and dep.emails_of(result) == [first_id]
        assert inbox.list_pending(10) == []
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
        assert sorted(i for r in runs for i in dep.emails_of(r)) == sorted(r[0] for r in dep.rows())
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
            (request,) = requests_of(dep.tick())
            spent = proxy.bytes_down - before
            assert dep.run(request).success
            return spent

        first = one_tick_bytes("first")
        # Many emails arrive in the same second, all are taken.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: inbox.put(f"burst-{n:03d}", mails.newsletter(n, address)), range(80)))
        burst = requests_of(dep.tick())
        assert sum(len(requested_emails(r)) for r in burst) == 80
        assert all(dep.run(r).success for r in burst)
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
    with deployment(monkeypatch, tmp_path, INBOX=inbox_uri, RECONCILE_SECONDS="600") as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox

        def tick_and_run(at: float | None = None) -> list[str]:
            """The inbox keys the tick's runs took (each run executed, as the daemon would); the
            tick at ``at`` (its clock standing still there) if given."""
            with time_machine.travel(at, tick=False) if at is not None else contextlib.nullcontext():
                requests = requests_of(dep.tick())
            keys = []
            for request in requests:
                keys.append(request.tags["inbox-pipeline/inbox-key"])
                assert dep.run(request).success
            return keys

        inbox.put("before-the-queue", mails.newsletter(1, address))  # never announced
        event_queue.notify(s3_bucket)

        tick_at = time.time()
        assert tick_and_run(at=tick_at) == ["before-the-queue"]  # no cursor yet: reconcile
        reconciled_at = json.loads(dep.cursors["inbox_sensor"])["reconciled_at"]
        assert reconciled_at == tick_at  # the tick's own time

        event_queue.stop_notifying(s3_bucket)
        inbox.put("lost", mails.newsletter(2, address))  # its notification is lost
        event_queue.notify(s3_bucket)
        inbox.put("announced", mails.newsletter(3, address))
        assert tick_and_run() == ["announced"]  # within the interval: the queue only
        assert json.loads(dep.cursors["inbox_sensor"])["reconciled_at"] == reconciled_at
        assert tick_and_run() == []

        dep.cursors["inbox_sensor"] = json.dumps({"reconciled_at": time.time() - 601})  # the interval has passed
        assert tick_and_run() == ["lost"]  # the listing finds it
        assert json.loads(dep.cursors["inbox_sensor"])["reconciled_at"] > reconciled_at

        event_queue.stop_notifying(s3_bucket)
        inbox.put("lost-again", mails.newsletter(4, address))
        dep.cursors["inbox_sensor"] = "garbled"  # an unreadable cursor means: reconcile now
        assert tick_and_run() == ["lost-again"]
        json.loads(dep.cursors["inbox_sensor"])

        assert sorted(r[1] for r in dep.rows()) == ["delivered"] * 4
        assert inbox.list_pending(10) == []
        # An announcement stays in the queue until its object is archived; the first tick that
        # reads it again (after the queue's visibility timeout) deletes it. (Real ticks may
        # already have outlasted the timeout: then the queue is empty already.)
        with event_queue.past_visibility_timeout():
            assert tick_and_run() == []
            assert event_queue.messages() == 0


def test_the_sensor_description_says_where_new_emails_come_from(monkeypatch, tmp_path) -> None:
    from inbox_pipeline.definitions import build_definitions

    def description(**values: str) -> str:
        configure(monkeypatch, tmp_path, **values)
        return build_definitions().get_repository_def().get_sensor_def("inbox_sensor").description

    assert "lists the inbox" in description()
    announced = description(INBOX="s3://bucket/incoming/?queue=inbox-events", RECONCILE_SECONDS="900")
    assert "S3 event notifications on an SQS queue" in announced and "every 900 s" in announced
    assert "every 600 s" in description(INBOX="s3://bucket/incoming/?queue=inbox-events")


PREVIEW = """
mutation Preview($selector: SensorSelector!, $cursor: String) {
  sensorDryRun(selectorData: $selector, cursor: $cursor) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { runRequests { runKey jobName } skipReason error { message } }
    }
    ... on PythonError { message }
  }
}
"""


@pytest.mark.parametrize("inbox", ["folder", "s3+queue"])
def test_previewing_a_tick_in_the_ui_changes_no_row_object_or_run(monkeypatch, tmp_path, inbox, request) -> None:
    """The UI's "Preview tick result" (GraphQL sensorDryRun, through the workspace the webserver
    loads) shows the runs a tick would request and changes nothing; the real tick then takes all."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    from inbox_pipeline_tests.e2e.conftest import ROOT

    values = {}
    if inbox == "s3+queue":
        bucket, queue = request.getfixturevalue("s3_bucket"), request.getfixturevalue("event_queue")
        queue.notify(bucket)
        values["INBOX"] = f"s3://{bucket}/incoming/?queue={queue.url}"
    with deployment(monkeypatch, tmp_path, **values) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox_seam = dep.pipeline().inbox
        for n in range(2):
            inbox_seam.put(f"m{n}.eml", mails.newsletter(n, address))
        pending = [o.key for o in inbox_seam.list_pending(10)]

        selector = {"repositoryLocationName": "inbox_pipeline", "repositoryName": "__repository__",
                    "sensorName": "inbox_sensor"}
        with in_process_workspace(dep.instance, ROOT / "workspace.yaml") as ws:
            for _ in range(2):  # previewed twice: the same answer, nothing consumed
                result = execute_dagster_graphql(ws.create_request_context(), PREVIEW, {"selector": selector, "cursor": None})
                preview = result.data["sensorDryRun"]
                assert preview["__typename"] == "DryRunInstigationTick", preview
                evaluation = preview["evaluationResult"]
                assert evaluation["error"] is None, evaluation["error"]
                assert [r["jobName"] for r in evaluation["runRequests"]] == ["take_inbox", "process_inbox_batch"]

        assert dep.rows() == []
        assert [o.key for o in inbox_seam.list_pending(10)] == pending
        assert dep.instance.get_runs() == []

        real = requests_of(dep.tick())
        assert [r.run_key for r in real] == [r["runKey"] for r in evaluation["runRequests"]]
        assert all(dep.run(r).success for r in real)
        assert sorted(r[1] for r in dep.rows()) == ["delivered"] * 2
        assert inbox_seam.list_pending(10) == []


def test_poison_names_go_through_the_sensor_and_their_run_under_plain_names(monkeypatch, tmp_path) -> None:
    """A backslash and a file name that is not UTF-8: requested, taken, delivered, never stuck."""
    with deployment(monkeypatch, tmp_path) as dep:
        address = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox
        inbox.path.mkdir(parents=True, exist_ok=True)
        for n, name in enumerate([b"back\\slash.eml", b"caf\xe9.eml"]):
            with open(bytes(inbox.path) + b"/" + name, "wb") as fh:
                fh.write(mails.newsletter(n, address))

        requests = requests_of(dep.tick())
        assert all(value.isprintable() for r in requests for value in [r.run_key, *r.tags.values()])
        assert all(dep.run(r).success for r in requests)

        assert [r[1] for r in dep.rows()] == ["delivered", "delivered"]
        assert inbox.list_pending(10) == [] and requests_of(dep.tick()) == []
