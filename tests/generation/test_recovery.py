"""The generation sweep (what Celery beat runs): it frees dead workers' units, re-queues stalled work,
restarts lost starts and finishes jobs — idempotent, and single under two sweeps at once — while GETs
only read."""

import base64
import json
import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from corpus.models import Caption
from generation import services
from generation.models import GenerationJob, GenerationUnit, JobEvent, JobStatus, UnitStatus
from generation.services import jobs as job_service
from generation.services import recovery
from generation.services import units as unit_service
from tests.corpus.factories import DomainFactory, ImageFactory

LONG_AGO = timedelta(hours=1)


def planned_job(admin, n=1, slug="maps"):
    domain = DomainFactory(slug=slug)
    ImageFactory.create_batch(n, domain=domain)
    job = services.launch_job(stage="captions", by=admin, domains=[slug], start=False)
    job_service.move_job(job, JobStatus.RUNNING)
    job_service.plan_units(job)
    return job


def expire_all(job, *, running=True):
    """Every unit of the job as if a dead worker held it, its lease over; the job idle for an hour."""
    past = timezone.now() - LONG_AGO
    if running:
        job.units.update(status=UnitStatus.RUNNING, claim_token="dead", lease_expires_at=past)
    GenerationJob.objects.filter(pk=job.pk).update(created_at=past, started_at=past, dispatched_at=past)
    job.refresh_from_db()


