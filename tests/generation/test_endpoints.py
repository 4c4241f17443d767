"""Endpoints: what they may point at and which variable they may read (checked on save and again at call
time), Test connection, the re-sync from OPENAI_* at every start, and clear 4xx for bad input."""

import socket

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from corpus.models import Caption
from generation import services
from generation.models import Endpoint, GenerationUnit, UnitStatus
from tests.conftest import field_errors
from tests.corpus.factories import DomainFactory, ImageFactory
from tests.fakes.openai_server import FakeOpenAI

API = "/api/v1/generation/endpoints/"


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def new_endpoint(**fields):
    body = {
        "name": "local-vllm",
        "kind": "text",
        "base_url": "http://127.0.0.1:8001/v1",
        "api_key_env": "VLLM_API_KEY",
        "model": "qwen2.5-7b",
    }
    body.update(fields)
    return body


# --- what an endpoint may read and point at --------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "variable",
    ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "POSTGRES_PASSWORD", "HOME", "PATH", "secret_api_key"],
)
def test_server_secrets_and_other_variables_are_refused_as_key_variables(api, variable):
    response = api.post(API, new_endpoint(api_key_env=variable), format="json")
    assert response.status_code == 400
    assert "api_key_env" in field_errors(response)
    assert not Endpoint.objects.filter(name="local-vllm").exists()


@pytest.mark.django_db
def test_the_key_variable_allow_list_is_a_setting(api, settings):
    settings.GENERATION_API_KEY_ENV_PATTERN = r"MODEL_KEY_[A-Z]+"
    assert api.post(API, new_endpoint(api_key_env="VLLM_API_KEY"), format="json").status_code == 400
    assert api.post(API, new_endpoint(api_key_env="MODEL_KEY_VLLM"), format="json").status_code == 201
    # A pattern that would let anything through still never lets a server secret through.
    settings.GENERATION_API_KEY_ENV_PATTERN = r".*"
    response = api.post(API, new_endpoint(name="x", api_key_env="SECRET_KEY"), format="json")
    assert response.status_code == 400 and "server secret" in str(field_errors(response)["api_key_env"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://models.example.org/v1", "http"),
        ("file:///etc/passwd", "http"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[fd00:ec2::254]/v1", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1", "metadata"),
        ("http://[::ffff:169.254.169.254]/v1", "metadata"),
        ("http://0.0.0.0:8000/v1", "unicast"),
    ],
)
def test_base_urls_that_are_not_http_or_reach_metadata_are_always_refused(api, settings, url, why):
    settings.GENERATION_ALLOW_PRIVATE_ENDPOINTS = True
    response = api.post(API, new_endpoint(base_url=url), format="json")
    assert response.status_code == 400
    assert "base_url" in field_errors(response)
    assert not Endpoint.objects.filter(name="local-vllm").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8001/v1", "http://10.1.2.3/v1", "http://192.168.0.7:8000/v1", "http://[::1]/v1",
            "http://localhost:11434/v1", "http://172.20.0.5/v1", "http://[fc00::5]/v1"],
)  # fmt: skip
def test_private_addresses_only_when_the_setting_allows_them(api, settings, url):
    settings.GENERATION_ALLOW_PRIVATE_ENDPOINTS = False
    refused = api.post(API, new_endpoint(base_url=url), format="json")
    assert refused.status_code == 400
    assert "GENERATION_ALLOW_PRIVATE_ENDPOINTS" in str(field_errors(refused)["base_url"])
    settings.GENERATION_ALLOW_PRIVATE_ENDPOINTS = True
    assert api.post(API, new_endpoint(base_url=url), format="json").status_code == 201


@pytest.mark.django_db
def test_the_admin_form_applies_the_same_rules(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/django-admin/generation/endpoint/add/",
        {**new_endpoint(api_key_env="DATABASE_URL", base_url="http://169.254.169.254/"), "rpm_limit": 1,
         "tpm_limit": 0, "max_concurrency": 1, "timeout": 10, "price_in_per_m": 0, "price_out_per_m": 0,
         "created_at_0": "2026-01-01", "created_at_1": "00:00:00"},
    )  # fmt: skip
    assert response.status_code == 200  # the form again, with its errors
    page = response.content.decode()
    assert "server secret" in page and "metadata" in page
    assert not Endpoint.objects.filter(name="local-vllm").exists()


def _resolve_to(monkeypatch, address: str) -> None:
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host == "models.example.org":
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)


