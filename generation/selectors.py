"""Reads of the generation app that the pages, the API, the command and the services share: jobs with
their counts, progress (tokens, cost, rate, ETA), latest errors and history, invalid output, cost totals,
endpoints and prompt versions. Nothing here writes (every GET is served from here).

A job's spend is what its finished work cost (units done, or still pending/running) plus every failure
it recorded (UnitFailure rows, which stay with the job when a later job adopts the unit). A failed unit's
own counters and its failure row describe the same attempts, so failed units are counted through the
failure rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from corpus.models import Instruction, ItemStatus

from .models import Endpoint, GenerationJob, GenerationUnit, PromptTemplate, UnitFailure, UnitStatus
from .services import endpoints as endpoint_service


def unit_counts(job: GenerationJob) -> dict:
    """The job's own units by status (one GROUP BY on unit_job_status_idx)."""
    rows = job.units.values("status").annotate(n=Count("id"))
    counts = {s: 0 for s in UnitStatus.values}
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


@dataclass
class Progress:
    total: int
    done: int
    failed: int
    skipped: int
    pending: int
    running: int
    tokens_in: int
    tokens_out: int
    cost: Decimal
    drafts: int
    invalid: int
    rate: float  # units finished per second since the job started
    eta_seconds: float | None
    handed_on: int = 0  # units that failed here and were adopted by a later job (counted as failed here)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    complete: bool = False  # the job has ended

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.complete else 0  # a job not planned yet has no units: 0 %, not 100 %
        return int(100 * self.finished / self.total)


def _handed_on(job: GenerationJob) -> int:
    return (
        UnitFailure.objects.filter(job=job).exclude(unit__job_id=job.pk).values("unit_id").distinct().count()
    )


def progress(job: GenerationJob) -> Progress:
    """Counts, tokens, cost, rate and ETA of a job, from its units and its failure history (4 queries)."""
    counts = unit_counts(job)
    sums = job.units.exclude(status=UnitStatus.FAILED).aggregate(
        tin=Sum("tokens_in"),
        tout=Sum("tokens_out"),
        cost=Sum("cost"),
    )
    drafts = job.units.aggregate(drafts=Sum("drafts"), invalid=Sum("invalid"))
    failed_sums = UnitFailure.objects.filter(job=job).aggregate(
        tin=Sum("tokens_in"), tout=Sum("tokens_out"), cost=Sum("cost")
    )
    handed_on = _handed_on(job) if job.failures.exists() else 0
    own = sum(counts.values())
    finished_units = counts[UnitStatus.DONE] + counts[UnitStatus.FAILED]
    rate, eta = 0.0, None
    if job.started_at and finished_units:
        end = job.finished_at or timezone.now()
        elapsed = max((end - job.started_at).total_seconds(), 0.001)
        rate = finished_units / elapsed
        remaining = counts[UnitStatus.PENDING] + counts[UnitStatus.RUNNING]
        eta = remaining / rate if rate and job.is_active else None
    return Progress(
        total=own + job.skipped + handed_on,
        done=counts[UnitStatus.DONE],
        failed=counts[UnitStatus.FAILED] + handed_on,
        skipped=job.skipped,
        pending=counts[UnitStatus.PENDING],
        running=counts[UnitStatus.RUNNING],
        tokens_in=(sums["tin"] or 0) + (failed_sums["tin"] or 0),
        tokens_out=(sums["tout"] or 0) + (failed_sums["tout"] or 0),
        cost=(sums["cost"] or Decimal(0)) + (failed_sums["cost"] or Decimal(0)),
        drafts=drafts["drafts"] or 0,
        invalid=drafts["invalid"] or 0,
        rate=rate,
        eta_seconds=eta,
        handed_on=handed_on,
        complete=not job.is_active,
    )


def latest_errors(job: GenerationJob, limit: int = 10):
    """The job's latest failures, from its own history (kept when a later job adopts the unit)."""
    return job.failures.order_by("-at", "-id")[:limit]


def job_events(job: GenerationJob):
    """The job's status moves, oldest first, with who made them."""
    return job.events.select_related("actor").order_by("at", "id")


