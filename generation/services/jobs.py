"""Generation jobs: launch, plan units, the status table, claims and leases, progress, regeneration.

A job owns units; its counts, tokens and cost are always computed from them (one GROUP BY on the
(job, status) index), so a killed worker can never make them drift. Units already done by another job
(or in flight in one) are counted once as `skipped` at planning time.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from corpus.models import Caption, Image, ItemStatus, ReviewStatus
from corpus.rules import InstructionType

from ..models import (
    EndpointKind,
    GenerationJob,
    GenerationUnit,
    JobEvent,
    JobStatus,
    PromptKind,
    Stage,
    UnitStatus,
)
from . import endpoints as endpoint_service
from . import prompts as prompt_service

# Re-exported (explicit `as`): the runner, tasks, views and tests reach them through this module.
from .reports import Progress as Progress
from .reports import cost_totals as cost_totals
from .reports import latest_errors as latest_errors
from .reports import progress as progress
from .reports import unit_counts
from .units import Claim as Claim
from .units import claim_unit as claim_unit
from .units import fail_unit as fail_unit
from .units import lease_seconds as lease_seconds
from .units import open_unit_ids as open_unit_ids
from .units import pending_unit_ids as pending_unit_ids
from .units import release_unit as release_unit
from .units import sweep_expired

# The one table of allowed job status moves.
ALLOWED_MOVES: dict[str, set[str]] = {
    JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED},
    JobStatus.RUNNING: {JobStatus.PAUSED, JobStatus.CANCELLED, JobStatus.DONE, JobStatus.FAILED},
    JobStatus.PAUSED: {JobStatus.RUNNING, JobStatus.CANCELLED},
    JobStatus.CANCELLED: set(),
    JobStatus.DONE: set(),
    JobStatus.FAILED: set(),
}
STAGE_KIND = {Stage.CAPTIONS: EndpointKind.VISION, Stage.INSTRUCTIONS: EndpointKind.TEXT}
PLAN_BATCH = 1000


class InvalidTransition(Exception):
    """A job status move the table does not allow."""


class LaunchError(ValueError):
    """A launch request that cannot be satisfied (unknown domain, endpoint, type …)."""


def transition(
    job: GenerationJob, to: str, *, actor=None, note: str = "", expected: str | None = None
) -> bool:
    """Move the job from its current (or `expected`) status to `to`, compare-and-swap, with an event row.

    Returns False if another process moved it first. Raises InvalidTransition if the table forbids it."""
    current = expected or job.status
    if to not in ALLOWED_MOVES[JobStatus(current)]:
        raise InvalidTransition(f"a {current} job cannot become {to}")
    now = timezone.now()
    updates: dict = {"status": to}
    if to == JobStatus.RUNNING:
        updates["started_at"] = job.started_at or now
    if to in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED):
        updates["finished_at"] = now
    with transaction.atomic():
        swapped = GenerationJob.objects.filter(pk=job.pk, status=current).update(**updates)
        if swapped != 1:
            return False
        JobEvent.objects.create(job=job, from_status=current, to_status=to, actor=actor, at=now, note=note)
    for key, value in updates.items():
        setattr(job, key, value)
    return True


# --- launching ----------------------------------------------------------------------------------


def launch_job(
    *,
    stage: str,
    by,
    domains: list[str],
    endpoint_name: str | None = None,
    statuses: list[str] | None = None,
    limit: int | None = None,
    include_drafts: bool = False,
    types: list[str] | None = None,
    n_per_type: int = 3,
    seeds_per_prompt: int = 2,
    start: bool = True,
) -> GenerationJob:
    """Create a queued job for the selection and (unless start=False) queue its start task after commit.

    Not idempotent by itself (each call is a job), but the work is: units done by an earlier job are
    skipped, never generated twice. Raises LaunchError for a bad selection."""
    from corpus.models import Domain

    from .. import tasks

    stage = Stage(stage)
    if not domains:
        raise LaunchError("choose at least one domain")
    found = {d.slug: d for d in Domain.objects.filter(slug__in=domains)}
    missing = sorted(set(domains) - set(found))
    if missing:
        raise LaunchError(f"unknown domain(s): {', '.join(missing)}")
    bad_status = sorted(set(statuses or []) - set(ReviewStatus.values))
    if bad_status:
        raise LaunchError(f"unknown image status(es): {', '.join(bad_status)}")
    if limit is not None and limit < 1:
        raise LaunchError("limit must be at least 1")
    types = list(types or InstructionType.values) if stage == Stage.INSTRUCTIONS else []
    bad_types = sorted(set(types) - set(InstructionType.values))
    if bad_types:
        raise LaunchError(f"unknown instruction type(s): {', '.join(bad_types)}")
    if not 1 <= n_per_type <= 20:
        raise LaunchError("questions per type must be between 1 and 20")
    if not 0 <= seeds_per_prompt <= 10:
        raise LaunchError("seed questions per prompt must be between 0 and 10")
    try:
        endpoint = endpoint_service.resolve_endpoint(STAGE_KIND[stage], endpoint_name)
    except endpoint_service.UnknownEndpoint as e:
        raise LaunchError(str(e)) from e
    prompt_service.ensure_default_prompts()
    prompts = {}
    for domain in found.values():
        if stage == Stage.CAPTIONS:
            prompts[f"{domain.pk}:"] = prompt_service.current_template(PromptKind.CAPTION, domain=domain).pk
        for type_ in types:
            prompts[f"{domain.pk}:{type_}"] = prompt_service.current_template(
                PromptKind.INSTRUCTION, domain=domain, instruction_type=type_
            ).pk
    with transaction.atomic():
        job = GenerationJob.objects.create(
            stage=stage,
            selection={
                "domains": sorted(found),
                "statuses": sorted(statuses or []),
                "limit": limit,
                "include_drafts": bool(include_drafts),
            },
            params={"types": types, "n_per_type": n_per_type, "seeds_per_prompt": seeds_per_prompt},
            endpoint=endpoint,
            prompts=prompts,
            launched_by=by,
        )
        JobEvent.objects.create(
            job=job, from_status="", to_status=JobStatus.QUEUED, actor=by, note="launched"
        )
        if start:
            tasks.start_job.delay_on_commit(job.pk)
    return job


def selected_images(job: GenerationJob):
    """The images of the job's selection, in id order (limit applied)."""
    sel = job.selection
    if sel.get("image_ids"):
        qs = Image.objects.filter(pk__in=sel["image_ids"])
    else:
        qs = Image.objects.filter(domain__slug__in=sel.get("domains", []))
        if sel.get("statuses"):
            qs = qs.filter(review_status__in=sel["statuses"])
        if job.stage == Stage.INSTRUCTIONS:
            wanted = (
                [ItemStatus.ACCEPTED, ItemStatus.DRAFT]
                if sel.get("include_drafts")
                else [ItemStatus.ACCEPTED]
            )
            qs = qs.filter(pk__in=Caption.objects.filter(status__in=wanted).values("image_id"))
    qs = qs.order_by("pk")
    if sel.get("limit"):
        qs = qs[: sel["limit"]]
    return qs