@pytest.mark.django_db(transaction=True)
def test_a_row_written_before_the_rules_cannot_send_a_server_secret(
    eager, endpoints, fake, admin_user, monkeypatch
):
    """An endpoint stored before the allow-list (updated behind the validators' back) names SECRET_KEY:
    the worker refuses at call time, sends nothing, and every unit fails saying why."""
    monkeypatch.setenv("SECRET_KEY", "server-secret-value")
    Endpoint.objects.filter(kind="vision").update(api_key_env="SECRET_KEY")
    ImageFactory.create_batch(2, domain=DomainFactory(slug="leak"))
    job = services.launch_job(stage="captions", by=admin_user, domains=["leak"], force=True)
    assert fake.requests == [] and fake.auth_seen == []
    units = GenerationUnit.objects.filter(job=job)
    assert {u.status for u in units} == {UnitStatus.FAILED}
    assert all("SECRET_KEY holds a server secret" in u.error for u in units)


@pytest.mark.django_db(transaction=True)
def test_a_public_name_that_resolves_to_the_metadata_address_is_refused_at_call_time(
    eager, endpoints, fake, admin_user, monkeypatch
):
    _resolve_to(monkeypatch, "169.254.169.254")
    Endpoint.objects.filter(kind="vision").update(base_url="http://models.example.org/v1")
    ImageFactory(domain=DomainFactory(slug="dns"))
    job = services.launch_job(stage="captions", by=admin_user, domains=["dns"])
    unit = GenerationUnit.objects.get(job=job)
    assert unit.status == UnitStatus.FAILED
    assert "169.254.169.254" in unit.error and "metadata" in unit.error
    assert not Caption.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_name_resolving_to_a_private_address_is_refused_when_private_endpoints_are_off(
    eager, endpoints, fake, admin_user, settings, monkeypatch
):
    _resolve_to(monkeypatch, "10.0.0.8")
    settings.GENERATION_ALLOW_PRIVATE_ENDPOINTS = False
    Endpoint.objects.filter(kind="vision").update(base_url="http://models.example.org/v1")
    ImageFactory(domain=DomainFactory(slug="dns"))
    job = services.launch_job(stage="captions", by=admin_user, domains=["dns"])
    assert "10.0.0.8" in GenerationUnit.objects.get(job=job).error and fake.requests == []


# --- bad input: 400/409 naming the field, never 500 ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", 0), ("timeout", -5), ("timeout", "nan"), ("max_concurrency", 0), ("max_concurrency", -1),
     ("rpm_limit", 2**64), ("tpm_limit", -1), ("price_in_per_m", -1)],
)  # fmt: skip
def test_out_of_range_numbers_are_a_400_naming_the_field(api, field, value):
    response = api.post(API, new_endpoint(**{field: value}), format="json")
    assert response.status_code == 400 and field in field_errors(response)
    services.ensure_default_endpoints()
    default = Endpoint.objects.get(name="default-text")
    response = api.patch(f"{API}{default.pk}/", {field: value}, format="json")
    assert response.status_code == 400 and field in field_errors(response)


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["a\x00b", "a\x07b", "line\nbreak", "del\x7f"])
@pytest.mark.parametrize("field", ["name", "model", "api_key_env", "base_url"])
def test_control_characters_in_endpoint_text_are_a_400(api, field, bad):
    value = {"base_url": f"http://127.0.0.1/{bad}", "api_key_env": f"X{bad}_API_KEY"}.get(field, bad)
    response = api.post(API, new_endpoint(**{field: value}), format="json")
    assert response.status_code == 400 and field in field_errors(response)
    assert not Endpoint.objects.exclude(name__in=["default-text", "default-vision"]).exists()


@pytest.mark.django_db
def test_deleting_an_endpoint_that_jobs_used_is_a_409_with_the_reason(api, admin_user):
    ImageFactory(domain=DomainFactory(slug="del"))
    job = services.launch_job(stage="captions", by=admin_user, domains=["del"], start=False)
    response = api.delete(f"{API}{job.endpoint_id}/")
    assert response.status_code == 409
    assert "used by 1 job" in response.json()["detail"]
    assert Endpoint.objects.filter(pk=job.endpoint_id).exists()
    unused = api.post(API, new_endpoint(), format="json").json()
    assert api.delete(f"{API}{unused['id']}/").status_code == 204


# --- Test connection --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_test_connection_reports_url_model_status_and_latency_and_keeps_the_result(api, endpoints, fake):
    text = endpoints["text"]
    response = api.post(f"{API}{text.pk}/test_connection/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["status"] == 200 and body["error"] == ""
    assert body["url"] == f"{fake.base_url}/chat/completions" and body["model"] == text.model
    assert body["latency_ms"] >= 10  # the fake's latency
    assert len(fake.requests) == 1  # one cheap call
    text.refresh_from_db()
    assert (text.last_test_ok, text.last_test_status) == (True, 200) and text.last_test_at


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("outcome", "status", "words"),
    [("401", 401, "Incorrect API key"), ("404", 404, "does not exist"), ("500", 500, "server had an error")],
)
def test_test_connection_reports_the_http_error(api, endpoints, fake, outcome, status, words):
    fake.script([outcome])
    body = api.post(f"{API}{endpoints['text'].pk}/test_connection/").json()
    assert body["ok"] is False and body["status"] == status
    assert words in body["error"] and f"HTTP {status} from {fake.base_url}" in body["error"]
    endpoint = Endpoint.objects.get(pk=endpoints["text"].pk)
    assert endpoint.last_test_ok is False and endpoint.last_test_status == status


