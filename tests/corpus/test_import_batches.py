"""Large uploads: staged in the request, imported by a worker (the task function, and a real worker)."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from corpus.models import Domain, Image, ImportBatch, ImportBatchStatus
from corpus.services.import_batches import stage_upload, staging_path
from corpus.tasks import import_batch
from tests.corpus.factories import png_bytes
from tests.workers import wait_for


def zip_upload(name: str = "batch.zip", members: int = 3) -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n in range(members):
            zf.writestr(f"img-{n}.png", png_bytes(500 + n))
        zf.writestr("readme.txt", "not an image")
    return SimpleUploadedFile(name, buf.getvalue(), content_type="application/zip")


@pytest.mark.django_db
def test_zip_upload_is_staged_queued_and_imported_by_the_task(
    client, admin_user, settings, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/images/import/", {"domain": "ocr", "source": "zip", "files": [zip_upload()]})
    batch = ImportBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/images/import/{batch.pk}/"
    assert len(queued) == 1  # the task is sent only once the batch is committed
    assert batch.status == ImportBatchStatus.QUEUED and not Image.objects.exists()
    staged = staging_path(batch)
    assert staged.is_relative_to(settings.IMPORT_STAGING_ROOT)  # outside MEDIA_ROOT: no URL reaches it
    assert [p.name for p in staged.glob("*/*")] == ["batch.zip"]
    assert "Queued" in client.get(f"/images/import/{batch.pk}/").content.decode()

    import_batch(batch.pk)  # what the worker runs

    batch.refresh_from_db()
    assert batch.status == ImportBatchStatus.DONE
    assert (batch.summary["imported"], batch.summary["rejected"]) == (3, 1)
    assert Image.objects.filter(source="zip", domain__slug="ocr").count() == 3
    assert not staged.exists()
    page = client.get(f"/images/import/{batch.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert 'class="n-imported">3<' in page and "hx-trigger" not in page  # finished: polling stops
    assert "batch.zip:readme.txt" in page


@pytest.mark.django_db
def test_running_a_finished_batch_again_changes_nothing(admin_user):
    batch = stage_upload([zip_upload()], domain=Domain.objects.get(slug="ocr"), by=admin_user)
    import_batch(batch.pk)
    first = ImportBatch.objects.get(pk=batch.pk).summary
    import_batch(batch.pk)
    assert ImportBatch.objects.get(pk=batch.pk).summary == first
    assert Image.objects.count() == 3
    import_batch(999_999)  # a missing batch is logged and ignored


@pytest.mark.django_db
def test_many_files_go_to_the_background_and_few_are_imported_at_once(client, admin_user, settings):
    settings.IMPORT_INLINE_MAX_FILES = 2
    client.force_login(admin_user)
    few = [SimpleUploadedFile(f"{n}.png", png_bytes(n)) for n in range(2)]
    assert client.post("/images/import/", {"domain": "ocr", "files": few}).status_code == 200
    assert Image.objects.count() == 2 and not ImportBatch.objects.exists()
    many = [SimpleUploadedFile(f"{n}.png", png_bytes(10 + n)) for n in range(3)]
    assert client.post("/images/import/", {"domain": "ocr", "files": many}).status_code == 302
    assert ImportBatch.objects.get().n_files == 3


@pytest.mark.django_db
def test_api_zip_upload_answers_202_with_the_batch_and_its_summary_later(admin_user, annotator):
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post(
        "/api/v1/images/upload/", {"domain": "ocr", "files": [zip_upload()]}, format="multipart"
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["summary"] is None
    import_batch(body["id"])
    done = api.get(f"/api/v1/import-batches/{body['id']}/").json()
    assert done["status"] == "done" and done["summary"]["imported"] == 3
    api.force_authenticate(annotator)
    assert api.get(f"/api/v1/import-batches/{body['id']}/").status_code == 403


@pytest.mark.django_db
def test_annotator_cannot_see_import_batches(client, annotator, admin_user):
    batch = stage_upload([zip_upload()], domain=Domain.objects.get(slug="ocr"), by=admin_user)
    client.force_login(annotator)
    assert client.get(f"/images/import/{batch.pk}/").status_code == 403


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_celery_worker_imports_a_staged_upload(workers, admin_user):
    domain = Domain.objects.get_or_create(slug="worker-test", defaults={"name": "Worker test"})[0]
    workers.start("importer")
    batch = stage_upload([zip_upload(members=2)], domain=domain, by=admin_user)

    def finished():
        batch.refresh_from_db()
        return batch.is_finished

    wait_for(finished, 60, "the worker to finish the batch", interval=0.5)
    assert batch.status == ImportBatchStatus.DONE, workers.log("importer")[-3000:]
    assert batch.summary["imported"] == 2
    assert Image.objects.filter(domain=domain).count() == 2


@pytest.mark.django_db
def test_import_batch_list_endpoint_has_no_n_plus_one(admin_user, django_assert_max_num_queries):
    ocr = Domain.objects.get(slug="ocr")
    for _ in range(4):
        stage_upload([zip_upload()], domain=ocr, by=admin_user)
    api = APIClient()
    api.force_authenticate(admin_user)
    with django_assert_max_num_queries(5):
        response = api.get("/api/v1/import-batches/")
    assert response.json()["count"] == 4
