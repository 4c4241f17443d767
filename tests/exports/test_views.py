"""Pages and API of the exports app: who may do what, downloads with their sha256, diffs, query counts."""

import base64
import hashlib
import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from corpus.models import Instruction, ItemStatus
from corpus.services.items import update_item
from exports.models import ExportSpec, ExportVersion, VersionStatus
from tests.conftest import field_errors

from .conftest import archive_path, build

pytestmark = pytest.mark.django_db


@pytest.fixture
def built(corpus, make_spec):
    spec = make_spec(formats=["llava"], train_ratio=0.5, seed=corpus["seed"])
    return build(spec)


def page_client(client, user):
    if user is not None:
        client.force_login(user)
    return client


def api_client(user):
    api = APIClient()
    if user is not None:
        api.force_authenticate(user)
    return api


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["list", "new"])
def test_pages_send_anonymous_visitors_to_login(client, name):
    response = client.get(reverse(f"exports:{name}"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_version_pages_and_download_send_anonymous_visitors_to_login(client, built):
    for name in ("version", "progress", "download", "diff"):
        response = client.get(reverse(f"exports:{name}", args=[built.pk]))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], name


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_annotators_and_outsiders_get_403_on_every_page(client, built, request, who):
    page_client(client, request.getfixturevalue(who))
    urls = [reverse("exports:list"), reverse("exports:new")] + [
        reverse(f"exports:{n}", args=[built.pk]) for n in ("version", "progress", "download")
    ]
    for url in urls:
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("exports:build", args=[built.spec_id])).status_code == 403
    assert ExportVersion.objects.count() == 1


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_annotators_and_outsiders_get_403_from_the_api(built, request, who):
    api = api_client(request.getfixturevalue(who))
    assert api.get("/api/v1/exports/").status_code == 403
    assert api.get(f"/api/v1/export-versions/{built.pk}/download/").status_code == 403
    assert api.post("/api/v1/exports/", {"name": "x"}, format="json").status_code == 403
    assert api.post(f"/api/v1/exports/{built.spec_id}/build/").status_code == 403


def test_anonymous_api_requests_are_refused(built):
    api = api_client(None)
    for url in ("/api/v1/exports/", f"/api/v1/export-versions/{built.pk}/download/"):
        assert api.get(url).status_code in (401, 403)


def test_an_admin_setting_lets_annotators_download_but_never_build(client, built, annotator, settings):
    settings.EXPORTS_ANNOTATORS_MAY_DOWNLOAD = True
    page_client(client, annotator)
    assert client.get(reverse("exports:list")).status_code == 200
    assert client.get(reverse("exports:download", args=[built.pk])).status_code == 200
    assert client.post(reverse("exports:build", args=[built.spec_id])).status_code == 403
    api = api_client(annotator)
    assert api.get(f"/api/v1/export-versions/{built.pk}/download/").status_code == 200
    assert api.post(f"/api/v1/exports/{built.spec_id}/build/").status_code == 403


@pytest.mark.parametrize("who", ["researcher", "admin_user"])
def test_researchers_and_admins_build_and_download(
    client, built, request, who, django_capture_on_commit_callbacks
):
    page_client(client, request.getfixturevalue(who))
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(reverse("exports:build", args=[built.spec_id]))
    v2 = ExportVersion.objects.get(spec=built.spec, number=2)
    assert response.status_code == 302 and response["Location"] == reverse("exports:version", args=[v2.pk])
    assert v2.status == VersionStatus.QUEUED and len(queued) == 1
    download = client.get(reverse("exports:download", args=[built.pk]))
    assert download.status_code == 200
    assert hashlib.sha256(content(download)).hexdigest() == built.sha256


# --- pages -------------------------------------------------------------------------------------


def test_list_page_shows_versions_with_status_size_counts_and_sha256(client, researcher, built):
    page_client(client, researcher)
    html = client.get(reverse("exports:list")).content.decode()
    assert built.spec.name in html and built.sha256 in html and "v1" in html
    assert str(built.counts["instructions"]) in html


