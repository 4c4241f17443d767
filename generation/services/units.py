"""Units of work: claims with a lease and a token, failing and releasing them, sweeping dead workers'.

Every status move of a unit goes through corpus.transitions.transition — a compare-and-swap on the status
the caller saw plus the claim token (or the lease), and one UnitEvent in the same transaction — so two
workers can never both own one unit, and a worker whose lease ran out can never write after another took
the unit over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from corpus.transitions import transition

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


def _held(unit_id: int) -> Claim:
    row = GenerationUnit.objects.filter(pk=unit_id).values("status", "lease_expires_at").first()
    if row and row["status"] == UnitStatus.RUNNING:
        return Claim(None, held_until=row["lease_expires_at"])
    return Claim(None)


def claim_unit(unit_id: int, *, lease: float, token: str | None = None) -> Claim:
    """Take a pending unit (pending → running), or a running one whose lease ran out (running → running:
    its worker died or hung), for this worker: one compare-and-swap and one UnitEvent. The unit comes back
    with its prompt, endpoint and image (and the image's domain) loaded, for the request.

    With `token`, a unit this worker already holds under that token is its own: a claim whose transaction
    committed but whose answer was lost with the database connection is retried with the same token, and
    finds it (no second move, no second event). Statements: one read, then BEGIN, UPDATE, INSERT, COMMIT
    when the unit is claimable; the read alone when it is not."""
    now = timezone.now()
    token = token or uuid.uuid4().hex
    unit = (
        GenerationUnit.objects.select_related("prompt", "endpoint", "image__domain")
        .filter(pk=unit_id)
        .first()
    )
    if unit is None:
        return Claim(None)
    if unit.status == UnitStatus.RUNNING and unit.claim_token == token:
        return Claim(unit, token)
    # The job must not have changed since the read (a later job may adopt a unit an ended job left pending):
    # the loaded unit is then exactly the row that was swapped.
    expect: dict | Q = {"job_id": unit.job_id}
    note = ""
    if unit.status == UnitStatus.RUNNING:
        if unit.lease_expires_at is None or unit.lease_expires_at >= now:
            return Claim(None, held_until=unit.lease_expires_at)
        expect = Q(job_id=unit.job_id, lease_expires_at__lt=now)
        note = "taken over: the lease of the claim before ran out"
    elif unit.status != UnitStatus.PENDING:
        return Claim(None)  # done or failed
    fields = {"claim_token": token, "lease_expires_at": now + timedelta(seconds=lease)}
    if transition(unit, "status", UnitStatus.RUNNING, expect=expect, fields=fields, note=note):
        return Claim(unit, token)
    return _held(unit_id)  # another worker claimed it (or it ended) between the read and the swap


def _claimed(unit_id: int) -> GenerationUnit:
    """The unit as a claim holder knows it: running (the token is the rest of the compare-and-swap)."""
    return GenerationUnit(pk=unit_id, status=UnitStatus.RUNNING)


def finish_unit(unit_id: int, token: str, *, fields: dict) -> bool:
    """running → done with `fields` (usage, drafts …), if the claim is still ours. Call it inside the
    transaction that writes the drafts, before them: the swap takes the unit's row lock, so a lost claim
    is known before anything is written."""
    return transition(
        _claimed(unit_id),
        "status",
        UnitStatus.DONE,
        expect={"claim_token": token},
        fields={**fields, "error": "", "lease_expires_at": None, "finished_at": timezone.now()},
    )


def fail_unit(
    unit: GenerationUnit,
    token: str,
    *,
    error: str,
    attempts: int,
    tokens_in: int,
    tokens_out: int,
    cost,
) -> bool:
    """Mark a claimed unit failed with the error text (and what its attempts cost), and add the failure
    to its job's history, together. False (nothing written) if the claim is not ours any more.

    `unit` is the claimed unit (its job, image and type are read from it: a unit with our claim token has
    not changed job since the claim)."""
    error = error[:2000]
    with transaction.atomic():
        moved = transition(
            _claimed(unit.pk),
            "status",
            UnitStatus.FAILED,
            expect={"claim_token": token},
            note=error[:200],
            fields={
                "error": error,
                "attempts": attempts,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "cost": cost,
                "lease_expires_at": None,
                "finished_at": timezone.now(),
            },
        )
        if not moved:
            return False
        UnitFailure.objects.create(
            unit_id=unit.pk,
            job_id=unit.job_id,
            image_id=unit.image_id,
            instruction_type=unit.instruction_type,
            error=error,
            attempts=attempts,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
        )
    return True


def release_unit(unit_id: int, token: str, *, attempts: int) -> bool:
    """Give a claimed unit back, running → pending (the job was paused or cancelled before it finished).
    False if the claim is not ours any more."""
    return transition(
        _claimed(unit_id),
        "status",
        UnitStatus.PENDING,
        expect={"claim_token": token},
        fields={"claim_token": "", "lease_expires_at": None, "attempts": attempts},
        note="given back: the job stopped running",
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
    """Running units of the job whose lease ran out (their worker died) go back to pending, one
    transition (and one UnitEvent) each; returns their ids for the caller to queue. Safe with two sweeps
    at once: the rows are locked first (SKIP LOCKED on PostgreSQL; SQLite's IMMEDIATE transactions
    serialize) and each move re-checks the lease, so each unit is freed, and queued, by exactly one of
    them. A recovery path: at most the units that dead workers held (their lanes' worth)."""
    now = timezone.now()
    freed = []
    with transaction.atomic():
        expired = GenerationUnit.objects.filter(
            job_id=job_id, status=UnitStatus.RUNNING, lease_expires_at__lt=now
        ).order_by("pk")
        ids = list(expired.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        for unit_id in ids:
            if transition(
                _claimed(unit_id),
                "status",
                UnitStatus.PENDING,
                expect={"lease_expires_at__lt": now},
                fields={"claim_token": "", "lease_expires_at": None},
                note="freed: the lease ran out (its worker died)",
            ):
                freed.append(unit_id)
        if freed:
            # The caller queues these units now: mark the job dispatched in the same transaction, so that a
            # second sweep, which sees them pending, does not take them for a stall and queue them again
            # (its compare-and-swap on dispatched_at fails, or finds the dispatch too recent).
            GenerationJob.objects.filter(pk=job_id).update(dispatched_at=now)
    return freed


def sweep_expired(job: GenerationJob) -> list[int]:
    """free_expired for one job (resume and dispatch use it before queuing the job's pending units)."""
    return free_expired(job.pk)