def invalid_output(job: GenerationJob, limit: int = 50):
    """The latest instructions of the job's units that broke the type rules (kept, never reviewed)."""
    return (
        Instruction.objects.filter(generation_unit_id__in=job.units.values("pk"), status=ItemStatus.INVALID)
        .select_related("image")
        .order_by("-id")[:limit]
    )


def _failure_sum(field_name: str, output):
    rows = (
        UnitFailure.objects.filter(job=OuterRef("pk")).values("job").annotate(s=Sum(field_name)).values("s")
    )
    return Coalesce(Subquery(rows, output_field=output), Value(0), output_field=output)


def jobs_with_counts():
    """Jobs with their unit counts, sums and failure history, in the one query the lists need (newest
    first)."""

    def n(status):
        return Count("units", filter=Q(units__status=status))

    money = DecimalField(max_digits=14, decimal_places=6)
    not_failed = ~Q(units__status=UnitStatus.FAILED)
    handed_on = (
        UnitFailure.objects.filter(job=OuterRef("pk"))
        .exclude(unit__job_id=OuterRef("pk"))
        .values("job")
        .annotate(n=Count("unit", distinct=True))
        .values("n")
    )
    return (
        GenerationJob.objects.select_related("endpoint", "launched_by")
        .annotate(
            n_units=Count("units"),
            n_done=n(UnitStatus.DONE),
            n_own_failed=n(UnitStatus.FAILED),
            n_pending=n(UnitStatus.PENDING),
            n_running=n(UnitStatus.RUNNING),
            n_handed_on=Coalesce(Subquery(handed_on, output_field=IntegerField()), Value(0)),
            units_tokens_in=Sum("units__tokens_in", filter=not_failed, default=0),
            units_tokens_out=Sum("units__tokens_out", filter=not_failed, default=0),
            units_cost=Sum("units__cost", filter=not_failed, default=0, output_field=money),
            failed_tokens_in=_failure_sum("tokens_in", IntegerField()),
            failed_tokens_out=_failure_sum("tokens_out", IntegerField()),
            failed_cost=_failure_sum("cost", money),
        )
        .annotate(
            n_failed=F("n_own_failed") + F("n_handed_on"),
            total_tokens_in=F("units_tokens_in") + F("failed_tokens_in"),
            total_tokens_out=F("units_tokens_out") + F("failed_tokens_out"),
            total_cost=ExpressionWrapper(F("units_cost") + F("failed_cost"), output_field=money),
        )
        .order_by("-id")
    )


def job_with_counts(pk: int) -> GenerationJob:
    """One job as jobs_with_counts() reads it (the API's answer after a launch or a control)."""
    return jobs_with_counts().get(pk=pk)


