"""Celery tasks of the generation app: thin — fetch by id, call one service, queue the follow-ups.

start_job → plan units → run_chunk × (pending units / chunk size); Celery beat runs `generation.sweep`
every SWEEP_INTERVAL seconds (recovery). Every task is idempotent (units are claimed by compare-and-swap),
so acks_late redelivery after a killed worker is safe. A database that drops its connections (a
PostgreSQL restart) is transient: the tasks retry on OperationalError/InterfaceError with backoff and a
cap — never on other exceptions — and the sweep is the backstop.
"""

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from .models import GenerationJob, JobStatus
from .services import endpoints as endpoint_service
from .services import jobs as job_service
from .services import recovery, runner
from .services import units as unit_service

log = logging.getLogger(__name__)

# Only a lost or refused database connection is worth a retry of the whole task; anything else is a bug
# or a unit's own failure, which the runner records on the unit.
DB_TRANSIENT = (OperationalError, InterfaceError)
DB_RETRY = {
    "autoretry_for": DB_TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 6,
}


@shared_task(name="generation.start_job", **DB_RETRY)
def start_job(job_id: int) -> None:
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None:
        log.info("job %s is gone", job_id)
        return
    if job.status == JobStatus.QUEUED:
        job_service.move_job(job, JobStatus.RUNNING, note="started")
    if job.status != JobStatus.RUNNING:
        log.info("job %s is %s, not starting it", job_id, job.status)
        return
    job_service.plan_units(job)
    dispatch_job(job_id)


@shared_task(name="generation.dispatch_job", **DB_RETRY)
def dispatch_job(job_id: int) -> None:
    """Queue a chunk task for every pending unit of a running job (and units of dead workers)."""
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING:
        return
    if not job.planned:
        job_service.plan_units(job)
    unit_service.sweep_expired(job)
    chunks = job_service.pending_chunks(job)
    for chunk in chunks:
        run_chunk.delay(job_id, chunk)
    if not chunks:
        job_service.finish_if_complete(job)


@shared_task(name="generation.run_chunk", **DB_RETRY)
def run_chunk(job_id: int, unit_ids: list[int]) -> None:
    if not GenerationJob.objects.filter(pk=job_id).exists():
        return
    result = runner.run_chunk(job_id, unit_ids)
    if result.held:
        # Units that a worker held when this chunk ran (a worker killed mid-call, whose chunk came back
        # to us): look again when their lease ends, so the job finishes without anyone watching.
        latest = max(result.held.values())
        countdown = max(1.0, (latest - timezone.now()).total_seconds() + 1)
        run_chunk.apply_async((job_id, list(result.held)), countdown=countdown)
    job = GenerationJob.objects.get(pk=job_id)
    job_service.finish_if_complete(job)


@shared_task(name="generation.sweep", **DB_RETRY)
def sweep() -> None:
    """Run by Celery beat every SWEEP_INTERVAL seconds (CELERY_BEAT_SCHEDULE["generation-sweep"])."""
    recovery.sweep_jobs()


@worker_ready.connect
def sync_default_endpoints(**kwargs) -> None:
    """At every worker start, bring the default endpoints in line with this process's OPENAI_* variables
    (as `manage.py sync_endpoints` does for the web side). A refusal is logged, never fatal: the worker
    still serves other endpoints and tasks."""
    try:
        endpoint_service.ensure_default_endpoints()
    except endpoint_service.EndpointMisconfigured as e:
        log.error("%s", e)
    except DB_TRANSIENT as e:
        log.warning("could not sync the default endpoints at worker start: %s", e)
