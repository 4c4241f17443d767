"""The ocr stage with the real engine (RapidOCR on ONNX Runtime) on the demo image with text: units like
the other stages, no endpoint and no cost; the text it finds lands in the image's ocr_text and in the
caption prompt the vision model receives. Per domain on or off."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from generation import services
from generation.models import GenerationJob, GenerationUnit, JobStatus, Stage, UnitStatus
from generation.services import ocr
from tests.conftest import field_errors, require_module
from tests.corpus.factories import DomainFactory, ImageFactory

pytestmark = pytest.mark.django_db(transaction=True)
DEMO = Path(__file__).resolve().parents[2] / "demo" / "images"


@pytest.fixture(autouse=True)
def engine():
    require_module("rapidocr_onnxruntime", "the ocr extra (make install-dev installs it)")


@pytest.fixture
def documents():
    return DomainFactory(slug="documents", name="Documents", ocr_enabled=True)


def demo_image(domain, name="text.png"):
    return ImageFactory(domain=domain, content=(DEMO / name).read_bytes(), original_name=name)


def test_a_caption_job_uses_the_ocr_lines_the_ocr_stage_found(eager, endpoints, fake, documents, admin_user):
    image = demo_image(documents)
    job = services.launch_job(stage="ocr", by=admin_user, domains=["documents"])
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.endpoint is None
    unit = GenerationUnit.objects.get(job=job)
    assert (unit.status, unit.cost, unit.tokens_in, unit.drafts) == (UnitStatus.DONE, 0, 0, 1)
    assert unit.prompt is None and unit.endpoint is None
    image.refresh_from_db()
    lines = image.ocr_text.splitlines()
    assert lines, "the engine found no text in the demo image with text"
    assert fake.requests == []  # OCR calls no model

    services.launch_job(stage="captions", by=admin_user, domains=["documents"])
    (request,) = fake.requests
    assert request.kind == "caption"
    assert f"Text found in the image by OCR (may be empty or noisy): {image.ocr_text}" in request.prompt
    for line in lines:
        assert line in request.prompt


def test_ocr_text_already_there_is_kept_and_a_second_launch_runs_nothing(eager, documents, admin_user):
    typed = demo_image(documents)
    typed.ocr_text = "typed at import"
    typed.save(update_fields=["ocr_text"])
    other = demo_image(documents, "coins.png")
    first = services.launch_job(stage="ocr", by=admin_user, domains=["documents"])
    assert list(first.units.values_list("image_id", flat=True)) == [other.pk]
    typed.refresh_from_db()
    assert typed.ocr_text == "typed at import"
    second = services.launch_job(stage="ocr", by=admin_user, domains=["documents"])
    second.refresh_from_db()
    assert second.units.count() == 0 and second.status == JobStatus.DONE
    assert GenerationUnit.objects.filter(stage=Stage.OCR).count() == 1
    # A unit key of its own: planning the same unit again (a redelivered planning task) adds none.
    from generation.services import jobs as job_service

    GenerationJob.objects.filter(pk=first.pk).update(planned=False)
    first.refresh_from_db()
    job_service.plan_units(first)
    assert GenerationUnit.objects.filter(stage=Stage.OCR).count() == 1


def test_an_unreadable_file_fails_its_unit_with_the_reason(eager, documents, admin_user):
    image = demo_image(documents)
    Path(image.file.path).write_bytes(b"not an image at all")
    job = services.launch_job(stage="ocr", by=admin_user, domains=["documents"])
    job.refresh_from_db()
    unit = job.units.get()
    assert job.status == JobStatus.FAILED and unit.status == UnitStatus.FAILED
    assert "OCR failed" in unit.error and unit.cost == 0


def test_ocr_is_refused_for_a_domain_with_ocr_off_naming_it(admin_user):
    DomainFactory(slug="animals", ocr_enabled=False)
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post("/api/v1/generation/jobs/", {"stage": "ocr", "domains": ["animals"]}, format="json")
    assert response.status_code == 400
    assert "OCR is off for domain(s) animals" in field_errors(response)["domains"][0]
    with pytest.raises(CommandError, match="OCR is off"):
        call_command("generate", "ocr", "--domain", "animals")
    assert not GenerationJob.objects.exists()


def test_admins_turn_ocr_on_for_a_domain_through_the_api(admin_user, annotator):
    DomainFactory(slug="animals", ocr_enabled=False)
    api = APIClient()
    api.force_authenticate(annotator)
    assert api.patch("/api/v1/domains/animals/", {"ocr_enabled": True}, format="json").status_code == 403
    api.force_authenticate(admin_user)
    response = api.patch("/api/v1/domains/animals/", {"ocr_enabled": True}, format="json")
    assert response.status_code == 200 and response.json()["ocr_enabled"] is True


def test_the_engine_reads_printed_text():
    import io

    from PIL import Image, ImageDraw, ImageFont

    card = Image.new("RGB", (700, 120), "white")
    ImageDraw.Draw(card).text((20, 30), "Invoice 48213", fill="black", font=ImageFont.load_default(size=48))
    buf = io.BytesIO()
    card.save(buf, "PNG")
    buf.seek(0)
    assert "48213" in ocr.read_text(buf).text


@pytest.mark.worker
def test_ocr_units_run_in_a_real_worker_process(workers, documents, admin_user):
    from tests.workers import wait_for

    from .conftest import assert_one_event_per_move

    images = [demo_image(documents, name) for name in ("text.png", "coins.png", "horse.png")]
    workers.env.update(GENERATION_CHUNK_SIZE="2")
    workers.start()
    job = services.launch_job(stage="ocr", by=admin_user, domains=["documents"])
    wait_for(lambda: GenerationJob.objects.get(pk=job.pk).status == JobStatus.DONE, 120, what="the OCR job")
    assert set(job.units.values_list("status", flat=True)) == {UnitStatus.DONE}
    assert_one_event_per_move(job)
    images[0].refresh_from_db()
    assert images[0].ocr_text  # the demo image with text


def test_the_jobs_pages_show_an_ocr_job_without_an_endpoint(client, documents, admin_user, eager):
    demo_image(documents)
    job = services.launch_job(stage="ocr", by=admin_user, domains=["documents"])
    client.force_login(admin_user)
    listing = client.get(reverse("generation:jobs"))
    assert listing.status_code == 200 and "local OCR" in listing.content.decode()
    detail = client.get(reverse("generation:job", args=[job.pk])).content.decode()
    assert "The local OCR engine (no endpoint, no cost)" in detail
    assert "The text a local OCR engine finds in each image" in detail
