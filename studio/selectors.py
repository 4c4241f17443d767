"""What each role's home page shows. Reads only: corpus models directly (the data every app builds
on), the feature apps through their selectors and services.

- admin: the pipeline per domain as a funnel with the next action, jobs not finished, spend today,
  recent failures;
- annotator: the queue per domain, the images held, today's decisions and items per hour;
- researcher: the latest exports with what changed since each, and what is ready to export."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from corpus.models import (
    Caption,
    Domain,
    Image,
    Instruction,
    ItemStatus,
    ReviewStatus,
    Revision,
    RevisionAction,
)


def start_of_today() -> datetime.datetime:
    now = timezone.now()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


# --- admin -----------------------------------------------------------------------------------------


@dataclass
class Step:
    key: str
    label: str
    n: int
    action: str = ""  # "captions" / "instructions" / "review" / "export": the form or link to show
    waiting: int = 0  # how many the action would take up


@dataclass
class DomainFunnel:
    domain: Domain
    steps: list[Step] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.steps[0].n if self.steps else 0


def funnel(exported_by_domain: dict[str, int] | None = None) -> list[DomainFunnel]:
    """Per active domain: imported → captioned → instructed → in review → reviewed → exported, with the
    next action on the step where work waits. One grouped query over images (plus the domains)."""
    usable = [ItemStatus.DRAFT, ItemStatus.ACCEPTED]
    has_caption = Exists(Caption.objects.filter(image=OuterRef("pk"), status__in=usable))
    has_accepted_caption = Exists(Caption.objects.filter(image=OuterRef("pk"), status=ItemStatus.ACCEPTED))
    has_instruction = Exists(Instruction.objects.filter(image=OuterRef("pk"), status__in=usable))
    rows = (
        Image.objects.annotate(c=has_caption, ac=has_accepted_caption, i=has_instruction)
        .values("domain_id")
        .annotate(
            imported=Count("id"),
            captioned=Count("id", filter=Q(c=True)),
            # What "caption the uncaptioned" launches on: images without a draft of any kind (status new).
            uncaptioned_new=Count("id", filter=Q(c=False, review_status=ReviewStatus.NEW)),
            accepted_caption_only=Count("id", filter=Q(ac=True, i=False)),
            instructed=Count("id", filter=Q(i=True)),
            in_review=Count("id", filter=Q(review_status__in=[ReviewStatus.PENDING, ReviewStatus.IN_REVIEW])),
            reviewed=Count("id", filter=Q(review_status=ReviewStatus.REVIEWED)),
        )
    )
    by_domain = {r["domain_id"]: r for r in rows}
    exported_by_domain = exported_by_domain or {}
    out = []
    for domain in Domain.objects.filter(is_active=True).order_by("name"):
        r = by_domain.get(domain.pk) or {}
        imported = r.get("imported", 0)
        captioned = r.get("captioned", 0)
        steps = [
            Step("imported", "Imported", imported),
            Step("captioned", "Captioned", captioned, "captions", r.get("uncaptioned_new", 0)),
            Step(
                "instructed",
                "Instructed",
                r.get("instructed", 0),
                "instructions",
                r.get("accepted_caption_only", 0),
            ),
            Step("in_review", "In review", r.get("in_review", 0), "review", r.get("in_review", 0)),
            Step("reviewed", "Reviewed", r.get("reviewed", 0)),
            Step("exported", "Exported (instructions)", exported_by_domain.get(domain.slug, 0), "export"),
        ]
        out.append(DomainFunnel(domain, steps))
    return out


# --- annotator -------------------------------------------------------------------------------------


def decisions_today(user) -> dict:
    """The user's accepts and rejects since midnight (UTC), and items per hour over the active time
    between them (gaps above REVIEW_IDLE_SECONDS are breaks, as on the statistics page)."""
    from django.conf import settings

    times = list(
        Revision.objects.filter(
            by=user, at__gte=start_of_today(), action__in=[RevisionAction.ACCEPTED, RevisionAction.REJECTED]
        )
        .order_by("at")
        .values_list("at", "action")
    )
    accepted = sum(1 for _, a in times if a == RevisionAction.ACCEPTED)
    active = 0.0
    for (before, _), (after, _) in zip(times, times[1:], strict=False):
        gap = (after - before).total_seconds()
        if gap <= settings.REVIEW_IDLE_SECONDS:
            active += gap
    n = len(times)
    return {
        "decisions": n,
        "accepted": accepted,
        "rejected": n - accepted,
        "items_per_hour": (n * 3600 / active) if active else None,
    }


def queue_by_domain(pending: dict[int, int], chosen: list[int]) -> list[dict]:
    """Domains with images waiting (from review.services.queue.pending_counts), the chosen ones first."""
    domains = Domain.objects.filter(is_active=True).order_by("name")
    rows = [{"domain": d, "pending": pending.get(d.pk, 0), "chosen": d.pk in chosen} for d in domains]
    return sorted(rows, key=lambda r: (not r["chosen"], -r["pending"], r["domain"].name))


# --- researcher ------------------------------------------------------------------------------------


def ready_to_export() -> list[dict]:
    """Accepted instructions per domain and how many of them were decided today: what a new export
    would hold (one grouped query)."""
    rows = (
        Instruction.objects.filter(status=ItemStatus.ACCEPTED)
        .values("image__domain__slug", "image__domain__name")
        .annotate(n=Count("id"), images=Count("image", distinct=True))
        .order_by("image__domain__name")
    )
    return [
        {
            "slug": r["image__domain__slug"],
            "name": r["image__domain__name"],
            "instructions": r["n"],
            "images": r["images"],
        }
        for r in rows
    ]


def decided_since(when: datetime.datetime | None) -> int:
    """Accepts, rejects and edits people made since `when` (what a rebuild would pick up)."""
    if when is None:
        return 0
    return Revision.objects.filter(
        at__gt=when, action__in=[RevisionAction.ACCEPTED, RevisionAction.REJECTED, RevisionAction.EDITED]
    ).count()
