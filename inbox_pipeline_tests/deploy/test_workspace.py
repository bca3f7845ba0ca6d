"""deploy/production/workspace.yaml loads the code location from a real gRPC code server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg

from inbox_pipeline_tests.conftest import free_port
from inbox_pipeline_tests.e2e.conftest import wait_for
from inbox_pipeline_tests.helpers import in_process_workspace

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "deploy" / "production" / "workspace.yaml"


def test_the_production_workspace_loads_the_code_server(tmp_path: Path, monkeypatch) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INBOX_PIPELINE_", "DAGSTER_"))}
    env.update(INBOX_PIPELINE_DATA_DIR=str(tmp_path / "data"), INBOX_PIPELINE_FETCH_IMAGES="false")
    # The command docs/DEPLOY.md gives for the code location, on a free local port.
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "api", "grpc", "--module-name", "inbox_pipeline.definitions",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:

        def answers() -> bool:
            """The server listens once it has loaded the code location."""
            assert server.poll() is None, server.stdout.read().decode(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:  # not listening yet
                return False

        wait_for(answers, timeout=120, interval=0.5, what="the gRPC code server")
        monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "127.0.0.1")
        monkeypatch.setenv("DAGSTER_CODE_SERVER_PORT", str(port))
        (tmp_path / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
            with in_process_workspace(instance, WORKSPACE) as workspace:
                context = workspace.create_request_context()
                assert context.get_code_location_error("inbox_pipeline") is None
                location = context.get_code_location("inbox_pipeline")
                (repository,) = location.get_repositories().values()
                jobs = {job.name for job in repository.get_all_jobs()}
                sensors = {sensor.name for sensor in repository.get_sensors()}
                schedules = {schedule.name for schedule in repository.get_schedules()}
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert {"process_email", "process_inbox_batch", "compile_digests", "clean_up_expired"} <= jobs
    assert "inbox_sensor" in sensors
    assert {"digest_schedule", "cleanup_schedule"} <= schedules
