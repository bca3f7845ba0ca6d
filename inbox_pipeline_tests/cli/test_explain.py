"""What the operator sees about emails after real runs: ``explain``, ``status`` with reasons, the run list.

Emails go through the inbox sensor and real batch and per-email runs on a
test Dagster instance (``DAGSTER_HOME`` points at it, as on a deployment);
then the commands are run as an operator would.
"""

from __future__ import annotations

import dagster as dg
import pytest

from inbox_pipeline.cli import main
from inbox_pipeline_tests.defs import mails
from inbox_pipeline_tests.defs.harness import Deployment, add_reader, deployment, job_for
from inbox_pipeline_tests.helpers import email_message


def with_missing_image(to: str) -> bytes:
    """A newsletter whose picture points at an inline part that is not there: the image is dropped."""
    msg = email_message(
        sender='"Harbour Notes" <letters@harbour.example>', to=to, subject="Harbour notes: the crane",
        date="Tue, 03 Mar 2026 09:00:00 +0000", message_id="<crane-1@harbour.example>", text="The crane.",
    )
    paragraphs = "".join(f"<p>Paragraph {k} about the old harbour crane and the men who ran it.</p>" for k in range(8))
    msg.add_alternative(
        f'<html><body><h1>The crane</h1><img src="cid:crane-photo@harbour" alt="The crane">{paragraphs}</body></html>',
        subtype="html",
    )
    return msg.as_bytes()


def reexecute_as_the_ui_does(dep: Deployment, parent_id: str) -> dg.ExecuteJobResult:
    """All steps again, with the tags the UI's re-execute gives the new run: the parent's, as they are
    now (tags added while it ran included), and Dagster's parent and root run ids."""
    parent = dep.instance.get_run_by_id(parent_id)
    tags = {**parent.tags, "dagster/parent_run_id": parent_id, "dagster/root_run_id": parent.root_run_id or parent_id}
    with dg.execute_job(
        job_for(parent.job_name),
        instance=dep.instance,
        reexecution_options=dg.ReexecutionOptions(parent_run_id=parent_id),
        tags=tags,
        raise_on_error=False,
    ) as result:
        return result


@pytest.fixture
def run_cli(capsys):
    def run(*args: str) -> str:
        code = main(list(args))
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    return run


