"""Generation jobs: launch, plan units (adopting those ended jobs left), the job's status moves and
controls, regeneration. Claims and leases of units are in units.py, reads in generation.selectors.

A job owns units; its counts, tokens and cost are always computed from them (one GROUP BY on the
(job, status) index), so a killed worker can never make them drift. Units already done by another job
(or in flight in one) are counted once as `skipped` at planning time.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from corpus.models import Caption, Image, Instruction, ItemStatus, ReviewStatus
from corpus.rules import InstructionType
from corpus.transitions import record_event, transition

from .. import selectors
from ..models import (
    LOCAL_STAGES,
    EndpointKind,
    GenerationJob,
    GenerationUnit,
    JobStatus,
    PromptKind,
    Stage,
    UnitStatus,
)
from . import endpoints as endpoint_service
from . import ocr as ocr_stage
from . import prompts as prompt_service

STAGE_KIND = {
    Stage.CAPTIONS: EndpointKind.VISION,
    Stage.INSTRUCTIONS: EndpointKind.TEXT,
    Stage.CONVERSATION: EndpointKind.TEXT,
    Stage.VERIFY: EndpointKind.VISION,
}
# The one prompt (not per type) of the stages that have one.
STAGE_PROMPT = {
    Stage.CAPTIONS: PromptKind.CAPTION,
    Stage.CONVERSATION: PromptKind.CONVERSATION,
    Stage.VERIFY: PromptKind.VERIFY,
}
PLAN_BATCH = 1000
# The largest image limit a launch accepts: the range of a database integer (a limit beyond 64 bits was
# once accepted and broke planning, leaving the job running with no units).
MAX_LIMIT = 2**31 - 1


class LaunchError(ValueError):
    """A launch request that cannot be satisfied (unknown domain, endpoint, type …). `field` names the
    input at fault when there is one, so the API and the forms can point at it."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NeedsConfirmation(LaunchError):
    """The endpoint is known to be broken (no key set, last connection test failed): launch only with
    force=True. `warnings` lists what the person is asked to confirm."""

    def __init__(self, warnings: list[str]):
        super().__init__(
            "; ".join(warnings) + ". Launch anyway (force=true) only if you know it will work.", field="force"
        )
        self.warnings = warnings


class RegenerationQuotaExceeded(LaunchError):
    """The person asked for REGENERATION_HOURLY_QUOTA regenerations within the last hour; `retry_after`
    is the number of seconds until the oldest of them leaves the window."""

    def __init__(self, quota: int, retry_after: int):
        minutes = max(1, round(retry_after / 60))
        super().__init__(
            f"you have asked for {quota} regenerations in the last hour, the most allowed; "
            f"try again in about {minutes} minute{'s' if minutes != 1 else ''}"
        )
        self.quota = quota
        self.retry_after = retry_after


