"""The corpus REST API under /api/v1/: roles, filters, pagination, upload, token auth, schema."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from corpus.models import Domain, Image, ItemStatus
from corpus.rules import InstructionType
from tests.conftest import field_errors
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory, png_bytes

pytestmark = pytest.mark.django_db

LIST_URLS = ["/api/v1/domains/", "/api/v1/images/", "/api/v1/captions/", "/api/v1/instructions/"]


@pytest.fixture
def api():
    return APIClient()


@pytest.mark.parametrize("url", LIST_URLS)
def test_anonymous_api_requests_are_refused(api, url):
    assert api.get(url).status_code in (401, 403)


@pytest.mark.parametrize("url", LIST_URLS)
def test_user_without_a_role_gets_403(api, outsider, url):
    api.force_authenticate(outsider)
    assert api.get(url).status_code == 403


@pytest.mark.parametrize("url", LIST_URLS)
def test_every_role_reads(api, annotator, researcher, url):
    for user in (annotator, researcher):
        api.force_authenticate(user)
        assert api.get(url).status_code == 200


def test_only_admins_edit_domains(api, researcher, admin_user):
    api.force_authenticate(researcher)
    assert api.patch("/api/v1/domains/ocr/", {"description": "x"}, format="json").status_code == 403
    assert api.post("/api/v1/domains/", {"name": "New", "slug": "new"}, format="json").status_code == 403
    api.force_authenticate(admin_user)
    response = api.patch("/api/v1/domains/ocr/", {"description": "Reading text."}, format="json")
    assert response.status_code == 200
    assert Domain.objects.get(slug="ocr").description == "Reading text."
    assert api.post("/api/v1/domains/", {"name": "New", "slug": "new"}, format="json").status_code == 201


def test_domains_cannot_be_deleted_through_the_api(api, admin_user):
    api.force_authenticate(admin_user)
    assert api.delete("/api/v1/domains/ocr/").status_code == 405


def test_domain_list_includes_seed_questions_without_n_plus_one(
    api, researcher, django_assert_max_num_queries
):
    api.force_authenticate(researcher)
    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/domains/", {"page_size": 50})
    domains = response.json()["results"]
    assert len(domains) == 25
    assert all(len(d["seed_questions"]) >= 8 for d in domains)


def test_image_list_filters_by_domain_and_status_with_few_queries(
    api, annotator, django_assert_max_num_queries
):
    a, b = DomainFactory(slug="a"), DomainFactory(slug="b")
    wanted = ImageFactory.create_batch(5, domain=a, review_status="pending")
    ImageFactory.create_batch(3, domain=a)
    ImageFactory.create_batch(4, domain=b, review_status="pending")
    api.force_authenticate(annotator)
    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/images/", {"domain": "a", "review_status": "pending"})
    body = response.json()
    assert body["count"] == 5
    assert sorted(r["id"] for r in body["results"]) == sorted(i.pk for i in wanted)
    assert all(r["domain"] == "a" for r in body["results"])


def test_instruction_list_filters_by_domain_type_status_and_image(
    api, researcher, django_assert_max_num_queries
):
    a, b = DomainFactory(slug="a"), DomainFactory(slug="b")
    image = ImageFactory(domain=a)
    match = [
        InstructionFactory(image=image, type=InstructionType.MULTIPLE_CHOICE, status=ItemStatus.ACCEPTED)
        for _ in range(3)
    ]
    InstructionFactory(image=image, type=InstructionType.MULTIPLE_CHOICE, status=ItemStatus.DRAFT)
    InstructionFactory(image=image, type=InstructionType.JUDGEMENT, status=ItemStatus.ACCEPTED)
    InstructionFactory(
        image=ImageFactory(domain=b), type=InstructionType.MULTIPLE_CHOICE, status=ItemStatus.ACCEPTED
    )
    for _ in range(4):
        InstructionFactory(image=ImageFactory(domain=a))
    api.force_authenticate(researcher)
    with django_assert_max_num_queries(6):
        response = api.get(
            "/api/v1/instructions/", {"domain": "a", "type": "multiple_choice", "status": "accepted"}
        )
    results = response.json()["results"]
    assert sorted(r["id"] for r in results) == sorted(i.pk for i in match)
    assert results[0]["options"] == ["red", "green", "blue", "black"]
    assert results[0]["domain"] == "a"
    by_image = api.get("/api/v1/instructions/", {"image": image.pk}).json()
    assert by_image["count"] == 5


def test_instruction_list_is_paginated_by_page_number(api, researcher):
    image = ImageFactory()
    InstructionFactory.create_batch(55, image=image)
    api.force_authenticate(researcher)
    first = api.get("/api/v1/instructions/").json()
    assert first["count"] == 55 and len(first["results"]) == 50 and first["next"].endswith("page=2")
    assert len(api.get("/api/v1/instructions/", {"page": 2}).json()["results"]) == 5


def test_caption_list_filters_and_has_no_n_plus_one(api, annotator, django_assert_max_num_queries):
    domain = DomainFactory(slug="caps")
    for _ in range(6):
        CaptionFactory(image=ImageFactory(domain=domain), status=ItemStatus.ACCEPTED)
    CaptionFactory(status=ItemStatus.ACCEPTED)
    api.force_authenticate(annotator)
    with django_assert_max_num_queries(5):
        response = api.get("/api/v1/captions/", {"domain": "caps", "status": "accepted"})
    assert response.json()["count"] == 6


def test_admin_uploads_images_and_gets_per_file_results(api, admin_user):
    api.force_authenticate(admin_user)
    files = [
        SimpleUploadedFile("a.png", png_bytes(1), content_type="image/png"),
        SimpleUploadedFile("b.png", png_bytes(2), content_type="image/png"),
        SimpleUploadedFile("junk.png", b"junk", content_type="image/png"),
    ]
    response = api.post(
        "/api/v1/images/upload/", {"domain": "ocr", "license": "CC0", "files": files}, format="multipart"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["imported"], body["rejected"], body["duplicates"]) == (2, 1, 0)
    assert {f["name"]: f["status"] for f in body["files"]} == {
        "a.png": "imported",
        "b.png": "imported",
        "junk.png": "rejected",
    }
    again = api.post(
        "/api/v1/images/upload/",
        {"domain": "ocr", "files": [SimpleUploadedFile("a.png", png_bytes(1))]},
        format="multipart",
    )
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert Image.objects.count() == 2


def test_upload_with_unknown_domain_or_no_files_is_a_400(api, admin_user):
    api.force_authenticate(admin_user)
    bad_domain = api.post(
        "/api/v1/images/upload/",
        {"domain": "nope", "files": [SimpleUploadedFile("a.png", png_bytes(1))]},
        format="multipart",
    )
    assert bad_domain.status_code == 400 and "domain" in bad_domain.json()["errors"]
    no_files = api.post("/api/v1/images/upload/", {"domain": "ocr"}, format="multipart")
    assert no_files.status_code == 400 and "files" in no_files.json()["errors"]


def test_annotator_cannot_upload_through_the_api(api, annotator):
    api.force_authenticate(annotator)
    response = api.post(
        "/api/v1/images/upload/",
        {"domain": "ocr", "files": [SimpleUploadedFile("a.png", png_bytes(1))]},
        format="multipart",
    )
    assert response.status_code == 403
    assert not Image.objects.exists()


def test_token_from_drf_create_token_authenticates(api, researcher, capsys):
    call_command("drf_create_token", researcher.username)
    token = Token.objects.get(user=researcher).key
    assert token in capsys.readouterr().out
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/instructions/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    refused = api.get("/api/v1/instructions/")
    # Session auth comes first in settings, so DRF answers 403 rather than 401 for a bad token.
    assert refused.status_code in (401, 403)
    assert "Invalid token" in refused.json()["detail"]


def test_openapi_schema_renders_with_the_corpus_paths(client, researcher):
    client.force_login(researcher)
    response = client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    for path in ("/api/v1/domains/", "/api/v1/images/upload/", "/api/v1/captions/", "/api/v1/instructions/"):
        assert path in text
    assert client.get("/api/docs/").status_code == 200


# --- bad input: a 400 naming the field, nothing written -------------------------------------------------

HUGE = 2**64 + 1


@pytest.mark.parametrize("url", ["/api/v1/captions/", "/api/v1/instructions/"])
@pytest.mark.parametrize("value", [str(HUGE), str(2**63), "1e20", "1.5", "0", "-3"])
def test_an_image_filter_that_is_no_id_is_400_naming_it(api, researcher, url, value):
    api.force_authenticate(researcher)
    response = api.get(url, {"image": value})
    assert response.status_code == 400, (value, response.content)
    assert "image" in field_errors(response)


def test_the_largest_id_is_a_valid_filter(api, researcher):
    api.force_authenticate(researcher)
    response = api.get("/api/v1/captions/", {"image": str(2**63 - 1)})
    assert response.status_code == 200 and response.json()["count"] == 0


@pytest.mark.parametrize("field", ["name", "description", "guidelines"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x9b"])
def test_domain_text_with_a_control_character_is_refused(api, admin_user, field, char):
    api.force_authenticate(admin_user)
    body = {"name": "Charts", "slug": "charts", "description": "Bar charts.", "guidelines": "Read the axes."}
    body[field] = f"Read{char} the axes."
    created = api.post("/api/v1/domains/", body, format="json")
    assert created.status_code == 400 and field in field_errors(created), created.content
    assert "control character" in field_errors(created)[field][0]
    edited = api.patch("/api/v1/domains/ocr/", {field: f"x{char}"}, format="json")
    assert edited.status_code == 400 and field in field_errors(edited)
    assert not Domain.objects.filter(slug="charts").exists()
    assert char not in getattr(Domain.objects.get(slug="ocr"), field)


def test_domain_guidelines_keep_tabs_and_line_breaks(api, admin_user):
    api.force_authenticate(admin_user)
    guidelines = "# Rules\r\n\n- Read the axes.\n\t- Then the legend."
    response = api.patch("/api/v1/domains/ocr/", {"guidelines": guidelines}, format="json")
    assert response.status_code == 200
    assert Domain.objects.get(slug="ocr").guidelines == guidelines


def test_a_domain_slug_in_the_url_that_is_no_slug_is_404(api, researcher):
    api.force_authenticate(researcher)
    assert api.get("/api/v1/domains/oc%00r/").status_code == 404
    assert api.get("/api/v1/domains/%E2%80%94/").status_code == 404


def test_deeply_nested_json_to_the_domain_api_is_a_400(api, admin_user):
    api.force_authenticate(admin_user)
    response = api.generic("PATCH", "/api/v1/domains/ocr/", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400 and "nested more than" in response.json()["detail"]


@pytest.mark.parametrize("field", ["source", "license", "prior_knowledge", "domain"])
def test_upload_metadata_with_a_control_character_is_refused(api, admin_user, field):
    api.force_authenticate(admin_user)
    data = {"domain": "ocr", "source": "scans", "license": "CC-BY", "prior_knowledge": "receipts"}
    data[field] = "oc\x00r" if field == "domain" else "bad\x00text"
    data["files"] = [SimpleUploadedFile("a.png", png_bytes(1), content_type="image/png")]
    response = api.post("/api/v1/images/upload/", data, format="multipart")
    assert response.status_code == 400 and field in field_errors(response), response.content
    assert not Image.objects.exists()


def test_upload_metadata_that_is_a_number_in_json_terms_is_still_text(api, admin_user):
    # Multipart sends text only; the strict text field refuses non-strings from JSON bodies elsewhere.
    from corpus.serializers import TextField

    field = TextField()
    with pytest.raises(Exception, match="Must be a string, not a number"):
        field.run_validation(5)
    with pytest.raises(Exception, match="Must be a string, not an object"):
        field.run_validation({"a": 1})
    assert field.run_validation("  kept as typed\t") == "  kept as typed\t"
