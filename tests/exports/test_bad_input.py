"""Bad input to exports gets a clear 400 naming the field, and nothing is created: integers beyond their
range (the seed), an empty list of formats, control characters in the selection."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from exports.models import ExportSpec, ExportVersion
from exports.services.specs import SEED_MAX

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(researcher):
    client = APIClient()
    client.force_authenticate(researcher)
    return client


@pytest.mark.parametrize(
    "body, field",
    [
        ({"seed": 2**64}, "seed"),
        ({"seed": 2**63 - 1}, "seed"),
        ({"seed": SEED_MAX + 1}, "seed"),
        ({"seed": -1}, "seed"),
        ({"formats": []}, "formats"),
        ({"formats": ["csv"]}, "formats"),
        ({"selection": {"models": ["gpt\x00"]}}, "models"),
        ({"selection": {"domains": ["ocr\x1b"]}}, "domains"),
        ({"description": "a\x00b"}, "description"),
        ({"train_ratio": 1.5}, "train_ratio"),
    ],
)
def test_api_refuses_a_bad_spec_naming_the_field_and_creates_nothing(api, body, field):
    response = api.post("/api/v1/exports/", {"name": "bad-input", **body}, format="json")
    assert response.status_code == 400, response.content
    assert field in str(response.json())
    assert not ExportSpec.objects.exists() and not ExportVersion.objects.exists()


def test_the_largest_seed_is_accepted(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        response = api.post("/api/v1/exports/", {"name": "big-seed", "seed": SEED_MAX}, format="json")
    assert response.status_code == 202
    assert ExportSpec.objects.get().seed == SEED_MAX


def test_the_page_refuses_a_huge_seed_and_no_format_with_a_message(client, researcher):
    client.force_login(researcher)
    response = client.post(
        "/exports/new/",
        {"name": "page-bad", "statuses": ["accepted"], "train_ratio": "0.9", "seed": str(2**64)},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert f"less than or equal to {SEED_MAX}" in page
    assert "This field is required" in page  # formats: none chosen
    assert not ExportSpec.objects.exists()


def test_the_command_refuses_a_huge_seed(corpus):
    with pytest.raises(CommandError, match="seed"):
        call_command("export_dataset", "--name", "cmd-seed", "--format", "llava", "--seed", str(2**64))
    assert not ExportSpec.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/export-versions/99999999999999999999/",
        "/api/v1/exports/99999999999999999999/",
        "/api/v1/export-versions/99999999999999999999/download/",
    ],
)
def test_ids_beyond_64_bits_are_not_found(api, url):
    assert api.get(url).status_code == 404


def test_filters_and_diff_ids_beyond_64_bits_are_clear_errors(api, client, researcher):
    assert api.get("/api/v1/export-versions/?spec=99999999999999999999").status_code == 400
    client.force_login(researcher)
    assert client.get("/exports/versions/1/diff/?against=99999999999999999999").status_code == 404


def test_a_diff_against_digits_that_are_not_ascii_is_a_clear_error():
    from exports.models import ExportVersion
    from exports.selectors import diff_against
    from exports.services.specs import InvalidRequest

    with pytest.raises(InvalidRequest):
        diff_against(ExportVersion(), "²")
