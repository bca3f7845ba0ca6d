"""deploy/production/workspace.yaml loads the code location from a real gRPC code server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from inbox_pipeline_tests.conftest import free_port
from inbox_pipeline_tests.e2e.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "deploy" / "production" / "workspace.yaml"


def test_the_production_workspace_loads_the_code_server(tmp_path: Path, monkeypatch) -> None:
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._grpc.client import DagsterGrpcClient

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
        client = DagsterGrpcClient(host="127.0.0.1", port=port)

        def answers() -> bool:
            assert server.poll() is None, server.stdout.read().decode(errors="replace")
            try:
                return client.ping("ready") is not None
            except Exception:  # noqa: BLE001 - not listening yet
                return False

        wait_for(answers, timeout=120, interval=0.5, what="the gRPC code server")
        monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "127.0.0.1")
        monkeypatch.setenv("DAGSTER_CODE_SERVER_PORT", str(port))
        (tmp_path / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
            with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as workspace:
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
