"""The generation sweep: what Celery beat runs every SWEEP_INTERVAL seconds so that jobs finish with
nobody watching.

For every active job: units whose lease ran out (their worker died) go back to pending and are queued;
a job whose pending units saw no progress for GENERATION_STALL_SECONDS (its chunk messages died with a
worker, or were never sent) gets them queued again; a job whose units have all ended is finished; a
queued or unplanned job whose start message was lost is started again.

Idempotent and safe with two beats at once: expired units are freed under a row lock and each by exactly
one sweep, one transition (running → pending, one UnitEvent) each (units.free_expired); a re-queue of a stalled or lost job is a compare-and-swap on the job's
`dispatched_at`, so of two sweeps only one re-queues, and a job is re-queued at most once per stall
period — the sweep never multiplies chunk messages without bound. The unit claims keep the work itself
single whatever the broker delivers twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from .. import selectors
from ..models import GenerationJob, JobStatus, UnitStatus
from . import jobs as job_service
from . import units as unit_service

log = logging.getLogger(__name__)

# On a stall, at most this many chunk messages are queued for the job: each chunk takes other pending
# units of its job once its own are done (GENERATION_STEAL_WORK), so a few restart all the work; queuing
# every chunk again would pile duplicate messages behind a long queue at every stall period.
STALL_REQUEUE_CHUNKS = 8


@dataclass
class SweepReport:
    freed: dict[int, list[int]] = field(default_factory=dict)  # job id → units freed from dead workers
    requeued: list[int] = field(default_factory=list)  # stalled jobs whose pending units were queued again
    restarted: list[int] = field(default_factory=list)  # jobs whose start (planning) was queued again
    finished: list[int] = field(default_factory=list)
    chunks: int = 0  # run_chunk messages queued

    def __bool__(self) -> bool:
        return bool(self.freed or self.requeued or self.restarted or self.finished)


def sweep_jobs() -> SweepReport:
    """One pass of recovery over every active job. Idempotent; safe to run twice at once."""
    report = SweepReport()
    for job in GenerationJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).order_by("pk"):
        try:
            sweep_job(job, report)
        except GenerationJob.DoesNotExist:  # deleted under us
            continue
    if report:
        log.info(
            "generation sweep: freed %s, re-queued %s, restarted %s, finished %s, %d chunk(s) queued",
            report.freed,
            report.requeued,
            report.restarted,
            report.finished,
            report.chunks,
        )
    return report


def _queue_chunks(job_id: int, unit_ids: list[int], report: SweepReport) -> None:
    from .. import tasks

    size = settings.GENERATION_CHUNK_SIZE
    for i in range(0, len(unit_ids), size):
        tasks.run_chunk.delay(job_id, unit_ids[i : i + size])
        report.chunks += 1


def take_requeue_turn(job: GenerationJob, *, now) -> bool:
    """Compare-and-swap on `dispatched_at`: True for exactly one of several sweeps that saw the same
    value, and only if the job was last dispatched more than GENERATION_STALL_SECONDS ago."""
    seen = job.dispatched_at
    if seen is not None and (now - seen).total_seconds() <= settings.GENERATION_STALL_SECONDS:
        return False
    rows = GenerationJob.objects.filter(pk=job.pk, status=job.status, dispatched_at=seen)
    if seen is None:
        rows = GenerationJob.objects.filter(pk=job.pk, status=job.status, dispatched_at__isnull=True)
    if rows.update(dispatched_at=now) != 1:
        return False
    job.dispatched_at = now
    return True


def last_activity(job: GenerationJob):
    """When the job last showed life: a unit finished, it was dispatched, started or created."""
    marks = [
        job.units.aggregate(last=Max("finished_at"))["last"],
        job.dispatched_at,
        job.started_at,
        job.created_at,
    ]
    return max(m for m in marks if m is not None)


def sweep_job(job: GenerationJob, report: SweepReport) -> None:
    from .. import tasks

    now = timezone.now()
    stall = timedelta(seconds=settings.GENERATION_STALL_SECONDS)
    if job.status == JobStatus.QUEUED or not job.planned:
        # The start message was lost (a worker died with it, or the broker dropped it): start again once
        # the job has waited a stall period. start_job is idempotent (planning creates missing units only).
        if now - last_activity(job) > stall and take_requeue_turn(job, now=now):
            tasks.start_job.delay(job.pk)
            report.restarted.append(job.pk)
        return
    freed = unit_service.free_expired(job.pk)
    if freed:
        report.freed[job.pk] = freed
        _queue_chunks(job.pk, freed, report)
    counts = selectors.unit_counts(job)
    if counts[UnitStatus.PENDING] and not counts[UnitStatus.RUNNING] and not freed:
        if now - last_activity(job) > stall and take_requeue_turn(job, now=now):
            pending = unit_service.pending_unit_ids(
                job.pk, limit=settings.GENERATION_CHUNK_SIZE * STALL_REQUEUE_CHUNKS
            )
            _queue_chunks(job.pk, pending, report)
            report.requeued.append(job.pk)
        return
    if not counts[UnitStatus.PENDING] and not counts[UnitStatus.RUNNING]:
        if job_service.finish_if_complete(job):
            report.finished.append(job.pk)
