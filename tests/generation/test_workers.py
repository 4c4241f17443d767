"""Real Celery worker processes against PostgreSQL and Redis: the shared rate limit, a killed worker,
pause/resume/cancel, and the acceptance-sized run with faults and two kills."""

import time

import pytest
from django.db.models import Count

from corpus.models import Caption, Instruction
from generation import selectors, services
from generation.models import GenerationJob, GenerationUnit, JobStatus, UnitStatus
from tests.corpus.factories import DomainFactory, ImageFactory
from tests.workers import wait_for

from .conftest import assert_one_event_per_move, point_endpoints

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def job_status(job) -> str:
    return GenerationJob.objects.get(pk=job.pk).status


def assert_no_duplicates_and_counts_add_up(job):
    """No unit wrote twice, the counts add up, and every move of the job and its units (claims, takeovers
    and sweeps after a kill, releases on pause) left exactly one event."""
    assert_one_event_per_move(job)
    progress = selectors.progress(job)
    units = GenerationUnit.objects.filter(job=job)
    assert progress.pending == progress.running == 0
    assert progress.done + progress.failed + progress.skipped == progress.total == units.count() + job.skipped
    assert not units.filter(status=UnitStatus.FAILED, error="").exists(), "a failed unit must say why"
    model = Caption if job.stage == "captions" else Instruction
    per_unit = dict(
        model.objects.filter(generation_unit_id__in=units.values("pk"))
        .values_list("generation_unit_id")
        .annotate(n=Count("id"))
    )
    for unit in units:
        expected = (
            (1 if job.stage == "captions" else job.params["n_per_type"])
            if unit.status == UnitStatus.DONE
            else 0
        )
        assert per_unit.get(unit.pk, 0) == expected, (
            f"unit {unit.pk} ({unit.status}) has {per_unit.get(unit.pk, 0)} drafts"
        )
    return progress


def test_two_workers_share_one_rate_limit(workers, fake, admin_user):
    # A 5-second window stands in for the minute (limits scale with it): 240 rpm = 20 per window.
    workers.env.update(GENERATION_RATE_WINDOW="5", GENERATION_CHUNK_SIZE="10")
    point_endpoints(fake.base_url, workers, rpm_limit=240, max_concurrency=8)
    domain = DomainFactory(slug="maps")
    ImageFactory.create_batch(45, domain=domain)
    workers.start()
    workers.start()
    started = time.time()
    job = services.launch_job(stage="captions", by=admin_user, domains=["maps"])
    wait_for(lambda: job_status(job) == JobStatus.DONE, 60, what="the job to finish")
    assert len(fake.requests) == 45
    assert fake.max_in_window(5.0) <= 20
    # 45 requests at 20 per window need at least two full windows: the limit was binding.
    assert time.time() - started >= 10
    assert_no_duplicates_and_counts_add_up(job)


def test_killed_worker_job_finishes_without_duplicate_drafts(workers, fake, admin_user):
    workers.env.update(
        CELERY_VISIBILITY_TIMEOUT="5", GENERATION_UNIT_LEASE_SECONDS="4", GENERATION_CHUNK_SIZE="10"
    )
    fake.latency = 0.15
    point_endpoints(fake.base_url, workers, max_concurrency=4)
    domain = DomainFactory(slug="signs")
    ImageFactory.create_batch(60, domain=domain)
    first = workers.start()
    job = services.launch_job(stage="captions", by=admin_user, domains=["signs"])
    wait_for(lambda: selectors.progress(job).done >= 12, 30, what="some units to finish")
    wait_for(lambda: selectors.progress(job).running, 10, interval=0.01, what="a unit in flight")
    workers.kill(first)
    in_flight = GenerationUnit.objects.filter(job=job, status=UnitStatus.RUNNING).count()
    assert in_flight > 0  # the killed worker held units that someone else must take over
    workers.start()
    wait_for(
        lambda: job_status(job) == JobStatus.DONE, 90, interval=0.5, what="the job to finish after the kill"
    )
    progress = assert_no_duplicates_and_counts_add_up(job)
    assert progress.done == 60
    assert Caption.objects.values("image").annotate(n=Count("id")).filter(n__gt=1).count() == 0


