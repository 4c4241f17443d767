"""Every API error is JSON {"detail": "…", "errors": {field: [...]}} with the right 4xx — whether DRF, a
parser, Django (before DRF runs) or a domain error that escaped a view raised it."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from django.utils.module_loading import import_string
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from corpus.models import Domain, Image
from generation.models import Endpoint, EndpointKind, GenerationJob
from tests.corpus.factories import DomainFactory, png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def assert_error_body(response, status: int, *, fields: set[str] | None = None) -> dict:
    """The one error shape: JSON, a non-empty detail, and `errors` exactly when fields are expected."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert isinstance(body.get("detail"), str) and body["detail"].strip(), body
    assert set(body) <= {"detail", "errors"}, body
    if fields is None:
        assert "errors" not in body, body
    else:
        assert set(body["errors"]) == fields, body
        assert all(
            isinstance(m, list) and m and all(isinstance(x, str) for x in m) for m in body["errors"].values()
        )
    return body


def test_validation_error_names_each_field(api, admin_user):
    api.force_authenticate(admin_user)
    body = assert_error_body(api.post("/api/v1/domains/", {}, format="json"), 400, fields={"name", "slug"})
    assert body["detail"].startswith("Invalid input in:")


def test_validation_error_of_one_field_says_it_in_the_detail(api, admin_user):
    api.force_authenticate(admin_user)
    DomainFactory(slug="taken", name="Taken")
    response = api.post("/api/v1/domains/", {"name": "Other", "slug": "taken"}, format="json")
    body = assert_error_body(response, 400, fields={"slug"})
    assert body["detail"].startswith("slug: ")


def test_malformed_json_is_400(api, admin_user):
    api.force_authenticate(admin_user)
    response = api.generic("POST", "/api/v1/domains/", '{"name": ', content_type="application/json")
    assert assert_error_body(response, 400)["detail"].startswith("JSON parse error")


@pytest.mark.parametrize("depth", [40, 200_000])
def test_deeply_nested_json_is_400_not_a_recursion_error(api, admin_user, depth):
    api.force_authenticate(admin_user)
    body = "[" * depth + "]" * depth
    response = api.generic("POST", "/api/v1/domains/", body, content_type="application/json")
    assert "nested more than 32 levels" in assert_error_body(response, 400)["detail"]
    assert not Domain.objects.filter(slug="").exists()


def test_anonymous_call_is_401_with_www_authenticate(api):
    response = api.get("/api/v1/images/")
    body = assert_error_body(response, 401)
    assert response["WWW-Authenticate"] == "Token"
    assert "Authorization: Token" in body["detail"]


def test_unknown_token_is_401(api):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = api.get("/api/v1/images/")
    assert_error_body(response, 401)
    assert response["WWW-Authenticate"] == "Token"


def test_token_of_a_real_user_is_accepted(api, researcher):
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=researcher).key}")
    assert api.get("/api/v1/images/").status_code == 200


def test_wrong_role_is_403(api, annotator):
    api.force_authenticate(annotator)
    body = assert_error_body(api.post("/api/v1/domains/", {"name": "X", "slug": "x"}, format="json"), 403)
    assert body["detail"] == "Your role does not allow this."


def test_missing_object_is_404(api, researcher):
    api.force_authenticate(researcher)
    assert_error_body(api.get("/api/v1/domains/no-such-domain/"), 404)
    assert_error_body(api.get("/api/v1/images/999999/"), 404)


def test_page_past_the_end_is_404(api, researcher):
    api.force_authenticate(researcher)
    assert_error_body(api.get("/api/v1/images/?page=999"), 404)


def test_unknown_api_url_is_json_404_from_django(api, researcher):
    api.force_authenticate(researcher)
    body = assert_error_body(api.get("/api/v1/no-such-thing/"), 404)
    assert "/api/v1/no-such-thing/" in body["detail"]


def test_unknown_api_url_is_json_even_for_anonymous_callers():
    assert_error_body(Client().get("/api/nowhere/"), 404)


def test_method_not_allowed_is_405(api, admin_user):
    api.force_authenticate(admin_user)
    assert_error_body(api.delete("/api/v1/domains/ocr/"), 405)


