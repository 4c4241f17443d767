"""The people every test needs, temp media, real Celery workers, and the skip-or-fail rule for missing
services."""

import importlib
import os

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core import serializers
from django.db import connections, transaction
from django.db.models.signals import post_migrate

from accounts.roles import ADMIN, ALL_ROLES, ANNOTATOR, RESEARCHER

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available: bool, reason: str) -> None:
    """Skip a test whose service or browser is missing, with the reason; in CI that is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
    pytest.skip(reason)


def require_module(name: str, reason: str):
    """The module, imported; a test that needs one the environment lacks is skipped — failed in CI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, f"needs {name}: {reason}")


def field_errors(response) -> dict[str, list[str]]:
    """The refused fields of an API error ({"detail", "errors"}, web.api_errors): each field with its
    messages; a nested field is listed both by its path (`hallucinations.0.span_end`) and by its top-level
    name (`hallucinations`)."""
    errors = response.json()["errors"]
    out: dict[str, list[str]] = {}
    for name, messages in errors.items():
        out.setdefault(name, []).extend(messages)
        if "." in name:
            out.setdefault(name.split(".")[0], []).extend(messages)
    return out


NEEDS_POSTGRES = (
    "needs PostgreSQL: start it on 127.0.0.1:5432 (user postgres) or set DATABASE_URL=postgres://…"
)
NEEDS_REDIS = "needs Redis: start it on 127.0.0.1:6379 or set REDIS_URL=redis://…"


def on_postgres() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def redis_available() -> bool:
    url = os.environ.get("REDIS_URL")
    if not url:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def services_line() -> str:
    """What this run talks to, and why (tests/settings.py decides), e.g. `PostgreSQL 127.0.0.1:5432/mminstruct
    and Redis 127.0.0.1:6379/14 (PostgreSQL on 127.0.0.1:5432 answered; Redis on 127.0.0.1:6379 answered)`."""
    db = django_settings.DATABASES["default"]
    if on_postgres():
        database = f"PostgreSQL {db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        database = "SQLite (tests that need PostgreSQL are skipped; with CI=true they fail)"
    url = os.environ.get("REDIS_URL")
    redis_part = f"Redis {url.split('@')[-1].removeprefix('redis://')}" if url else "no Redis (embedded mode)"
    why = os.environ.get("TEST_SERVICES_FOUND", "")
    return f"test services: {database} and {redis_part}" + (f" ({why})" if why else "")


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session):
    """Say at the start of every run (-q too), after pytest's own header, which database and Redis the
    suite runs on."""
    result = yield
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(services_line())
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Tests that ask for the `postgres` or `redis_url` fixture are skipped (or failed, in CI) before any
    of their fixtures run: a transactional database set up and flushed only to be skipped would leave
    the test database in another state than the next serialized-rollback test expects (on SQLite the
    role groups came back twice)."""
    if "postgres" in item.fixturenames:
        require(on_postgres(), NEEDS_POSTGRES)
    if "redis_url" in item.fixturenames:
        require(redis_available(), NEEDS_REDIS)
    if "workers" in item.fixturenames and item.get_closest_marker("django_db"):
        require(on_postgres(), f"a worker process shares the test database: {NEEDS_POSTGRES}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """A test that drives Chromium (the `page` fixture) is a `browser` test, and one that starts Celery
    processes (the `workers` fixture) a `worker` test, whether or not its file says so: `make test-fast`
    deselects both by marker."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "page" in names and not item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.browser)
        if "workers" in names and not item.get_closest_marker("worker"):
            item.add_marker(pytest.mark.worker)


def _recreate_role_groups(sender, using="default", **kwargs):
    """Transactional tests end with a flush of the test database, which also removes the role groups
    corpus's data migration made; `serialized_rollback` cannot bring them back inside a Playwright test
    (the sync API runs an event loop, so Django's context-local connection there is not the one holding
    the serialized data). Flush sends post_migrate when nothing was serialized: recreate them then.

    That post_migrate also makes the content types and permissions again, under new ids; a later
    `serialized_rollback` test writes the rows of the freshly migrated database back by id and would
    meet a second `admin` group or `admin.logentry` content type (an IntegrityError before it starts).
    So the content types, permissions and groups come back with the ids they were serialized with."""
    if getattr(sender, "label", None) != "corpus":
        return
    serialized = getattr(connections[using], "_test_serialized_contents", None)
    if serialized:
        from django.contrib.auth.models import Permission
        from django.contrib.contenttypes.models import ContentType

        kept = (ContentType, Permission, Group)
        rows = [
            r for r in serializers.deserialize("json", serialized, using=using) if isinstance(r.object, kept)
        ]
        with transaction.atomic(using=using):
            Group.objects.using(using).all().delete()
            ContentType.objects.using(using).all().delete()  # and, by cascade, their permissions
            for row in rows:
                row.save(using=using)
        ContentType.objects.clear_cache()
    for name in ALL_ROLES:
        Group.objects.using(using).get_or_create(name=name)


post_migrate.connect(_recreate_role_groups, dispatch_uid="tests.conftest.recreate_role_groups")


@pytest.fixture
def postgres():
    """For tests whose behaviour depends on PostgreSQL (row locks, SKIP LOCKED, query plans)."""
    require(on_postgres(), NEEDS_POSTGRES)


@pytest.fixture
def redis_url():
    """For tests whose behaviour depends on a real Redis."""
    require(redis_available(), NEEDS_REDIS)
    return os.environ["REDIS_URL"]


@pytest.fixture
def workers(request, tmp_path, redis_url):
    """Start real Celery processes with `workers.start()` / `workers.start_beat()` (tests/workers.py);
    all are stopped by pid at the end. The test's Redis db starts empty: no task left by an earlier run
    reaches these workers."""
    import redis

    from tests.workers import Workers, worker_env

    redis.Redis.from_url(redis_url).flushdb()
    uses_database = request.node.get_closest_marker("django_db") is not None
    pool = Workers(tmp_path, worker_env(redis_url, tmp_path=tmp_path, uses_database=uses_database), redis_url)
    yield pool
    pool.stop_all()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORTS_ROOT = tmp_path / "exports"
    settings.IMPORT_STAGING_ROOT = tmp_path / "staging"


def _person(django_user_model, username: str, role: str | None):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    if role:
        # get_or_create: a transactional test (browser, worker) flushes the tables after it, taking the
        # groups made by migration with it; the tests after it must still be able to make people.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def admin_user(django_user_model):
    return _person(django_user_model, "ada-admin", ADMIN)


@pytest.fixture
def annotator(django_user_model):
    return _person(django_user_model, "ann-annotator", ANNOTATOR)


@pytest.fixture
def second_annotator(django_user_model):
    return _person(django_user_model, "bob-annotator", ANNOTATOR)


@pytest.fixture
def researcher(django_user_model):
    return _person(django_user_model, "rey-researcher", RESEARCHER)


@pytest.fixture
def outsider(django_user_model):
    """Logged in, but holds no role."""
    return _person(django_user_model, "otto-outsider", None)


def clear_cache() -> None:
    """Delete the suite's cache keys (throttle counters, login lockouts). On Redis only the keys under
    the suite's KEY_PREFIX (tests/settings.py) go: the Redis db also holds Celery's queues."""
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True) or [caches["default"]]:
        client_of = getattr(getattr(cache, "_cache", None), "get_client", None)
        if client_of is None:
            cache.clear()
            continue
        client = client_of(None, write=True)
        keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with no throttle counts and no lockouts left by another."""
    clear_cache()
    yield
