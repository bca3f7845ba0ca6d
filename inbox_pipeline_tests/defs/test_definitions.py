"""The code location loads, and has every job, sensor, asset and check, described and wired."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from inbox_pipeline_tests.defs.harness import configure
from inbox_pipeline_tests.helpers import instance_config, retry_policy_of

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_OPS = [
    "parse_email",
    "route_email",
    "forward_confirmation",
    "read_kindle_notice",
    "record_newsletter",
    "clean_html",
    "embed_images",
    "build_epub",
    "store_epub",
    "check_epub",
    "deliver_to_kindle",
]
LINEAGE = ["inbox_email", "newsletter", "cleaned_html", "epub", "kindle_delivery"]


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dg.Definitions:
    configure(monkeypatch, tmp_path, RETRY_DELAY_SECONDS="7", SENSOR_INTERVAL_SECONDS="3", MAX_EMAILS_PER_TICK="11")
    from inbox_pipeline.definitions import build_definitions

    return build_definitions()


def test_the_module_level_definitions_load_and_validate() -> None:
    from inbox_pipeline import definitions

    loaded = definitions.defs()  # a @dg.definitions function: importing the module built nothing
    dg.Definitions.validate_loadable(loaded)
    repo = loaded.get_repository_def()
    assert "process_email" in {job.name for job in repo.get_all_jobs()}


def test_jobs_sensors_schedules_assets_and_checks_are_all_there(defs: dg.Definitions) -> None:
    repo = defs.get_repository_def()
    jobs = {job.name: job for job in repo.get_all_jobs() if not job.name.startswith("__")}
    assert {"process_email", "compile_digests", "clean_up_expired"} <= set(jobs)
    assert {s.name for s in repo.schedule_defs} == {"digest_schedule", "cleanup_schedule", "kindle_rejection_rate_schedule"}
    sensors = {s.name: s for s in repo.sensor_defs}
    assert {"inbox_sensor", "email_run_failure_sensor"} <= set(sensors)
    for schedule in repo.schedule_defs:
        assert schedule.job_name in jobs, schedule.name
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert set(LINEAGE) | {"digest"} <= set(specs)
    for upstream, downstream in zip(LINEAGE, LINEAGE[1:]):
        assert [d.asset_key.to_user_string() for d in specs[downstream].deps] == [upstream]
    checks = defs.resolve_asset_graph().asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey("epub"), "kindle_ready") in checks
    from inbox_pipeline.defs.email.assets import epub_kindle_ready

    (check_spec,) = epub_kindle_ready.check_specs
    assert check_spec.blocking and check_spec.description
    rate = dg.AssetCheckKey(dg.AssetKey("kindle_delivery"), "amazon_rejection_rate")
    assert rate in checks  # warns, never blocks (tests/defs/test_kindle_notice_runs.py)


def test_everything_is_described_and_running_by_default(defs: dg.Definitions) -> None:
    repo = defs.get_repository_def()
    job = defs.get_job_def("process_email")
    assert job.description and "Message-ID" in job.description
    for other in repo.get_all_jobs():
        assert other.name.startswith("__") or other.description, other.name
    for sensor in repo.sensor_defs:
        assert sensor.description, sensor.name
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name
    for schedule in repo.schedule_defs:
        assert schedule.description, schedule.name
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, spec.key
    for node in job.graph.node_defs:
        assert node.description, node.name


def test_op_names_read_like_the_pipeline(defs: dg.Definitions) -> None:
    job = defs.get_job_def("process_email")
    names = [node.name for node in job.graph.nodes]
    assert sorted(names) == sorted(EXPECTED_OPS)
    deps = job.graph.dependency_structure
    upstream = {
        node.name: {h.node_name for h in deps.all_upstream_outputs_from_node(node.name)} for node in job.graph.nodes
    }
    assert upstream["route_email"] == {"parse_email"}
    assert upstream["forward_confirmation"] == {"parse_email", "route_email"}
    assert upstream["read_kindle_notice"] == {"route_email"}
    assert upstream["record_newsletter"] == {"parse_email", "route_email"}
    for before, after in [
        ("record_newsletter", "clean_html"),
        ("clean_html", "embed_images"),
        ("embed_images", "build_epub"),
        ("build_epub", "store_epub"),
        ("store_epub", "check_epub"),
        ("check_epub", "deliver_to_kindle"),
    ]:
        assert upstream[after] == {before}


def test_network_steps_retry_and_the_check_does_not(defs: dg.Definitions) -> None:
    job = defs.get_job_def("process_email")
    for name in EXPECTED_OPS:
        policy = retry_policy_of(job, name)
        if name == "check_epub":
            assert policy is None
            continue
        assert policy is not None, name
        assert (policy.max_retries, policy.delay) == (3, 7)
        assert policy.backoff == dg.Backoff.EXPONENTIAL
        assert policy.jitter == dg.Jitter.PLUS_MINUS
    assert job.tags.get("inbox-pipeline/sends") == "mail"
    sensor = defs.get_repository_def().get_sensor_def("inbox_sensor")
    assert sensor.minimum_interval_seconds == 3
    assert "11 pending emails" in sensor.description


def test_resources_follow_the_environment_and_hide_secret_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(
        monkeypatch,
        tmp_path,
        DATABASE_URL="postgresql+psycopg2://app:s3cret@db.internal:5432/app",
        MAILER="smtp://user:hunter2@relay.internal:587?starttls=true",
        INBOX="s3://mail-bucket/incoming/",
        STORAGE="s3://epub-bucket/books/",
        SENDER="kindle@news.example",
    )
    from inbox_pipeline.definitions import build_definitions

    resources = build_definitions().resources
    assert set(resources) == {"pipeline"}
    assert isinstance(resources["pipeline"].database_url, dg.EnvVar)
    assert resources["pipeline"].database_url.env_var_name == "INBOX_PIPELINE_DATABASE_URL"
    assert isinstance(resources["pipeline"].mailer, dg.EnvVar)
    assert resources["pipeline"].options.sender == "kindle@news.example"
    with dg.build_resources({"pipeline": resources["pipeline"]}) as built:  # as a run resolves them
        pipeline = built.pipeline.pipeline()
        assert pipeline.database_url.endswith("@db.internal:5432/app")
        assert type(pipeline.inbox).__name__ == "S3Inbox" and pipeline.inbox.bucket == "mail-bucket"
        assert type(pipeline.storage).__name__ == "S3Storage"
        assert type(pipeline.mailer).__name__ == "SmtpMailer"
        assert pipeline.options.sender == "kindle@news.example"


def test_local_defaults_are_folders_sqlite_and_an_outbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("INBOX_PIPELINE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INBOX_PIPELINE_DATA_DIR", str(tmp_path))
    from inbox_pipeline.definitions import build_definitions

    with dg.build_resources(build_definitions().resources) as built:
        pipeline = built.pipeline.pipeline()
        assert pipeline.database_url.startswith("sqlite:///")
        assert type(pipeline.inbox).__name__ == "FolderInbox"
        assert type(pipeline.storage).__name__ == "FolderStorage"
        assert type(pipeline.mailer).__name__ == "OutboxMailer"


def test_import_stays_light() -> None:
    """Loading the code location must not import the core's heavy libraries."""
    code = (
        "import sys, inbox_pipeline.definitions as d; d.defs().get_repository_def();"
        "print(','.join(sorted(m for m in ('ebooklib', 'PIL', 'lxml', 'bs4', 'boto3', 'sqlalchemy') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported at load time: {out.stdout.strip()}"


def test_workspace_pyproject_and_dagster_dev_agree_on_one_code_location() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"]["module_name"] == tool["module_name"] == "inbox_pipeline.definitions"
    assert entry["python_module"]["location_name"] == tool["code_location_name"] == "inbox_pipeline"
    dev = (ROOT / "scripts" / "dev.sh").read_text()
    assert "dagster dev" in dev and "-w " not in dev and "-m " not in dev.split("dagster dev", 1)[1].splitlines()[0]


def test_the_local_instance_file_passes_dagster_schema() -> None:
    config = instance_config(ROOT)  # the top-level dagster.yaml, scripts/dev.sh's
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1


def test_deferred_notices_are_checked_within_a_third_of_a_short_grace(monkeypatch, tmp_path: Path) -> None:
    from inbox_pipeline.definitions import build_definitions

    def retry_interval(**values: str) -> int:
        configure(monkeypatch, tmp_path, **values)
        return build_definitions().get_sensor_def("notification_retry_sensor").minimum_interval_seconds

    assert retry_interval() == 300  # the default 30 min grace
    assert retry_interval(NOTICE_GRACE_MINUTES="1.5") == 30


def test_every_setting_reaches_what_it_configures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    configure(
        monkeypatch,
        tmp_path,
        CLEANUP_CRON="15 2 * * *",
        WATCHDOG_INTERVAL_SECONDS="45",
        WATCHDOG_STALL_SECONDS="120",
        OPERATOR_EMAIL="ops@example.net",
        NOTICE_GRACE_MINUTES="12",
        SIZE_BUDGET_BYTES="1000000",
    )
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    from datetime import timedelta

    from inbox_pipeline.definitions import build_definitions

    defs = build_definitions()
    repo = defs.get_repository_def()
    assert repo.get_schedule_def("cleanup_schedule").cron_schedule == "15 2 * * *"
    watchdog = repo.get_sensor_def("deployment_watchdog")
    assert watchdog.minimum_interval_seconds == 45 and "silent for 2 min" in watchdog.description
    options = defs.resources["pipeline"].options
    assert options.operator_email == "ops@example.net"
    assert options.notice_grace == timedelta(minutes=12)
    assert options.size_budget_bytes == 1_000_000
    assert options.aws_region == "eu-west-1"


def test_the_pipeline_resource_closes_its_database_connections_after_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sqlalchemy import text

    configure(monkeypatch, tmp_path)
    from inbox_pipeline.definitions import build_definitions

    with dg.build_resources(build_definitions().resources) as built:  # as a run or a sensor tick
        pipeline = built.pipeline.pipeline()
        with pipeline.sessions() as session:
            assert session.execute(text("select 1")).scalar() == 1
        engine = pipeline.sessions.kw["bind"]
        assert engine.pool.checkedin() == 1  # pooled for the run's next step
    assert engine.pool.checkedin() == 0  # closed with the run, not kept by the process
