"""Both stages end to end in one process: the real runner and openai client against the fake server,
Celery in eager mode. Worker processes, redelivery and the shared rate limit are in test_workers.py."""

from decimal import Decimal

import pytest

from corpus.models import Caption, Instruction, ItemStatus, ReviewStatus
from corpus.rules import InstructionType
from corpus.transitions import InvalidTransition
from generation import selectors, services
from generation.models import GenerationJob, GenerationUnit, JobStatus, UnitStatus
from generation.services import jobs as job_service
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def domain():
    return DomainFactory(slug="charts", name="Charts")


def launch(admin, stage, **kw):
    kw.setdefault("domains", ["charts"])
    return services.launch_job(stage=stage, by=admin, **kw)


def test_caption_job_drafts_one_caption_per_image_with_provenance(eager, endpoints, fake, domain, admin_user):
    images = ImageFactory.create_batch(3, domain=domain)
    job = launch(admin_user, "captions")
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    captions = Caption.objects.filter(image__in=images)
    assert captions.count() == 3
    unit = GenerationUnit.objects.get(pk=captions[0].generation_unit_id)
    caption = captions[0]
    assert caption.status == ItemStatus.DRAFT
    assert caption.model_name == f"{endpoints['vision'].name}/{endpoints['vision'].model}"
    assert caption.prompt_version == unit.prompt.version == 1
    assert (caption.tokens_in, caption.tokens_out) == fake.usage
    assert caption.cost > 0 and caption.latency_ms >= 10  # the fake answers after 10 ms
    assert len(caption.text.split()) >= 150
    assert {r.kind for r in fake.requests} == {"caption"}
    progress = selectors.progress(job)
    assert (progress.total, progress.done, progress.failed) == (3, 3, 0)
    assert progress.cost == sum((c.cost for c in captions), Decimal(0))
    for image in images:
        image.refresh_from_db()
        assert image.review_status == ReviewStatus.PENDING


def test_vision_request_carries_a_downscaled_data_url(eager, endpoints, domain, admin_user, settings):
    from generation.services.drafting import image_data_url

    settings.GENERATION_IMAGE_MAX_SIDE = 16
    image = ImageFactory(domain=domain)  # 32×24
    url = image_data_url(image)
    assert url.startswith("data:image/jpeg;base64,")
    import base64
    import io

    from PIL import Image as PILImage

    decoded = PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert max(decoded.size) == 16


def test_instruction_job_writes_n_of_each_type_and_keeps_invalid_ones(
    eager, endpoints, fake, domain, admin_user
):
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    fake.script(
        ["mcq_bad", "ok", "ok", "ok"]
    )  # the first type asked (judgement? any) gets a bad MCQ only if MCQ
    job = launch(admin_user, "instructions", n_per_type=2, types=["multiple_choice"])
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    instructions = Instruction.objects.filter(image=image)
    assert instructions.count() == 2
    assert {i.status for i in instructions} == {ItemStatus.INVALID}
    assert all("must be the letter of one of the options" in i.reason for i in instructions)
    unit = GenerationUnit.objects.get(job=job)
    assert (unit.drafts, unit.invalid) == (2, 2)


def test_instruction_job_covers_every_chosen_type(eager, endpoints, fake, domain, admin_user):
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.DRAFT)
    job = launch(admin_user, "instructions", n_per_type=3, include_drafts=True)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    by_type = {
        t: Instruction.objects.filter(image=image, type=t, status=ItemStatus.DRAFT).count()
        for t in InstructionType.values
    }
    assert by_type == {t: 3 for t in InstructionType.values}
    judgements = Instruction.objects.filter(image=image, type="judgement")
    assert {j.answer for j in judgements} == {"Yes", "No"}


def test_instruction_stage_skips_images_without_an_accepted_caption_unless_drafts_allowed(
    eager, endpoints, domain, admin_user
):
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.DRAFT)
    job = launch(admin_user, "instructions", types=["short_vqa"])
    assert selectors.progress(job).total == 0
    assert not Instruction.objects.exists()


def test_fenced_json_with_prose_around_it_is_parsed(eager, endpoints, fake, domain, admin_user):
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    fake.script(["fenced"])
    launch(admin_user, "instructions", types=["short_vqa"], n_per_type=2)
    assert Instruction.objects.filter(image=image, status=ItemStatus.DRAFT).count() == 2
    assert fake.outcomes() == ["fenced"]


def test_second_launch_over_the_same_selection_makes_no_second_draft(
    eager, endpoints, fake, domain, admin_user
):
    ImageFactory.create_batch(2, domain=domain)
    launch(admin_user, "captions")
    second = launch(admin_user, "captions")
    second.refresh_from_db()
    assert Caption.objects.count() == 2
    assert len(fake.requests) == 2
    progress = selectors.progress(second)
    assert (progress.total, progress.skipped, progress.done) == (2, 2, 0)
    assert second.status == JobStatus.DONE


def test_failed_units_are_taken_up_again_by_a_later_launch(
    eager, endpoints, fake, domain, admin_user, settings
):
    settings.GENERATION_MAX_ATTEMPTS = 1
    ImageFactory(domain=domain)
    fake.script(["500"])
    first = launch(admin_user, "captions")
    first.refresh_from_db()
    assert first.status == JobStatus.FAILED
    second = launch(admin_user, "captions")
    second.refresh_from_db()
    assert second.status == JobStatus.DONE
    assert selectors.progress(second).done == 1 and Caption.objects.count() == 1