def _keys_for(job: GenerationJob, image_id: int, domain_id: int) -> list[tuple[str, int]]:
    """(instruction_type, prompt id) of each unit one image gets in this job."""
    if job.stage == Stage.CAPTIONS:
        return [("", job.prompts[f"{domain_id}:"])]
    return [(t, job.prompts[f"{domain_id}:{t}"]) for t in job.params.get("types", [])]


def plan_units(job: GenerationJob) -> None:
    """Create the job's units (batched). Idempotent: a redelivered planning task finds them made.

    A unit that already exists under another job is skipped if that job finished it or still runs it,
    and adopted (reset to pending) if it failed in a job that has ended or a cancelled job left it."""
    if job.planned:
        return
    image_rows = selected_images(job).values_list("pk", "domain_id")
    skipped = 0
    batch: list[tuple[int, int]] = []

    def flush(rows: list[tuple[int, int]]) -> int:
        units = [
            GenerationUnit(
                job=job,
                image_id=image_id,
                stage=job.stage,
                instruction_type=type_,
                prompt_id=prompt_id,
                endpoint_id=job.endpoint_id,
                round=0,
            )
            for image_id, domain_id in rows
            for type_, prompt_id in _keys_for(job, image_id, domain_id)
        ]
        with transaction.atomic():
            GenerationUnit.objects.bulk_create(units, ignore_conflicts=True, batch_size=PLAN_BATCH)
            others = GenerationUnit.objects.filter(
                image_id__in=[r[0] for r in rows], stage=job.stage, endpoint_id=job.endpoint_id, round=0
            ).exclude(job=job)
            wanted = {(u.image_id, u.instruction_type, u.prompt_id) for u in units}
            others = [
                u
                for u in others.select_related("job")
                if (u.image_id, u.instruction_type, u.prompt_id) in wanted
            ]
            # Failed in an ended job, or left pending by a cancelled one: this job takes them over.
            reusable = (UnitStatus.FAILED, UnitStatus.PENDING)
            adopt = [u.pk for u in others if u.status in reusable and not u.job.is_active]
            if adopt:
                GenerationUnit.objects.filter(pk__in=adopt, status__in=reusable).update(
                    job=job, status=UnitStatus.PENDING, attempts=0, error="", claim_token="", finished_at=None
                )
            return len(others) - len(adopt)

    for row in image_rows.iterator(chunk_size=PLAN_BATCH):
        batch.append(row)
        if len(batch) >= PLAN_BATCH:
            skipped += flush(batch)
            batch = []
    if batch:
        skipped += flush(batch)
    GenerationJob.objects.filter(pk=job.pk).update(planned=True, skipped=skipped)
    job.planned, job.skipped = True, skipped