def cost_totals() -> dict[str, list[dict]]:
    """Tokens and cost by job, by endpoint and by day (units' finished work plus every recorded failure),
    and the regenerations people asked for, by person (for the admins' cost page)."""
    units = GenerationUnit.objects.exclude(status=UnitStatus.FAILED).exclude(tokens_in=0, tokens_out=0)
    failures = UnitFailure.objects.all()
    fields = {
        "units": Count("id"),
        "tokens_in": Sum("tokens_in"),
        "tokens_out": Sum("tokens_out"),
        "cost": Sum("cost"),
    }

    def merged(rows_a, rows_b, key) -> list[dict]:
        out: dict = {}
        for row in list(rows_a) + list(rows_b):
            k = tuple(row[f] for f in key)
            acc = out.setdefault(
                k,
                {**{f: row[f] for f in key}, "units": 0, "tokens_in": 0, "tokens_out": 0, "cost": Decimal(0)},
            )
            for f in ("units", "tokens_in", "tokens_out", "cost"):
                acc[f] += row[f] or 0
        return list(out.values())

    by_job = merged(
        units.values("job_id", "job__stage").annotate(**fields),
        failures.values("job_id", "job__stage").annotate(**fields),
        ("job_id", "job__stage"),
    )
    by_endpoint = merged(
        units.values(endpoint_name=F("endpoint__name")).annotate(**fields),
        failures.values(endpoint_name=F("unit__endpoint__name")).annotate(**fields),
        ("endpoint_name",),
    )
    by_day = merged(
        units.annotate(day=TruncDate("finished_at")).values("day").annotate(**fields),
        failures.annotate(day=TruncDate("at")).values("day").annotate(**fields),
        ("day",),
    )
    regen_units = (
        GenerationUnit.objects.filter(job__is_regeneration=True)
        .exclude(status=UnitStatus.FAILED)
        .values("job__launched_by__username")
        .annotate(cost=Sum("cost"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"))
    )
    regen_failures = (
        UnitFailure.objects.filter(job__is_regeneration=True)
        .values("job__launched_by__username")
        .annotate(cost=Sum("cost"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"))
    )
    requests = (
        GenerationJob.objects.filter(is_regeneration=True)
        .values("launched_by__username")
        .annotate(requests=Count("id"))
    )
    by_person: dict = {}
    for row in requests:
        by_person[row["launched_by__username"]] = {
            "person": row["launched_by__username"] or "—",
            "requests": row["requests"],
            "tokens_in": 0,
            "tokens_out": 0,
            "cost": Decimal(0),
        }
    for row in list(regen_units) + list(regen_failures):
        acc = by_person.get(row["job__launched_by__username"])
        if acc is not None:
            acc["tokens_in"] += row["tokens_in"] or 0
            acc["tokens_out"] += row["tokens_out"] or 0
            acc["cost"] += row["cost"] or 0
    return {
        "by_job": sorted(by_job, key=lambda r: -r["job_id"])[:50],
        "by_endpoint": sorted(by_endpoint, key=lambda r: r["endpoint_name"] or ""),
        "by_day": sorted(by_day, key=lambda r: (r["day"] is None, r["day"]), reverse=True)[:60],
        "regenerations": sorted(by_person.values(), key=lambda r: -r["cost"]),
    }


def recent_regenerations(limit: int = 50):
    """The latest regeneration requests: who asked, for which image and stage, what it cost so far."""
    not_failed = ~Q(units__status=UnitStatus.FAILED)
    money = DecimalField(max_digits=14, decimal_places=6)
    return (
        GenerationJob.objects.filter(is_regeneration=True)
        .select_related("launched_by")
        .annotate(
            units_cost=Sum("units__cost", filter=not_failed, default=0, output_field=money),
            failed_cost=_failure_sum("cost", money),
        )
        .annotate(total_cost=ExpressionWrapper(F("units_cost") + F("failed_cost"), output_field=money))
        .order_by("-id")[:limit]
    )


def jobs_for_pages():
    """The jobs the job pages read one job from (with its endpoint and launcher)."""
    return GenerationJob.objects.select_related("endpoint", "launched_by")


def endpoints_with_key_state() -> list[Endpoint]:
    """Every endpoint, each with `key_set`: whether its key variable is set in this process."""
    endpoints = list(Endpoint.objects.all())
    for endpoint in endpoints:
        endpoint.key_set = endpoint_service.key_is_set(endpoint)
    return endpoints


def prompt_versions():
    """Every prompt version, grouped by (kind, type, domain), newest version first."""
    return PromptTemplate.objects.select_related("domain", "created_by").order_by(
        "kind", "instruction_type", "domain__slug", "-version"
    )


def model_spend() -> list[dict]:
    """What every model call cost, for the cost ledger of an accepted instruction (review.services.
    ledger): units' finished work plus every recorded failure, grouped by domain, stage, instruction
    type, endpoint and week (Monday). Two grouped queries."""
    from django.db.models.functions import TruncWeek

    units = GenerationUnit.objects.exclude(status=UnitStatus.FAILED).exclude(cost=0)
    rows = list(
        units.annotate(week=TruncWeek("finished_at"))
        .values(
            "stage",
            "instruction_type",
            "week",
            domain_id=F("image__domain_id"),
            endpoint_name=F("endpoint__name"),
        )
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    rows += list(
        UnitFailure.objects.exclude(cost=0)
        .annotate(week=TruncWeek("at"))
        .values(
            "instruction_type",
            "week",
            stage=F("unit__stage"),
            domain_id=F("image__domain_id"),
            endpoint_name=F("unit__endpoint__name"),
        )  # fmt: skip
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    return rows


# --- the admin's home (studio) ---------------------------------------------------------------------


def active_jobs(limit: int = 10):
    """Jobs not finished yet (queued, running, paused) with their counts and cost, newest first."""
    from .models import JobStatus

    active = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED]
    return jobs_with_counts().filter(status__in=active)[:limit]


def spend_since(since) -> Decimal:
    """Money spent on model calls since `since`: finished units plus every recorded failure (two sums)."""
    units = GenerationUnit.objects.filter(finished_at__gte=since).exclude(status=UnitStatus.FAILED)
    failed = UnitFailure.objects.filter(at__gte=since)
    return (units.aggregate(s=Sum("cost"))["s"] or Decimal(0)) + (
        failed.aggregate(s=Sum("cost"))["s"] or Decimal(0)
    )


def recent_failures(limit: int = 5):
    """The latest failed units of any job, with their error text (one query)."""
    return UnitFailure.objects.select_related("job").order_by("-at", "-id")[:limit]


# --- a job that explains itself ------------------------------------------------------------------------


def allowed_controls(job: GenerationJob) -> list[str]:
    """The controls the job's status allows (what its page offers): pause a running job, resume a
    paused one, cancel any job not finished."""
    from .models import JobStatus

    return {
        JobStatus.QUEUED: ["cancel"],
        JobStatus.RUNNING: ["pause", "cancel"],
        JobStatus.PAUSED: ["resume", "cancel"],
    }.get(job.status, [])


def _names(values, labels: dict) -> str:
    names = [str(labels.get(v, v)) for v in values]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def job_in_words(job: GenerationJob) -> list[str]:
    """The job's selection and parameters as sentences (the page prints these, not Python dicts)."""
    from corpus.models import Domain, ReviewStatus
    from corpus.rules import InstructionType

    sel, params = job.selection or {}, job.params or {}
    lines = []
    if sel.get("image_ids"):
        ids = sel["image_ids"]
        lines.append(
            f"{len(ids)} chosen image{'s' if len(ids) != 1 else ''} (ids {', '.join(map(str, ids[:20]))}"
            f"{'…' if len(ids) > 20 else ''})."
        )
    else:
        names = dict(Domain.objects.filter(slug__in=sel.get("domains", [])).values_list("slug", "name"))
        domains = _names(sel.get("domains", []), names) or "no domain"
        line = f"Images of {domains}"
        if sel.get("statuses"):
            line += f" whose review state is {_names(sel['statuses'], dict(ReviewStatus.choices)).lower()}"
        lines.append(line + (f", at most {sel['limit']}." if sel.get("limit") else "."))
    if job.stage == "instructions":
        types = _names(params.get("types", []), dict(InstructionType.choices)) or "no type"
        lines.append(
            f"{params.get('n_per_type', 3)} question{'s' if params.get('n_per_type', 3) != 1 else ''} of each type: "
            f"{types}; {params.get('seeds_per_prompt', 0)} seed question(s) shown to the model per prompt."
        )
        lines.append(
            "Written from accepted and draft captions."
            if sel.get("include_drafts")
            else "Written from accepted captions only."
        )
    elif job.stage == "conversation":
        lines.append(
            "One conversation of 3 to 6 turns per image, from its caption and its accepted instructions "
            + ("(accepted and draft captions)." if sel.get("include_drafts") else "(accepted captions only).")
        )
    elif job.stage == "ocr":
        lines.append(
            "The text a local OCR engine finds in each image without OCR text yet (no model, no cost)."
        )
    else:
        lines.append("One caption per image.")
    versions = sorted(set((job.prompts or {}).values()))
    if versions:
        lines.append(
            f"Prompt template{'s' if len(versions) != 1 else ''} {_names([f'#{v}' for v in versions], {})}."
        )
    if job.is_regeneration:
        lines.append("A regeneration someone asked for from the review page.")
    return lines


def units_with_drafts(job: GenerationJob, limit: int = 50):
    """The job's finished units that wrote drafts, newest first, with their image (the page links each
    to the image's page, where the drafts are)."""
    return (
        job.units.filter(status=UnitStatus.DONE, drafts__gt=0)
        .select_related("image")
        .only(
            "id",
            "image_id",
            "image__original_name",
            "instruction_type",
            "drafts",
            "invalid",
            "cost",
            "finished_at",
        )
        .order_by("-finished_at", "-id")[:limit]
    )
