"""The book `inbox-pipeline convert` writes is the book the pipeline delivers, byte for byte.

The same email goes through the command and through the real jobs (one run per
email, and a batch run) to an SMTP server; the EPUB attached to the message
that arrives is compared with the file the command wrote.
"""

from __future__ import annotations

import re

import io
from pathlib import Path

import pytest
from PIL import Image

from inbox_pipeline.cli import main
from inbox_pipeline_tests.defs.harness import add_reader, deployment
from inbox_pipeline_tests.defs.test_pipeline import by_recipient, epub_attachment
from inbox_pipeline_tests.helpers import email_message, epub_text

KINDLE = "alice_k@kindle.example"


def orchard_newsletter(to: str) -> bytes:
    """A Substack-shaped issue with an inline picture, a remote one, and a link Kindle tooling rejects as written."""
    picture = io.BytesIO()
    Image.new("RGB", (120, 80), (40, 120, 60)).save(picture, "PNG")
    msg = email_message(
        sender='"Orchard Notes" <letters@orchard-notes.example>', to=to,
        subject="Orchard Notes #7: grafting old apple varieties onto young rootstock",
        date="Tue, 03 Mar 2026 07:15:00 +0000", message_id="<orchard-7@substack.example>", text="Orchard Notes #7",
        list_unsubscribe="<https://orchard-notes.example/unsubscribe?n=7>",
    )
    paragraphs = "".join(
        f"<p>Part {k}: the scions were cut in January and kept cold in damp sawdust until the sap rose in "
        f"the rootstock, which in a cold spring came three weeks late.</p>"
        for k in range(1, 6)
    )
    msg.add_alternative(
        '<html><body><table><tr><td>'
        '<p><a href="https://orchard-notes.substack.com/p/seven?view=browser">View in browser</a></p>'
        '<div class="body markup"><h1>Grafting in a cold spring</h1>'
        f'{paragraphs}<p><img src="cid:tree@orchard" alt="The grafted tree"></p>'
        '<p><img src="https://cdn.orchard-notes.example/row.jpg" alt="A row of young trees"></p>'
        '<p>The list of varieties is <a href="https://orchard-notes.example/search?tags[]=apple&amp;tags[]=old">'
        "in the archive</a>.</p></div>"
        '<p><a href="https://orchard-notes.substack.com/action/disable_email">Unsubscribe</a></p>'
        "</td></tr></table></body></html>",
        subtype="html",
    )
    msg.get_payload()[1].add_related(picture.getvalue(), "image", "png", cid="<tree@orchard>")
    return msg.as_bytes()


@pytest.mark.parametrize("batch_size", ["1", "20"], ids=["process_email", "process_inbox_batch"])
def test_the_delivered_book_is_the_book_convert_writes(monkeypatch, tmp_path: Path, smtp_sink, batch_size) -> None:
    with deployment(monkeypatch, tmp_path, MAILER=smtp_sink.url, BATCH_SIZE=batch_size) as dep:
        alice = add_reader(dep, "alice@example.org", kindle=KINDLE)
        raw = orchard_newsletter(alice)
        dep.pipeline().inbox.put("orchard.eml", raw)
        runs = dep.drain()
        assert runs and all(run.success for run in runs)
        assert [row[1] for row in dep.rows()] == ["delivered"]
        (message,) = by_recipient(smtp_sink)[KINDLE]
        name, delivered = epub_attachment(message)

    source = tmp_path / "orchard.eml"
    source.write_bytes(raw)
    preview = tmp_path / "preview.epub"
    assert main(["convert", str(source), "-o", str(preview), "--no-images"]) == 0

    text = epub_text(delivered)
    assert "the scions were cut in January" in text and "in the archive" in text
    assert "Unsubscribe" not in text
    # the delivery's token sits before the extension: Amazon's notices quote the name back
    assert re.fullmatch(r"2026-03-03-orchard-notes-7-grafting-old\.k-[a-z2-7]{16}\.epub", name), name
    assert delivered == preview.read_bytes()
