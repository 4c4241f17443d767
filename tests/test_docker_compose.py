"""docker-compose.yml (Docker cannot run here): its services, and that it passes web and worker only
variables settings.py reads, including the ones production requires."""

from pathlib import Path

import pytest
import yaml

from tests.test_configuration import settings_variables

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_IN_PRODUCTION = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"}
APP_SERVICES = ("web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services(compose):
    assert {"postgres", "redis", "web", "worker"} <= set(compose["services"])
    assert "gunicorn" in str(compose["services"]["web"]["command"])
    assert "celery" in str(compose["services"]["worker"]["command"])
    # Scalable with --scale worker=N: no fixed container name or host port on the worker.
    assert "container_name" not in compose["services"]["worker"]
    assert "ports" not in compose["services"]["worker"]


def test_compose_runs_exactly_one_beat(compose):
    beats = [name for name, svc in compose["services"].items() if "beat" in (svc.get("command") or [])]
    assert beats == ["beat"]
    assert "deploy" not in compose["services"]["beat"]  # no replicas: one scheduler


def test_web_runs_migrations_and_collectstatic_at_start(compose):
    command = str(compose["services"]["web"]["command"])
    assert "migrate" in command and "collectstatic" in command


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_passes_only_variables_settings_reads(compose, service):
    env = compose["services"][service]["environment"]
    unknown = set(env) - settings_variables()
    assert not unknown, f"{service} passes variables settings.py never reads: {sorted(unknown)}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_sets_the_required_production_variables(compose, service):
    env = compose["services"][service]["environment"]
    missing = {name for name in REQUIRED_IN_PRODUCTION if not str(env.get(name, "")).strip()}
    assert not missing, f"{service} lacks {sorted(missing)}"
    assert str(env["DEBUG"]).lower() == "false"
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:")


def test_web_and_worker_share_the_media_volume(compose):
    def mounts(service):
        return {v.split(":")[0]: v.split(":")[1] for v in compose["services"][service]["volumes"]}

    web, worker = mounts("web"), mounts("worker")
    media_root = compose["services"]["web"]["environment"]["MEDIA_ROOT"]
    assert web["media"] == worker["media"] == media_root
