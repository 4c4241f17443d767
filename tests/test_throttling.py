"""API throttles: per user (per address when anonymous), tighter scopes for job launches, regenerations and
export builds, 429 JSON with Retry-After; counters in Redis when there is one."""

import json
import uuid

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.throttles import throttle
from tests.conftest import clear_cache

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    """rates(**scope_rates): set DEFAULT_THROTTLE_RATES for this test (the rest as configured)."""

    def set_rates(**scopes):
        rest = dict(settings.REST_FRAMEWORK)
        rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], **scopes}
        settings.REST_FRAMEWORK = rest

    return set_rates


def assert_throttled(response) -> int:
    assert response.status_code == 429, response.content[:300]
    body = json.loads(response.content)
    assert set(body) == {"detail"} and body["detail"].startswith("Request was throttled")
    wait = int(response["Retry-After"])
    assert wait >= 1
    return wait


def test_user_rate_gives_429_with_retry_after(rates, researcher):
    rates(user="3/minute")
    api = APIClient()
    api.force_authenticate(researcher)
    assert [api.get("/api/v1/domains/").status_code for _ in range(3)] == [200, 200, 200]
    assert assert_throttled(api.get("/api/v1/domains/")) <= 60


def test_user_rate_counts_per_user(rates, researcher, annotator):
    rates(user="2/minute")
    first, second = APIClient(), APIClient()
    first.force_authenticate(researcher)
    second.force_authenticate(annotator)
    for _ in range(2):
        assert first.get("/api/v1/domains/").status_code == 200
    assert_throttled(first.get("/api/v1/domains/"))
    assert second.get("/api/v1/domains/").status_code == 200


def test_anonymous_rate_counts_per_address(rates):
    rates(anon="2/minute")
    api = APIClient(REMOTE_ADDR="10.0.0.1")
    assert [api.get("/api/v1/domains/").status_code for _ in range(2)] == [401, 401]
    assert_throttled(api.get("/api/v1/domains/"))
    assert APIClient(REMOTE_ADDR="10.0.0.2").get("/api/v1/domains/").status_code == 401


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(rates, settings):
    """PROXY_COUNT=1 (compose's nginx): the last X-Forwarded-For entry, not whatever the client sent first."""
    rates(anon="1/minute")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxied = {"REMOTE_ADDR": "172.18.0.5"}
    api = APIClient(**proxied)
    assert api.get("/api/v1/domains/", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7").status_code == 401
    # A spoofed first entry does not make a new client: the proxy's entry is what counts.
    assert_throttled(api.get("/api/v1/domains/", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7"))
    assert api.get("/api/v1/domains/", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 401


def test_job_launches_have_their_own_tighter_scope_and_reads_do_not_count(rates, admin_user):
    rates(job_launch="2/hour")
    api = APIClient()
    api.force_authenticate(admin_user)
    # Invalid launches still count: the limit is on attempts to start paid work.
    assert [api.post("/api/v1/generation/jobs/", {}, format="json").status_code for _ in range(2)] == [
        400,
        400,
    ]
    assert_throttled(api.post("/api/v1/generation/jobs/", {}, format="json"))
    assert api.get("/api/v1/generation/jobs/").status_code == 200  # reading is not launching
    assert api.post("/api/v1/domains/", {"name": "Still", "slug": "still"}, format="json").status_code == 201


def test_regenerations_have_their_own_scope_and_saves_are_not_in_it(rates, annotator):
    rates(regeneration="2/minute")
    api = APIClient()
    api.force_authenticate(annotator)
    url = "/api/v1/review/instructions/999999/"
    assert [api.post(url + "regenerate/").status_code for _ in range(2)] == [404, 404]
    assert_throttled(api.post(url + "regenerate/"))
    assert api.post(url + "save/", {}, format="json").status_code != 429


def test_export_builds_have_their_own_scope(rates, researcher):
    rates(export_build="2/hour")
    api = APIClient()
    api.force_authenticate(researcher)
    assert [api.post("/api/v1/exports/", {}, format="json").status_code for _ in range(2)] == [400, 400]
    assert_throttled(api.post("/api/v1/exports/", {}, format="json"))
    assert_throttled(api.post("/api/v1/exports/999999/build/"))  # the same scope: building again
    assert api.get("/api/v1/exports/").status_code == 200


def test_a_refused_role_does_not_use_up_the_scope(rates, annotator, admin_user):
    rates(job_launch="1/hour")
    api = APIClient()
    api.force_authenticate(annotator)
    assert api.post("/api/v1/generation/jobs/", {}, format="json").status_code == 403
    api.force_authenticate(admin_user)
    assert api.post("/api/v1/generation/jobs/", {}, format="json").status_code == 400


def test_page_views_can_use_the_same_scope(rates, annotator):
    """accounts.throttles.throttle: the page form of a costly command shares its scope's rate."""
    rates(regeneration="1/minute")
    view = throttle("regeneration")(lambda request: HttpResponse("queued"))
    request = RequestFactory().post("/review/item/instruction/1/regenerate/")
    request.user = annotator
    assert view(request).status_code == 200
    refused = view(request)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert b"Slow down a little" in refused.content
    get = RequestFactory().get("/review/")
    get.user = annotator
    assert view(get).status_code == 200  # a GET never counts


def test_counters_live_in_redis_so_every_web_process_shares_them(rates, settings, researcher, redis_url):
    prefix = f"mmi-throttle-test-{uuid.uuid4().hex[:8]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    rates(user="2/minute")
    api = APIClient()
    api.force_authenticate(researcher)
    try:
        for _ in range(2):
            assert api.get("/api/v1/domains/").status_code == 200
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = client.keys(f"{prefix}:*")
        assert [k.decode() for k in keys] == [f"{prefix}:1:throttle_user_{researcher.pk}"]
        assert client.ttl(keys[0]) > 0  # expires with the window
        assert_throttled(api.get("/api/v1/domains/"))
    finally:
        clear_cache()


def test_the_costly_page_forms_share_their_scope_with_the_api(rates, client, researcher, admin_user):
    """The new-export form and a rebuild count in `export_build`, the launch form in `job_launch`: a page
    is no way around the API's limit. Past it: the 429 page with Retry-After, and nothing is created."""
    from exports.models import ExportSpec

    rates(export_build="1/hour", job_launch="1/hour")
    client.force_login(researcher)
    form = {"name": "first", "formats": ["llava"], "train_ratio": "1", "seed": "0", "images": "reference"}
    client.post("/exports/new/", form)
    refused = client.post("/exports/new/", {**form, "name": "second"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert not ExportSpec.objects.filter(name="second").exists()
    client.force_login(admin_user)
    client.post("/generation/", {"stage": "captions"})
    assert client.post("/generation/", {"stage": "captions"}).status_code == 429
