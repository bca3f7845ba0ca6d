"""Process entry point for the two-process pacing test (spawned: each has its own engine)."""

from __future__ import annotations

from typing import Any


def send_worker(url: str, start: Any, results: Any, index: int, arg: tuple[str, int, float | None]) -> None:
    """Send ``count`` messages through the paced SMTP mailer; report how long each was held back
    and the sleeps it was told to take. With ``now`` the clock stands still there and the sleeps are
    only recorded; without it the mailer keeps the real clock."""
    from email.message import EmailMessage

    from inbox_pipeline.services.context import Pipeline, PipelineOptions

    smtp_url, count, now = arg
    try:
        pipeline = Pipeline(url, "", "", smtp_url, PipelineOptions(sender="kindle@news.example", send_rate=10))
        mailer = pipeline.mailer
        slept: list[float] = []
        if now is not None:
            mailer.clock, mailer.sleep = (lambda: now), slept.append
        start.wait(timeout=60)
        paced = []
        for n in range(count):
            message = EmailMessage()
            message["To"] = f"reader{index}@kindle.example"
            message["Subject"] = f"process {index} message {n}"
            message.set_content("paced")
            paced.append(mailer.send(message).paced_seconds)
        results.put((index, (paced, slept)))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((index, f"error: {type(exc).__name__}: {exc}"))