def pending_chunks(job: GenerationJob, size: int | None = None) -> list[list[int]]:
    """The job's pending unit ids, in chunks of GENERATION_CHUNK_SIZE (one Celery task each)."""
    size = size or settings.GENERATION_CHUNK_SIZE
    GenerationJob.objects.filter(pk=job.pk).update(dispatched_at=timezone.now())
    ids = list(job.units.filter(status=UnitStatus.PENDING).order_by("pk").values_list("pk", flat=True))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# --- regeneration (called by the review app) ----------------------------------------------------


def queue_regeneration(image: Image, *, stage: str, by, instruction_type: str | None = None) -> GenerationJob:
    """Queue one more generation for this image, even if earlier units for it are done. Not idempotent:
    each call is a new round.

    The unit key carries a `round`: this makes a unit with round = the highest existing round + 1 for the
    same (image, stage, type, prompt, endpoint), in a one-image job, using the default endpoint of the
    stage's kind and the current prompt version. `instruction_type=None` on the instruction stage means
    all four types. Raises LaunchError if the instruction stage has no caption to work from."""
    from .. import tasks

    stage = Stage(stage)
    if stage == Stage.INSTRUCTIONS:
        types = [instruction_type] if instruction_type else list(InstructionType.values)
        if set(types) - set(InstructionType.values):
            raise LaunchError(f"unknown instruction type: {instruction_type}")
        if caption_for(image) is None:
            raise LaunchError("the image has no caption yet: regenerate the caption first")
    else:
        types = [""]
    endpoint = endpoint_service.resolve_endpoint(STAGE_KIND[stage])
    prompt_service.ensure_default_prompts()
    domain = image.domain
    prompts = {}
    for type_ in types:
        kind = PromptKind.CAPTION if stage == Stage.CAPTIONS else PromptKind.INSTRUCTION
        prompts[f"{domain.pk}:{type_}"] = prompt_service.current_template(
            kind, domain=domain, instruction_type=type_
        ).pk
    with transaction.atomic():
        job = GenerationJob.objects.create(
            stage=stage,
            selection={"image_ids": [image.pk], "domains": [domain.slug], "include_drafts": True},
            params={
                "types": [t for t in types if t],
                "n_per_type": 3,
                "seeds_per_prompt": 2,
                "regeneration": True,
            },
            endpoint=endpoint,
            prompts=prompts,
            launched_by=by,
            planned=True,
        )
        JobEvent.objects.create(
            job=job, from_status="", to_status=JobStatus.QUEUED, actor=by, note="regeneration"
        )
        for type_ in types:
            prompt_id = prompts[f"{domain.pk}:{type_}"]
            key = {
                "image": image,
                "stage": stage,
                "instruction_type": type_,
                "prompt_id": prompt_id,
                "endpoint": endpoint,
            }
            # Two regenerations at once may read the same highest round; the unique key makes the second
            # insert fail, and it takes the round after (inside a savepoint, so the job survives).
            for _ in range(5):
                latest = GenerationUnit.objects.filter(**key).aggregate(r=Max("round"))["r"]
                try:
                    with transaction.atomic():
                        GenerationUnit.objects.create(
                            job=job, round=0 if latest is None else latest + 1, **key
                        )
                    break
                except IntegrityError:
                    continue
            else:
                raise LaunchError("too many regenerations of this image at once; try again")
        tasks.start_job.delay_on_commit(job.pk)
    return job


