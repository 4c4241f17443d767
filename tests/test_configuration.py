"""Settings come from the environment: every variable settings.py reads is documented in .env.example
and in the one configuration table (docs/configuration.md) with its real default (so a variable added or
changed later is caught at merge), and the defaults behave."""

import ast
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


def configuration_table() -> dict[str, tuple[str, str]]:
    """docs/configuration.md's table: variable → (default cell, meaning cell)."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|([^|]*)\|(.*)\|\s*$", text, re.M)
    table: dict[str, tuple[str, str]] = {}
    for name, default, meaning in rows:
        assert name not in table, f"{name} is in docs/configuration.md twice"
        table[name] = (default.strip(), meaning.strip())
    return table


def test_every_settings_variable_is_in_the_configuration_table():
    missing = settings_variables() - set(configuration_table())
    assert not missing, f"add these to the table in docs/configuration.md: {sorted(missing)}"


def test_the_configuration_table_lists_only_what_settings_reads():
    stale = set(configuration_table()) - settings_variables()
    assert not stale, (
        f"settings.py no longer reads these; remove them from docs/configuration.md: {sorted(stale)}"
    )


def _constant(node: ast.expr):
    """The value of a default written as a literal or literal arithmetic (15 * 60), else None."""
    try:
        return eval(compile(ast.Expression(node), "<default>", "eval"), {"__builtins__": {}}, {})  # noqa: S307
    except NameError:
        return None  # depends on another setting (USE_HTTPS, VAR_DIR): the table explains it in words


def settings_defaults() -> dict[str, str]:
    """Each variable whose default in settings.py is a constant, as the table writes it."""
    defaults = {}
    for node in ast.walk(ast.parse(SETTINGS)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in {"env", "env_int", "env_bool", "env_list"} or len(node.args) < 2:
            continue
        name, default = node.args[0], _constant(node.args[1])
        if not isinstance(name, ast.Constant) or default is None:
            continue
        defaults[name.value] = str(default).lower() if isinstance(default, bool) else str(default)
    return defaults


def test_the_configuration_table_gives_the_defaults_settings_uses():
    table = configuration_table()
    wrong = {}
    for name, default in settings_defaults().items():
        cell = table.get(name, ("", ""))[0]
        expected = "empty" if default == "" else f"`{default}`"
        if expected not in cell:
            wrong[name] = f"settings.py: {expected}, table: {cell}"
    assert not wrong, wrong


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
