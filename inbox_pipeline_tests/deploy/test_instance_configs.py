"""The production instance files are accepted by Dagster's own config schema.

The production file is also loaded for real against PostgreSQL; the ECS and
Kubernetes run launchers' sections are checked against those launchers' own
config schemas (dagster-aws, dagster-k8s).
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from inbox_pipeline_tests.helpers import config_errors, instance_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
FILES = ["production", "ecs", "kubernetes"]


def load(folder: str):
    """deploy/<folder>/dagster.yaml; "local": the top-level dagster.yaml that scripts/dev.sh uses."""
    return instance_config(ROOT if folder == "local" else DEPLOY / folder)


@pytest.mark.parametrize("folder", FILES)
def test_instance_file_passes_dagster_schema(folder: str) -> None:
    config = load(folder)
    storage = config["storage"]["custom"]
    assert (storage["module"], storage["class"]) == ("inbox_pipeline.defs.instance_storage", "PooledPostgresStorage")
    assert "postgres_db" in storage["config"]
    assert_like_production(config)
    # Queued runs launch side by side, and sensors tick in threads, as benchmarks/e2e.py measures.
    assert config["run_coordinator"]["config"]["dequeue_use_threads"] is True
    assert config["sensors"]["use_threads"] is True


def assert_like_production(config: dict) -> None:
    """What every instance file shares with production: the mail-run limit, retries, monitoring, and the
    run queue looked at every second (Dagster's default, 5 s, would add up to 5 s to each email's latency)."""
    coordinator = config["run_coordinator"]
    assert coordinator["class"] == "QueuedRunCoordinator" and coordinator["config"]["dequeue_interval_seconds"] == 1
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "inbox-pipeline/sends", "value": "mail"}.items() <= limits[0].items()
    assert config["run_retries"]["enabled"] is True
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert config["run_monitoring"]["enabled"] is True


def test_the_local_default_behaves_like_production(tmp_path: Path) -> None:
    """The top-level dagster.yaml (scripts/dev.sh's) queues, retries and monitors runs as production does."""
    from dagster import DagsterInstance

    assert_like_production(load("local"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    instance = DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    finally:
        instance.dispose()


@pytest.mark.parametrize("folder", FILES)
def test_run_launcher_config_passes_the_launchers_schema(folder: str) -> None:
    launcher = load(folder).get("run_launcher") or {"module": "dagster", "class": "DefaultRunLauncher"}
    cls = getattr(importlib.import_module(launcher["module"]), launcher["class"])
    assert config_errors(cls.config_type(), launcher.get("config") or {}) == []


def test_a_misspelt_key_is_refused() -> None:
    """The schema checks above can fail: a typo in the launcher config is caught."""
    from dagster_aws.ecs import EcsRunLauncher

    assert config_errors(EcsRunLauncher.config_type(), {"task_defintion": "x"})


def test_production_instance_runs_on_postgres(postgres_url: str, tmp_path: Path, monkeypatch) -> None:
    import dagster as dg
    from dagster import DagsterInstance

    url = make_url(postgres_url)
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    monkeypatch.setenv("DAGSTER_PG_DB", url.database)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "production" / "dagster.yaml", home / "dagster.yaml")
    instance = DagsterInstance.from_config(str(home))
    try:
        assert instance.get_runs() == []
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_retries_enabled
        assert instance.run_monitoring_enabled
        # Events are written over one kept connection, not a new one each (dagster-postgres's default).
        backends = []
        for n in range(5):
            instance.report_runless_asset_event(dg.AssetMaterialization("pooled", description=f"write {n}"))
            backends.append(_backends(postgres_url, url.database))
        assert len(instance.fetch_materializations(dg.AssetKey("pooled"), limit=10).records) == 5
        assert len(set(backends)) == 1 and len(backends[0]) >= 1, backends
    finally:
        instance.dispose()
    assert _backends(postgres_url, url.database) == frozenset(), "disposing the instance closes them"


def _backends(admin_url: str, database: str) -> frozenset[int]:
    """The server processes (connections) open on ``database`` but this query's own."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url)
    try:
        with engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
                {"db": database},
            )
            return frozenset(pids.scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize("folder", [*FILES, "local"])
def test_every_instance_ends_stuck_runs(folder: str) -> None:
    """Run monitoring applies the jobs' dagster/max_runtime tags, and this default to the rest."""
    monitoring = load(folder)["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["max_runtime_seconds"] <= 2 * 60 * 60
