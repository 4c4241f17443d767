"""Every environment variable settings.py reads is documented in .env.example and the README, and
docker-compose.yml passes only variables settings.py reads (and the required ones to web and worker)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (ROOT / "mminstruct_site" / "settings.py").read_text()
ENV_READ = re.compile(
    r"""\benv(?:_int|_bool|_list)?\(\s*["']([A-Z][A-Z0-9_]*)["']|os\.environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']"""
)
REQUIRED_IN_PRODUCTION = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"}
APP_SERVICES = ("web", "worker")


def settings_variables() -> set[str]:
    names = {a or b for a, b in ENV_READ.findall(SETTINGS)}
    names.discard("DJANGO_SETTINGS_MODULE")
    return names


def test_settings_reads_the_variables_this_test_knows_how_to_find():
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "OPENAI_API_KEY",
        "IMAGE_MAX_PIXELS",
    } <= settings_variables()


def test_every_settings_variable_is_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    missing = settings_variables() - documented
    assert not missing, f"add these to .env.example with a comment: {sorted(missing)}"


def test_every_env_example_variable_has_a_comment_above_it():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert i > 0 and lines[i - 1].startswith("#"), f"{line} has no comment"


def test_every_settings_variable_is_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    in_table = set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`", section, re.M))
    missing = settings_variables() - in_table
    assert not missing, f"add these to the README configuration table: {sorted(missing)}"


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