def move_job(job: GenerationJob, to: str, *, actor=None, note: str = "") -> bool:
    """Move the job from the status it was read in to `to` (corpus.transitions: compare-and-swap and one
    JobEvent), stamping started_at on the first start and finished_at when it ends. False if another
    process moved it first; InvalidTransition if GenerationJob.STATUS_MOVES forbids the move."""
    now = timezone.now()
    fields: dict = {}
    if to == JobStatus.RUNNING:
        fields["started_at"] = job.started_at or now
    if to in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED):
        fields["finished_at"] = now
    return transition(job, "status", to, actor=actor, note=note, fields=fields)


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
    force: bool = False,
    image_ids: list[int] | None = None,
) -> GenerationJob:
    """Create a queued job for the selection and (unless start=False) queue its start task after commit.

    Not idempotent by itself (each call is a job), but the work is: units done by an earlier job are
    skipped, never generated twice. Raises LaunchError for a bad selection (with the field at fault), and
    NeedsConfirmation when the endpoint is known to be broken and `force` is not set."""
    from corpus.models import Domain

    from .. import tasks

    try:
        stage = Stage(stage)
    except ValueError as e:
        raise LaunchError(f"unknown stage: {stage}", field="stage") from e
    if not domains:
        raise LaunchError("choose at least one domain", field="domains")
    found = {d.slug: d for d in Domain.objects.filter(slug__in=domains)}
    missing = sorted(set(domains) - set(found))
    if missing:
        raise LaunchError(f"unknown domain(s): {', '.join(missing)}", field="domains")
    bad_status = sorted(set(statuses or []) - set(ReviewStatus.values))
    if bad_status:
        raise LaunchError(f"unknown image status(es): {', '.join(bad_status)}", field="statuses")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise LaunchError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    types = list(types or InstructionType.values) if stage == Stage.INSTRUCTIONS else []
    bad_types = sorted(set(types) - set(InstructionType.values))
    if bad_types:
        raise LaunchError(f"unknown instruction type(s): {', '.join(bad_types)}", field="types")
    if not 1 <= n_per_type <= 20:
        raise LaunchError("questions per type must be between 1 and 20", field="n_per_type")
    if not 0 <= seeds_per_prompt <= 10:
        raise LaunchError("seed questions per prompt must be between 0 and 10", field="seeds_per_prompt")
    if stage == Stage.OCR:
        check_ocr_launch(found.values(), endpoint_name=endpoint_name)
        endpoint, warnings = None, []
    else:
        try:
            endpoint = endpoint_service.resolve_endpoint(STAGE_KIND[stage], endpoint_name)
        except endpoint_service.UnknownEndpoint as e:
            raise LaunchError(str(e), field="endpoint") from e
        warnings = endpoint_service.launch_warnings(endpoint)
    if warnings and not force:
        raise NeedsConfirmation(warnings)
    prompt_service.ensure_default_prompts()
    prompts = {}
    for domain in found.values():
        if stage in STAGE_PROMPT:
            prompts[f"{domain.pk}:"] = prompt_service.current_template(STAGE_PROMPT[stage], domain=domain).pk
        for type_ in types:
            prompts[f"{domain.pk}:{type_}"] = prompt_service.current_template(
                PromptKind.INSTRUCTION, domain=domain, instruction_type=type_
            ).pk
    if image_ids is not None:
        # Chosen images (the image browser's bulk action): each must belong to one of the domains.
        image_ids = sorted({int(i) for i in image_ids})
        if not image_ids:
            raise LaunchError("choose at least one image", field="image_ids")
        known = Image.objects.filter(pk__in=image_ids, domain__slug__in=list(found)).count()
        if known != len(image_ids):
            raise LaunchError(
                "some chosen images do not exist or are not in the chosen domains", field="image_ids"
            )
    note = "launched" + (" despite: " + "; ".join(warnings) if warnings else "")
    with transaction.atomic():
        job = GenerationJob.objects.create(
            stage=stage,
            selection={
                "domains": sorted(found),
                "statuses": sorted(statuses or []),
                "limit": limit,
                "include_drafts": bool(include_drafts),
                **({"image_ids": image_ids} if image_ids else {}),
            },
            params={
                "types": types,
                "n_per_type": n_per_type,
                "seeds_per_prompt": seeds_per_prompt,
            },
            endpoint=endpoint,
            prompts=prompts,
            launched_by=by,
        )
        record_event(job, from_status="", to_status=JobStatus.QUEUED, actor=by, note=note)
        if start:
            tasks.start_job.delay_on_commit(job.pk)
    return job


def check_ocr_launch(domains, *, endpoint_name: str | None) -> None:
    """An OCR job runs the local engine on domains that have OCR on: LaunchError otherwise."""
    if endpoint_name:
        raise LaunchError("the ocr stage runs a local OCR engine: it takes no endpoint", field="endpoint")
    off = sorted(d.slug for d in domains if not d.ocr_enabled)
    if off:
        raise LaunchError(
            f"OCR is off for domain(s) {', '.join(off)}: an admin turns it on on the domain's edit page",
            field="domains",
        )
    if not ocr_stage.engine_available():
        raise LaunchError(ocr_stage.INSTALL_HINT, field="stage")


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
        elif job.stage == Stage.CONVERSATION:
            wanted = (
                [ItemStatus.ACCEPTED, ItemStatus.DRAFT]
                if sel.get("include_drafts")
                else [ItemStatus.ACCEPTED]
            )
            qs = qs.filter(pk__in=Caption.objects.filter(status__in=wanted).values("image_id")).filter(
                pk__in=Instruction.objects.filter(
                    status=ItemStatus.ACCEPTED, conversation__isnull=True
                ).values("image_id")
            )
        elif job.stage == Stage.OCR:
            # An OCR text already there (typed at import, found before) is kept, never redone.
            qs = qs.filter(domain__ocr_enabled=True, ocr_text="")
        elif job.stage == Stage.VERIFY:  # the images with draft instructions to judge
            qs = qs.filter(pk__in=Instruction.objects.filter(status=ItemStatus.DRAFT).values("image_id"))
    qs = qs.order_by("pk")
    if sel.get("limit"):
        qs = qs[: sel["limit"]]
    return qs