@pytest.mark.django_db
def test_test_connection_of_a_slow_server_reports_the_timeout(api, endpoints, fake, settings):
    settings.GENERATION_TEST_TIMEOUT = 0.5
    fake.hang_seconds = 3
    fake.script(["hang"])
    body = api.post(f"{API}{endpoints['text'].pk}/test_connection/").json()
    assert body["ok"] is False and body["status"] is None
    assert "no answer within 0.5 s" in body["error"] and 400 <= body["latency_ms"] < 3000


@pytest.mark.django_db
def test_test_connection_names_the_key_variable_that_is_not_set(api, endpoints, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with FakeOpenAI(api_key="the-right-key") as strict:
        Endpoint.objects.filter(pk=endpoints["text"].pk).update(base_url=strict.base_url)
        body = api.post(f"{API}{endpoints['text'].pk}/test_connection/").json()
    assert body["status"] == 401 and "OPENAI_API_KEY is not set" in body["error"]


@pytest.mark.django_db
def test_test_connection_of_an_unreachable_server(api, endpoints):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Endpoint.objects.filter(pk=endpoints["text"].pk).update(base_url=f"http://127.0.0.1:{port}/v1")
    body = api.post(f"{API}{endpoints['text'].pk}/test_connection/").json()
    assert body["ok"] is False and body["status"] is None and "connection error" in body["error"]


@pytest.mark.django_db
def test_endpoint_page_tests_a_connection_and_shows_the_result(client, admin_user, endpoints, fake):
    client.force_login(admin_user)
    fake.script(["401"])
    response = client.post(reverse("generation:endpoint-test", args=[endpoints["vision"].pk]), follow=True)
    page = response.content.decode()
    assert "FAILED" in page and "HTTP 401" in page and fake.base_url in page
    assert "Incorrect API key" in page
    response = client.post(reverse("generation:endpoint-test", args=[endpoints["vision"].pk]), follow=True)
    assert "OK —" in response.content.decode()
    assert client.get(reverse("generation:endpoint-test", args=[endpoints["vision"].pk])).status_code == 405


@pytest.mark.django_db
def test_editing_the_url_forgets_the_last_test(api, endpoints, fake):
    text = endpoints["text"]
    fake.script(["500"])
    api.post(f"{API}{text.pk}/test_connection/")
    assert Endpoint.objects.get(pk=text.pk).last_test_ok is False
    assert api.patch(f"{API}{text.pk}/", {"rpm_limit": 10}, format="json").status_code == 200
    assert Endpoint.objects.get(pk=text.pk).last_test_ok is False  # nothing tested changed
    assert api.patch(f"{API}{text.pk}/", {"model": "other-model"}, format="json").status_code == 200
    assert Endpoint.objects.get(pk=text.pk).last_test_ok is None


# --- the defaults follow OPENAI_* at every start -------------------------------------------------


@pytest.mark.django_db
def test_sync_endpoints_applies_the_openai_variables_and_forgets_a_stale_test(settings, capsys, monkeypatch):
    call_command("sync_endpoints")
    Endpoint.objects.filter(name="default-text").update(last_test_ok=False, last_test_error="HTTP 401")
    settings.OPENAI_BASE_URL = "http://127.0.0.1:8000/v1"
    settings.OPENAI_TEXT_MODEL = "qwen2.5-72b"
    monkeypatch.delenv("OPENAI_API_KEY")
    call_command("sync_endpoints")
    out = capsys.readouterr().out
    text = Endpoint.objects.get(name="default-text")
    assert (text.base_url, text.model, text.last_test_ok) == ("http://127.0.0.1:8000/v1", "qwen2.5-72b", None)
    assert (
        "default-text: http://127.0.0.1:8000/v1 model qwen2.5-72b (key variable OPENAI_API_KEY: NOT SET)"
        in out
    )


@pytest.mark.django_db
def test_sync_endpoints_refuses_settings_that_break_the_rules(settings):
    settings.OPENAI_BASE_URL = "http://169.254.169.254/v1"
    with pytest.raises(CommandError, match="metadata"):
        call_command("sync_endpoints")
    settings.OPENAI_BASE_URL = "https://api.openai.com/v1"
    settings.OPENAI_API_KEY_ENV = "DATABASE_URL"
    with pytest.raises(CommandError, match="server secret"):
        call_command("sync_endpoints")
