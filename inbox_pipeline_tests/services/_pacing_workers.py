"""Process entry point for the two-process pacing test (spawned: each has its own engine)."""

from __future__ import annotations

from typing import Any


def send_worker(url: str, start: Any, results: Any, index: int, arg: tuple[str, int]) -> None:
    """Send ``count`` messages through the paced SMTP mailer; report how long each was held back."""
    from email.message import EmailMessage

    from inbox_pipeline.services.context import Pipeline, PipelineOptions

    smtp_url, count = arg
    try:
        pipeline = Pipeline(url, "", "", smtp_url, PipelineOptions(sender="kindle@news.example", send_rate=10))
        mailer = pipeline.mailer
        start.wait(timeout=60)
        paced = []
        for n in range(count):
            message = EmailMessage()
            message["To"] = f"reader{index}@kindle.example"
            message["Subject"] = f"process {index} message {n}"
            message.set_content("paced")
            paced.append(mailer.send(message).paced_seconds)
        results.put((index, paced))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((index, f"error: {type(exc).__name__}: {exc}"))
