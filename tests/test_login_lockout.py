"""Login lockout (django-axes): LOGIN_FAILURE_LIMIT failures for a username or from an address pause its
logins for LOGIN_COOLOFF_MINUTES; the login page says so; the right password does not log in meanwhile.
Run with the state in the database (embedded mode) and in Redis (REDIS_URL set)."""

import io
import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from tests.conftest import clear_cache

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(params=["database", "redis"])
def lockout_store(request):
    """Where axes keeps the failures: the database (embedded mode) or the Redis cache. One override_settings
    for both settings: axes binds its handler to the cache when AXES_HANDLER changes, so the cache must be
    back in place when the handler is restored (or later tests would count failures in this one's cache)."""
    if request.param == "database":
        with override_settings(AXES_HANDLER="axes.handlers.database.AxesDatabaseHandler"):
            yield "database"
        return
    redis_url = request.getfixturevalue("redis_url")
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url,
        "KEY_PREFIX": f"mmi-lockout-test-{uuid.uuid4().hex[:8]}",
    }
    with override_settings(CACHES={"default": cache}, AXES_HANDLER="axes.handlers.cache.AxesCacheHandler"):
        yield "redis"
        clear_cache()


def attempt(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def assert_locked_out_page(response):
    assert response.status_code == 429
    html = response.content.decode()
    assert "Logging in is paused for 15 minutes" in html
    assert "even the right password is refused until then" in html
    assert 'name="password"' in html  # still the login page, in the site layout
    assert int(response["Retry-After"]) == 15 * 60


def test_fifty_wrong_passwords_then_the_right_one_does_not_log_in(lockout_store, annotator):
    client = Client()
    statuses = [attempt(client, annotator.username, f"wrong-{i}").status_code for i in range(50)]
    assert statuses[:9] == [200] * 9  # the form again, "didn't match"
    assert set(statuses[10:]) == {429}
    response = attempt(client, annotator.username, "pw-" + annotator.username)
    assert_locked_out_page(response)
    assert not logged_in(client)
    assert client.get("/").status_code == 302  # still sent to the login page


def test_the_tenth_failure_locks_the_account(lockout_store, annotator):
    client = Client()
    for i in range(9):
        assert attempt(client, annotator.username, f"wrong-{i}").status_code == 200
    assert_locked_out_page(attempt(client, annotator.username, "wrong-9"))


def test_a_username_is_locked_from_every_address(lockout_store, annotator):
    for i in range(10):
        attempt(Client(REMOTE_ADDR=f"198.51.100.{i}"), annotator.username, "wrong")
    other_address = Client(REMOTE_ADDR="203.0.113.50")
    assert_locked_out_page(attempt(other_address, annotator.username, "pw-" + annotator.username))
    assert not logged_in(other_address)


def test_an_address_trying_many_usernames_is_locked(lockout_store, annotator):
    client = Client(REMOTE_ADDR="198.51.100.7")
    for i in range(10):
        attempt(client, f"guess-{i}", "wrong")
    assert_locked_out_page(attempt(client, annotator.username, "pw-" + annotator.username))
    # Someone else, elsewhere, still logs in.
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    attempt(elsewhere, annotator.username, "pw-" + annotator.username)
    assert logged_in(elsewhere)


def test_after_the_cool_off_the_right_password_logs_in(lockout_store, settings, annotator):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    client = Client()
    for _ in range(10):
        attempt(client, annotator.username, "wrong")
    assert attempt(client, annotator.username, "pw-" + annotator.username).status_code == 429
    time.sleep(2.5)  # the cool-off itself: nothing to wait for but the clock
    response = attempt(client, annotator.username, "pw-" + annotator.username)
    assert response.status_code == 302 and logged_in(client)


def test_a_success_resets_the_count(lockout_store, annotator):
    client = Client()
    for _ in range(9):
        attempt(client, annotator.username, "wrong")
    attempt(client, annotator.username, "pw-" + annotator.username)
    assert logged_in(client)
    client.logout()
    for _ in range(9):
        assert attempt(client, annotator.username, "wrong").status_code == 200


def test_an_admin_lifts_a_pause_for_the_username_and_the_address(lockout_store, annotator):
    client = Client(REMOTE_ADDR="198.51.100.20")
    for _ in range(10):
        attempt(client, annotator.username, "wrong")
    assert attempt(client, annotator.username, "pw-" + annotator.username).status_code == 429
    call_command("axes_reset_username", annotator.username, stdout=io.StringIO())
    call_command("axes_reset_ip", "198.51.100.20", stdout=io.StringIO())
    response = attempt(client, annotator.username, "pw-" + annotator.username)
    assert response.status_code == 302 and logged_in(client)
