"""What each role's home page shows. Reads only: corpus models directly (the data every app builds
on), the feature apps through their selectors and services.

- admin: the pipeline per domain as a funnel with the next action, jobs not finished, spend today,
  recent failures;
- annotator: the queue per domain, the images held, today's decisions and items per hour;
- researcher: the latest exports with what changed since each, and what is ready to export."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from corpus.models import (
    Domain,
    ItemStatus,
    ReviewStatus,
    Revision,
    RevisionAction,
)

FUNNEL_CACHE_KEY = "studio:funnel"
READY_CACHE_KEY = "studio:ready"
FUNNEL_CACHE_SECONDS = 20


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


_FUNNEL_SQL = """
    SELECT im.domain_id,
           COUNT(*),
           SUM(CASE WHEN c.image_id IS NOT NULL THEN 1 ELSE 0 END),
           SUM(CASE WHEN c.image_id IS NULL AND im.review_status = %s THEN 1 ELSE 0 END),
           SUM(CASE WHEN i.image_id IS NOT NULL THEN 1 ELSE 0 END),
           SUM(CASE WHEN ac.image_id IS NOT NULL AND i.image_id IS NULL THEN 1 ELSE 0 END),
           SUM(CASE WHEN im.review_status IN (%s, %s) THEN 1 ELSE 0 END),
           SUM(CASE WHEN im.review_status = %s THEN 1 ELSE 0 END)
    FROM corpus_image im
    LEFT JOIN (SELECT DISTINCT image_id FROM corpus_caption WHERE status IN (%s, %s)) c ON c.image_id = im.id
    LEFT JOIN (SELECT DISTINCT image_id FROM corpus_caption WHERE status = %s) ac ON ac.image_id = im.id
    LEFT JOIN (SELECT DISTINCT image_id FROM corpus_instruction WHERE status IN (%s, %s)) i ON i.image_id = im.id
    GROUP BY im.domain_id
"""


def funnel_counts() -> dict[int, dict[str, int]]:
    """Per domain id: images imported, captioned (a draft or accepted caption), uncaptioned and new (what
    "caption the uncaptioned" launches on), instructed, captioned-but-not-instructed (an accepted caption
    and no instruction: what "write instructions" takes up), in review, reviewed. One statement: each
    item table is reduced to its distinct image ids once (hash joins), not probed once per image — at
    200,000 images that is the difference between seconds and a fraction (bench/studio.py). Cached for
    FUNNEL_CACHE_SECONDS: the admin's home is looked at often, the numbers move slowly."""
    cached = cache.get(FUNNEL_CACHE_KEY)
    if cached is not None:
        return cached
    usable = [ItemStatus.DRAFT, ItemStatus.ACCEPTED]
    params = [
        ReviewStatus.NEW,
        ReviewStatus.PENDING,
        ReviewStatus.IN_REVIEW,
        ReviewStatus.REVIEWED,
        *usable,
        ItemStatus.ACCEPTED,
        *usable,
    ]
    keys = (
        "imported",
        "captioned",
        "uncaptioned_new",
        "instructed",
        "accepted_caption_only",
        "in_review",
        "reviewed",
    )
    with connection.cursor() as cursor:
        cursor.execute(_FUNNEL_SQL, params)
        counts = {
            row[0]: {k: int(v or 0) for k, v in zip(keys, row[1:], strict=True)} for row in cursor.fetchall()
        }
    cache.set(FUNNEL_CACHE_KEY, counts, FUNNEL_CACHE_SECONDS)
    return counts


def funnel(exported_by_domain: dict[str, int] | None = None) -> list[DomainFunnel]:
    """Per active domain: imported → captioned → instructed → in review → reviewed → exported, with the
    next action on the step where work waits."""
    by_domain = funnel_counts()
    exported_by_domain = exported_by_domain or {}
    out = []
    for domain in Domain.objects.filter(is_active=True).order_by("name"):
        r = by_domain.get(domain.pk) or {}
        steps = [
            Step("imported", "Imported", r.get("imported", 0)),
            Step("captioned", "Captioned", r.get("captioned", 0), "captions", r.get("uncaptioned_new", 0)),
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


_READY_SQL = """
    SELECT d.slug, d.name, SUM(x.n), COUNT(*)
    FROM (SELECT image_id, COUNT(*) AS n FROM corpus_instruction WHERE status = %s GROUP BY image_id) x
    JOIN corpus_image im ON im.id = x.image_id
    JOIN corpus_domain d ON d.id = im.domain_id
    GROUP BY d.id, d.slug, d.name
    ORDER BY d.name
"""


def ready_to_export() -> list[dict]:
    """Accepted instructions per domain and the images they are on: what a new export would hold. One
    statement, grouped per image first (a hash aggregate) rather than a COUNT(DISTINCT) per domain;
    cached like the funnel."""
    cached = cache.get(READY_CACHE_KEY)
    if cached is not None:
        return cached
    with connection.cursor() as cursor:
        cursor.execute(_READY_SQL, [ItemStatus.ACCEPTED])
        rows = [
            {"slug": slug, "name": name, "instructions": int(n), "images": int(images)}
            for slug, name, n, images in cursor.fetchall()
        ]
    cache.set(READY_CACHE_KEY, rows, FUNNEL_CACHE_SECONDS)
    return rows


def decided_since(when: datetime.datetime | None) -> int:
    """Accepts, rejects and edits people made since `when` (what a rebuild would pick up)."""
    if when is None:
        return 0
    return Revision.objects.filter(
        at__gt=when, action__in=[RevisionAction.ACCEPTED, RevisionAction.REJECTED, RevisionAction.EDITED]
    ).count()