def _keys_for(job: GenerationJob, image_id: int, domain_id: int) -> list[tuple[str, int]]:
    """(instruction_type, prompt id) of each unit one image gets in this job."""
    if job.stage in LOCAL_STAGES:
        return [("", None)]
    if job.stage in STAGE_PROMPT:
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
            adopted = sum(adopt_unit(u, job) for u in others if u.status in reusable and not u.job.is_active)
            return len(others) - adopted

    for row in image_rows.iterator(chunk_size=PLAN_BATCH):
        batch.append(row)
        if len(batch) >= PLAN_BATCH:
            skipped += flush(batch)
            batch = []
    if batch:
        skipped += flush(batch)
    note = explain_plan(job, own=job.units.count(), skipped=skipped)
    GenerationJob.objects.filter(pk=job.pk).update(planned=True, skipped=skipped, plan_note=note)
    job.planned, job.skipped, job.plan_note = True, skipped, note


def adopt_unit(unit: GenerationUnit, job: GenerationJob) -> bool:
    """A unit that failed in an ended job (failed → pending), or that a cancelled job left pending
    (pending → pending), moves to `job` and starts afresh: one transition and one UnitEvent. The job it
    leaves keeps its failure rows (UnitFailure): its history and what its attempts cost stay with it.
    False if the unit moved meanwhile (another job adopted it first, or it was claimed)."""
    return transition(
        unit,
        "status",
        UnitStatus.PENDING,
        expect={"job_id": unit.job_id},
        note=f"adopted by job {job.pk} from job {unit.job_id}",
        fields={
            "job": job,
            "attempts": 0,
            "error": "",
            "claim_token": "",
            "lease_expires_at": None,
            "finished_at": None,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost": 0,
            "latency_ms": 0,
        },
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _have(n: int) -> str:
    return "has" if n == 1 else "have"


def explain_plan(job: GenerationJob, *, own: int, skipped: int) -> str:
    """Why the plan is smaller than the selection suggests, in words; "" when there is nothing to say.
    A job that plans 0 units always says why (no image matched, only draft captions, all done before)."""
    sel = job.selection
    if sel.get("image_ids"):
        return "" if own or skipped else "the image is gone"
    images = Image.objects.filter(domain__slug__in=sel.get("domains", []))
    if sel.get("statuses"):
        images = images.filter(review_status__in=sel["statuses"])
    where = "domain(s) " + ", ".join(sel.get("domains", []))
    if sel.get("statuses"):
        where += " with review status " + " or ".join(sel["statuses"])
    notes = []
    if job.stage == Stage.INSTRUCTIONS:
        accepted = Caption.objects.filter(image=OuterRef("pk"), status=ItemStatus.ACCEPTED)
        drafts = Caption.objects.filter(image=OuterRef("pk"), status=ItemStatus.DRAFT)
        without_accepted = images.exclude(Exists(accepted))
        draft_only = without_accepted.filter(Exists(drafts)).count()
        uncaptioned = without_accepted.exclude(Exists(drafts)).count()
        if draft_only and not sel.get("include_drafts"):
            notes.append(
                f"{_plural(draft_only, 'image')} {_have(draft_only)} only draft captions: include drafts?"
            )
        if uncaptioned and not own:
            notes.append(
                f"{_plural(uncaptioned, 'image')} {_have(uncaptioned)} no caption yet: run the captions stage first"
            )
        elif uncaptioned:
            notes.append(f"{_plural(uncaptioned, 'image')} without a caption were left out")
    if job.stage == Stage.CONVERSATION and not own and not skipped:
        notes.append("no image has both a caption and an accepted instruction: review instructions first")
    if job.stage == Stage.OCR and not own and not skipped and images.exists():
        notes.append("every image already has its OCR text")
    if job.stage == Stage.VERIFY and not own and not skipped:
        notes.append(f"no image in {where} has draft instructions to verify")
    if not own and not skipped and not notes:
        notes.append(f"no image in {where}")
    if skipped and not own:
        notes.append(f"all {_plural(skipped, 'unit')} were already done (or are running) in earlier jobs")
    if not own and notes:
        return "0 units planned: " + "; ".join(notes)
    return "; ".join(notes)


def pending_chunks(job: GenerationJob, size: int | None = None) -> list[list[int]]:
    """The job's pending unit ids, in chunks of GENERATION_CHUNK_SIZE (one Celery task each)."""
    size = size or settings.GENERATION_CHUNK_SIZE
    GenerationJob.objects.filter(pk=job.pk).update(dispatched_at=timezone.now())
    ids = list(job.units.filter(status=UnitStatus.PENDING).order_by("pk").values_list("pk", flat=True))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# --- regeneration (called by the review app) ----------------------------------------------------


def regenerations_in_the_last_hour(user) -> list:
    """Creation times of the user's regeneration jobs of the last hour, oldest first."""
    since = timezone.now() - timedelta(hours=1)
    return list(
        GenerationJob.objects.filter(launched_by=user, is_regeneration=True, created_at__gt=since)
        .order_by("created_at")
        .values_list("created_at", flat=True)
    )


def queue_regeneration(image: Image, *, stage: str, by, instruction_type: str | None = None) -> GenerationJob:
    """Queue one more generation for this image, even if earlier units for it are done. Not idempotent:
    each call is a new round, and counts against the person's REGENERATION_HOURLY_QUOTA.

    The unit key carries a `round`: this makes a unit with round = the highest existing round + 1 for the
    same (image, stage, type, prompt, endpoint), in a one-image job (`is_regeneration`, `launched_by` = who
    asked: the record of the request and, through its unit, of its cost), using the default endpoint of
    the stage's kind and the current prompt version. `instruction_type=None` on the instruction stage
    means all four types. Raises LaunchError if the instruction stage has no caption to work from, and
    RegenerationQuotaExceeded when the quota is used up. Whether `by` may ask at all (the image's lease)
    is the review app's rule."""
    from .. import tasks

    stage = Stage(stage)
    if stage == Stage.INSTRUCTIONS:
        types = [instruction_type] if instruction_type else list(InstructionType.values)
        if set(types) - set(InstructionType.values):
            raise LaunchError(f"unknown instruction type: {instruction_type}", field="instruction_type")
        if caption_for(image) is None:
            raise LaunchError("the image has no caption yet: regenerate the caption first")
    else:
        types = [""]
    try:
        endpoint = endpoint_service.resolve_endpoint(STAGE_KIND[stage])
    except endpoint_service.UnknownEndpoint as e:
        raise LaunchError(str(e)) from e
    prompt_service.ensure_default_prompts()
    domain = image.domain
    prompts = {}
    for type_ in types:
        kind = PromptKind.CAPTION if stage == Stage.CAPTIONS else PromptKind.INSTRUCTION
        prompts[f"{domain.pk}:{type_}"] = prompt_service.current_template(
            kind, domain=domain, instruction_type=type_
        ).pk
    with transaction.atomic():
        quota = settings.REGENERATION_HOURLY_QUOTA
        if by is not None:
            # Lock the person's row: two requests at once count one after the other, so the quota holds
            # exactly (SQLite's IMMEDIATE transactions serialize the same way).
            get_user_model().objects.select_for_update().filter(pk=by.pk).first()
            recent = regenerations_in_the_last_hour(by)
            if len(recent) >= quota:
                oldest = recent[len(recent) - quota] if quota > 0 else timezone.now()
                wait = (oldest + timedelta(hours=1) - timezone.now()).total_seconds()
                raise RegenerationQuotaExceeded(quota, max(1, int(wait) + 1))
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
            is_regeneration=True,
        )
        record_event(job, from_status="", to_status=JobStatus.QUEUED, actor=by, note="regeneration")
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
    from corpus.services import items as corpus_services

    return corpus_services.current_caption(image)


