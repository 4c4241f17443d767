"""Units of work: claims with a lease and a token, failing and releasing them, sweeping dead workers'.

Every state change of a unit is a compare-and-swap on (status, claim token), so two workers can never
both own one unit, and a worker whose lease ran out can never write after another took the unit over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..models import Endpoint, GenerationJob, GenerationUnit, UnitStatus


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


def claim_unit(unit_id: int, *, lease: float) -> Claim:
    """Take a pending unit (or a running one whose lease ran out) for this worker. Compare-and-swap."""
    now = timezone.now()
    token = uuid.uuid4().hex
    swapped = GenerationUnit.objects.filter(
        Q(status=UnitStatus.PENDING) | Q(status=UnitStatus.RUNNING, lease_expires_at__lt=now), pk=unit_id
    ).update(status=UnitStatus.RUNNING, claim_token=token, lease_expires_at=now + timedelta(seconds=lease))
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
    """Mark a claimed unit failed with the error text (and what its attempts cost). False if not ours."""
    return (
        GenerationUnit.objects.filter(pk=unit_id, status=UnitStatus.RUNNING, claim_token=token).update(
            status=UnitStatus.FAILED,
            error=error[:2000],
            attempts=attempts,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            lease_expires_at=None,
            finished_at=timezone.now(),
        )
        == 1
    )


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


def sweep_expired(job: GenerationJob) -> list[int]:
    """Running units whose lease ran out (their worker died) go back to pending; returns their ids so the
    caller can queue them. Compare-and-swap per unit, so two sweeps never both take one."""
    now = timezone.now()
    ids = list(
        job.units.filter(status=UnitStatus.RUNNING, lease_expires_at__lt=now).values_list("pk", flat=True)
    )
    if not ids:
        return []
    taken = []
    for unit_id in ids:
        if GenerationUnit.objects.filter(
            pk=unit_id, status=UnitStatus.RUNNING, lease_expires_at__lt=now
        ).update(status=UnitStatus.PENDING, claim_token="", lease_expires_at=None):
            taken.append(unit_id)
    return taken