def test_pause_stops_calls_resume_finishes_and_cancel_leaves_the_rest(workers, fake, admin_user):
    workers.env.update(GENERATION_CHUNK_SIZE="5")
    fake.latency = 0.2
    point_endpoints(fake.base_url, workers, max_concurrency=2)
    domain = DomainFactory(slug="plants")
    ImageFactory.create_batch(30, domain=domain)
    workers.start()
    job = services.launch_job(stage="captions", by=admin_user, domains=["plants"])
    wait_for(lambda: selectors.progress(job).done >= 4, 30, what="a few units")
    job.refresh_from_db()
    assert services.pause_job(job, by=admin_user)
    # Units in flight finish, the chunks still queued see the pause and end: then nothing can call.
    workers.wait_idle(30, what="the worker to stop after the pause")
    paused = selectors.progress(job)
    assert paused.pending > 0 and paused.running == 0
    assert len(fake.requests) == paused.done  # one call per finished unit: no pending unit was called
    job.refresh_from_db()
    assert services.resume_job(job, by=admin_user)
    wait_for(lambda: job_status(job) == JobStatus.DONE, 60, what="the resumed job to finish")
    assert selectors.progress(job).done == 30

    ImageFactory.create_batch(20, domain=domain)
    other = services.launch_job(stage="captions", by=admin_user, domains=["plants"])
    wait_for(lambda: selectors.progress(other).done >= 2, 30, what="the second job to start")
    other.refresh_from_db()
    assert services.cancel_job(other, by=admin_user)
    workers.wait_idle(30, what="the worker to stop after the cancel")
    after = selectors.progress(other)
    assert len(fake.requests) == 30 + after.done  # no call for a unit the cancel left
    assert job_status(other) == JobStatus.CANCELLED
    assert after.pending > 0 and after.done < 20
    assert Caption.objects.count() == 30 + after.done


def test_acceptance_500_images_with_faults_and_two_kills(workers, fake, admin_user):
    """500 captions, then instructions from them, with 10% 429s, 5% 500s and 5% malformed answers, and
    the worker killed once in each stage: every unit ends done or failed with a reason, no duplicates."""
    workers.env.update(
        CELERY_VISIBILITY_TIMEOUT="5", GENERATION_UNIT_LEASE_SECONDS="4", GENERATION_CHUNK_SIZE="50"
    )
    fake.latency = (0.01, 0.03)
    fake.retry_after = 0.1
    point_endpoints(fake.base_url, workers, max_concurrency=16)
    domain = DomainFactory(slug="street")
    ImageFactory.create_batch(500, domain=domain)

    fake.faults = {"429": 0.10, "500": 0.05, "malformed": 0.05}
    name = workers.start()
    captions = services.launch_job(stage="captions", by=admin_user, domains=["street"])
    wait_for(lambda: selectors.progress(captions).done >= 120, 90, what="a quarter of the captions")
    workers.kill(name)
    name = workers.start()
    wait_for(
        lambda: job_status(captions) in (JobStatus.DONE, JobStatus.FAILED), 150, interval=0.5, what="captions"
    )
    progress = assert_no_duplicates_and_counts_add_up(captions)
    assert progress.total == 500 and progress.done >= 495
    assert Caption.objects.values("image").annotate(n=Count("id")).filter(n__gt=1).count() == 0

    fake.faults = {"429": 0.10, "500": 0.05, "bad_content": 0.05}
    instructions = services.launch_job(
        stage="instructions",
        by=admin_user,
        domains=["street"],
        include_drafts=True,
        types=["judgement", "multiple_choice"],
        n_per_type=2,
    )
    wait_for(lambda: selectors.progress(instructions).done >= 250, 90, what="a quarter of the instructions")
    workers.kill(name)
    workers.start()
    wait_for(
        lambda: job_status(instructions) in (JobStatus.DONE, JobStatus.FAILED),
        150,
        interval=0.5,
        what="instructions",
    )
    progress = assert_no_duplicates_and_counts_add_up(instructions)
    assert progress.total == progress.done + progress.failed == 2 * progress.done // 2 + progress.failed
    assert progress.total == 2 * Caption.objects.values("image").distinct().count()
    outcomes = set(fake.outcomes())
    assert {"429", "500", "malformed", "bad_content"} <= outcomes