def job_status(job_id: int) -> str | None:
    return GenerationJob.objects.filter(pk=job_id).values_list("status", flat=True).first()


def finish_if_complete(job: GenerationJob) -> bool:
    """A running, planned job with no pending or running unit becomes done (failed if no unit succeeded).
    Idempotent; the compare-and-swap lets exactly one of several finishing chunks record it."""
    job.refresh_from_db(fields=["status", "planned"])
    if job.status != JobStatus.RUNNING or not job.planned:
        return False
    counts = selectors.unit_counts(job)
    if counts["pending"] or counts["running"]:
        return False
    if counts["failed"] and not counts["done"]:
        return move_job(job, JobStatus.FAILED, note=f"all {counts['failed']} units failed")
    if not any(counts.values()):
        plan_note = GenerationJob.objects.values_list("plan_note", flat=True).get(pk=job.pk)
        return move_job(job, JobStatus.DONE, note=plan_note or "0 units planned")
    return move_job(job, JobStatus.DONE, note=f"{counts['done']} done, {counts['failed']} failed")


# --- controls -----------------------------------------------------------------------------------


def pause_job(job: GenerationJob, *, by) -> bool:
    """Running → paused. Workers stop taking units; units in flight finish. Idempotent (False if not running)."""
    return move_job(job, JobStatus.PAUSED, actor=by) if job.status == JobStatus.RUNNING else False


def cancel_job(job: GenerationJob, *, by) -> bool:
    """Queued/running/paused → cancelled. Pending units stay pending and are never run by this job."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED):
        return False
    return move_job(job, JobStatus.CANCELLED, actor=by)


def resume_job(job: GenerationJob, *, by) -> bool:
    """Paused → running, and re-queue its pending units (and any whose worker died)."""
    from .. import tasks

    if job.status != JobStatus.PAUSED:
        return False
    if not move_job(job, JobStatus.RUNNING, actor=by):
        return False
    transaction.on_commit(lambda: tasks.dispatch_job.delay(job.pk))
    return True