def test_list_page_query_count_does_not_grow_with_exports(
    client, researcher, corpus, make_spec, django_assert_max_num_queries
):
    for n in range(4):
        spec = make_spec(f"export-{n}", formats=["llava"])
        build(spec, by=researcher)
        build(spec, by=researcher)
    page_client(client, researcher)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("exports:list"))
    assert response.content.decode().count('class="version"') == 8


def test_new_export_form_creates_the_spec_and_queues_v1(
    client, researcher, corpus, django_capture_on_commit_callbacks
):
    page_client(client, researcher)
    assert client.get(reverse("exports:new")).status_code == 200
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            reverse("exports:new"),
            {
                "name": "animals-only",
                "domains": ["animals"],
                "statuses": ["accepted"],
                "train_ratio": "0.9",
                "seed": "7",
                "formats": ["llava", "parquet"],
                "image_mode": "copy",
                "conversation_mode": "multi_turn",
            },
        )
    spec = ExportSpec.objects.get(name="animals-only")
    assert spec.selection["domains"] == ["animals"] and spec.formats == ["llava", "parquet"]
    assert spec.created_by == researcher
    version = spec.versions.get()
    assert response["Location"] == reverse("exports:version", args=[version.pk])
    assert len(queued) == 1


def test_new_export_form_shows_errors_and_creates_nothing(client, researcher, corpus, make_spec):
    make_spec("taken")
    page_client(client, researcher)
    response = client.post(
        reverse("exports:new"),
        {
            "name": "taken",
            "statuses": ["accepted"],
            "train_ratio": "0.9",
            "seed": "0",
            "formats": ["llava"],
            "image_mode": "copy",
            "conversation_mode": "multi_turn",
        },
    )
    assert response.status_code == 400
    assert "exists already" in response.content.decode()
    assert ExportSpec.objects.count() == 1


def test_version_page_and_progress_partial_show_the_built_version(client, researcher, built):
    page_client(client, researcher)
    html = client.get(reverse("exports:version", args=[built.pk])).content.decode()
    assert built.sha256 in html and "data/train.llava.json" in html
    partial = client.get(reverse("exports:progress", args=[built.pk])).content.decode()
    assert 'data-status="done"' in partial and "hx-trigger" not in partial


