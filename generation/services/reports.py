"""Reading jobs: counts, tokens and cost from their units, rate and ETA, latest errors, cost totals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import GenerationJob, GenerationUnit, UnitStatus


def unit_counts(job: GenerationJob) -> dict:
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

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    complete: bool = False  # the job has ended

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.complete else 0  # a job not planned yet has no units: 0 %, not 100 %
        return int(100 * self.finished / self.total)


def progress(job: GenerationJob) -> Progress:
    """Counts, tokens, cost, rate and ETA of a job, computed from its units (two queries)."""
    counts = unit_counts(job)
    sums = job.units.aggregate(
        tin=Sum("tokens_in"),
        tout=Sum("tokens_out"),
        cost=Sum("cost"),
        drafts=Sum("drafts"),
        invalid=Sum("invalid"),
    )
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
        total=own + job.skipped,
        done=counts[UnitStatus.DONE],
        failed=counts[UnitStatus.FAILED],
        skipped=job.skipped,
        pending=counts[UnitStatus.PENDING],
        running=counts[UnitStatus.RUNNING],
        tokens_in=sums["tin"] or 0,
        tokens_out=sums["tout"] or 0,
        cost=sums["cost"] or Decimal(0),
        drafts=sums["drafts"] or 0,
        invalid=sums["invalid"] or 0,
        rate=rate,
        eta_seconds=eta,
        complete=not job.is_active,
    )


def latest_errors(job: GenerationJob, limit: int = 10):
    return job.units.filter(status=UnitStatus.FAILED).order_by("-finished_at", "-id")[:limit]


def cost_totals() -> dict[str, list[dict]]:
    """Tokens and cost of finished units by job, by endpoint and by day (for the admins' cost page)."""
    units = GenerationUnit.objects.exclude(tokens_in=0, tokens_out=0)
    fields = {
        "units": Count("id"),
        "tokens_in": Sum("tokens_in"),
        "tokens_out": Sum("tokens_out"),
        "cost": Sum("cost"),
    }
    return {
        "by_job": list(units.values("job_id", "job__stage").annotate(**fields).order_by("-job_id")[:50]),
        "by_endpoint": list(units.values("endpoint__name").annotate(**fields).order_by("endpoint__name")),
        "by_day": list(
            units.annotate(day=TruncDate("finished_at"))
            .values("day")
            .annotate(**fields)
            .order_by("-day")[:60]
        ),
    }
