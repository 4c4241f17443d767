"""Bad input to the image import: a clear message on the page and a 400 naming the field on the API,
nothing imported — NUL bytes in a text field, too many files in one upload; control characters in a file
name are dropped from the stored name (a NUL in a name was a server error)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from corpus.models import Image, ImportBatch
from tests.conftest import field_errors
from tests.corpus.factories import png_bytes

pytestmark = pytest.mark.django_db


def one_file(n: int = 1) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"img-{n}.png", png_bytes(n))]


@pytest.mark.parametrize("field", ["source", "license", "prior_knowledge"])
def test_api_refuses_a_nul_byte_in_a_text_field_naming_it(admin_user, field):
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post(
        "/api/v1/images/upload/",
        {"domain": "ocr", field: "scan\x00ner", "files": one_file()},
        format="multipart",
    )
    assert response.status_code == 400 and field in field_errors(response)
    assert not Image.objects.exists()


@pytest.mark.parametrize("field", ["source", "license", "prior_knowledge"])
def test_the_page_refuses_a_nul_byte_in_a_text_field_with_a_message(client, admin_user, field):
    client.force_login(admin_user)
    response = client.post("/images/import/", {"domain": "ocr", field: "scan\x00ner", "files": one_file()})
    assert response.status_code == 400
    assert "Null characters are not allowed" in response.content.decode()
    assert not Image.objects.exists()


def test_a_nul_byte_in_a_file_name_is_dropped_from_the_stored_name(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/images/import/", {"domain": "ocr", "files": [SimpleUploadedFile("a\x00b.png", png_bytes(5))]}
    )
    assert response.status_code == 200
    assert Image.objects.get().original_name == "ab.png"


def test_too_many_files_in_one_upload_get_a_clear_message_on_the_page(admin_user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    client = Client(enforce_csrf_checks=True)  # as a browser: the CSRF check must not hide the message
    client.force_login(admin_user)
    token = client.get("/images/import/").cookies["csrftoken"].value
    files = [SimpleUploadedFile(f"{n}.png", png_bytes(n)) for n in range(4)]
    response = client.post("/images/import/", {"domain": "ocr", "files": files, "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    page = response.content.decode()
    assert "more than 3 files" in page and ".zip" in page
    assert not Image.objects.exists() and not ImportBatch.objects.exists()


def test_the_import_page_still_checks_csrf(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/images/import/", {"domain": "ocr", "files": one_file()})
    assert response.status_code == 403
    assert not Image.objects.exists()


def test_the_page_says_the_file_limit_up_front(client, admin_user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1000
    client.force_login(admin_user)
    assert "At most 1000 files per upload" in client.get("/images/import/").content.decode()