def test_progress_partial_polls_while_building(client, researcher, corpus, make_spec):
    from exports.services import progress
    from exports.services.build import start_attempt
    from exports.services.specs import allocate_version

    version = allocate_version(make_spec(formats=["llava"]), by=researcher)
    start_attempt(version)
    progress.write(version.pk, 250, 1000)
    page_client(client, researcher)
    partial = client.get(reverse("exports:progress", args=[version.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in partial and "250 of 1000 rows read" in partial
    assert 'aria-valuenow="25"' in partial


def test_spec_text_is_escaped_on_pages(client, researcher, corpus, make_spec):
    make_spec("escaped", description="<script>alert(1)</script>")
    page_client(client, researcher)
    html = client.get(reverse("exports:list")).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


# --- download ----------------------------------------------------------------------------------


def test_download_streams_the_archive_with_its_sha256_headers(client, researcher, built):
    page_client(client, researcher)
    response = client.get(reverse("exports:download", args=[built.pk]))
    assert response.streaming
    assert response["ETag"] == f'"{built.sha256}"' and response["X-Checksum-SHA256"] == built.sha256
    assert response["Content-Disposition"].startswith("attachment")
    digest = base64.b64encode(bytes.fromhex(built.sha256)).decode()
    assert response["Digest"] == f"sha-256={digest}" and response["Repr-Digest"] == f"sha-256=:{digest}:"
    assert content(response) == archive_path(built).read_bytes()


def test_download_serves_byte_ranges(client, researcher, built):
    page_client(client, researcher)
    whole = archive_path(built).read_bytes()
    response = client.get(reverse("exports:download", args=[built.pk]), HTTP_RANGE="bytes=100-611")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-611/{len(whole)}"
    assert content(response) == whole[100:612]
    tail = client.get(reverse("exports:download", args=[built.pk]), HTTP_RANGE="bytes=-10")
    assert content(tail) == whole[-10:]
    beyond = client.get(reverse("exports:download", args=[built.pk]), HTTP_RANGE=f"bytes={len(whole)}-")
    assert beyond.status_code == 416


def test_a_tampered_archive_is_refused_not_served(client, researcher, built):
    path = archive_path(built)
    data = bytearray(path.read_bytes())
    data[700] ^= 0xFF
    path.write_bytes(bytes(data))
    page_client(client, researcher)
    response = client.get(reverse("exports:download", args=[built.pk]))
    assert response.status_code == 409
    assert "does not match its sha256" in response.content.decode()
    assert api_client(researcher).get(f"/api/v1/export-versions/{built.pk}/download/").status_code == 409


def test_an_unbuilt_version_has_nothing_to_download(client, researcher, corpus, make_spec):
    from exports.services.specs import allocate_version

    version = allocate_version(make_spec(formats=["llava"]), by=researcher)
    page_client(client, researcher)
    assert client.get(reverse("exports:download", args=[version.pk])).status_code == 409


# --- diff --------------------------------------------------------------------------------------


@pytest.fixture
def two_versions(built, annotator):
    edited = Instruction.objects.filter(status=ItemStatus.ACCEPTED, type="short_vqa").first()
    update_item(edited, by=annotator, expected_version=edited.version, changes={"answer": "dark green"})
    v2 = build(built.spec)
    return built, v2, edited


def test_diff_page_and_downloads_show_the_changed_instruction(client, researcher, two_versions):
    v1, v2, edited = two_versions
    page_client(client, researcher)
    url = reverse("exports:diff", args=[v2.pk])
    html = client.get(url, {"against": v1.pk}).content.decode()
    history = f"/review/item/instruction/{edited.pk}/history/"
    assert "1 changed" in html and "0 added" in html and f'<a href="{history}">{edited.pk}</a>' in html
    # The id opens the item's history, where the edit shows as a content diff (<del>/<ins>).
    assert "<ins>dark</ins>" in client.get(history).content.decode()
    data = json.loads(client.get(url, {"against": v1.pk, "format": "json"}).content)
    assert data["changed"] == 1
    assert data["changes"] == [
        {
            "id": edited.pk,
            "change": "changed",
            "old_version": 1,
            "new_version": 2,
            "domain": edited.image.domain.slug,
            "type": "short_vqa",
        }
    ]
    csv_text = content(client.get(url, {"against": v1.pk, "format": "csv"})).decode()
    assert csv_text.splitlines() == [
        "id,change,old_version,new_version,domain,type",
        f"{edited.pk},changed,1,2,{edited.image.domain.slug},short_vqa",
    ]


def test_diff_api_and_bad_requests(researcher, two_versions, corpus, make_spec):
    v1, v2, edited = two_versions
    api = api_client(researcher)
    data = api.get(f"/api/v1/export-versions/{v2.pk}/diff/", {"against": v1.pk}).json()
    assert (data["added"], data["removed"], data["changed"]) == (0, 0, 1)
    assert api.get(f"/api/v1/export-versions/{v2.pk}/diff/").status_code == 400
    other = build(make_spec("other", formats=["llava"]))
    assert api.get(f"/api/v1/export-versions/{v2.pk}/diff/", {"against": other.pk}).status_code == 409


def test_diff_page_answers_refusals_as_the_api_does_with_a_page(client, researcher, two_versions, make_spec):
    v1, v2, _ = two_versions
    page_client(client, researcher)
    url = reverse("exports:diff", args=[v2.pk])
    for bad in ("", "v1", "-3"):
        response = client.get(url, {"against": bad})
        assert response.status_code == 400, bad
        assert "give the other version&#x27;s id" in response.content.decode()
    other = build(make_spec("other", formats=["llava"]))
    refused = client.get(url, {"against": other.pk})
    html = refused.content.decode()
    assert refused.status_code == 409 and "two versions of the same export" in html
    assert f'href="{reverse("exports:version", args=[v2.pk])}"' in html  # the way back
    assert client.get(url, {"against": 999_999}).status_code == 404
    api = api_client(researcher)
    response = api.get(f"/api/v1/export-versions/{v2.pk}/diff/", {"against": "v1"})
    assert response.status_code == 400 and "against" in field_errors(response)


def test_an_unbuilt_version_download_page_says_why_and_links_back(client, researcher, corpus, make_spec):
    from exports.services.specs import allocate_version

    version = allocate_version(make_spec(formats=["llava"]), by=researcher)
    page_client(client, researcher)
    response = client.get(reverse("exports:download", args=[version.pk]))
    html = response.content.decode()
    assert response.status_code == 409 and "nothing to download yet" in html
    assert f'href="{reverse("exports:version", args=[version.pk])}"' in html
    api = api_client(researcher).get(f"/api/v1/export-versions/{version.pk}/download/")
    assert api.status_code == 409 and "nothing to download yet" in api.json()["detail"]


def test_version_page_lists_its_history_from_the_first_event(client, researcher, built):
    page_client(client, researcher)
    html = client.get(reverse("exports:version", args=[built.pk])).content.decode()
    history = html.split("<h2>History</h2>", 1)[1]
    assert " queued " in history and "queued → building" in history and "building → done" in history
    assert " → queued" not in history  # the first event comes from nothing, shown as just "queued"


# --- API ---------------------------------------------------------------------------------------


def test_api_creates_a_spec_and_answers_202_with_the_queued_version(
    researcher, corpus, django_capture_on_commit_callbacks
):
    api = api_client(researcher)
    with django_capture_on_commit_callbacks() as queued:
        response = api.post(
            "/api/v1/exports/",
            {
                "name": "api-made",
                "selection": {"types": ["judgement"]},
                "formats": ["sharegpt"],
                "train_ratio": 1,
            },
            format="json",
        )
    assert response.status_code == 202, response.content
    assert response.json()["number"] == 1 and response.json()["status"] == "queued"
    assert len(queued) == 1
    spec = ExportSpec.objects.get(name="api-made")
    assert spec.selection["types"] == ["judgement"] and spec.train_ratio == 1


def test_api_refuses_a_bad_spec_with_field_errors(researcher, corpus):
    response = api_client(researcher).post(
        "/api/v1/exports/", {"name": "bad", "selection": {"domains": ["nowhere"]}}, format="json"
    )
    assert response.status_code == 400
    assert "no such domain" in field_errors(response)["domains"][0]
    assert not ExportSpec.objects.exists()


def test_api_build_queues_the_next_version(researcher, built, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        response = api_client(researcher).post(f"/api/v1/exports/{built.spec_id}/build/")
    assert response.status_code == 202 and response.json()["number"] == 2
    assert len(queued) == 1


def test_api_lists_exports_and_versions_with_a_fixed_number_of_queries(
    researcher, corpus, make_spec, django_assert_max_num_queries
):
    for n in range(3):
        spec = make_spec(f"export-{n}", formats=["llava"])
        build(spec)
        build(spec)
    api = api_client(researcher)
    with django_assert_max_num_queries(6):
        data = api.get("/api/v1/exports/").json()
    assert data["count"] == 3
    version = data["results"][0]["versions"][0]
    assert version["sha256"] and version["size_bytes"] and version["counts"]["instructions"]
    assert version["download_url"].endswith("/download/")
    with django_assert_max_num_queries(6):
        versions = api.get("/api/v1/export-versions/", {"status": "done"}).json()
    assert versions["count"] == 6


def test_api_version_detail_reports_progress_while_building(researcher, corpus, make_spec):
    from exports.services import progress
    from exports.services.build import start_attempt
    from exports.services.specs import allocate_version

    version = allocate_version(make_spec(formats=["llava"]), by=researcher)
    start_attempt(version)
    progress.write(version.pk, 10, 40)
    data = api_client(researcher).get(f"/api/v1/export-versions/{version.pk}/").json()
    assert data["status"] == "building" and data["progress"] == {"done": 10, "total": 40, "percent": 25}
    assert data["download_url"] is None


def test_django_admin_shows_a_built_spec_read_only_and_versions_unchangeable(client, admin_user, built):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    page = client.get(f"/django-admin/exports/exportspec/{built.spec_id}/change/")
    assert page.status_code == 200
    assert 'name="selection"' not in page.content.decode()
    response = client.post(f"/django-admin/exports/exportversion/{built.pk}/change/", {"sha256": "0" * 64})
    assert response.status_code == 403
    built.refresh_from_db()
    assert built.sha256 != "0" * 64
