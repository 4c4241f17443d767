"""The claim protocol: only the current claim's holder writes; dead workers' units and lost chunks come
back; nothing is generated twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from corpus.models import Caption
from generation import selectors, services
from generation.models import GenerationUnit, JobStatus, UnitStatus
from generation.services import drafting
from generation.services import jobs as job_service
from generation.services import units as unit_service
from tests.corpus.factories import DomainFactory, ImageFactory


def planned_job(admin, n=1, slug="maps"):
    domain = DomainFactory(slug=slug)
    ImageFactory.create_batch(n, domain=domain)
    job = services.launch_job(stage="captions", by=admin, domains=[slug], start=False)
    job_service.move_job(job, JobStatus.RUNNING)
    job_service.plan_units(job)
    return job


@pytest.mark.django_db
def test_a_worker_whose_lease_ran_out_cannot_write_after_another_took_the_unit(admin_user):
    job = planned_job(admin_user)
    unit = job.units.get()
    slow = unit_service.claim_unit(unit.pk, lease=-1)  # its lease is already over: as if the worker hung
    fast = unit_service.claim_unit(unit.pk, lease=60)
    assert slow.unit and fast.unit and slow.token != fast.token
    request = drafting.Request(unit_id=unit.pk, stage="captions", prompt="p")
    usage = drafting.Usage(tokens_in=1, tokens_out=2, attempts=1)
    assert (
        drafting.write_result(
            slow.unit, slow.token, request, text="late", items=None, model_name="m", usage=usage
        )
        is False
    )
    assert drafting.write_result(
        fast.unit, fast.token, request, text="first", items=None, model_name="m", usage=usage
    )
    assert (
        drafting.write_result(
            fast.unit, fast.token, request, text="again", items=None, model_name="m", usage=usage
        )
        is False
    )
    assert list(Caption.objects.values_list("text", flat=True)) == ["first"]
    assert GenerationUnit.objects.get(pk=unit.pk).status == UnitStatus.DONE


@pytest.mark.django_db
def test_a_unit_under_a_live_lease_is_left_to_its_worker(admin_user):
    job = planned_job(admin_user)
    unit = job.units.get()
    assert unit_service.claim_unit(unit.pk, lease=60).unit
    second = unit_service.claim_unit(unit.pk, lease=60)
    assert second.unit is None and second.held_until > timezone.now()


@pytest.mark.django_db
def test_relaunch_while_the_first_job_runs_skips_its_units(admin_user):
    job = planned_job(admin_user, n=3)
    again = services.launch_job(stage="captions", by=admin_user, domains=["maps"], start=False)
    job_service.move_job(again, JobStatus.RUNNING)
    job_service.plan_units(again)
    job_service.plan_units(again)  # a redelivered planning task changes nothing
    assert again.units.count() == 0 and again.skipped == 3
    assert GenerationUnit.objects.count() == 3 and job.units.count() == 3


@pytest.mark.django_db(transaction=True)
def test_sweep_hands_a_dead_workers_unit_to_a_live_one(eager, endpoints, fake, admin_user):
    job = planned_job(admin_user, n=2)
    dead = job.units.first()
    unit_service.claim_unit(dead.pk, lease=60)
    GenerationUnit.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    report = services.sweep_jobs()  # frees the expired unit and queues it (eager: runs it now)
    assert report.freed == {job.pk: [dead.pk]}
    dead.refresh_from_db()
    assert dead.status == UnitStatus.DONE
    assert Caption.objects.filter(generation_unit_id=dead.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_sweep_requeues_a_stalled_job_whose_chunks_were_lost(eager, endpoints, fake, admin_user, settings):
    job = planned_job(admin_user, n=3)  # planned, but no chunk was ever queued
    settings.GENERATION_STALL_SECONDS = 3600
    assert not services.sweep_jobs()
    assert selectors.progress(job).pending == 3  # not stalled yet: nothing happens
    settings.GENERATION_STALL_SECONDS = 0
    report = services.sweep_jobs()
    assert report.requeued == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert Caption.objects.count() == 3 and len(fake.requests) == 3


@pytest.mark.django_db
def test_instruction_prompt_carries_caption_prior_knowledge_and_sampled_seeds(admin_user):
    from corpus.models import SeedQuestion
    from tests.corpus.factories import CaptionFactory

    domain = DomainFactory(slug="docs", name="Documents")
    image = ImageFactory(domain=domain, prior_knowledge="an invoice from 1998")
    CaptionFactory(image=image, text="A printed invoice with a red stamp.", status="accepted")
    for i in range(3):
        SeedQuestion.objects.create(
            domain=domain, type="short_vqa", question=f"Seed question {i}?", answer="x"
        )
    job = services.launch_job(
        stage="instructions", by=admin_user, domains=["docs"], types=["short_vqa", "judgement"], start=False,
        seeds_per_prompt=2, n_per_type=5,
    )  # fmt: skip
    job_service.plan_units(job)
    with_seeds = drafting.prepare(
        job.units.select_related("prompt", "endpoint").get(instruction_type="short_vqa"), job.params
    )
    assert "A printed invoice with a red stamp." in with_seeds.prompt
    assert "an invoice from 1998" in with_seeds.prompt and "exactly 5" in with_seeds.prompt
    assert with_seeds.prompt.count("Seed question") == 2
    no_seeds = drafting.prepare(
        job.units.select_related("prompt", "endpoint").get(instruction_type="judgement"), job.params
    )
    assert "(no examples for this domain yet)" in no_seeds.prompt


@pytest.mark.django_db
def test_units_a_cancelled_job_left_pending_are_taken_over_by_the_next_launch(admin_user):
    job = planned_job(admin_user, n=3)
    done = job.units.first()
    GenerationUnit.objects.filter(pk=done.pk).update(status=UnitStatus.DONE)
    assert services.cancel_job(job, by=admin_user)
    again = services.launch_job(stage="captions", by=admin_user, domains=["maps"], start=False)
    job_service.plan_units(again)
    assert again.skipped == 1
    assert again.units.filter(status=UnitStatus.PENDING).count() == 2
    assert GenerationUnit.objects.count() == 3
