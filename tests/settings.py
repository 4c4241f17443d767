"""Settings of the test suite: mminstruct_site/settings.py as production reads it (DEBUG off, the
environment's DATABASE_URL / REDIS_URL), plus only what a test run needs:

- the local PostgreSQL and Redis when they answer on their default ports and DATABASE_URL / REDIS_URL are
  not set (see `local_services` below; the first line of the run says what it uses and why);
- a signing key of its own (production requires SECRET_KEY; a test run must not need one);
- static files found in place (collectstatic is not part of a test run, and the manifest storage that
  production uses refuses a file that is not in its manifest);
- a fast password hasher (every test makes people; PBKDF2's million rounds would be most of the run);
- its own cache key prefix, so the per-test clean-up (tests/conftest.py) deletes only the suite's keys.

Subprocesses the tests start (Celery workers) inherit DJANGO_SETTINGS_MODULE and read this file too.
"""

import os

# The database and Redis db the suite uses when it finds the services by itself. Not Redis db 0 (what an
# installation uses by default) nor 15 (.ci/run's): the worker tests empty their db before they start.
LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/mminstruct"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/14"


def _postgres_answers() -> str | None:
    """None when PostgreSQL on 127.0.0.1:5432 lets user postgres in (trust or peer-less local auth), else
    why not."""
    import psycopg

    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2").close()
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return None


def _redis_answers() -> str | None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        return str(error) or type(error).__name__
    return None


def local_services() -> None:
    """Fill in DATABASE_URL and REDIS_URL when they are not set and the service answers on its default
    port, so that a plain `make test` runs the PostgreSQL and Redis paths production runs. A variable
    that is set wins, even empty (`REDIS_URL= make test` runs without Redis; `DATABASE_URL=sqlite://`
    on SQLite). What was decided goes to TEST_SERVICES_FOUND for the header line (tests/conftest.py),
    and is decided once: subprocesses inherit the result (a test that removes the variables on purpose,
    to run a subprocess in embedded mode, gets embedded mode)."""
    if "TEST_SERVICES_FOUND" in os.environ:
        return
    notes = []
    for name, url, probe, service in (
        ("DATABASE_URL", LOCAL_DATABASE_URL, _postgres_answers, "PostgreSQL on 127.0.0.1:5432"),
        ("REDIS_URL", LOCAL_REDIS_URL, _redis_answers, "Redis on 127.0.0.1:6379"),
    ):
        if name in os.environ:
            notes.append(f"{name} set")
            continue
        why_not = probe()
        if why_not is None:
            os.environ[name] = url
            notes.append(f"{service} answered")
        else:
            notes.append(f"no {service} ({why_not})")
    os.environ["TEST_SERVICES_FOUND"] = "; ".join(notes)


local_services()
os.environ.setdefault("SECRET_KEY", "test-suite-only-key-" + "k" * 40)

from mminstruct_site.settings import *  # noqa: E402, F403
from mminstruct_site.settings import CACHES, STORAGES  # noqa: E402

STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": "mmi-test"}}