def test_regeneration_queues_a_new_round_that_runs_although_the_first_is_done(
    eager, endpoints, fake, domain, admin_user
):
    image = ImageFactory(domain=domain)
    launch(admin_user, "captions")
    job = services.queue_regeneration(image, stage="captions", by=admin_user)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    rounds = sorted(GenerationUnit.objects.filter(image=image).values_list("round", flat=True))
    assert rounds == [0, 1]
    assert Caption.objects.filter(image=image).count() == 2
    again = services.queue_regeneration(
        image, stage="instructions", by=admin_user, instruction_type="judgement"
    )
    again.refresh_from_db()
    assert again.status == JobStatus.DONE
    assert set(Instruction.objects.filter(image=image).values_list("type", flat=True)) == {"judgement"}


def test_regenerating_instructions_without_a_caption_is_refused(endpoints, domain, admin_user):
    image = ImageFactory(domain=domain)
    with pytest.raises(services.LaunchError, match="no caption"):
        services.queue_regeneration(image, stage="instructions", by=admin_user)


@pytest.mark.parametrize(
    ("script", "status", "attempts", "error"),
    [
        (["429", "ok"], UnitStatus.DONE, 2, ""),
        (["500", "500", "ok"], UnitStatus.DONE, 3, ""),
        (["hang", "ok"], UnitStatus.DONE, 2, ""),
        (["malformed", "ok"], UnitStatus.DONE, 2, ""),
        (["400"], UnitStatus.FAILED, 1, "HTTP 400 from http://127.0.0.1:"),
        (
            ["500", "500", "500"],
            UnitStatus.FAILED,
            3,
            "gave up after 3 attempts: HTTP 500 from http://127.0.0.1:",
        ),
    ],
)
def test_faults_are_retried_when_transient_and_fail_the_unit_otherwise(
    eager, endpoints, fake, domain, admin_user, settings, script, status, attempts, error
):
    settings.GENERATION_MAX_ATTEMPTS = 3
    fake.retry_after = 0.2
    fake.hang_seconds = 4
    endpoints["vision"].__class__.objects.filter(pk=endpoints["vision"].pk).update(timeout=0.5)
    ImageFactory(domain=domain)
    fake.script(script)
    job = launch(admin_user, "captions")
    unit = GenerationUnit.objects.get(job=job)
    assert (unit.status, unit.attempts) == (status, attempts)
    assert error in unit.error
    assert Caption.objects.count() == (1 if status == UnitStatus.DONE else 0)


def test_429_waits_for_retry_after(eager, endpoints, fake, domain, admin_user):
    fake.retry_after = 1
    ImageFactory(domain=domain)
    fake.script(["429", "ok"])
    launch(admin_user, "captions")
    first, second = fake.requests
    assert second.at - first.at >= 0.95


def test_malformed_instruction_content_is_retried_then_fails_with_the_reason(
    eager, endpoints, fake, domain, admin_user, settings
):
    settings.GENERATION_MAX_ATTEMPTS = 2
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    fake.script(["bad_content", "bad_content"])
    job = launch(admin_user, "instructions", types=["long_vqa"])
    unit = GenerationUnit.objects.get(job=job)
    assert unit.status == UnitStatus.FAILED
    assert "malformed output" in unit.error
    assert unit.tokens_in == 2 * fake.usage[0]  # both answers were billed, so both are counted
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_cancelled_job_runs_nothing_and_resume_requires_a_pause(endpoints, fake, domain, admin_user):
    ImageFactory.create_batch(2, domain=domain)
    job = launch(admin_user, "captions", start=False)
    assert services.cancel_job(job, by=admin_user)
    job_service.plan_units(job)
    from generation.services import runner

    result = runner.run_chunk(job.pk, list(job.units.values_list("pk", flat=True)))
    assert result.stopped and not fake.requests
    assert not services.resume_job(job, by=admin_user)
    with pytest.raises(InvalidTransition):
        job_service.move_job(job, JobStatus.RUNNING)


def test_pause_stops_taking_units_and_resume_finishes_the_job(eager, endpoints, fake, domain, admin_user):
    ImageFactory.create_batch(3, domain=domain)
    job = GenerationJob.objects.get(pk=launch(admin_user, "captions").pk)
    assert job.status == JobStatus.DONE  # eager ran it; now a paused job from scratch:
    ImageFactory.create_batch(2, domain=domain)
    from generation.services import runner

    job2 = launch(admin_user, "captions", start=False)
    assert job_service.move_job(job2, JobStatus.RUNNING)
    job_service.plan_units(job2)
    assert services.pause_job(job2, by=admin_user)
    result = runner.run_chunk(job2.pk, list(job2.units.values_list("pk", flat=True)))
    assert result.stopped and selectors.progress(job2).pending == 2
    assert services.resume_job(job2, by=admin_user)
    job2.refresh_from_db()
    assert job2.status == JobStatus.DONE
    assert Caption.objects.count() == 5
    assert list(job2.events.values_list("to_status", flat=True)) == [
        "queued",
        "running",
        "paused",
        "running",
        "done",
    ]


@pytest.mark.parametrize("supports", [True, False])
def test_structured_output_is_asked_for_only_where_the_endpoint_supports_it(
    eager, endpoints, fake, domain, admin_user, supports
):
    endpoints["text"].__class__.objects.filter(kind="text").update(supports_json_schema=supports)
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    launch(admin_user, "instructions", types=["judgement"], n_per_type=4)
    (request,) = fake.requests
    assert request.schema_name == ("judgement_instructions" if supports else "")
    assert Instruction.objects.filter(image=image, status=ItemStatus.DRAFT).count() == 4


def test_caption_request_sends_the_image_as_a_data_url(eager, endpoints, fake, domain, admin_user):
    ImageFactory(domain=domain)
    launch(admin_user, "captions")
    assert fake.requests[0].image_url.startswith("data:image/jpeg;base64,")
