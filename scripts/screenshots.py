#!/usr/bin/env python3
"""Screenshots of the Dagster UI for the README: the asset graph and one run.

Starts the local default (scripts/dev.sh, in a temporary folder so your own
state is untouched), waits until the runs taking the four sample newsletters
succeed (a take run queues them and a worker run delivers them), then
has headless Chromium (Debian's package; installed with apt-get when missing)
photograph the pages into docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("chromium") or sys.exit("chromium could not be installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.load(urllib.request.urlopen(request, timeout=10))["data"]


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(1)
    sys.exit(f"timed out waiting for {what}")


def shoot(browser: str, url: str, out: Path, size: str = "1600,1000") -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                "--virtual-time-budget=20000",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="inbox-pipeline-shots-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INBOX_PIPELINE_", "DAGSTER_"))}
        env.update(
            INBOX_PIPELINE_DATA_DIR=f"{tmp}/data",
            DAGSTER_HOME=f"{tmp}/dagster_home",
            INBOX_PIPELINE_FETCH_IMAGES="false",
            PORT=str(port),
        )
        log = open(Path(tmp) / "dev.log", "wb")
        proc = subprocess.Popen(
            ["bash", "scripts/dev.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            runs_query = "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"

            def emails_of(run: dict) -> int:
                """The emails a run delivered or worked on: a worker run's email-ids, a per-email run's one."""
                tags = {t["key"]: t["value"] for t in run["tags"]}
                ids = [i for i in tags.get("inbox-pipeline/email-ids", "").split(",") if i]
                return len(ids) or (1 if "inbox-pipeline/email-id" in tags else 0)

            def samples_done():
                runs = graphql(port, runs_query)["runsOrError"]["results"]
                done = sum(emails_of(r) for r in runs) >= 4 and all(r["status"] == "SUCCESS" for r in runs)
                return done and runs

            runs = wait(samples_done, 300, "the sample newsletters' runs to succeed")
            graphql(port, "mutation { setNuxSeen }")  # no "join the community" dialog over the pictures
            shown = max(runs, key=emails_of)  # the worker run that delivered the samples
            shoot(browser, f"http://127.0.0.1:{port}/asset-groups", args.out / "asset-graph.png")
            shoot(browser, f"http://127.0.0.1:{port}/runs/{shown['runId']}", args.out / "run.png")
            shoot(browser, f"http://127.0.0.1:{port}/runs", args.out / "runs.png", size="1600,700")
        except SystemExit:
            log.flush()
            print((Path(tmp) / "dev.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