def test_unsupported_content_type_is_415(api, admin_user):
    api.force_authenticate(admin_user)
    response = api.generic("POST", "/api/v1/domains/", "name=x", content_type="text/plain")
    assert_error_body(response, 415)


def test_json_body_over_the_size_limit_is_413(api, admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    api.force_authenticate(admin_user)
    payload = json.dumps({"name": "Big", "slug": "big", "description": "x" * 2000})
    response = api.generic("POST", "/api/v1/domains/", payload, content_type="application/json")
    assert "limit" in assert_error_body(response, 413)["detail"]
    assert not Domain.objects.filter(slug="big").exists()


def test_form_body_over_the_size_limit_is_413(api, admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    api.force_authenticate(admin_user)
    response = api.post("/api/v1/domains/", {"name": "Big", "slug": "big", "description": "x" * 2000})
    assert_error_body(response, 413)


def test_upload_with_too_many_files_is_413_and_imports_nothing(api, admin_user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    api.force_authenticate(admin_user)
    domain = DomainFactory()
    files = [SimpleUploadedFile(f"{i}.png", png_bytes(i), content_type="image/png") for i in range(3)]
    response = api.post("/api/v1/images/upload/", {"domain": domain.slug, "files": files}, format="multipart")
    assert "DATA_UPLOAD_MAX_NUMBER_FILES" in assert_error_body(response, 413)["detail"]
    assert not Image.objects.exists()


def test_too_many_form_fields_is_400(api, admin_user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    api.force_authenticate(admin_user)
    response = api.post("/api/v1/domains/", {f"f{i}": "x" for i in range(6)})
    assert_error_body(response, 400)


def test_oversized_body_sent_by_a_session_user_is_json_413(client, admin_user, settings):
    """Session auth runs Django's CSRF check inside DRF, which reads the form body: the limit trips there."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client.force_login(admin_user)
    response = client.post("/api/v1/domains/", {"name": "Big", "slug": "big", "description": "x" * 2000})
    assert_error_body(response, 413)


# --- domain errors through API_ERROR_STATUS ----------------------------------------------------
def _endpoint() -> Endpoint:
    return Endpoint.objects.create(
        name="test-vision", kind=EndpointKind.VISION, base_url="http://127.0.0.1:9/v1", model="m"
    )


def test_deleting_a_row_others_still_use_is_409_naming_them(api, admin_user):
    """A ProtectedError that reaches the handler is a conflict naming what uses the row (API_ERROR_STATUS),
    not a 500; the endpoint API answers 409 too (with its own reason) and deletes nothing."""
    from django.db.models import ProtectedError

    from web.api_errors import exception_handler

    endpoint = _endpoint()
    GenerationJob.objects.create(stage="captions", endpoint=endpoint)
    with pytest.raises(ProtectedError) as raised:
        Endpoint.objects.filter(pk=endpoint.pk).delete()
    response = exception_handler(raised.value, {})
    assert response.status_code == 409 and "generation job" in response.data["detail"]
    api.force_authenticate(admin_user)
    assert_error_body(api.delete(f"/api/v1/generation/endpoints/{endpoint.pk}/"), 409)
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()


@pytest.mark.django_db(transaction=True)  # the refused UPDATE must really reach the database
def test_a_value_a_check_constraint_refuses_is_400(api, admin_user):
    """A CHECK violation escaping a view (IntegrityError) is the client's bad value: 400, not 409 or 500."""
    endpoint = _endpoint()
    api.force_authenticate(admin_user)
    response = api.patch(f"/api/v1/generation/endpoints/{endpoint.pk}/", {"timeout": 0}, format="json")
    body = json.loads(response.content)
    assert_error_body(response, 400, fields=set(body["errors"]) if "errors" in body else None)
    endpoint.refresh_from_db()
    assert endpoint.timeout > 0


def test_server_error_on_the_api_is_json_500():
    handler = import_string(import_string("mminstruct_site.urls.handler500"))
    response = handler(RequestFactory().get("/api/v1/images/"))
    assert response.status_code == 500
    assert json.loads(response.content)["detail"].startswith("Server error")