def caption_for(image: Image) -> Caption | None:
    from corpus import services as corpus_services

    return corpus_services.current_caption(image)


def job_status(job_id: int) -> str | None:
    return GenerationJob.objects.filter(pk=job_id).values_list("status", flat=True).first()


def finish_if_complete(job: GenerationJob) -> bool:
    """A running, planned job with no pending or running unit becomes done (failed if no unit succeeded).
    Idempotent; the compare-and-swap lets exactly one of several finishing chunks record it."""
    job.refresh_from_db(fields=["status", "planned"])
    if job.status != JobStatus.RUNNING or not job.planned:
        return False
    counts = unit_counts(job)
    if counts["pending"] or counts["running"]:
        return False
    if counts["failed"] and not counts["done"]:
        return transition(job, JobStatus.FAILED, note=f"all {counts['failed']} units failed")
    return transition(job, JobStatus.DONE, note=f"{counts['done']} done, {counts['failed']} failed")


# --- controls -----------------------------------------------------------------------------------


def pause_job(job: GenerationJob, *, by) -> bool:
    """Running → paused. Workers stop taking units; units in flight finish. Idempotent (False if not running)."""
    return transition(job, JobStatus.PAUSED, actor=by) if job.status == JobStatus.RUNNING else False


def cancel_job(job: GenerationJob, *, by) -> bool:
    """Queued/running/paused → cancelled. Pending units stay pending and are never run by this job."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED):
        return False
    return transition(job, JobStatus.CANCELLED, actor=by)


def resume_job(job: GenerationJob, *, by) -> bool:
    """Paused → running, and re-queue its pending units (and any whose worker died)."""
    from .. import tasks

    if job.status != JobStatus.PAUSED:
        return False
    if not transition(job, JobStatus.RUNNING, actor=by):
        return False
    transaction.on_commit(lambda: tasks.dispatch_job.delay(job.pk))
    return True


def check_progress(job: GenerationJob) -> None:
    """What a progress poll does besides reading: hand units of dead workers to live ones, and close a job
    whose last chunk was lost. Cheap when nothing is wrong (one indexed query)."""
    from .. import tasks

    if job.status != JobStatus.RUNNING:
        return
    freed = sweep_expired(job)
    if freed:
        size = settings.GENERATION_CHUNK_SIZE
        for i in range(0, len(freed), size):
            tasks.run_chunk.delay(job.pk, freed[i : i + size])
    elif is_stalled(job):
        # Pending units and nothing happening: their chunk is stuck unacked with a dead worker. Queue them
        # again; if the old message comes back too, the claims keep the work single.
        tasks.dispatch_job.delay(job.pk)
    finish_if_complete(job)


def is_stalled(job: GenerationJob) -> bool:
    """Pending units, none running, and no unit finished for GENERATION_STALL_SECONDS."""
    if not job.planned or job.units.filter(status=UnitStatus.RUNNING).exists():
        return False
    if not job.units.filter(status=UnitStatus.PENDING).exists():
        return False
    marks = [
        job.units.aggregate(last=Max("finished_at"))["last"],
        job.dispatched_at,
        job.started_at,
        job.created_at,
    ]
    last = max(m for m in marks if m is not None)
    return (timezone.now() - last).total_seconds() > settings.GENERATION_STALL_SECONDS