def test_explain_status_and_the_run_list_tell_each_emails_story(monkeypatch, tmp_path, run_cli) -> None:
    with deployment(monkeypatch, tmp_path) as dep:
        alice = add_reader(dep, "alice@example.org", kindle="alice_k@kindle.example")
        inbox = dep.pipeline().inbox
        inbox.put("a1.eml", mails.newsletter(1, alice))
        inbox.put("a1-again.eml", mails.newsletter(1, alice))  # same Message-ID: a duplicate
        inbox.put("stray.eml", mails.newsletter(2, "nobody-zzzz@in.example"))
        inbox.put("crane.eml", with_missing_image(alice))
        take, batch = dep.drain()  # a take run queued them, a worker run worked the queue
        assert take.success and batch.success
        again = reexecute_as_the_ui_does(dep, batch.run_id)  # decides and sends nothing twice
        assert again.success
        inbox.put("stray-2.eml", mails.newsletter(3, "somebody-else@in.example"))  # alone: a per-email run
        (single,) = dep.drain()
        assert single.success
        ids = {subject: i for i, _, _, subject in dep.rows()}
        rows = {i: (state, reason) for i, state, reason, _ in dep.rows()}

        # The run list: a worker run lists what did not go to a Kindle; a per-email run says its outcome and why.
        (stray_id,) = [i for i, _, _, subject in dep.rows() if subject == mails.subject(2)]
        (duplicate_id,) = [i for i, state, _, _ in dep.rows() if state == "duplicate"]
        outcomes = f"duplicate: e{duplicate_id}; unroutable: e{stray_id}"
        assert dep.instance.get_run_by_id(batch.run_id).tags["inbox-pipeline/outcomes"] == outcomes
        assert dep.instance.get_run_by_id(again.run_id).tags["inbox-pipeline/outcomes"] == outcomes  # not twice
        tags = dep.instance.get_run_by_id(single.run_id).tags
        assert tags["inbox-pipeline/outcome"] == "unroutable"
        assert "somebody-else@in.example" in tags["inbox-pipeline/reason"]

        # The epub materialization says how many images were dropped and why.
        records = dep.instance.fetch_materializations(dg.AssetKey("epub"), limit=10).records
        crane = next(r for r in records if r.asset_materialization.metadata["subject"].value == "Harbour notes: the crane")
        metadata = crane.asset_materialization.metadata
        assert metadata["images_dropped"].value == 1
        assert "crane-photo@harbour" in metadata["images_dropped_reasons"].value

        # explain by id: state, reason, the delivery, the take run, and the worker run with what it reported.
        (delivered_id,) = [i for i, state, _, subject in dep.rows() if subject == mails.subject(1) and state == "delivered"]
        out = run_cli("explain", str(delivered_id))
        assert f"inbound email #{delivered_id}: {mails.subject(1)}" in out
        assert "state:       delivered" in out
        assert "to alice_k@kindle.example: sent, attempt 1" in out
        assert f"{batch.run_id} process_inbox_batch: SUCCESS" in out
        assert f"{take.run_id} take_inbox: SUCCESS" in out and "took it from the inbox and queued it" in out
        assert f"    inbox_email: {mails.subject(1)}" in out and "    kindle_delivery: " in out
        assert f"{again.run_id} process_inbox_batch: SUCCESS" in out and f"re-execution of {batch.run_id}" in out

        # explain by Message-ID: the newsletter and its duplicate, each with its story.
        out = run_cli("explain", f"<{mails.message_id(1)}>")
        assert f"inbound email #{delivered_id}:" in out and f"inbound email #{duplicate_id}:" in out
        assert f"duplicate of #{delivered_id} (delivered)" in out
        assert "same Message-ID" in out

        # explain an unroutable email of a per-email run: the reason, no deliveries, the run's outcome.
        stray = ids[mails.subject(3)]
        out = run_cli("explain", f"#{stray}")
        assert "state:       unroutable" in out and rows[stray][1] in out
        assert "deliveries: none" in out and "notices to the user: none" in out
        assert f"{single.run_id} process_email: SUCCESS" in out
        assert f"outcome unroutable: {rows[stray][1]}" in out

        # status: counts, and for each state the reasons behind it with example ids.
        out = run_cli("status")
        lines = out.splitlines()
        unroutable = lines.index(next(line for line in lines if line.strip().startswith("unroutable")))
        assert lines[unroutable].split() == ["unroutable", "2"]
        reasons = lines[unroutable + 1 : unroutable + 3]
        assert all(line.startswith("      1 x ") for line in reasons)
        assert any("somebody-else@in.example" in line and f"(#{stray})" in line for line in reasons)
        duplicate = next(i for i, line in enumerate(lines) if line.strip().startswith("duplicate"))
        assert "same Message-ID" in lines[duplicate + 1] and f"#{duplicate_id}" in lines[duplicate + 1]
        assert not any("sent to Kindle" in line for line in lines)  # delivered emails' reasons are not news

        # No Kindle yet: the run says so; the operator sets one and re-executes the run: delivered.
        bob = add_reader(dep, "bob@example.org")
        inbox.put("b1.eml", mails.newsletter(4, bob))
        (waiting,) = dep.drain()
        tags = dep.instance.get_run_by_id(waiting.run_id).tags
        assert tags["inbox-pipeline/outcome"] == "no_kindle" and "Kindle" in tags["inbox-pipeline/reason"]
        run_cli("kindle", "set", "bob@example.org", "bob_k@kindle.example", "--no-verify")
        resent = reexecute_as_the_ui_does(dep, waiting.run_id)
        tags = dep.instance.get_run_by_id(resent.run_id).tags
        assert tags["inbox-pipeline/outcome"] == "sent" and tags["inbox-pipeline/reason"] == "-"  # not the parent's
        out = run_cli("explain", mails.message_id(4))
        assert "state:       delivered" in out and "to bob_k@kindle.example: sent" in out
        assert f"{waiting.run_id} process_email: SUCCESS" in out and "outcome no_kindle: " in out
        assert f"{resent.run_id} process_email: SUCCESS" in out and "outcome sent" in out
        assert "notices to the user: 1" in out and "no_kindle" in out

        code = main(["explain", "no-such-message@nowhere.example"])
        assert code == 2
