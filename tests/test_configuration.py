"""Settings come from the environment: every variable settings.py reads is documented in .env.example
and the README table (so a variable added later is caught at merge), and the defaults behave."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = (ROOT / "mminstruct_site" / "settings.py").read_text()
ENV_READ = re.compile(
    r"""\benv(?:_int|_bool|_list)?\(\s*["']([A-Z][A-Z0-9_]*)["']|os\.environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']"""
)


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


def _settings_in_a_fresh_process(env: dict, expression: str) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
    }
    code = f"import django; from django.conf import settings; django.setup(); print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean | {"DJANGO_SETTINGS_MODULE": "mminstruct_site.settings"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = _settings_in_a_fresh_process({"DEBUG": "false"}, "settings.DEBUG")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_defaults_need_no_services_sqlite_and_embedded_broker():
    result = _settings_in_a_fresh_process(
        {"DEBUG": "true"},  # as `make run` starts it
        "settings.DATABASES['default']['ENGINE'], settings.EMBEDDED_MODE, settings.CELERY_BROKER_URL",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.sqlite3 True filesystem://"


def test_production_environment_is_read():
    result = _settings_in_a_fresh_process(
        {
            "DEBUG": "false",
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://u:p@db.example:5432/mmi",
            "REDIS_URL": "redis://cache.example:6379/0",
            "ALLOWED_HOSTS": "studio.example.org, other.example.org",
        },
        "settings.DATABASES['default']['HOST'], settings.CELERY_BROKER_URL, settings.ALLOWED_HOSTS, settings.DEBUG",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "db.example redis://cache.example:6379/0 ['studio.example.org', 'other.example.org'] False"
    )
