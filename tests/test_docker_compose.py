"""docker-compose.yml (Docker cannot run here): its services, and that it passes web and worker only
variables settings.py reads, including the ones production requires."""

import re
from pathlib import Path

import pytest
import yaml

from tests.test_configuration import settings_variables

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
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


# --- production hardening: pinned images, no default password, healthchecks, non-root ---------
PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+(\.\d+)?([-.][a-z0-9.]+)*$")


def test_every_image_is_pinned_to_a_specific_version(compose):
    images = {name: svc["image"] for name, svc in compose["services"].items() if "image" in svc}
    assert {"postgres", "redis", "proxy"} <= set(images)
    for name, image in images.items():
        assert PINNED.match(image), f"{name}: {image} is a floating tag"
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M).group(1)
    assert PINNED.match(base) and base.startswith("python:3.11."), base


def test_there_is_no_default_database_password():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:-" not in text
    assert text.count("${POSTGRES_PASSWORD:?") == 2  # the server's and the app's


def test_compose_refuses_to_start_without_the_database_password(compose):
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["web"]["environment"]["DATABASE_URL"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_have_a_healthcheck(compose, service):
    check = compose["services"][service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1
    assert {"interval", "timeout", "retries"} <= set(check)


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck():
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*web\.health", DOCKERFILE, re.M)


def test_compose_trusts_its_one_proxy_for_client_addresses(compose):
    assert compose["services"]["web"]["environment"]["PROXY_COUNT"] == "1"
