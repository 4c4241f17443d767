"""Units of work: claims with a lease and a token, failing and releasing them, sweeping dead workers'.

Every state change of a unit is a compare-and-swap on (status, claim token), so two workers can never
both own one unit, and a worker whose lease ran out can never write after another took the unit over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Endpoint, GenerationJob, GenerationUnit, UnitFailure, UnitStatus


def lease_seconds(endpoint: Endpoint) -> float:
    """How long one unit may take, all attempts included, before another worker may take it over."""
    if settings.GENERATION_UNIT_LEASE_SECONDS:
        return settings.GENERATION_UNIT_LEASE_SECONDS
    per_attempt = endpoint.timeout + max(settings.GENERATION_BACKOFF_CAP, settings.GENERATION_RETRY_AFTER_CAP)
    return settings.GENERATION_MAX_ATTEMPTS * per_attempt + 60


@dataclass
class Claim:
    unit: GenerationUnit | None
    token: str = ""
    held_until: object = None  # a datetime when another worker holds the unit's lease


def claim_unit(unit_id: int, *, lease: float, token: str | None = None) -> Claim:
    """Take a pending unit (or a running one whose lease ran out) for this worker. Compare-and-swap.

    With `token`, a unit this worker already holds under that token is taken again: a claim whose UPDATE
    committed but whose answer was lost with the database connection is retried with the same token."""
    now = timezone.now()
    token = token or uuid.uuid4().hex
    claimable = Q(status=UnitStatus.PENDING) | Q(status=UnitStatus.RUNNING, lease_expires_at__lt=now)
    claimable |= Q(status=UnitStatus.RUNNING, claim_token=token)
    swapped = GenerationUnit.objects.filter(claimable, pk=unit_id).update(
        status=UnitStatus.RUNNING, claim_token=token, lease_expires_at=now + timedelta(seconds=lease)
    )
    if swapped == 1:
        unit = GenerationUnit.objects.select_related("prompt", "endpoint").get(pk=unit_id)
        return Claim(unit, token)
    row = GenerationUnit.objects.filter(pk=unit_id).values("status", "lease_expires_at").first()
    if row and row["status"] == UnitStatus.RUNNING:
        return Claim(None, held_until=row["lease_expires_at"])
    return Claim(None)


def fail_unit(
    unit_id: int, token: str, *, error: str, attempts: int, tokens_in: int, tokens_out: int, cost
) -> bool:
    """Mark a claimed unit failed with the error text (and what its attempts cost), and add the failure
    to its job's history, together. False (nothing written) if the claim is not ours any more."""
    with transaction.atomic():
        swapped = GenerationUnit.objects.filter(
            pk=unit_id, status=UnitStatus.RUNNING, claim_token=token
        ).update(
            status=UnitStatus.FAILED,
            error=error[:2000],
            attempts=attempts,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            lease_expires_at=None,
            finished_at=timezone.now(),
        )
        if swapped != 1:
            return False
        unit = GenerationUnit.objects.values("job_id", "image_id", "instruction_type").get(pk=unit_id)
        UnitFailure.objects.create(
            unit_id=unit_id,
            job_id=unit["job_id"],
            image_id=unit["image_id"],
            instruction_type=unit["instruction_type"],
            error=error[:2000],
            attempts=attempts,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
        )
    return True


def release_unit(unit_id: int, token: str, *, attempts: int) -> bool:
    """Give a claimed unit back (the job was paused or cancelled before it finished)."""
    return (
        GenerationUnit.objects.filter(pk=unit_id, status=UnitStatus.RUNNING, claim_token=token).update(
            status=UnitStatus.PENDING, claim_token="", lease_expires_at=None, attempts=attempts
        )
        == 1
    )


def open_unit_ids(unit_ids: list[int]) -> list[int]:
    """Those of `unit_ids` that are not finished (pending, or running — perhaps for a dead worker)."""
    return list(
        GenerationUnit.objects.filter(pk__in=unit_ids, status__in=[UnitStatus.PENDING, UnitStatus.RUNNING])
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def pending_unit_ids(job_id: int, *, limit: int) -> list[int]:
    """Some pending units of the job, for a worker whose own chunk is done (served by unit_job_status_idx)."""
    return list(
        GenerationUnit.objects.filter(job_id=job_id, status=UnitStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def claimable_unit_ids(job_id: int, *, limit: int) -> list[int]:
    """Some units of the job a lane may claim now: pending ones, and running ones whose lease ran out (a
    dead worker's), so a busy worker recovers those itself without waiting for a free slot to run the
    sweep in. Served by unit_job_status_idx."""
    now = timezone.now()
    return list(
        GenerationUnit.objects.filter(
            Q(status=UnitStatus.PENDING) | Q(status=UnitStatus.RUNNING, lease_expires_at__lt=now),
            job_id=job_id,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def free_expired(job_id: int, *, limit: int = 10_000) -> list[int]:
    """Running units of the job whose lease ran out (their worker died) go back to pending; returns their
    ids for the caller to queue. Safe with two sweeps at once: the rows are locked (SKIP LOCKED on
    PostgreSQL; SQLite's IMMEDIATE transactions serialize) and the UPDATE re-checks the lease, so each
    unit is freed, and queued, by exactly one of them."""
    now = timezone.now()
    with transaction.atomic():
        expired = GenerationUnit.objects.filter(
            job_id=job_id, status=UnitStatus.RUNNING, lease_expires_at__lt=now
        ).order_by("pk")
        ids = list(expired.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        GenerationUnit.objects.filter(pk__in=ids, status=UnitStatus.RUNNING, lease_expires_at__lt=now).update(
            status=UnitStatus.PENDING, claim_token="", lease_expires_at=None
        )
        # The caller queues these units now: mark the job dispatched in the same transaction, so that a
        # second sweep, which sees them pending, does not take them for a stall and queue them again
        # (its compare-and-swap on dispatched_at fails, or finds the dispatch too recent).
        GenerationJob.objects.filter(pk=job_id).update(dispatched_at=now)
    return ids


def sweep_expired(job: GenerationJob) -> list[int]:
    """free_expired for one job (resume and dispatch use it before queuing the job's pending units)."""
    return free_expired(job.pk)