def queued_messages(redis_url) -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in the Celery queue in Redis."""
    import redis

    out = []
    for raw in redis.Redis.from_url(redis_url).lrange("celery", 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], args))
    return out


def snapshot():
    units = list(
        GenerationUnit.objects.order_by("pk").values_list("pk", "status", "claim_token", "lease_expires_at")
    )
    jobs = list(GenerationJob.objects.order_by("pk").values_list("pk", "status", "dispatched_at"))
    return units, jobs, JobEvent.objects.count(), Caption.objects.count()


@pytest.mark.django_db
def test_sweep_with_nothing_wrong_does_nothing(admin_user, django_capture_on_commit_callbacks):
    job = planned_job(admin_user, n=3)
    GenerationUnit.objects.filter(job=job).update(
        status=UnitStatus.RUNNING, claim_token="alive", lease_expires_at=timezone.now() + LONG_AGO
    )
    before = snapshot()
    report = services.sweep_jobs()
    assert not report and report.chunks == 0
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_sweep_finishes_a_job_whose_units_all_ended_and_says_why_it_failed(admin_user):
    job = planned_job(admin_user, n=2)
    units = list(job.units.all())
    GenerationUnit.objects.filter(pk=units[0].pk).update(status=UnitStatus.DONE)
    claim = unit_service.claim_unit(units[1].pk, lease=60)
    unit_service.fail_unit(
        claim.unit, claim.token, error="HTTP 400", attempts=1, tokens_in=0, tokens_out=0, cost=0
    )
    report = services.sweep_jobs()
    assert report.finished == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.events.last().note == "1 done, 1 failed"
    assert not services.sweep_jobs()  # idempotent: a finished job is left alone


@pytest.mark.django_db(transaction=True)
def test_sweep_restarts_a_queued_job_whose_start_message_was_lost(
    eager, endpoints, fake, admin_user, settings
):
    domain = DomainFactory(slug="lost")
    ImageFactory.create_batch(2, domain=domain)
    job = services.launch_job(stage="captions", by=admin_user, domains=["lost"], start=False)
    assert not services.sweep_jobs()  # just queued: its start task may simply be waiting in the broker
    GenerationJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - LONG_AGO)
    report = services.sweep_jobs()
    assert report.restarted == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and Caption.objects.count() == 2


@pytest.mark.django_db
def test_get_requests_only_read_even_when_a_job_needs_recovery(client, admin_user, redis_url):
    """The progress partial, the job page, the API and `generate --wait`'s polling used to sweep and
    queue work; now nothing a GET does changes a row or sends a message."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    job = planned_job(admin_user, n=3)
    expire_all(job)
    before = snapshot()
    client.force_login(admin_user)
    assert client.get(reverse("generation:job-progress", args=[job.pk])).status_code == 200
    assert client.get(reverse("generation:job", args=[job.pk])).status_code == 200
    assert client.get(reverse("generation:jobs")).status_code == 200
    api = APIClient()
    api.force_authenticate(admin_user)
    assert api.get(f"/api/v1/generation/jobs/{job.pk}/").status_code == 200
    assert api.get("/api/v1/generation/jobs/").status_code == 200
    assert snapshot() == before
    assert queued_messages(redis_url) == []


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_free_and_queue_each_dead_unit_exactly_once(
    admin_user, redis_url, postgres, settings
):
    """Two beats by mistake: both sweeps run at the same moment over 40 units of a dead worker. Each unit
    is freed by one of them and appears in exactly one chunk message; a second round queues nothing."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings.GENERATION_CHUNK_SIZE = 7
    job = planned_job(admin_user, n=40)
    expire_all(job)
    all_ids = sorted(job.units.values_list("pk", flat=True))
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def sweep():
        try:
            barrier.wait(timeout=10)
            reports.append(recovery.sweep_jobs())
        except Exception as e:  # surfaced below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    freed = sorted(u for r in reports for ids in r.freed.values() for u in ids)
    assert freed == all_ids  # every unit freed, none twice
    messages = queued_messages(redis_url)
    queued = sorted(u for task, args in messages if task == "generation.run_chunk" for u in args[1])
    assert queued == all_ids
    assert sum(r.chunks for r in reports) == len(messages)
    assert job.units.filter(status=UnitStatus.PENDING).count() == 40
    # The job now has pending units and none running, but it was just swept: no stall yet, nothing more.
    assert not recovery.sweep_jobs()
    assert len(queued_messages(redis_url)) == len(messages)


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_requeue_a_stalled_job_once(admin_user, redis_url, postgres, settings):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings.GENERATION_CHUNK_SIZE = 5
    settings.GENERATION_STALL_SECONDS = 60
    job = planned_job(admin_user, n=12)
    expire_all(job, running=False)  # pending units, nothing running, no activity for an hour
    barrier = threading.Barrier(2)
    reports = []

    def sweep():
        try:
            barrier.wait(timeout=10)
            reports.append(recovery.sweep_jobs())
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(j for r in reports for j in r.requeued) == [job.pk]  # one of the two, once
    messages = queued_messages(redis_url)
    assert sorted(len(args[1]) for _task, args in messages) == [2, 5, 5]
    for _ in range(3):  # within the stall period, later sweeps leave it alone: no pile of duplicates
        assert not recovery.sweep_jobs()
    assert len(queued_messages(redis_url)) == 3


@pytest.mark.django_db(transaction=True)
def test_a_stall_requeues_a_bounded_number_of_chunks(admin_user, redis_url, settings):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings.GENERATION_CHUNK_SIZE = 2
    job = planned_job(admin_user, n=2 * recovery.STALL_REQUEUE_CHUNKS + 5)
    expire_all(job, running=False)
    report = recovery.sweep_jobs()
    assert report.requeued == [job.pk] and report.chunks == recovery.STALL_REQUEUE_CHUNKS
    assert len(queued_messages(redis_url)) == recovery.STALL_REQUEUE_CHUNKS


def test_beat_schedule_runs_the_generation_sweep_every_sweep_interval():
    entry = django_settings.CELERY_BEAT_SCHEDULE["generation-sweep"]
    assert entry["task"] == "generation.sweep" and entry["schedule"] == django_settings.SWEEP_INTERVAL
    assert entry["options"]["expires"] == django_settings.SWEEP_INTERVAL  # late sweeps never pile up
    from mminstruct_site.celery import app

    app.loader.import_default_modules()
    assert "generation.sweep" in app.tasks
