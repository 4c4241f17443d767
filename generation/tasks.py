"""Celery tasks of the generation app: thin — fetch by id, call one service, queue the follow-ups.

start_job → plan units → run_chunk × (pending units / chunk size). Every task is idempotent (units are
claimed by compare-and-swap), so acks_late redelivery after a killed worker is safe.
"""

import logging

from celery import shared_task
from django.utils import timezone

from .models import GenerationJob, JobStatus
from .services import jobs as job_service
from .services import runner

log = logging.getLogger(__name__)


@shared_task(name="generation.start_job")
def start_job(job_id: int) -> None:
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None:
        log.info("job %s is gone", job_id)
        return
    if job.status == JobStatus.QUEUED:
        job_service.transition(job, JobStatus.RUNNING, note="started")
    if job.status != JobStatus.RUNNING:
        log.info("job %s is %s, not starting it", job_id, job.status)
        return
    job_service.plan_units(job)
    dispatch_job(job_id)


@shared_task(name="generation.dispatch_job")
def dispatch_job(job_id: int) -> None:
    """Queue a chunk task for every pending unit of a running job (and units of dead workers)."""
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING:
        return
    if not job.planned:
        job_service.plan_units(job)
    job_service.sweep_expired(job)
    chunks = job_service.pending_chunks(job)
    for chunk in chunks:
        run_chunk.delay(job_id, chunk)
    if not chunks:
        job_service.finish_if_complete(job)


@shared_task(name="generation.run_chunk")
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


@shared_task(name="generation.check_job")
def check_job(job_id: int) -> None:
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is not None:
        job_service.check_progress(job)
