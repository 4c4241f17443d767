"""Every kind of stored file — original, thumbnail, staged upload, export archive — for every identity
(anonymous, signed in without a role, each role), in embedded mode (Django streams the bytes) and behind
nginx (MEDIA_ACCEL_REDIRECT / EXPORTS_ACCEL_REDIRECT set: Django answers X-Accel-Redirect and no body).
A staged upload has no URL at all; nothing outside images/ and thumbs/ of MEDIA_ROOT is served."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from corpus.models import Domain, Image, ImportBatch, Instruction, ItemStatus
from corpus.services.import_batches import LEGACY_STAGING, stage_upload, staging_path
from corpus.services.imports import import_images, sources_from_uploads
from exports.services.build import build_version
from exports.services.specs import allocate_version, create_spec
from tests.corpus.factories import png_bytes

pytestmark = pytest.mark.django_db

MEDIA_PREFIX = "/_protected/media/"
EXPORTS_PREFIX = "/_protected/exports/"
IDENTITIES = ["anonymous", "outsider", "annotator", "researcher", "admin_user"]


@pytest.fixture(params=["embedded", "accel"])
def mode(request, settings):
    if request.param == "accel":
        settings.MEDIA_ACCEL_REDIRECT = MEDIA_PREFIX
        settings.EXPORTS_ACCEL_REDIRECT = EXPORTS_PREFIX
    else:
        settings.MEDIA_ACCEL_REDIRECT = ""
        settings.EXPORTS_ACCEL_REDIRECT = ""
    return request.param


@pytest.fixture
def image(admin_user):
    """An image imported the real way: its original and its thumbnail are on disk."""
    summary = import_images(
        sources_from_uploads([SimpleUploadedFile("page.png", png_bytes(7, (300, 200)))]),
        domain=Domain.objects.get(slug="ocr"),
        by=admin_user,
    )
    return Image.objects.get(pk=summary.imported[0].image_id)


@pytest.fixture
def batch(admin_user) -> ImportBatch:
    """An upload staged for its worker."""
    return stage_upload(
        [SimpleUploadedFile("secret-scan.png", png_bytes(8))],
        domain=Domain.objects.get(slug="ocr"),
        by=admin_user,
    )


@pytest.fixture
def version(image, researcher):
    """A built export archive (images copied in)."""
    Instruction.objects.create(
        image=image,
        type="short_vqa",
        question="What is shown?",
        answer="a gradient",
        status=ItemStatus.ACCEPTED,
    )
    spec = create_spec("files-test", by=researcher, formats=["llava"], image_mode="copy")
    built = build_version(allocate_version(spec, by=researcher))
    assert built.status == "done", built.error
    return built


def client_for(identity: str, request) -> Client:
    client = Client()
    if identity != "anonymous":
        client.force_login(request.getfixturevalue(identity))
    return client


def assert_served(response, path: Path, mode: str, *, prefix: str, relative: str) -> None:
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]
    if mode == "accel":
        assert response["X-Accel-Redirect"] == prefix + relative
        assert response.content == b""  # nginx sends the bytes, not Django
    else:
        assert "X-Accel-Redirect" not in response
        assert b"".join(response.streaming_content) == path.read_bytes()


@pytest.mark.parametrize("identity", IDENTITIES)
@pytest.mark.parametrize("kind", ["original", "thumbnail"])
def test_images_and_thumbnails_are_served_only_to_a_role(request, settings, mode, image, identity, kind):
    field = image.file if kind == "original" else image.thumbnail
    url = field.url
    assert url.startswith("/media/")  # the URL templates and the API produce
    response = client_for(identity, request).get(url)
    if identity == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    elif identity == "outsider":
        assert response.status_code == 403
    else:
        assert_served(response, Path(field.path), mode, prefix=MEDIA_PREFIX, relative=field.name)
        expected = "image/png" if kind == "original" else "image/jpeg"
        assert response["Content-Type"] == expected


@pytest.mark.parametrize("identity", IDENTITIES)
def test_a_staged_upload_has_no_url_for_anyone(request, settings, mode, batch, identity):
    staged = next(staging_path(batch).glob("*/*"))
    assert staged.read_bytes() == png_bytes(8)
    assert not staged.resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    # A folder left under MEDIA_ROOT by the old layout is not served either.
    legacy = Path(settings.MEDIA_ROOT) / LEGACY_STAGING / str(batch.pk) / "00000" / "secret-scan.png"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(png_bytes(8))
    client = client_for(identity, request)
    relative = staged.relative_to(settings.IMPORT_STAGING_ROOT).as_posix()
    for url in (
        f"/media/{LEGACY_STAGING}/{batch.pk}/00000/secret-scan.png",  # the old, guessable URL
        f"/media/{relative}",
        f"/media/../staging/{relative}",
        f"/media/images/../../staging/{relative}",
    ):
        response = client.get(url)
        if identity == "anonymous":
            assert response.status_code == 302, url
        elif identity == "outsider":
            assert response.status_code == 403, url
        else:
            assert response.status_code == 404, url
        assert "X-Accel-Redirect" not in response


@pytest.mark.parametrize("identity", IDENTITIES)
@pytest.mark.parametrize("surface", ["page", "api"])
def test_an_export_archive_is_served_only_through_the_role_checked_download(
    request, settings, mode, version, identity, surface
):
    url = (
        f"/exports/versions/{version.pk}/download/"
        if surface == "page"
        else f"/api/v1/export-versions/{version.pk}/download/"
    )
    response = client_for(identity, request).get(url)
    if identity == "anonymous":
        assert response.status_code in ((302,) if surface == "page" else (401, 403))
    elif identity in ("outsider", "annotator"):
        assert response.status_code in (403, 404)
    else:
        path = Path(settings.EXPORTS_ROOT) / version.file_path
        assert_served(response, path, mode, prefix=EXPORTS_PREFIX, relative=version.file_path)
        assert response["ETag"] == f'"{version.sha256}"'
        assert response["Content-Disposition"].startswith("attachment;")
    # No other URL reaches it.
    for other in (
        f"/media/../exports/{version.file_path}",
        f"/media/images/../../exports/{version.file_path}",
    ):
        response = client_for(identity, request).get(other)
        assert response.status_code in ((302,) if identity == "anonymous" else (403, 404)), other


def test_annotators_download_exports_when_an_admin_allows_it(client, settings, version, annotator):
    settings.EXPORTS_ANNOTATORS_MAY_DOWNLOAD = True
    settings.EXPORTS_ACCEL_REDIRECT = EXPORTS_PREFIX
    client.force_login(annotator)
    response = client.get(f"/exports/versions/{version.pk}/download/")
    assert response.status_code == 200 and response["X-Accel-Redirect"].startswith(EXPORTS_PREFIX)


def test_a_tampered_archive_is_refused_before_nginx_is_asked(client, settings, version, researcher):
    settings.EXPORTS_ACCEL_REDIRECT = EXPORTS_PREFIX
    path = Path(settings.EXPORTS_ROOT) / version.file_path
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    client.force_login(researcher)
    response = client.get(f"/exports/versions/{version.pk}/download/")
    assert response.status_code == 409 and "X-Accel-Redirect" not in response


@pytest.mark.parametrize(
    "url",
    [
        "/media/images/../../exports/x.tar",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media//etc/passwd",
        "/media/images/ab/does-not-exist.png",
        "/media/thumbs",
        "/media/images/%00.png",
        "/media/.env",
    ],
)
def test_traversal_and_unknown_files_are_404_even_for_admins(client, admin_user, image, url):
    client.force_login(admin_user)
    assert client.get(url).status_code == 404


def test_an_api_token_opens_media_and_a_bad_token_gets_401(settings, image, researcher):
    settings.MEDIA_ACCEL_REDIRECT = ""
    url = image.file.url
    token = Token.objects.create(user=researcher)
    response = Client().get(url, headers={"Authorization": f"Token {token.key}"})
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    bad = Client().get(url, headers={"Authorization": "Token not-a-token"})
    assert bad.status_code == 401 and bad["WWW-Authenticate"] == "Token"


def test_media_is_cacheable_by_the_browser_and_answers_304_when_unchanged(client, settings, image, annotator):
    settings.MEDIA_ACCEL_REDIRECT = ""
    client.force_login(annotator)
    url = image.thumbnail.url
    first = client.get(url)
    etag = first["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.head(url).status_code == 200
    assert client.post(url).status_code == 405  # nothing but GET and HEAD


def test_the_image_page_shows_images_from_the_media_view(client, settings, image, annotator):
    """The <img> URLs a page renders are the ones the media view serves (with and without the proxy)."""
    client.force_login(annotator)
    page = client.get(f"/images/{image.pk}/").content.decode()
    assert image.file.url in page
    settings.MEDIA_ACCEL_REDIRECT = MEDIA_PREFIX
    assert client.get(image.file.url)["X-Accel-Redirect"] == MEDIA_PREFIX + image.file.name
